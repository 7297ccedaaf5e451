// Hub and HubRegistry: one hub's log and view, and the appliers that connect them.
//
// Data flow (ARCHITECTURE.md, "The pieces that carry an entry"):
//   1. Hub::Append(entry, callbacks) admits the entry (bounded: per hub and per node, see
//      HubRegistryOptions) and hands it to the hub's HubLog; it returns at once. `durable`
//      runs when the log made the entry durable (or refused it).
//   2. The log hands every entry, in position order, to the hub's applier (a fixed pool of
//      threads; each hub is pinned to one, so its order is kept and hubs do not wait on one
//      another).
//   3. The applier, for a run of queued entries: HubView::Apply, then DeliverySink::Deliver,
//      then the appender's `applied` completion; the run's view changes go to the store in one
//      batch (applier.h).
//   4. Queries go to view() after Barrier(), so whoever got an acknowledgement and then asks
//      sees the change (read your writes).
// Completions run on the Executor the caller named (an event loop gets them in its inbox),
// or, without one, on the log's or applier's thread (they must not block then).
//
// Thread-safety: Hub and HubRegistry are safe to use from any thread. Nothing here blocks a
// caller of Append; AppendAndWait* and Barrier wait, and must never run on an event loop
// (asserted in debug builds).
#pragma once

#include "base/executor.h"
#include "base/names.h"
#include "replication/delivery_sink.h"
#include "replication/hub_log.h"
#include "storage/hub_view.h"
#include "storage/store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hubcast::replication {

class HubRegistry;
class ApplierPool;
class SnapshotStore;

// The completions of one append (each optional, each runs at most once).
struct AppendCallbacks {
  // Where they run; nullptr: on the log's or applier's thread (then they must not block).
  Executor* executor = nullptr;
  // Durable at this position, or refused: kUnavailable for a full queue, a full disk, a lost
  // cluster connection or shutdown (then nothing was appended and `applied` never runs).
  DurableFn durable;
  // Applied on this node (after delivery), with the apply status: OK, or why the entry had no
  // effect (kForbidden, kDuplicate, kNotFound, ...).
  AppliedFn applied;
  // Identifies the command across nodes (hub_log.h, contract 5); empty for most commands.
  std::string request_id;
};

class Hub : public std::enable_shared_from_this<Hub> {
 public:
  Hub(HubName name, std::unique_ptr<HubLog> log, std::unique_ptr<storage::HubView> view,
      HubRegistry* registry, int applier);

  const HubName& name() const { return name_; }
  // This node's id (what entries name as their node).
  const std::string& node_id() const;
  const storage::HubView& view() const { return *view_; }
  uint64_t epoch() const { return log_->epoch(); }
  // This node's consumer lag behind the hub's log (cluster), nullopt on the embedded log.
  std::optional<uint64_t> consumer_lag() const { return log_->consumer_lag(); }

  void Append(storage::Entry entry, AppendCallbacks callbacks = {});
  // Waits for `durable`: the position, or why nothing was appended.
  Result<uint64_t> AppendAndWaitDurable(storage::Entry entry);
  // Waits for `applied`: the apply status, or why nothing was appended.
  Status AppendAndWait(storage::Entry entry);
  // Waits until every entry acknowledged before the call has been applied here.
  Status Barrier();

  // The store holding this hub's log and view (nullptr in memory-only mode).
  storage::Store* store() const;
  // Position of the last applied entry.
  uint64_t applied_position() const;
  // Every entry at or below this position has its apply outcome in the store: replay
  // (storage/replay.h) may count up to here.
  uint64_t replayable_position() const { return replayable_.load(std::memory_order_acquire); }
  // The applied position last committed to the store: retention never trims above it, so a
  // restart can always re-apply from there.
  uint64_t committed_position() const { return committed_.load(std::memory_order_acquire); }

  // Applier thread (in Deliver) or before the hub serves: marks a connection as held by this
  // node's socket layer under `handle` (ConnectionRecord::local_handle).
  void AttachLocal(const std::string& connection_id, uint64_t handle);

 private:
  friend class HubRegistry;
  friend class ApplierPool;
  // Applier thread: applies one record, adds its changes to `batch`, delivers it.
  void Apply(LogRecord& record, storage::ApplyBatch* batch, DeliverySink* sink);
  void Committed(uint64_t position, bool state_written);
  // Appends expiry removals for remembered memberships that have expired.
  void SweepExpiredMemberships(int64_t now_ms);
  // Appends expiring closes for held sessions whose hold ran out.
  void SweepExpiredHeld(int64_t now_ms);
  // Appends `node down` for every node that still serves connections here but is known dead
  // (options_.is_dead): a report that failed or never came is made good by the owner.
  void SweepDeadNodes(int64_t now_ms);
  // Appends that `node` is dead: its reliable sessions are held until now + node_down_hold_ms.
  void AppendNodeDown(const std::string& node, const std::string& request_id, int64_t now_ms);
  // Saves the view into the snapshot store when it moved since the last one.
  void SaveSnapshot();
  // Before Start only: replaces the view (and the store's copy) with a snapshot's state.
  Status InstallState(storage::ViewState state);
  // Drops replay-log entries older than max_age_ms or beyond max_bytes (never any above the
  // committed applied position).
  void Trim(int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes);
  void Release(size_t bytes);

