// ClientMessage: what a client asked for, decoded from a frame of any subprotocol (JSON,
// protobuf) or a raw client's data frame. The connection acts on it the same way whatever
// its wire format (server/codec.h). Plain value; no thread-safety concerns.
#pragma once

#include "storage/entry.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace hubcast::server {

enum class ClientMessageType {
  kJoinGroup,
  kLeaveGroup,
  kSendToGroup,  // with `stream`: opens a group stream instead of sending
  kEvent,
  kSequenceAck,
  kPing,
  // Client SDK 1.1.
  kInvoke,            // an upstream event whose answer comes back as invokeResponse
  kCancelInvocation,  // stop waiting for an invoke's answer
  kStreamData,        // a group stream's next message, or a keep-alive (no sequence id)
  kStreamEnd,
  kSetGroupState,
  kSubscribeGroupState,
  kUnsubscribeGroupState,
  kUnknown,  // any other type: BadRequest if it has an ackId, else ignored (logged)
  kRawData,  // a raw client's frame: the data itself (text or binary)
};

struct ClientMessage {
  ClientMessageType type = ClientMessageType::kUnknown;
  std::string type_name;
  std::optional<uint64_t> ack_id;
  std::string group;
  std::string event;
  bool no_echo = false;
  storage::DataType data_type = storage::DataType::kJson;
  std::string data;  // json: compact JSON text; text: the string; binary/protobuf: raw bytes
  uint64_t sequence_id = 0;
  // Set when the message is well-formed but invalid for its type (BadRequest).
  std::optional<std::string> invalid_reason;

  // invoke, cancelInvocation.
  std::string invocation_id;
  // sendToGroup with `stream` (the stream it opens); streamData; streamEnd.
  std::string stream_id;
  bool stream_start = false;
  std::optional<uint64_t> idle_timeout_ms;
  std::optional<uint64_t> stream_sequence_id;  // streamData without it is a keep-alive
  bool stream_error = false;                   // streamEnd with an error
  std::string stream_error_message;
  std::string stream_user_error_code;
  // setGroupState: the state; nullopt clears it.
  std::optional<std::map<std::string, std::string>> group_state;
};

}  // namespace hubcast::server
