// ClientMessage: what a client asked for, decoded from a frame of any subprotocol (JSON,
// protobuf) or a raw client's data frame. The connection acts on it the same way whatever
// its wire format (server/codec.h). Plain value; no thread-safety concerns.
#pragma once

#include "storage/entry.h"

#include <cstdint>
#include <optional>
#include <string>

namespace hubcast::server {

enum class ClientMessageType {
  kJoinGroup,
  kLeaveGroup,
  kSendToGroup,
  kEvent,
  kSequenceAck,
  kPing,
  kUnknown,  // any other type: BadRequest if it has an ackId
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
  // Set when the message is well-formed JSON but invalid for its type (BadRequest).
  std::optional<std::string> invalid_reason;
};

}  // namespace hubcast::server