  HubName name_;
  std::unique_ptr<HubLog> log_;
  std::unique_ptr<storage::HubView> view_;
  HubRegistry* registry_;
  const int applier_;
  std::atomic<size_t> pending_{0};  // admitted and not yet applied (or refused)

  mutable std::mutex applied_mu_;
  std::condition_variable applied_cv_;
  uint64_t applied_ = 0;
  std::atomic<uint64_t> replayable_{0};
  std::atomic<uint64_t> committed_{0};
  uint64_t snapshot_position_ = 0;  // retention thread only
};

struct HubRegistryOptions {
  std::string node_id;
  // Durable state; nullptr keeps everything in memory (tests).
  storage::Store* store = nullptr;
  // The hubs' logs; nullptr: a LocalLogProvider over `store`, owned by the registry.
  LogProvider* logs = nullptr;
  // Applier threads (each hub is pinned to one).
  int appliers = 1;
  // Admission bounds: entries admitted and not yet applied, per hub and per node, and their
  // payload bytes per node. Past them Append refuses with kUnavailable (REST 503, error ack).
  size_t max_pending_per_hub = 65536;
  size_t max_pending_per_node = 262144;
  uint64_t max_pending_bytes = 256ull << 20;
  // Whether the node's deliveries are backed up (its outgoing queues over their bound); while
  // true, messages (kSend) are refused like the bounds above. nullptr: never.
  std::function<bool()> deliveries_backed_up = nullptr;
  // Hubs this node serves; creating one more is refused.
  size_t max_hubs = 1000;
  // Cluster: whether this node does a hub's time-driven work (sweeps, snapshots); nullptr:
  // always (a single node).
  std::function<bool(const HubName&)> is_owner = nullptr;
  // Cluster: whether a node is known dead (nullptr: none is), and how long its reliable
  // sessions are held for their clients to resume them on another node.
  std::function<bool(const std::string& node)> is_dead = nullptr;
  int64_t node_down_hold_ms = 60000;
  // Cluster: where hub views are saved for joining nodes, and how often the owner saves one.
  SnapshotStore* snapshots = nullptr;
  std::chrono::milliseconds snapshot_interval{60000};
  // Cluster: how often the logs are asked for hubs created by other nodes (0: never).
  std::chrono::milliseconds discover_interval{0};
  // Replay-log retention, enforced by a background thread (never on the send path).
  int64_t replay_max_age_ms = 10 * 60 * 1000;
  uint64_t replay_max_bytes = 512ull * 1024 * 1024;
  int64_t retention_interval_ms = 5000;
  // How long a position-only apply batch may wait before it is written.
  std::chrono::milliseconds lazy_commit{100};
  // How long a read barrier waits before it answers kUnavailable.
  std::chrono::milliseconds barrier_timeout{10000};
};

class HubRegistry {
 public:
  HubRegistry(HubRegistryOptions options, DeliverySink* sink);
  ~HubRegistry();  // Stop()

  // The hub, created on first use: only for authenticated writes. Fails when the store or
  // the log cannot create it, or past max_hubs.
  Result<std::shared_ptr<Hub>> Get(const HubName& name);
  // The hub if it exists (nullptr otherwise): reads never create anything.
  std::shared_ptr<Hub> Find(const HubName& name);
  // The hub if it is open on this node, without ever waiting: nullptr when it is not open or
  // the registry is busy opening or creating a hub (an event loop then hands the request to a
  // thread that may wait).
  std::shared_ptr<Hub> FindOpenNow(const HubName& name);
  // Find that tells why not: kNotFound (no such hub) or kUnavailable (its log cannot be
  // reached now; asking again later may succeed).
  Result<std::shared_ptr<Hub>> Open(const HubName& name);
  // Start-up: loads every hub the logs know, catching each view up with its log. Call
  // before serving. Fails on unreadable state.
  Status LoadAll();
  std::vector<std::shared_ptr<Hub>> AllHubs();
  const std::string& node_id() const { return options_.node_id; }
  const HubRegistryOptions& options() const { return options_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  // Cluster: appends, to every hub, that `node` (that incarnation of it) is dead; its reliable
  // sessions are held for options.node_down_hold_ms. The request ids make another node's
  // report of the same death one entry, not two; a report that fails is made good by the
  // hub owner's dead-node sweep.
  void ReportNodeDown(const std::string& node, uint64_t incarnation);
  // Refuses new appends, makes durable and applies everything accepted, then stops the
  // threads.
  void Stop();

 private:
  friend class Hub;
  Result<std::shared_ptr<Hub>> CreateHub(const HubName& name, bool create);
  bool Admit(Hub* hub, size_t bytes);
  void Release(size_t bytes);
  void RunRetention();
  void Discover();

  HubRegistryOptions options_;
  DeliverySink* sink_;
  std::unique_ptr<LogProvider> owned_logs_;
  LogProvider* logs_;
  std::unique_ptr<ApplierPool> appliers_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> pending_{0};
  std::atomic<uint64_t> pending_bytes_{0};

  std::mutex hubs_mu_;
  std::unordered_map<std::string, std::shared_ptr<Hub>> hubs_;
  std::atomic<int> next_applier_{0};

  std::mutex retention_mu_;
  std::condition_variable retention_cv_;
  std::thread retention_;
};

}  // namespace hubcast::replication
