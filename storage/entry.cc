#include "storage/entry.h"

namespace hubcast::storage {

const char* DataTypeName(DataType t) {
  switch (t) {
    case DataType::kJson:
      return "json";
    case DataType::kText:
      return "text";
    case DataType::kBinary:
      return "binary";
    case DataType::kProtobuf:
      return "protobuf";
  }
  return "binary";
}

Status CheckEntry(const Entry& e, size_t max_data_bytes) {
  constexpr size_t kMaxName = 1024, kMaxList = 100000;
  auto bad = [](const std::string& what) { return Status::InvalidArgument("entry " + what); };
  if (e.data.size() > max_data_bytes) return bad("payload over the message size limit");
  for (const std::string* s : {&e.target, &e.origin_connection, &e.from_user_id, &e.node_id}) {
    if (s->size() > kMaxName) return bad("name over 1024 bytes");
  }
  if (e.user_id && e.user_id->size() > kMaxName) return bad("user id over 1024 bytes");
  if (e.reason.size() > 64 * 1024) return bad("reason over 64 KiB");
  if (e.subprotocol.size() > kMaxName) return bad("subprotocol over 1024 bytes");
  if (e.connection_state && e.connection_state->size() > max_data_bytes) {
    return bad("connection state over the message size limit");
  }
  if (e.groups.size() > kMaxList || e.excluded.size() > kMaxList || e.roles.size() > kMaxList ||
      e.acks.size() > kMaxList) {
    return bad("list over 100,000 items");
  }
  for (const auto& list : {&e.groups, &e.excluded, &e.roles}) {
    for (const auto& s : *list) {
      if (s.size() > kMaxName) return bad("list item over 1024 bytes");
    }
  }
  for (const auto& [id, seq] : e.acks) {
    if (id.size() > kMaxName) return bad("checkpoint connection id over 1024 bytes");
  }
  if (e.message_ttl_seconds < 0 || e.message_ttl_seconds > 300) return bad("message TTL");
  if (e.membership_ttl_seconds &&
      (*e.membership_ttl_seconds < -1 || *e.membership_ttl_seconds > 100LL * 365 * 86400)) {
    return bad("membership TTL");
  }
  if (e.hold_until_ms < 0) return bad("hold time");
  if (e.kind == EntryKind::kConnectionOpen && e.origin_connection.empty()) {
    return bad("opening no connection");
  }
  return Status::Ok();
}

}  // namespace hubcast::storage
