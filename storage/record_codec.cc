#include "storage/record_codec.h"

#include "storage/byte_reader.h"
#include "storage/entry_codec.h"

namespace hubcast::storage {
namespace {

template <typename C>
void PutStrings(std::string* out, const C& items) {
  PutVarint64(out, items.size());
  for (const auto& s : items) PutLengthPrefixed(out, s);
}

}  // namespace

std::string EncodeConnectionRecord(const ConnectionRecord& r) {
  std::string out;
  out.reserve(128);
  out.push_back(static_cast<char>(kRecordFormatVersion));
  PutLengthPrefixed(&out, r.id);
  PutVarint64(&out, r.user_id ? 1 : 0);
  if (r.user_id) PutLengthPrefixed(&out, *r.user_id);
  PutLengthPrefixed(&out, r.subprotocol);
  PutVarint64(&out, r.reliable ? 1 : 0);
  PutLengthPrefixed(&out, r.node_id);
  PutVarint64(&out, r.created_position);
  PutStrings(&out, r.permissions.roles());
  PutStrings(&out, r.groups);
  for (Permission p : {Permission::kSendToGroup, Permission::kJoinLeaveGroup}) {
    PermissionSet::Overrides o = r.permissions.overrides(p);
    PutVarint64(&out, o.granted_all ? 1 : 0);
    PutVarint64(&out, o.deny_all ? 1 : 0);
    PutStrings(&out, o.granted);
    PutStrings(&out, o.revoked);
  }
  PutVarint64(&out, r.seq);
  PutVarint64(&out, r.acked);
  PutVarint64(&out, r.checkpoints.size());
  for (const auto& c : r.checkpoints) {
    PutVarint64(&out, c.position);
    PutVarint64(&out, c.seq);
    PutStrings(&out, c.groups);
  }
  PutVarint64(&out, r.state ? 1 : 0);
  if (r.state) PutLengthPrefixed(&out, *r.state);
  PutVarint64(&out, ZigZagEncode(r.held_until_ms));
  PutVarint64(&out, r.group_states.size());
  for (const auto& [group, value] : r.group_states) {
    PutLengthPrefixed(&out, group);
    PutLengthPrefixed(&out, value.state);
    PutVarint64(&out, ZigZagEncode(value.updated_at_ms));
  }
  PutStrings(&out, r.state_subscriptions);
  return out;
}

Result<ConnectionRecord> DecodeConnectionRecord(std::string_view bytes) {
  if (bytes.empty()) return Status::InvalidArgument("corrupt connection record: empty");
  uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version > kRecordFormatVersion) {
    return Status::InvalidArgument("connection record written by a newer format (version " +
                                   std::to_string(version) + ")");
  }
  if (version == 0) return Status::InvalidArgument("corrupt connection record: version 0");
  ByteReader in(bytes.substr(1));
  ConnectionRecord r;
  bool has_user = false;
  in.Str(&r.id);
  in.Bool(&has_user);
  if (has_user) {
    r.user_id.emplace();
    in.Str(&*r.user_id);
  }
  std::string subprotocol, node_id;
  in.Str(&subprotocol);
  r.subprotocol = subprotocol;
  in.Bool(&r.reliable);
  in.Str(&node_id);
  r.node_id = node_id;
  in.U64(&r.created_position);
  std::vector<std::string> roles;
  in.List([&] { in.Str(&roles.emplace_back()); });
  in.List([&] {
    std::string g;
    if (in.Str(&g)) r.groups.insert(std::move(g));
  });
  r.permissions = PermissionSet(roles);
  for (Permission p : {Permission::kSendToGroup, Permission::kJoinLeaveGroup}) {
    PermissionSet::Overrides o;
    in.Bool(&o.granted_all);
    in.Bool(&o.deny_all);
    in.List([&] {
      std::string g;
      if (in.Str(&g)) o.granted.insert(std::move(g));
    });
    in.List([&] {
      std::string g;
      if (in.Str(&g)) o.revoked.insert(std::move(g));
    });
    r.permissions.RestoreOverrides(p, std::move(o));
  }
  in.U64(&r.seq);
  in.U64(&r.acked);
  in.List([&] {
    Checkpoint& c = r.checkpoints.emplace_back();
    in.U64(&c.position);
    in.U64(&c.seq);
    in.List([&] { in.Str(&c.groups.emplace_back()); });
  });
  if (version >= 2) {
    bool has_state = false;
    in.Bool(&has_state);
    if (has_state) {
      r.state.emplace();
      in.Str(&*r.state);
    }
  }
  if (version >= 3) {
    uint64_t held = 0;
    in.U64(&held);
    r.held_until_ms = ZigZagDecode(held);
  }
  if (version >= 4) {
    in.List([&] {
      std::string group;
      GroupStateValue value;
      in.Str(&group);
      in.Str(&value.state);
      in.I64(&value.updated_at_ms);
      r.group_states[std::move(group)] = std::move(value);
    });
    in.List([&] {
      std::string g;
      if (in.Str(&g)) r.state_subscriptions.insert(std::move(g));
    });
  }
  if (!in.ok() || !in.done()) return Status::InvalidArgument("corrupt connection record");
  return r;
}

}  // namespace hubcast::storage
