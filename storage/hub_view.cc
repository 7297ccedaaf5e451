#include "storage/hub_view.h"

#include "storage/targeting.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace hubcast::storage {
namespace {

// How many ackIds a connection remembers. PROTOCOL.md leaves the window UNCONFIRMED; this
// covers far more than any client retries, while bounding memory per connection.
constexpr size_t kAckHistory = 4096;

// A connection's processed ackIds: a set to look them up, and their arrival order to forget
// the oldest.
struct AckHistory {
  std::unordered_set<uint64_t> ids;
  std::deque<AckRecord> order;
};

struct Conn {
  ConnectionRecord rec;
  // No memory until the connection's first ackId (most connections never send one).
  std::unique_ptr<AckHistory> acks;
  bool removing = false;  // set while RemoveConnection runs: its changes are not "touched"

  bool SeenAck(uint64_t id) const { return acks && acks->ids.count(id) != 0; }
  // Returns the ackId that fell out of the bounded history, if any.
  std::optional<uint64_t> RememberAck(uint64_t id, uint64_t position) {
    if (!acks) acks = std::make_unique<AckHistory>();
    if (!acks->ids.insert(id).second) return std::nullopt;
    acks->order.push_back({id, position});
    if (acks->order.size() <= kAckHistory) return std::nullopt;
    uint64_t old = acks->order.front().ack_id;
    acks->ids.erase(old);
    acks->order.pop_front();
    return old;
  }
};

class MemoryView final : public HubView {
 public:
  ApplyResult Apply(uint64_t position, const Entry& e) override {
    std::unique_lock lock(mu_);
    ApplyResult r;
    result_ = &r;
    position_ = position;
    now_ = std::max(e.timestamp_ms, last_timestamp_ms_);
    r.timestamp_ms = now_;
    touched_.clear();
    touched_set_.clear();
    switch (e.kind) {
      case EntryKind::kConnectionOpen:
        ApplyOpen(position, e, r);
        break;
      case EntryKind::kConnectionClose:
        if (e.expiring) {
          // A held session's hold ran out: only if it is still held and its time has come
          // (its client may have resumed it meanwhile).
          auto it = conns_.find(e.origin_connection);
          if (it == conns_.end() || !it->second->rec.node_id.empty() ||
              it->second->rec.held_until_ms == 0 || it->second->rec.held_until_ms > now_) {
            r.status = Status::NotFound("The connection is not a held session that expired.");
            break;
          }
        }
        if (RemoveConnection(e.origin_connection)) r.closed.push_back(e.origin_connection);
        break;
      case EntryKind::kNodeDown:
        ApplyNodeDown(e, r);
        break;
      case EntryKind::kConnectionMoved:
        ApplyMoved(e, r);
        break;
      case EntryKind::kCloseConnections: {
        std::vector<Conn*> sel;
        Select(e, sel);
        for (Conn* c : sel) r.closed.push_back(c->rec.id);
        for (const auto& id : r.closed) RemoveConnection(id);
        break;
      }
      case EntryKind::kAddToGroups:
      case EntryKind::kRemoveFromGroups:
        ApplyMembership(e, r);
        break;
      case EntryKind::kGrant:
      case EntryKind::kRevoke: {
        auto it = conns_.find(e.target);
        if (it == conns_.end()) {
          r.status = Status::NotFound("Connection '" + e.target + "' does not exist.");
          break;
        }
        if (e.kind == EntryKind::kGrant) {
          it->second->rec.permissions.Grant(e.permission, e.permission_target);
        } else {
          it->second->rec.permissions.Revoke(e.permission, e.permission_target);
        }
        Touch(it->second.get());
        break;
      }
      case EntryKind::kSend:
        ApplySend(e, r);
        break;
      case EntryKind::kClientAck:
        CheckClientAction(e, r);
        break;
      case EntryKind::kCheckpoint:
        ApplyCheckpoint(position, e);
        break;
      case EntryKind::kConnectionState: {
        auto it = conns_.find(e.target);
        if (it == conns_.end()) {
          r.status = Status::NotFound("Connection '" + e.target + "' does not exist.");
          break;
        }
        it->second->rec.state = e.connection_state;
        Touch(it->second.get());
        break;
      }
      case EntryKind::kGroupState:
        ApplyGroupState(e, r);
        break;
      case EntryKind::kGroupStateSubscription:
        ApplyStateSubscription(e, r);
        break;
    }
    applied_ = position;
    last_timestamp_ms_ = now_;
    r.touched.reserve(touched_.size());
    for (Conn* c : touched_) r.touched.push_back(&c->rec);
    result_ = nullptr;
    return r;
  }

