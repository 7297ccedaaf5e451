// The JSON subprotocols' wire format (PROTOCOL.md 3.2 and 3.4): decoding client messages and
// encoding service messages. Pure functions, thread-safe.
//
// Decoding distinguishes three outcomes, because the protocol answers them differently:
//   - not a JSON object with a string "type" (or an ackId that is not a uint64): the frame is
//     malformed and the connection is closed with 1003;
//   - a known type with invalid fields, or an unknown type: the message is rejected with an
//     ack error "BadRequest" when it has an ackId (and dropped otherwise);
//   - a valid message.
#pragma once

#include "base/shared_bytes.h"
#include "base/status.h"
#include "server/client_message.h"
#include "storage/entry.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hubcast::server {

// Fails (kInvalidArgument) only for malformed frames (the 1003 case).
Result<ClientMessage> DecodeClientMessage(std::string_view text);

// Service messages (compact JSON text).
std::string EncodeConnected(const std::optional<std::string>& user_id,
                            std::string_view connection_id,
                            const std::optional<std::string>& reconnection_token);
std::string EncodeDisconnected(std::string_view reason);
std::string EncodeAck(uint64_t ack_id, const Status& status);
std::string EncodePong();
// The name an ack error carries for a status (Forbidden, Duplicate, BadRequest, ...).
const char* AckErrorName(StatusCode code);

// A data message without its opening brace: `"type":"message","from":...,"data":...}`.
// A JSON frame is "{" + body; a reliable frame is `{"sequenceId":N,` + body, so the body is
// encoded once and shared by every recipient.
std::string EncodeMessageBody(const storage::Entry& entry);
void AppendMessageBody(std::string& out, const storage::Entry& entry);
// The whole JSON frame of a data message, encoded once; `*body` is set to the body inside the
// same buffer (for reliable recipients).
SharedBytes EncodeJsonFrame(const storage::Entry& entry, SharedBytes* body);
// The whole frame for raw clients: the data as is, binary for binary and protobuf payloads.
SharedBytes EncodeRawFrame(const storage::Entry& entry);
// Appends the `data` value for a payload of the given type.
void AppendData(std::string& out, storage::DataType type, std::string_view data);

}  // namespace hubcast::server
