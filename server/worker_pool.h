// WorkerPool: a fixed number of threads that run tasks from one bounded queue. The HTTP front
// hands it complete requests (REST calls, WebSocket handshakes), which may block briefly (a
// log append, a view read); sockets stay on the event loops, so a slow request holds a
// worker, never a connection's reading or anyone else's.
//
// Thread-safety: TrySubmit from any thread. Stop (or the destructor) from a thread that is not
// a worker; tasks still queued then are dropped unrun (their captures are destroyed).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::server {

class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queued, std::string name);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False when max_queued tasks are already waiting, or after Stop: the caller answers 503.
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
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hubcast::server
