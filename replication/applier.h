// ApplierPool: a fixed number of threads that apply log records to hub views. Each hub is
// pinned to one applier, so one hub's records are applied in position order while hubs on
// different appliers proceed in parallel.
//
// One applier's loop, in numbered steps:
//   1. Take every record queued (a run; records of several hubs, each hub's in order).
//   2. For each: Hub::Apply (view, the run's ApplyBatch, delivery, the appender's completion).
//   3. Commit the batch in one store write when it changes state (memberships, connections,
//      outcomes, replay-log entries of a replicated log). A batch of applied positions only
//      (plain sends) waits up to `lazy_commit` for more: start-up re-applies from the last
//      committed position, which is how a crash is handled anyway.
//
// Bounded: a queue holds at most `max_queue` records; Push blocks while it is full (only log
// threads push, never a socket thread). Admission (HubRegistryOptions) normally keeps the
// queues far below the bound.
//
// Thread-safety: Push from any thread; Stop once.
#pragma once

#include "replication/delivery_sink.h"
#include "replication/hub_log.h"
#include "storage/store.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace hubcast::replication {

class Hub;

class ApplierPool {
 public:
  ApplierPool(int threads, storage::Store* store, DeliverySink* sink, size_t max_queue,
              std::chrono::milliseconds lazy_commit);
  ~ApplierPool();
  ApplierPool(const ApplierPool&) = delete;
  ApplierPool& operator=(const ApplierPool&) = delete;

  int size() const { return static_cast<int>(appliers_.size()); }
  // Queues a record of `hub` on applier `index`. False (the record is dropped) once stopped.
  bool Push(int index, Hub* hub, LogRecord record);
  // Applies and commits everything queued, then stops the threads.
  void Stop();

 private:
  struct Item {
    Hub* hub;
    LogRecord record;
  };
  struct Applier {
    std::mutex mu;
    std::condition_variable work_cv;  // the applier waits for work
    std::condition_variable room_cv;  // pushers wait for room
    std::deque<Item> queue;
    bool stopping = false;
    std::thread thread;
  };
  void Run(Applier& a);

  storage::Store* const store_;
  DeliverySink* const sink_;
  const size_t max_queue_;
  const std::chrono::milliseconds lazy_commit_;
  std::vector<std::unique_ptr<Applier>> appliers_;
};

}  // namespace hubcast::replication
