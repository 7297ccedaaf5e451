// Log-entry builders shared by the storage unit tests (view, store, replay). Test-only.
#pragma once

#include "storage/entry.h"
#include "storage/permissions.h"

#include <optional>
#include <string>
#include <vector>

namespace hubcast::testing {

// A connection opens on node-a, with the subprotocol its reliability implies.
inline storage::Entry Open(const std::string& id, std::optional<std::string> user = std::nullopt,
                           std::vector<std::string> groups = {}, bool reliable = false,
                           std::vector<std::string> roles = {}) {
  storage::Entry e;
  e.kind = storage::EntryKind::kConnectionOpen;
  e.origin_connection = id;
  e.user_id = std::move(user);
  e.groups = std::move(groups);
  e.reliable = reliable;
  e.roles = std::move(roles);
  e.subprotocol = reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  e.node_id = "node-a";
  return e;
}

inline storage::Entry Close(const std::string& id) {
  storage::Entry e;
  e.kind = storage::EntryKind::kConnectionClose;
  e.origin_connection = id;
  e.reason = "bye";
  return e;
}

// kGrant or kRevoke of permission p on a connection, for one group or (nullopt) all groups.
inline storage::Entry Permit(storage::EntryKind kind, const std::string& connection,
                             storage::Permission p, std::optional<std::string> group) {
  storage::Entry e;
  e.kind = kind;
  e.target = connection;
  e.permission = p;
  e.permission_target = std::move(group);
  return e;
}

// A client's message to a group, as the codecs encode it.
inline storage::Entry GroupMessage(std::string group, std::string from_user, storage::DataType type,
                                   std::string data) {
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.scope = storage::Scope::kGroup;
  e.target = std::move(group);
  e.from = storage::MessageFrom::kGroup;
  e.from_user_id = std::move(from_user);
  e.data_type = type;
  e.data = std::move(data);
  return e;
}

}  // namespace hubcast::testing
