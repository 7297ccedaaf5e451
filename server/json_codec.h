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
#include "server/codec.h"
#include "storage/entry.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
std::string EncodeInvokeResponse(std::string_view invocation_id, const InvokeResult& result);
std::string EncodeStreamAck(std::string_view stream_id, uint64_t expected);
std::string EncodeStreamNack(std::string_view stream_id, uint64_t expected, std::string_view name,
                             std::string_view message);
std::string EncodeStreamClosed(std::string_view stream_id, const std::optional<StreamError>& error);
std::string EncodeGroupState(bool snapshot, std::string_view group,
                             const std::vector<storage::GroupStateItem>& items);

// Group state (client SDK 1.1 setGroupState) as the log and the JSON protocol carry it: a
// compact JSON object of strings with sorted keys, so every subprotocol produces the same
// bytes. ParseGroupStateJson reads it back (for the protobuf codec).
std::string GroupStateJson(const std::map<std::string, std::string>& state);
std::map<std::string, std::string> ParseGroupStateJson(std::string_view text);
// The name an ack error carries for a status (Forbidden, Duplicate, BadRequest, ...).
const char* AckErrorName(StatusCode code);

// A data message without its opening brace: `"type":"message","from":...,"data":...}`, with
// `"stream":{...}` for a group stream's message.
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
