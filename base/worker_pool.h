// WorkerPool: a fixed number of threads running queued tasks, for work that may wait (disk
// reads, round trips, a complete HTTP request) and so must stay off the event loops. Tasks
// start in queue order, several at once across the threads. A task that throws is logged
// under the pool's name; the worker goes on.
//
// Two ways in: Execute (the Executor contract: never refused, never dropped while the pool
// runs) and TrySubmit (bounded by max_queued waiting tasks: past it the caller refuses the
// work, e.g. HTTP 503).
//
// Thread-safety: Execute and TrySubmit from any thread. Stop (or the destructor) from a
// thread that is not a worker. Stop drops the tasks still queued, unrun (their captures are
// destroyed) and refuses new ones; the destructor of a pool that was not stopped runs what is
// queued first, then joins.
#pragma once

#include "base/executor.h"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hubcast {

class WorkerPool final : public Executor {
 public:
  explicit WorkerPool(int threads, size_t max_queued = std::numeric_limits<size_t>::max(),
                      std::string name = "workers");
  ~WorkerPool() override;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // After Stop the task is dropped: nothing would run it.
  void Execute(std::function<void()> task) override;
  // False when max_queued tasks are already waiting, or after Stop.
  bool TrySubmit(std::function<void()> task);
  void Stop();
  size_t threads() const { return threads_.size(); }

 private:
  void Run();

  const size_t max_queued_;
  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool draining_ = false;  // destructor: run what is queued, then end
  bool stopped_ = false;   // Stop: end now, queue dropped
  std::vector<std::thread> threads_;
};

}  // namespace hubcast
