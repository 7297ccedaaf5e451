// The protobuf subprotocols, protobuf.webpubsub.azure.v1 and its reliable sibling
// (PROTOCOL.md 3.7; schema in server/proto/webpubsub.proto, compiled at build time): binary
// frames, one UpstreamMessage from the client or DownstreamMessage to it.
//
// Decoding uses the generated code. A frame that does not parse (truncated varints, wrong wire
// types, invalid UTF-8 in a string field, nesting too deep) or a text frame is malformed (close
// 1003, like a JSON frame that is not JSON); unknown fields are skipped, as protobuf does; an
// UpstreamMessage with none of the known messages is an unknown type. Field values are then
// checked like the JSON protocol's (BadRequest acks), so both behave the same.
//
// A data message is encoded by hand, once, into one buffer holding the whole frame of the plain
// subprotocol; its tail (the DataMessage's fields) is the body reliable recipients share, each
// with its own head: WebSocket header, the DataMessage's tag and length, and its sequence_id
// field (protobuf fields may come in any order). The payload of protobuf_data is the sender's
// serialized google.protobuf.Any, copied as is.
//
// Pure functions and stateless singletons; thread-safe. The generated code and the protobuf
// library's headers stay inside protobuf_codec.cc.
#pragma once

#include "base/status.h"
#include "server/client_message.h"
#include "server/codec.h"

#include <string_view>

namespace hubcast::server {

const SubprotocolCodec& ProtobufCodec(bool reliable);

// An UpstreamMessage's bytes as a ClientMessage. kInvalidArgument: malformed (close 1003).
Result<ClientMessage> DecodeProtobufClientMessage(std::string_view bytes);

// True if the bytes parse as a google.protobuf.Any: what a JSON client's "protobuf" payload must
// be, so that protobuf recipients can parse the message it arrives in.
bool IsProtobufAny(std::string_view bytes);

}  // namespace hubcast::server