  std::vector<ConnectionRecord> AllConnections() const override {
    std::shared_lock lock(mu_);
    std::vector<ConnectionRecord> out;
    out.reserve(conns_.size());
    for (const auto& [id, c] : conns_) out.push_back(c->rec);
    return out;
  }

  ViewState ExportState() const override {
    std::shared_lock lock(mu_);
    ViewState s;
    s.applied_position = applied_;
    s.last_timestamp_ms = last_timestamp_ms_;
    s.connections.reserve(conns_.size());
    for (const auto& [id, conn] : conns_) {
      ConnectionState& cs = s.connections.emplace_back();
      cs.record = conn->rec;
      cs.record.local_handle = 0;  // node-local, not state
      if (conn->acks) cs.acks.assign(conn->acks->order.begin(), conn->acks->order.end());
    }
    std::sort(s.connections.begin(), s.connections.end(),
              [](const ConnectionState& a, const ConnectionState& b) {
                return a.record.id < b.record.id;
              });
    for (const auto& [user, groups] : user_groups_) {
      for (const auto& [group, expiry] : groups) s.user_groups.push_back({user, group, expiry});
    }
    std::sort(s.user_groups.begin(), s.user_groups.end(),
              [](const UserGroupRecord& a, const UserGroupRecord& b) {
                return std::tie(a.user_id, a.group) < std::tie(b.user_id, b.group);
              });
    return s;
  }

  void ImportState(ViewState state) override {
    std::unique_lock lock(mu_);
    conns_.clear();
    groups_.clear();
    users_.clear();
    user_groups_.clear();
    state_subs_.clear();
    for (ConnectionState& cs : state.connections) {
      auto c = std::make_unique<Conn>();
      std::set<std::string> groups = std::move(cs.record.groups);
      cs.record.groups.clear();
      c->rec = std::move(cs.record);
      for (const AckRecord& a : cs.acks) c->RememberAck(a.ack_id, a.position);
      Conn* raw = c.get();
      conns_[raw->rec.id] = std::move(c);
      if (raw->rec.user_id) users_[*raw->rec.user_id].insert(raw);
      for (const auto& g : groups) Join(raw, g);
      for (const auto& g : raw->rec.state_subscriptions) state_subs_[g].insert(raw);
    }
    for (const UserGroupRecord& ug : state.user_groups) {
      user_groups_[ug.user_id][ug.group] = ug.expires_at_ms;
    }
    applied_ = state.applied_position;
    last_timestamp_ms_ = state.last_timestamp_ms;
    touched_.clear();
    touched_set_.clear();
  }

  std::vector<GroupStateItem> GroupState(const std::string& group) const override {
    std::shared_lock lock(mu_);
    return StateItems(group);
  }

  std::vector<UserGroup> ListUserGroups(const std::string& user, const std::string& after,
                                        size_t limit, int64_t now_ms) const override {
    std::shared_lock lock(mu_);
    std::map<std::string, std::optional<int64_t>> all;
    auto ug = user_groups_.find(user);
    if (ug != user_groups_.end()) {
      for (const auto& [g, expiry] : ug->second) {
        if (expiry > now_ms) all[g] = expiry;
      }
    }
    auto u = users_.find(user);
    if (u != users_.end()) {
      for (const Conn* c : u->second) {
        for (const auto& g : c->rec.groups) all.emplace(g, std::nullopt);
      }
    }
    std::vector<UserGroup> out;
    for (auto it = after.empty() ? all.begin() : all.upper_bound(after);
         it != all.end() && out.size() < limit; ++it) {
      out.push_back({it->first, it->second});
    }
    return out;
  }

  std::vector<std::string> ListGroups(const std::string& after, size_t limit) const override {
    std::shared_lock lock(mu_);
    std::vector<std::string> names;
    names.reserve(groups_.size());
    for (const auto& [g, members] : groups_) {
      if (after.empty() || g > after) names.push_back(g);
    }
    std::sort(names.begin(), names.end());
    if (names.size() > limit) names.resize(limit);
    return names;
  }

