#include "base/worker_pool.h"

#include "base/log.h"

#include <algorithm>
#include <exception>
#include <utility>

namespace hubcast {

WorkerPool::WorkerPool(int threads, size_t max_queued, std::string name)
    : max_queued_(max_queued), name_(std::move(name)) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Run(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    draining_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::Execute(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

bool WorkerPool::TrySubmit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopped_ || queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void WorkerPool::Stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  dropped.clear();  // outside the lock: a capture's destructor may post or submit
}

void WorkerPool::Run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopped_ || draining_ || !queue_.empty(); });
      if (stopped_ || queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      Logger(name_).Error("task failed: ", e.what());
    } catch (...) {
      Logger(name_).Error("task failed with an unknown exception");
    }
  }
}

}  // namespace hubcast
