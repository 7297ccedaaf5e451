// HubView: the state of one hub, materialised by applying its log entries in order.
//
// It holds the connections (user, roles and runtime permissions, groups, subprotocol, group
// state and state subscriptions), the group, user and subscriber indexes, and each
// connection's processed ackIds. Apply decides everything
// from the entry and the current state (never from the local clock), so every node that
// applies the same entries in the same order holds the same view and computes the same
// recipients.
//
// Time: apply reads time only from entries, and an entry's time never goes back: apply uses
// max(entry.timestamp_ms, the latest applied), so a node whose clock is behind cannot make
// two nodes decide an expiry differently.
//
// Threading contract:
//   1. Exactly one thread (the hub's applier) calls Apply, in log order.
//   2. Queries may be called from any thread at any time; they see the state after some
//      complete Apply (never a half-applied entry).
//   3. ApplyResult::recipients points into the view; the pointers stay valid until the next
//      Apply and may only be read on the applier thread (no other thread mutates records).
//
// MemoryView keeps everything in memory; the durable RocksDB view implements the same
// interface, so the gateway and the REST API do not change when durability plugs in.
#pragma once

#include "base/interned_string.h"
#include "base/status.h"
#include "storage/entry.h"
#include "storage/permissions.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace hubcast::storage {

// A reliable connection's numbering at a log position: after applying `position` the
// connection had been sent `seq` messages, and was a member of `groups`. Replay counts forward
// from a checkpoint through the log to number messages exactly as they were first numbered.
struct Checkpoint {
  uint64_t position = 0;
  uint64_t seq = 0;
  std::vector<std::string> groups;
  bool operator==(const Checkpoint&) const = default;
};

// A connection's state in one group (client SDK 1.1 setGroupState): a compact JSON object of
// strings, and when it was set (the setting entry's timestamp, so every node agrees).
struct GroupStateValue {
  std::string state;
  int64_t updated_at_ms = 0;
  bool operator==(const GroupStateValue&) const = default;
};

// One per connection of the hub, in every node's view: the texts that many connections share
// (subprotocol, node) are interned handles, a pointer's worth each (base/interned_string.h).
struct ConnectionRecord {
  std::string id;
  std::optional<std::string> user_id;
  InternedString subprotocol;
  bool reliable = false;
  InternedString node_id;
  uint64_t created_position = 0;
  PermissionSet permissions;
  std::set<std::string> groups;
  // Reliable connections only. seq: messages numbered so far (the last sequenceId sent);
  // acked: the highest sequenceId the client acknowledged, as last checkpointed;
  // checkpoints: the newest one at or below `acked`, and every newer one (oldest first).
  uint64_t seq = 0;
  uint64_t acked = 0;
  std::vector<Checkpoint> checkpoints;
  // The state an event handler set (ce-connectionState); nullopt = none.
  std::optional<std::string> state;
  // A reliable connection whose node died (kNodeDown) waits, with no node (node_id empty),
  // for its client until this time (Unix ms); 0 when it is not held that way.
  int64_t held_until_ms = 0;
  // Group state (presence): this connection's state in groups it is a member of, and the
  // groups whose state it subscribed to (kept until it unsubscribes or closes).
  std::map<std::string, GroupStateValue> group_states;
  std::set<std::string> state_subscriptions;
  // Node-local and opaque to storage: the socket layer's handle for a connection whose socket
  // this node holds (0: none here). Never encoded, replicated or compared; set through
  // HubView::SetLocalHandle and read with LocalHandle().
  uint64_t local_handle = 0;
};

// Reads local_handle where another thread may be setting it (SetLocalHandle).
inline uint64_t LocalHandle(const ConnectionRecord& c) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(c.local_handle))
      .load(std::memory_order_relaxed);
}

// One item of a group's state as clients receive it: a member's state, or (state nullopt)
// the news that it cleared it, left the group or closed.
struct GroupStateItem {
  std::string connection_id;
  std::optional<std::string> user_id;
  std::optional<std::string> state;  // compact JSON object of strings
  int64_t updated_at_ms = 0;
};

struct ApplyResult {
  // The time apply used (the entry's, or the latest applied if that is later).
  int64_t timestamp_ms = 0;
  // OK, or why a client action / REST command had no effect: kForbidden, kDuplicate,
  // kNotFound, kInvalidArgument. The entry is still in the log either way.
  Status status;
  // kSend: the selected connections, in no particular order (see threading note 3), and for
  // each its sequenceId (reliable connections) or 0.
  std::vector<const ConnectionRecord*> recipients;
  std::vector<uint64_t> sequence_ids;
  // Connections whose stored record changed (opened, groups, permissions, checkpoints).
  std::vector<const ConnectionRecord*> touched;
  // The origin's ackId that was remembered by this entry, and one that fell out of the
  // bounded history, if any.
  std::optional<uint64_t> ack_remembered;
  std::optional<uint64_t> ack_forgotten;
  // Every group membership this entry added (true) or removed (false), including the
  // memberships of closed connections.
  struct MembershipChange {
    std::string connection_id;
    std::string group;
    bool joined;
  };
  std::vector<MembershipChange> membership;
  // Remembered user-group memberships set (expiry) or removed (nullopt) by this entry.
  struct UserGroupChange {
    std::string user_id;
    std::string group;
    std::optional<int64_t> expires_at_ms;
  };
  std::vector<UserGroupChange> user_groups;
  // kConnectionClose / kCloseConnections: connections removed by this entry, and their
  // records as they were (for the `disconnected` event).
  std::vector<std::string> closed;
  std::vector<ConnectionRecord> closed_records;
  // kConnectionOpen: the new connection (same validity as recipients).
  const ConnectionRecord* opened = nullptr;
  // kNodeDown / kConnectionMoved: connections whose socket, wherever it was, must be let go
  // without ending the logical connection (it is held, or resumed elsewhere), with the
  // local handle they had on this node (0: not here).
  struct Released {
    std::string connection_id;
    uint64_t local_handle = 0;
  };
  std::vector<Released> released;
  // kConnectionMoved: the connection, now on node entry.node_id (same validity as
  // recipients).
  const ConnectionRecord* moved = nullptr;
  // Group state to deliver: a snapshot for a new subscriber (kGroupStateSubscription), or the
  // items that changed in a group (kGroupState, and any entry that removed members holding
  // state) for its subscribers. Recipients have the validity of `recipients`.
  struct GroupStateDelivery {
    std::string group;
    bool snapshot = false;
    std::vector<GroupStateItem> items;
    std::vector<const ConnectionRecord*> recipients;
  };
  std::vector<GroupStateDelivery> group_states;
};