  std::vector<std::pair<std::string, std::string>> ExpiredUserGroups(int64_t now_ms,
                                                                     size_t limit) const override {
    std::shared_lock lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [user, groups] : user_groups_) {
      for (const auto& [g, expiry] : groups) {
        if (expiry <= now_ms) out.emplace_back(user, g);
        if (out.size() >= limit) return out;
      }
    }
    return out;
  }

  std::vector<std::string> ExpiredHeld(int64_t now_ms, size_t limit) const override {
    std::shared_lock lock(mu_);
    std::vector<std::string> out;
    for (const auto& [id, conn] : conns_) {
      const ConnectionRecord& r = conn->rec;
      if (r.node_id.empty() && r.held_until_ms != 0 && r.held_until_ms <= now_ms) {
        out.emplace_back(id);
        if (out.size() >= limit) break;
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<std::string> ConnectionNodes() const override {
    std::shared_lock lock(mu_);
    std::vector<std::string> out;
    for (const auto& [id, conn] : conns_) {
      const std::string& node = conn->rec.node_id;
      if (!node.empty() && std::find(out.begin(), out.end(), node) == out.end()) {
        out.push_back(node);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  void SetLocalHandle(const std::string& id, uint64_t handle) override {
    std::unique_lock lock(mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    std::atomic_ref<uint64_t>(it->second->rec.local_handle)
        .store(handle, std::memory_order_relaxed);
  }

  uint64_t applied_position() const override {
    std::shared_lock lock(mu_);
    return applied_;
  }

  bool ConnectionExists(const std::string& id) const override {
    std::shared_lock lock(mu_);
    return conns_.count(id) != 0;
  }
  bool GroupExists(const std::string& group) const override {
    std::shared_lock lock(mu_);
    return groups_.count(group) != 0;
  }
  bool UserExists(const std::string& user) const override {
    std::shared_lock lock(mu_);
    return users_.count(user) != 0;
  }
  std::optional<bool> CheckPermission(const std::string& id, Permission p,
                                      const std::optional<std::string>& group) const override {
    std::shared_lock lock(mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return std::nullopt;
    return it->second->rec.permissions.Allowed(p, group);
  }
  std::vector<ConnectionSummary> ListGroupConnections(const std::string& group,
                                                      const std::string& after_id,
                                                      size_t limit) const override {
    std::shared_lock lock(mu_);
    std::vector<ConnectionSummary> out;
    auto it = groups_.find(group);
    if (it == groups_.end()) return out;
    std::vector<const Conn*> members;
    members.reserve(it->second.size());
    for (const Conn* c : it->second) {
      if (after_id.empty() || c->rec.id > after_id) members.push_back(c);
    }
    std::sort(members.begin(), members.end(),
              [](const Conn* a, const Conn* b) { return a->rec.id < b->rec.id; });
    if (members.size() > limit) members.resize(limit);
    out.reserve(members.size());
    for (const Conn* c : members) out.push_back({c->rec.id, c->rec.user_id});
    return out;
  }
  std::optional<ConnectionRecord> GetConnection(const std::string& id) const override {
    std::shared_lock lock(mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return std::nullopt;
    return it->second->rec;
  }
  bool HasAck(const std::string& id, uint64_t ack_id) const override {
    std::shared_lock lock(mu_);
    auto it = conns_.find(id);
    return it != conns_.end() && it->second->SeenAck(ack_id);
  }
  size_t connection_count() const override {
    std::shared_lock lock(mu_);
    return conns_.size();
  }

 private:
  void ApplyOpen(uint64_t position, const Entry& e, ApplyResult& r) {
    if (conns_.count(e.origin_connection)) {
      r.status = Status::InvalidArgument("Connection id already in use.");
      return;
    }
    auto c = std::make_unique<Conn>();
    c->rec.id = e.origin_connection;
    c->rec.user_id = e.user_id;
    c->rec.subprotocol = e.subprotocol;
    c->rec.reliable = e.reliable;
    c->rec.node_id = e.node_id;
    c->rec.created_position = position;
    c->rec.permissions = PermissionSet(e.roles);
    c->rec.state = e.connection_state;
    Conn* raw = c.get();
    conns_.emplace(raw->rec.id, std::move(c));
    if (raw->rec.user_id) users_[*raw->rec.user_id].insert(raw);
    for (const auto& g : e.groups) Join(raw, g);
    if (raw->rec.user_id) {
      // Remembered memberships of the user, decided by the entry's own timestamp.
      auto ug = user_groups_.find(*raw->rec.user_id);
      if (ug != user_groups_.end()) {
        for (const auto& [g, expiry] : ug->second) {
          if (expiry > now_) Join(raw, g);
        }
      }
    }
    if (raw->rec.reliable) {
      raw->rec.checkpoints.push_back(
          {position, 0, {raw->rec.groups.begin(), raw->rec.groups.end()}});
    }
    Touch(raw);
    r.opened = &raw->rec;
  }

  // Records where each listed reliable connection's numbering stands at this position, and
  // drops the checkpoints that recovery can no longer need (the client never needs messages
  // at or below what it acknowledged).
  void ApplyCheckpoint(uint64_t position, const Entry& e) {
    for (const auto& [id, acked] : e.acks) {
      auto it = conns_.find(id);
      if (it == conns_.end() || !it->second->rec.reliable) continue;
      ConnectionRecord& rec = it->second->rec;
      rec.acked = std::max(rec.acked, std::min(acked, rec.seq));
      rec.checkpoints.push_back({position, rec.seq, {rec.groups.begin(), rec.groups.end()}});
      size_t keep_from = 0;
      for (size_t i = 0; i < rec.checkpoints.size(); ++i) {
        if (rec.checkpoints[i].seq <= rec.acked) keep_from = i;
      }
      rec.checkpoints.erase(rec.checkpoints.begin(),
                            rec.checkpoints.begin() + static_cast<long>(keep_from));
      if (rec.checkpoints.size() > kMaxCheckpoints + 1) {
        // Keep the acknowledged base and the newest ones.
        rec.checkpoints.erase(rec.checkpoints.begin() + 1,
                              rec.checkpoints.end() - static_cast<long>(kMaxCheckpoints));
      }
      Touch(it->second.get());
    }
  }

  // Remembered user-group memberships (PROTOCOL.md, Hubcast extensions).
  void RememberUserGroups(const Entry& e) {
    auto changed = [&](const std::string& g, std::optional<int64_t> expiry) {
      result_->user_groups.push_back({e.target, g, expiry});
    };
    if (e.kind == EntryKind::kAddToGroups) {
      if (!e.membership_ttl_seconds) return;
      int64_t ttl = *e.membership_ttl_seconds;
      int64_t expiry = ttl < 0 ? kNever : now_ + ttl * 1000;
      for (const auto& g : e.groups) {
        user_groups_[e.target][g] = expiry;
        changed(g, expiry);
      }
      return;
    }
    auto it = user_groups_.find(e.target);
    if (it == user_groups_.end()) return;
    if (e.groups.empty()) {
      for (const auto& [g, expiry] : it->second) changed(g, std::nullopt);
      user_groups_.erase(it);
      return;
    }
    for (const auto& g : e.groups) {
      if (it->second.erase(g)) changed(g, std::nullopt);
    }
    if (it->second.empty()) user_groups_.erase(it);
  }

  // The expiry sweep's removal: only memberships still expired at this entry's time (a
  // membership renewed after the sweep looked stays, with its connections).
  //
  // An expiry that finds nothing to remove reports kNotFound, so the store records that it had
  // no effect and replay (which cannot see remembered memberships) skips it.
  void ApplyExpiry(const Entry& e) {
    auto it = user_groups_.find(e.target);
    auto none = [&] { result_->status = Status::NotFound("The membership did not expire."); };
    if (e.groups.size() != 1) {
      result_->status = Status::InvalidArgument("An expiry names exactly one group.");
      return;
    }
    if (it == user_groups_.end()) return none();
    for (const auto& g : e.groups) {
      auto m = it->second.find(g);
      if (m == it->second.end() || m->second > now_) return none();
      it->second.erase(m);
      result_->user_groups.push_back({e.target, g, std::nullopt});
      auto u = users_.find(e.target);
      if (u == users_.end()) continue;
      std::vector<Conn*> conns(u->second.begin(), u->second.end());
      for (Conn* c : conns) Leave(c, g);
    }
    if (it->second.empty()) user_groups_.erase(it);
  }

  // Node e.target died (reported by node e.node_id): its plain connections end; its reliable
  // ones are held, with no node, until e.hold_until_ms (0: they end too).
  void ApplyNodeDown(const Entry& e, ApplyResult& r) {
    if (e.target.empty()) {
      r.status = Status::InvalidArgument("A node-down entry names the node.");
      return;
    }
    std::vector<Conn*> of_node;
    for (auto& [id, c] : conns_) {
      if (c->rec.node_id == e.target) of_node.push_back(c.get());
    }
    // Map order is not the same on every node: decide in id order.
    std::sort(of_node.begin(), of_node.end(),
              [](const Conn* a, const Conn* b) { return a->rec.id < b->rec.id; });
    for (Conn* c : of_node) {
      if (c->rec.reliable && e.hold_until_ms > 0) {
        r.released.push_back({c->rec.id, c->rec.local_handle});
        c->rec.node_id.clear();
        c->rec.held_until_ms = e.hold_until_ms;
        c->rec.local_handle = 0;
        Touch(c);
      } else {
        std::string id = c->rec.id;
        if (RemoveConnection(id)) r.closed.push_back(id);
      }
    }
  }

  // Reliable connection e.target resumed on node e.node_id.
  void ApplyMoved(const Entry& e, ApplyResult& r) {
    auto it = conns_.find(e.target);
    if (it == conns_.end()) {
      r.status = Status::NotFound("Connection '" + e.target + "' does not exist.");
      return;
    }
    Conn* c = it->second.get();
    if (!c->rec.reliable || e.node_id.empty()) {
      r.status = Status::InvalidArgument("Only a reliable connection moves to a node.");
      return;
    }
    r.released.push_back({c->rec.id, c->rec.local_handle});
    c->rec.node_id = e.node_id;
    c->rec.held_until_ms = 0;
    c->rec.local_handle = 0;
    Touch(c);
    r.moved = &c->rec;
  }

  void Touch(Conn* c) {
    if (!c->removing && touched_set_.insert(c).second) touched_.push_back(c);
  }

  // Dedupe and permission check of a client action. Returns false (with r.status set) when
  // the action must not take effect.
  bool CheckClientAction(const Entry& e, ApplyResult& r,
                         const std::function<Status(const Conn&)>& precondition = nullptr) {
    if (e.origin_connection.empty()) return true;
    auto it = conns_.find(e.origin_connection);
    if (it == conns_.end()) {
      r.status = Status::NotFound("The connection has gone.");
      return false;
    }
    Conn* origin = it->second.get();
    if (e.ack_id && origin->SeenAck(*e.ack_id)) {
      r.status = Status::Duplicate("Message with ackId " + std::to_string(*e.ack_id) +
                                   " was already processed.");
      return false;
    }
    if (e.required_permission &&
        !origin->rec.permissions.Allowed(*e.required_permission, e.permission_target)) {
      r.status = Status::Forbidden(
          std::string("The connection has no permission to ") +
          (*e.required_permission == Permission::kSendToGroup ? "send to" : "join or leave") +
          " group '" + e.permission_target.value_or("") + "'.");
      return false;
    }
    if (precondition) {
      if (Status s = precondition(*origin); !s.ok()) {
        r.status = s;
        return false;
      }
    }
    if (e.ack_id) {
      r.ack_remembered = *e.ack_id;
      r.ack_forgotten = origin->RememberAck(*e.ack_id, position_);
    }
    return true;
  }

  void ApplyMembership(const Entry& e, ApplyResult& r) {
    if (!CheckClientAction(e, r)) return;
    if (e.scope == Scope::kUser && e.kind == EntryKind::kRemoveFromGroups && e.expiring) {
      ApplyExpiry(e);
      return;
    }
    if (e.scope == Scope::kUser) RememberUserGroups(e);
    std::vector<Conn*> sel;
    if (e.scope == Scope::kConnection && !conns_.count(e.target)) {
      r.status = Status::NotFound("Connection '" + e.target + "' does not exist.");
      return;
    }
    Select(e, sel);
    for (Conn* c : sel) {
      if (e.kind == EntryKind::kAddToGroups) {
        for (const auto& g : e.groups) Join(c, g);
      } else if (e.groups.empty()) {
        std::vector<std::string> all(c->rec.groups.begin(), c->rec.groups.end());
        for (const auto& g : all) Leave(c, g);
      } else {
        for (const auto& g : e.groups) Leave(c, g);
      }
    }
  }

  void ApplySend(const Entry& e, ApplyResult& r) {
    if (!CheckClientAction(e, r)) return;
    std::vector<Conn*> sel;
    Select(e, sel);
    r.recipients.reserve(sel.size());
    r.sequence_ids.reserve(sel.size());
    for (Conn* c : sel) {
      if (e.no_echo && c->rec.id == e.origin_connection) continue;
      r.recipients.push_back(&c->rec);
      r.sequence_ids.push_back(c->rec.reliable ? ++c->rec.seq : 0);
    }
  }

  // The connections an entry's scope, excluded list and filter select: the indexes narrow
  // the candidates, EntrySelects (shared with replay) decides.
  void Select(const Entry& e, std::vector<Conn*>& out) const {
    auto consider = [&](Conn* c) {
      if (EntrySelects(e, c->rec)) out.push_back(c);
    };
    switch (e.scope) {
      case Scope::kAll:
        out.reserve(conns_.size());
        for (auto& [id, c] : conns_) consider(c.get());
        break;
      case Scope::kGroup: {
        auto it = groups_.find(e.target);
        if (it == groups_.end()) return;
        out.reserve(it->second.size());
        for (Conn* c : it->second) consider(c);
        break;
      }
      case Scope::kUser: {
        auto it = users_.find(e.target);
        if (it == users_.end()) return;
        for (Conn* c : it->second) consider(c);
        break;
      }
      case Scope::kConnection: {
        auto it = conns_.find(e.target);
        if (it != conns_.end()) consider(it->second.get());
        break;
      }
    }
  }

  void Join(Conn* c, const std::string& g) {
    if (!c->rec.groups.insert(g).second) return;
    groups_[g].insert(c);
    Touch(c);
    if (result_) result_->membership.push_back({c->rec.id, g, true});
  }
  void Leave(Conn* c, const std::string& g) {
    if (!c->rec.groups.erase(g)) return;
    Touch(c);
    // A member's state lives only while it is in the group.
    if (c->rec.group_states.erase(g)) {
      PushStateChange(g, {c->rec.id, c->rec.user_id, std::nullopt, now_});
    }
    if (result_) result_->membership.push_back({c->rec.id, g, false});
    auto it = groups_.find(g);
    if (it == groups_.end()) return;
    it->second.erase(c);
    if (it->second.empty()) groups_.erase(it);  // a group exists only while it has members
  }

  bool RemoveConnection(const std::string& id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return false;
    Conn* c = it->second.get();
    c->removing = true;
    if (result_) result_->closed_records.push_back(c->rec);
    // No longer a subscriber (before leaving, so it is not told about its own departure).
    for (const auto& g : c->rec.state_subscriptions) {
      auto sub = state_subs_.find(g);
      if (sub == state_subs_.end()) continue;
      sub->second.erase(c);
      if (sub->second.empty()) state_subs_.erase(sub);
    }
    std::vector<std::string> gs(c->rec.groups.begin(), c->rec.groups.end());
    for (const auto& g : gs) Leave(c, g);
    if (c->rec.user_id) {
      auto u = users_.find(*c->rec.user_id);
      if (u != users_.end()) {
        u->second.erase(c);
        if (u->second.empty()) users_.erase(u);
      }
    }
    // A removed connection is reported in `closed`, not `touched`.
    if (touched_set_.erase(c)) touched_.erase(std::find(touched_.begin(), touched_.end(), c));
    conns_.erase(it);
    return true;
  }

  // Client SDK 1.1 group state (presence). The origin must be a member of the group.
  void ApplyGroupState(const Entry& e, ApplyResult& r) {
    auto member = [&](const Conn& c) {
      if (c.rec.groups.count(e.target)) return Status::Ok();
      return Status::NotFound("The connection is not a member of group '" + e.target + "'.");
    };
    if (e.origin_connection.empty()) {
      r.status = Status::InvalidArgument("Group state is set by a connection.");
      return;
    }
    if (!CheckClientAction(e, r, member)) return;
    Conn* c = conns_.at(e.origin_connection).get();
    if (e.group_state) {
      c->rec.group_states[e.target] = {*e.group_state, now_};
    } else if (!c->rec.group_states.erase(e.target)) {
      return;  // nothing was set: nothing changes
    }
    Touch(c);
    PushStateChange(e.target, {c->rec.id, c->rec.user_id, e.group_state, now_});
  }

  // Subscribing reveals who is in a group: a member may, and so may a connection allowed to
  // join it.
  void ApplyStateSubscription(const Entry& e, ApplyResult& r) {
    auto allowed = [&](const Conn& c) {
      if (!e.subscribe || c.rec.groups.count(e.target) ||
          c.rec.permissions.Allowed(Permission::kJoinLeaveGroup, e.target)) {
        return Status::Ok();
      }
      return Status::Forbidden("The connection is neither a member of group '" + e.target +
                               "' nor allowed to join it.");
    };
    if (e.origin_connection.empty()) {
      r.status = Status::InvalidArgument("Group state is subscribed to by a connection.");
      return;
    }
    if (!CheckClientAction(e, r, allowed)) return;
    Conn* c = conns_.at(e.origin_connection).get();
    if (!e.subscribe) {
      if (!c->rec.state_subscriptions.erase(e.target)) return;
      auto sub = state_subs_.find(e.target);
      if (sub != state_subs_.end()) {
        sub->second.erase(c);
        if (sub->second.empty()) state_subs_.erase(sub);
      }
      Touch(c);
      return;
    }
    if (c->rec.state_subscriptions.insert(e.target).second) {
      state_subs_[e.target].insert(c);
      Touch(c);
    }
    r.group_states.push_back({e.target, true, StateItems(e.target), {&c->rec}});
  }

  std::vector<GroupStateItem> StateItems(const std::string& group) const {
    std::vector<GroupStateItem> items;
    auto it = groups_.find(group);
    if (it == groups_.end()) return items;
    for (const Conn* m : it->second) {
      auto st = m->rec.group_states.find(group);
      if (st == m->rec.group_states.end()) continue;
      items.push_back({m->rec.id, m->rec.user_id, st->second.state, st->second.updated_at_ms});
    }
    std::sort(items.begin(), items.end(),
              [](const auto& a, const auto& b) { return a.connection_id < b.connection_id; });
    return items;
  }

  // Adds a changed item to this entry's update for the group's subscribers (one update per
  // group and entry, however many members changed).
  void PushStateChange(const std::string& group, GroupStateItem item) {
    if (!result_) return;
    auto sub = state_subs_.find(group);
    if (sub == state_subs_.end()) return;
    for (auto& d : result_->group_states) {
      if (!d.snapshot && d.group == group) {
        d.items.push_back(std::move(item));
        return;
      }
    }
    ApplyResult::GroupStateDelivery d{group, false, {std::move(item)}, {}};
    d.recipients.reserve(sub->second.size());
    for (const Conn* c : sub->second) d.recipients.push_back(&c->rec);
    result_->group_states.push_back(std::move(d));
  }

  // Connections changed during one Apply, in first-touch order.
  std::vector<Conn*> touched_;
  std::unordered_set<Conn*> touched_set_;
  ApplyResult* result_ = nullptr;  // during one Apply
  uint64_t position_ = 0;          // during one Apply: its position
  int64_t now_ = 0;                // during one Apply: its time (never before the last one)
  int64_t last_timestamp_ms_ = 0;
  mutable std::shared_mutex mu_;
  uint64_t applied_ = 0;
  // Keyed by a view of the record's own id (a Conn never moves): no second copy of the id.
  std::unordered_map<std::string_view, std::unique_ptr<Conn>> conns_;
  std::unordered_map<std::string, std::unordered_set<Conn*>> groups_;
  std::unordered_map<std::string, std::unordered_set<Conn*>> users_;
  // group -> connections subscribed to its state
  std::unordered_map<std::string, std::unordered_set<Conn*>> state_subs_;
  // user -> group -> expiry (Unix ms; kNever without ttl).
  std::unordered_map<std::string, std::map<std::string, int64_t>> user_groups_;
};

}  // namespace

std::unique_ptr<HubView> NewMemoryView() { return std::make_unique<MemoryView>(); }

}  // namespace hubcast::storage
