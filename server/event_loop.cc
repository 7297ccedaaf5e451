#include "server/event_loop.h"

#include "base/log.h"

#include <cerrno>
#include <cstring>
#include <future>
#include <sys/eventfd.h>
#include <unistd.h>

namespace hubcast::server {
namespace {
constexpr auto kTick = std::chrono::seconds(1);
}

Result<std::unique_ptr<EventLoop>> EventLoop::Create(int index, size_t max_inbox,
                                                     size_t max_inbox_bytes) {
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    return Status::Unavailable(std::string("event loop: epoll_create1: ") + std::strerror(errno));
  }
  const int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    const int error = errno;
    close(epfd);
    return Status::Unavailable(std::string("event loop: eventfd: ") + std::strerror(error));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the wake-up fd
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
    const int error = errno;
    close(wakefd);
    close(epfd);
    return Status::Unavailable(std::string("event loop: epoll_ctl: ") + std::strerror(error));
  }
  return std::unique_ptr<EventLoop>(new EventLoop(index, max_inbox, max_inbox_bytes, epfd, wakefd));
}

EventLoop::EventLoop(int index, size_t max_inbox, size_t max_inbox_bytes, int epfd, int wakefd)
    : index_(index),
      epfd_(epfd),
      wakefd_(wakefd),
      max_inbox_(max_inbox),
      max_inbox_bytes_(max_inbox_bytes) {}

EventLoop::~EventLoop() {
  Stop();
  close(wakefd_);
  close(epfd_);
}

void EventLoop::Start() {
  thread_ = std::thread([this] { Run(); });
}

void EventLoop::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(inbox_mu_);
    stop_.store(true);
  }
  room_cv_.notify_all();
  uint64_t one = 1;
  (void)!write(wakefd_, &one, sizeof one);
  thread_.join();
}

void EventLoop::Post(Task task) {
  bool was_empty;
  {
    std::lock_guard lock(inbox_mu_);
    was_empty = inbox_.empty();
    inbox_.push_back(std::move(task));
  }
  // One wake-up per batch of posts: the loop drains the whole inbox when it wakes.
  if (was_empty) {
    uint64_t one = 1;
    (void)!write(wakefd_, &one, sizeof one);
  }
}

void EventLoop::PostBounded(Task task, size_t bytes) {
  bool was_empty;
  {
    std::unique_lock lock(inbox_mu_);
    room_cv_.wait(lock, [&] {
      // An empty inbox takes any task, so one message larger than the bound still passes.
      const bool room = inbox_.size() < max_inbox_ &&
                        (inbox_.empty() || inbox_bytes_ + bytes <= max_inbox_bytes_);
      return room || stop_.load();
    });
    was_empty = inbox_.empty();
    inbox_.push_back(std::move(task));
    inbox_bytes_ += bytes;
  }
  if (was_empty) {
    uint64_t one = 1;
    (void)!write(wakefd_, &one, sizeof one);
  }
}

void EventLoop::RunAndWait(Task task) {
  std::promise<void> done;
  auto f = done.get_future();
  Post([&] {
    task();
    done.set_value();
  });
  f.wait();
}

bool EventLoop::Add(int fd, uint32_t events, std::shared_ptr<IoHandler> handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler.get();
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  handlers_[fd] = std::move(handler);
  handler_count_.store(handlers_.size(), std::memory_order_relaxed);
  return true;
}

void EventLoop::Modify(int fd, uint32_t events) {
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = it->second.get();
  epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::Remove(int fd) {
  auto it = handlers_.find(fd);
  if (it == handlers_.end()) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  graveyard_.push_back(std::move(it->second));
  handlers_.erase(it);
  handler_count_.store(handlers_.size(), std::memory_order_relaxed);
}

void EventLoop::RequestFlush(IoHandler* handler) {
  if (handler->flush_requested) return;
  handler->flush_requested = true;
  flush_list_.push_back(handler->shared_from_this());
}

void EventLoop::AddTicker(std::shared_ptr<IoHandler> handler) {
  IoHandler* key = handler.get();
  tickers_[key] = std::move(handler);
}

void EventLoop::RemoveTicker(IoHandler* handler) {
  auto it = tickers_.find(handler);
  if (it == tickers_.end()) return;
  graveyard_.push_back(std::move(it->second));
  tickers_.erase(it);
}

void EventLoop::DrainInbox() {
  uint64_t n;
  while (read(wakefd_, &n, sizeof n) > 0) {
  }
  std::vector<Task> tasks;
  {
    std::lock_guard lock(inbox_mu_);
    tasks.swap(inbox_);
    inbox_bytes_ = 0;
  }
  room_cv_.notify_all();
  for (auto& t : tasks) {
    try {
      t();
    } catch (const std::exception& e) {
      Logger("loop").Error("task failed: ", e.what());
    }
  }
}

void EventLoop::Run() {
  thread_id_ = std::this_thread::get_id();
  MarkNonBlockingThread();
  DeferWakesToRoundEnd();
  Logger log("loop");
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  auto next_tick = std::chrono::steady_clock::now() + kTick;
  while (true) {
    auto now = std::chrono::steady_clock::now();
    int timeout_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now).count());
    if (timeout_ms < 0) timeout_ms = 0;
    int n = epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) {
      log.Error("epoll_wait: ", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<IoHandler*>(events[i].data.ptr);
      if (h == nullptr) {
        DrainInbox();
        continue;
      }
      // A handler removed earlier in this batch sits in the graveyard: skip its events.
      bool dead = false;
      for (const auto& g : graveyard_) {
        if (g.get() == h) {
          dead = true;
          break;
        }
      }
      if (dead) continue;
      try {
        h->OnEvents(events[i].events);
      } catch (const std::exception& e) {
        log.Error("handler failed: ", e.what());
      }
    }
    // Flushing may queue more flushes (e.g. a close after a write): loop until quiet.
    while (!flush_list_.empty()) {
      auto list = std::move(flush_list_);
      flush_list_.clear();
      for (auto& h : list) {
        h->flush_requested = false;
        try {
          h->OnFlush();
        } catch (const std::exception& e) {
          log.Error("flush failed: ", e.what());
        }
      }
    }
    now = std::chrono::steady_clock::now();
    if (now >= next_tick) {
      next_tick = now + kTick;
      std::vector<std::shared_ptr<IoHandler>> all;
      all.reserve(handlers_.size() + tickers_.size());
      for (auto& [fd, h] : handlers_) all.push_back(h);
      for (auto& [k, h] : tickers_) all.push_back(h);
      for (auto& h : all) {
        try {
          h->OnTick(now);
        } catch (const std::exception& e) {
          log.Error("tick failed: ", e.what());
        }
      }
      if (tick_hook_) {
        try {
          tick_hook_();
        } catch (const std::exception& e) {
          log.Error("tick hook failed: ", e.what());
        }
      }
    }
    graveyard_.clear();
    if (stop_.load()) {
      DrainInbox();
      RunRoundWakes();
      break;
    }
    RunRoundWakes();
  }
}

}  // namespace hubcast::server
