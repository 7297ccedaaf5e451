// Hub and HubRegistry: one hub's log and view, and the applier that connects them.
//
// Data flow (ARCHITECTURE.md, "The pieces that carry an entry"):
//   1. Append(entry) hands the entry to the hub's HubLog, which orders it and makes it
//      durable; it returns the position. The log's consumer queues (hub, position, entry)
//      for the registry's applier thread.
//   2. The applier thread, in position order per hub: HubView::Apply, then
//      DeliverySink::Deliver, then the append's completion callback (if any) with the apply
//      status, then wakes readers waiting in Barrier().
//   3. Queries go to view() after Barrier(), so whoever got an acknowledgement and then asks
//      sees the change (read your writes).
//
// Thread-safety: Hub and HubRegistry are safe to use from any thread. One applier thread
// serves every hub of the process; it never blocks on I/O to clients.
#pragma once

#include "base/names.h"
#include "replication/delivery_sink.h"
#include "replication/hub_log.h"
#include "storage/hub_view.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace hubcast::replication {

class HubRegistry;

class Hub {
 public:
  using Done = std::function<void(const Status&)>;

  const HubName& name() const { return name_; }
  const storage::HubView& view() const { return *view_; }
  uint64_t epoch() const { return log_->epoch(); }

  // Returns once durable. `done` runs on the applier thread after apply and delivery.
  // Fails (kUnavailable) when the registry is stopping.
  Result<uint64_t> Append(storage::Entry entry, Done done = {});
  // Append, then wait for the apply status.
  Status AppendAndWait(storage::Entry entry);
  // Waits until every entry appended before the call has been applied.
  void Barrier();

  Hub(HubName name, std::unique_ptr<HubLog> log, std::unique_ptr<storage::HubView> view,
      HubRegistry* registry);

  // The store holding this hub's log and view (nullptr in memory-only mode).
  storage::Store* store() const;
  // Position of the last applied entry.
  uint64_t applied_position() const;

 private:
  friend class HubRegistry;
  void ApplyOne(uint64_t position, const storage::Entry& entry, DeliverySink* sink);
  // Appends expiry removals for remembered memberships that have expired.
  void SweepExpiredMemberships(int64_t now_ms);
  // Drops replay-log entries older than max_age_ms or beyond max_bytes (never unapplied ones).
  void Trim(int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes);

  HubName name_;
  std::unique_ptr<HubLog> log_;
  std::unique_ptr<storage::HubView> view_;
  HubRegistry* registry_;

  std::chrono::steady_clock::time_point last_commit_warning_{};  // applier thread only
  std::mutex pending_mu_;
  std::unordered_map<uint64_t, Done> pending_;

  mutable std::mutex applied_mu_;
  std::condition_variable applied_cv_;
  uint64_t applied_ = 0;
};

struct HubRegistryOptions {
  std::string node_id;
  // Durable state; nullptr keeps everything in memory (tests).
  storage::Store* store = nullptr;
  // Replay-log retention, enforced by a background thread (never on the send path).
  int64_t replay_max_age_ms = 10 * 60 * 1000;
  uint64_t replay_max_bytes = 512ull * 1024 * 1024;
  int64_t retention_interval_ms = 5000;
};

class HubRegistry {
 public:
  HubRegistry(HubRegistryOptions options, DeliverySink* sink);
  ~HubRegistry();  // stops the applier after draining what was appended

  // The hub, created on first use (loaded from the store when it has state there).
  std::shared_ptr<Hub> Get(const HubName& name);
  // Start-up: loads every hub the store knows, catching each view up with its log. Call
  // before serving. Fails on unreadable state.
  Status LoadAll();
  std::vector<std::shared_ptr<Hub>> AllHubs();
  const std::string& node_id() const { return options_.node_id; }
  bool stopping() const;
  // Applies everything queued, then stops the applier. Later appends fail.
  void Stop();

 private:
  friend class Hub;
  struct Item {
    Hub* hub;
    uint64_t position;
    storage::EntryPtr entry;
  };
  // False once stopping: the applier may already be gone.
  bool Enqueue(Item item);
  void Run();
  void RunRetention();
  Result<std::shared_ptr<Hub>> CreateHub(const HubName& name);

  HubRegistryOptions options_;
  DeliverySink* sink_;

  std::mutex hubs_mu_;
  std::unordered_map<std::string, std::shared_ptr<Hub>> hubs_;

  mutable std::mutex q_mu_;
  std::condition_variable q_cv_;     // the applier's wake-up
  std::condition_variable stop_cv_;  // the retention thread's (only Stop wakes it early)
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::thread applier_;
  std::thread retention_;
};

}  // namespace hubcast::replication
