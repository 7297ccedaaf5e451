// The log entry: every change to a hub and every message sent in it is one Entry (a
// "command" once it has a position). Entries are plain values: the gateway and the REST API
// build them, HubLog orders them, HubView applies them. Everything apply needs is in the
// entry itself (including its timestamp), so every node applying the same entries in the same
// order computes the same view and the same recipients.
//
// Thread-safety: immutable once appended; shared read-only (shared_ptr<const Entry>).
#pragma once

#include "base/status.h"
#include "storage/filter.h"
#include "storage/permissions.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::storage {

enum class EntryKind : uint8_t {
  kConnectionOpen = 1,    // a client connected (identity, roles, initial groups)
  kConnectionClose = 2,   // a connection ended (client left, or closed by the service)
  kCloseConnections = 3,  // REST close of connections selected by scope
  kAddToGroups = 4,       // add connections selected by scope to groups
  kRemoveFromGroups = 5,  // remove connections selected by scope from groups
  kGrant = 6,
  kRevoke = 7,
  kSend = 8,              // a message to connections selected by scope
  kClientAck = 9,         // a client action that only needs an ack (e.g. a rejected one)
  kCheckpoint = 10,       // reliable connections' acknowledged sequence ids (see hub_view.h)
  kConnectionState = 11,  // an event handler set the connection's state (`target`)
  // Cluster (replication/cluster.h). Node `target` is dead, reported by node `node_id`: its
  // plain connections end; its reliable ones are held (no node) until `hold_until_ms`.
  kNodeDown = 12,
  // Reliable connection `target` resumed on node `node_id` (its old node lets the socket go).
  kConnectionMoved = 13,
};

// Which connections an entry selects. Resolved against the view at apply time.
enum class Scope : uint8_t {
  kAll = 0,         // every connection in the hub
  kGroup = 1,       // members of `target`
  kUser = 2,        // connections of user `target`
  kConnection = 3,  // the connection `target`
};

enum class DataType : uint8_t { kJson = 0, kText = 1, kBinary = 2, kProtobuf = 3 };
const char* DataTypeName(DataType t);

// Who a message is from, as the JSON subprotocol shows it.
enum class MessageFrom : uint8_t { kServer = 0, kGroup = 1 };

struct Entry {
  EntryKind kind = EntryKind::kSend;
  int64_t timestamp_ms = 0;  // set by the appender; apply uses it instead of the local clock

  Scope scope = Scope::kAll;
  std::string target;                    // group, user or connection id, per scope
  std::vector<std::string> excluded;     // connection ids never selected
  std::shared_ptr<const Filter> filter;  // optional; also selects
  std::vector<std::string> groups;       // for add/remove: the groups acted on; empty = all groups

  // Origin: the client connection that issued it (empty for REST), and its ackId.
  std::string origin_connection;
  std::optional<uint64_t> ack_id;
  // For client actions: the permission the origin needs on the group `permission_target`.
  std::optional<Permission> required_permission;

  // kSend payload.
  MessageFrom from = MessageFrom::kServer;
  std::string from_user_id;  // for client group messages; empty when anonymous or REST
  bool no_echo = false;      // exclude the origin connection
  DataType data_type = DataType::kText;
  std::string data;  // text, JSON text or raw bytes (not base64)
  int message_ttl_seconds = 0;

  // kConnectionOpen / kConnectionClose.
  std::optional<std::string> user_id;
  std::vector<std::string> roles;
  std::string subprotocol;  // empty for raw clients
  bool reliable = false;
  std::string node_id;  // node holding the socket
  std::string reason;   // close reason (kConnectionClose, kCloseConnections)

  // kAddToGroups with scope kUser: also remember the membership for the user's later
  // connections, for this many seconds (-1: until removed). PROTOCOL.md "Hubcast extensions".
  std::optional<int64_t> membership_ttl_seconds;
  // kRemoveFromGroups with scope kUser, appended by the expiry sweep: removes only remembered
  // memberships that have expired by this entry's timestamp (a renewed one stays).
  // kConnectionClose: closes only a held connection whose hold ended by this entry's time.
  bool expiring = false;

  // kConnectionOpen / kConnectionState: the connection state an event handler set
  // (ce-connectionState), opaque; nullopt = none.
  std::optional<std::string> connection_state;

  // kNodeDown: until when the dead node's reliable connections wait for their clients (Unix
  // ms). kConnectionClose with `expiring`: the close of a held connection whose hold ran out,
  // which has no effect if the connection resumed meanwhile.
  int64_t hold_until_ms = 0;

  // kCheckpoint: (connection id, highest sequenceId the client acknowledged).
  std::vector<std::pair<std::string, uint64_t>> acks;

  // kGrant / kRevoke (`target` is the connection). Also the group a client action's
  // required_permission is checked on.
  Permission permission = Permission::kSendToGroup;
  std::optional<std::string> permission_target;  // group; nullopt = all groups
};

using EntryPtr = std::shared_ptr<const Entry>;

// Whether an entry keeps the limits every entry this service makes keeps (payload size, name
// lengths, list sizes, TTL ranges). An entry that arrives from another node is untrusted
// input: one that breaks them is not applied (its node has a bug, or is not ours).
Status CheckEntry(const Entry& e, size_t max_data_bytes);

}  // namespace hubcast::storage
