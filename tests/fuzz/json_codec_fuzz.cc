// DecodeClientMessage (server/json_codec.h) on arbitrary frames. Checks: a frame is malformed
// exactly when it is not a JSON object with a string type; a decoded json payload is compact
// valid JSON, exactly what serializing the parsed data gives; every service message built from
// what was decoded is valid JSON.
#include "base/json.h"
#include "base/status.h"
#include "server/json_codec.h"
#include "storage/entry.h"

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <string>
#include <string_view>

namespace json = hubcast::json;
using hubcast::server::ClientMessage;
using hubcast::server::ClientMessageType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  hubcast::Result<ClientMessage> decoded = hubcast::server::DecodeClientMessage(text);
  hubcast::Result<json::Value> tree = json::Parse(text);
  const json::Value* type = tree.ok() ? tree->Find("type") : nullptr;
  if (!tree.ok() || !tree->is_object() || type == nullptr || !type->is_string()) {
    FUZZ_CHECK(!decoded.ok());
    FUZZ_CHECK(decoded.status().code() == hubcast::StatusCode::kInvalidArgument);
    return 0;
  }
  if (!decoded.ok()) {  // only a bad ackId makes an object with a string type malformed
    const json::Value* ack = tree->Find("ackId");
    FUZZ_CHECK(ack != nullptr && !ack->is_null() && !ack->as_uint64().has_value());
    return 0;
  }
  const ClientMessage& m = *decoded;
  FUZZ_CHECK(m.type_name == type->str());
  if (m.ack_id) {
    FUZZ_CHECK(json::Validate(
                   hubcast::server::EncodeAck(
                       *m.ack_id, hubcast::Status::InvalidArgument(m.invalid_reason.value_or(""))))
                   .ok());
  }
  // A stream start and a stream keep-alive carry no payload.
  const bool has_payload = (m.type == ClientMessageType::kSendToGroup && !m.stream_start) ||
                           m.type == ClientMessageType::kEvent ||
                           m.type == ClientMessageType::kInvoke ||
                           (m.type == ClientMessageType::kStreamData && m.stream_sequence_id);
  if (m.invalid_reason || !has_payload) return 0;

  if (m.data_type == hubcast::storage::DataType::kJson) {
    const json::Value* d = tree->Find("data");
    FUZZ_CHECK(m.data == (d ? json::Serialize(*d) : std::string("null")));
  }
  hubcast::storage::Entry e;
  e.kind = hubcast::storage::EntryKind::kSend;
  e.scope = hubcast::storage::Scope::kGroup;
  e.from = hubcast::storage::MessageFrom::kGroup;
  e.target = m.group;
  e.from_user_id = m.event;
  e.data_type = m.data_type;
  e.data = m.data;
  const std::string frame = "{" + hubcast::server::EncodeMessageBody(e);
  FUZZ_CHECK(json::Validate(frame).ok());
  FUZZ_CHECK(json::Validate(hubcast::server::EncodeDisconnected(m.type_name)).ok());
  return 0;
}
