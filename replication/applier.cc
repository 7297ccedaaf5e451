#include "replication/applier.h"

#include "base/log.h"
#include "replication/hub.h"

#include <unordered_map>

namespace hubcast::replication {

ApplierPool::ApplierPool(int threads, storage::Store* store, DeliverySink* sink,
                         size_t max_queue, std::chrono::milliseconds lazy_commit)
    : store_(store), sink_(sink), max_queue_(max_queue), lazy_commit_(lazy_commit) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    appliers_.push_back(std::make_unique<Applier>());
  }
  for (auto& a : appliers_) {
    Applier* raw = a.get();
    a->thread = std::thread([this, raw] { Run(*raw); });
  }
}

ApplierPool::~ApplierPool() { Stop(); }

bool ApplierPool::Push(int index, Hub* hub, LogRecord record) {
  Applier& a = *appliers_[static_cast<size_t>(index) % appliers_.size()];
  std::unique_lock lock(a.mu);
  a.room_cv.wait(lock, [&] { return a.stopping || a.queue.size() < max_queue_; });
  if (a.stopping) return false;
  a.queue.push_back({hub, std::move(record)});
  if (a.queue.size() == 1) a.work_cv.notify_one();
  return true;
}

void ApplierPool::Stop() {
  for (auto& a : appliers_) {
    {
      std::lock_guard lock(a->mu);
      a->stopping = true;
    }
    a->work_cv.notify_all();
    a->room_cv.notify_all();
  }
  for (auto& a : appliers_) {
    if (a->thread.joinable()) a->thread.join();
  }
}

void ApplierPool::Run(Applier& a) {
  std::deque<Item> run;
  std::unique_ptr<storage::ApplyBatch> batch = store_ ? store_->NewApplyBatch() : nullptr;
  // Hubs with records in the open batch, and the last position of each.
  std::unordered_map<Hub*, uint64_t> open;
  auto opened_at = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_warning{};

  auto commit = [&] {
    if (open.empty()) return;
    bool state = batch && batch->changes_state();
    Status s = batch ? store_->Commit(std::move(batch)) : Status::Ok();
    if (store_) batch = store_->NewApplyBatch();
    if (!s.ok()) {
      // The store keeps the batch and writes it before any later one; delivery and reads go
      // on meanwhile (appends answer 503 while the disk is full).
      auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(5)) {
        last_warning = now;
        Logger("applier").Error("the view is not written to disk: ", s.message());
      }
      open.clear();
      return;
    }
    for (auto& [hub, pos] : open) hub->Committed(pos, state);
    open.clear();
  };

  for (;;) {
    {
      std::unique_lock lock(a.mu);
      if (a.queue.empty() && !a.stopping) {
        if (open.empty()) {
          a.work_cv.wait(lock, [&] { return a.stopping || !a.queue.empty(); });
        } else {
          a.work_cv.wait_until(lock, opened_at + lazy_commit_,
                               [&] { return a.stopping || !a.queue.empty(); });
        }
      }
      if (a.queue.empty()) {
        lock.unlock();
        if (a.stopping) {
          commit();
          return;
        }
        // The lazy commit's time is up.
        commit();
        continue;
      }
      run.swap(a.queue);
    }
    a.room_cv.notify_all();
    if (open.empty()) opened_at = std::chrono::steady_clock::now();
    for (Item& item : run) {
      item.hub->Apply(item.record, batch.get(), sink_);
      open[item.hub] = item.record.position;
    }
    run.clear();
    bool state = batch && batch->changes_state();
    if (state || !store_ || std::chrono::steady_clock::now() - opened_at >= lazy_commit_) {
      commit();
    } else {
      // Nothing but applied positions: replay needs nothing from this batch.
      for (auto& [hub, pos] : open) hub->replayable_.store(pos, std::memory_order_release);
    }
  }
}

}  // namespace hubcast::replication