struct ConnectionSummary {
  std::string connection_id;
  std::optional<std::string> user_id;
};

// A group of a user: from a remembered membership (with its expiry; kNever when it has no
// ttl) and/or because a current connection of the user is in it (expires_at_ms nullopt).
inline constexpr int64_t kNever = INT64_MAX;
struct UserGroup {
  std::string group;
  std::optional<int64_t> expires_at_ms;
};

// A processed ackId and the position of the entry that brought it (arrival order).
struct AckRecord {
  uint64_t ack_id = 0;
  uint64_t position = 0;
  bool operator==(const AckRecord&) const = default;
};

struct ConnectionState {
  ConnectionRecord record;
  std::vector<AckRecord> acks;  // oldest first
};

struct UserGroupRecord {
  std::string user_id;
  std::string group;
  int64_t expires_at_ms = 0;  // kNever without ttl
  bool operator==(const UserGroupRecord&) const = default;
};

struct ViewState {
  uint64_t applied_position = 0;
  // The latest entry time applied (apply's clock: entry times never go back, see Apply).
  int64_t last_timestamp_ms = 0;
  std::vector<ConnectionState> connections;  // by id
  std::vector<UserGroupRecord> user_groups;  // by (user, group)
};

class HubView {
 public:
  virtual ~HubView() = default;

  virtual ApplyResult Apply(uint64_t position, const Entry& entry) = 0;
  // Position of the last applied entry (0 before the first).
  virtual uint64_t applied_position() const = 0;

  virtual bool ConnectionExists(const std::string& connection_id) const = 0;
  virtual bool GroupExists(const std::string& group) const = 0;
  virtual bool UserExists(const std::string& user_id) const = 0;
  // nullopt when the connection does not exist.
  virtual std::optional<bool> CheckPermission(const std::string& connection_id, Permission p,
                                              const std::optional<std::string>& group) const = 0;
  // Members of a group ordered by connection id, starting after `after_id` (exclusive).
  virtual std::vector<ConnectionSummary> ListGroupConnections(const std::string& group,
                                                              const std::string& after_id,
                                                              size_t limit) const = 0;
  virtual std::optional<ConnectionRecord> GetConnection(const std::string& connection_id) const = 0;
  // True if the connection processed this ackId (within the bounded history).
  virtual bool HasAck(const std::string& connection_id, uint64_t ack_id) const = 0;
  virtual size_t connection_count() const = 0;
  // Every connection record (a copy), for start-up work such as restoring held sessions.
  virtual std::vector<ConnectionRecord> AllConnections() const = 0;
  // The groups of a user (remembered or through a current connection), ordered by name,
  // after `after` (exclusive). Remembered memberships that expired by `now_ms` are left out.
  virtual std::vector<UserGroup> ListUserGroups(const std::string& user_id,
                                                const std::string& after, size_t limit,
                                                int64_t now_ms) const = 0;
  // The group's state items (members that set a state), ordered by connection id.
  virtual std::vector<GroupStateItem> GroupState(const std::string& group) const = 0;
  // Groups with at least one connection, ordered by name, after `after` (exclusive).
  virtual std::vector<std::string> ListGroups(const std::string& after, size_t limit) const = 0;
  // Remembered memberships whose expiry is at or before now_ms (for the expiry sweep).
  virtual std::vector<std::pair<std::string, std::string>> ExpiredUserGroups(
      int64_t now_ms, size_t limit) const = 0;
  // Reliable connections held with no node (kNodeDown) whose hold ended by now_ms: the hub's
  // owner closes them with expiring kConnectionClose entries.
  virtual std::vector<std::string> ExpiredHeld(int64_t now_ms, size_t limit) const = 0;
  // The nodes serving at least one connection, sorted: the hub's owner reports those it knows
  // dead (a node-down report that failed, or a reporter that died before it could report).
  virtual std::vector<std::string> ConnectionNodes() const = 0;
  // Sets a connection's local_handle (no-op when it does not exist). Any thread.
  virtual void SetLocalHandle(const std::string& connection_id, uint64_t handle) = 0;

  // The whole state, in a canonical order (connections by id, remembered memberships by user
  // and group, ackIds in arrival order): what snapshots and the store hold, and what two
  // views that applied the same entries agree on byte for byte (view_snapshot.h).
  virtual ViewState ExportState() const = 0;
  // Start-up or snapshot load only (no concurrent Apply): replaces the whole state.
  virtual void ImportState(ViewState state) = 0;
};

// How many checkpoints newer than the acknowledged one a connection keeps.
inline constexpr size_t kMaxCheckpoints = 8;

std::unique_ptr<HubView> NewMemoryView();

}  // namespace hubcast::storage
