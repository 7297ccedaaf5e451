// EventLoop: one thread that owns a set of sockets (epoll, level-triggered) and runs tasks
// posted to it by other threads. A fixed, small number of loops serve every connection
// (ARCHITECTURE.md, Threads).
//
// Contract:
//   1. Post(), PostBounded() and Execute() are the only methods other threads may call. Tasks
//      run on the loop thread in the order they were posted. Post never blocks (completions);
//      PostBounded waits while the inbox holds `max_inbox` tasks (deliveries: a slow loop
//      slows the appliers, never grows without bound); it never waits on a stopped loop. The
//      loop thread itself never waits: it is marked non-blocking (base/executor.h).
//   2. Handlers are registered, modified and removed only on the loop thread. A handler
//      removed during an iteration is not called again, even for events already returned in
//      that iteration (its destruction is deferred to the end of the iteration).
//   3. After every iteration the loop calls OnFlush() on the handlers that asked for it
//      (RequestFlush), so writes queued during one turn leave in one writev.
//   4. Every tick (default 1 s) OnTick() runs on every registered handler.
#pragma once

#include "base/executor.h"
#include "base/status.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <sys/epoll.h>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hubcast::server {

class IoHandler : public std::enable_shared_from_this<IoHandler> {
 public:
  virtual ~IoHandler() = default;
  virtual void OnEvents(uint32_t events) = 0;
  virtual void OnFlush() {}
  virtual void OnTick(std::chrono::steady_clock::time_point /*now*/) {}
  bool flush_requested = false;  // owned by the loop
};

class EventLoop final : public Executor {
 public:
  using Task = std::function<void()>;
  static constexpr size_t kDefaultMaxInbox = 65536;
  static constexpr size_t kDefaultMaxInboxBytes = size_t{64} << 20;
  // A loop with its epoll and wake-up descriptors; kUnavailable (errno's text) when the
  // kernel refuses them (descriptors exhausted). Not started.
  static Result<std::unique_ptr<EventLoop>> Create(int index, size_t max_inbox = kDefaultMaxInbox,
                                                   size_t max_inbox_bytes = kDefaultMaxInboxBytes);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Start();
  // Runs the tasks already posted, then stops the thread and joins it.
  void Stop();
  void Post(Task task);
  // Waits while the inbox holds max_inbox tasks, or while it holds anything and `bytes` more
  // would take the bytes its tasks carry past max_inbox_bytes: deliveries of large messages
  // are bounded by what they hold, not only by their number. Never call it on a loop.
  void PostBounded(Task task, size_t bytes = 0);
  void Execute(std::function<void()> task) override { Post(std::move(task)); }
  // Runs the task on the loop and waits for it (never call from the loop thread itself).
  void RunAndWait(Task task);

  // Loop thread only.
  bool Add(int fd, uint32_t events, std::shared_ptr<IoHandler> handler);
  void Modify(int fd, uint32_t events);
  void Remove(int fd);  // does not close fd
  void RequestFlush(IoHandler* handler);
  // Handlers not bound to a socket (e.g. a held reliable session) that still want ticks.
  void AddTicker(std::shared_ptr<IoHandler> handler);
  void RemoveTicker(IoHandler* handler);
  // Runs on the loop thread after every tick's OnTick calls (set before Start).
  void SetTickHook(std::function<void()> hook) { tick_hook_ = std::move(hook); }
  bool InLoopThread() const { return std::this_thread::get_id() == thread_id_; }
  int index() const { return index_; }
  size_t handler_count() const { return handler_count_.load(std::memory_order_relaxed); }

 private:
  EventLoop(int index, size_t max_inbox, size_t max_inbox_bytes, int epfd, int wakefd);
  void Run();
  void DrainInbox();

  const int index_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stop_{false};

  const size_t max_inbox_;
  const size_t max_inbox_bytes_;
  size_t inbox_bytes_ = 0;  // what PostBounded tasks in inbox_ said they carry
  std::mutex inbox_mu_;
  std::condition_variable room_cv_;
  std::vector<Task> inbox_;

  std::unordered_map<int, std::shared_ptr<IoHandler>> handlers_;
  std::unordered_map<IoHandler*, std::shared_ptr<IoHandler>> tickers_;
  std::vector<std::shared_ptr<IoHandler>> graveyard_;
  std::vector<std::shared_ptr<IoHandler>> flush_list_;
  std::atomic<size_t> handler_count_{0};
  std::function<void()> tick_hook_;
};

}  // namespace hubcast::server
