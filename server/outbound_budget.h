// OutboundBudget: the node-wide count of bytes queued in all client connections' outgoing
// queues (accepted and not yet written to a socket), with a high mark and a low-water mark.
//
// Contract: thread-safe (atomics only); every event loop adds and subtracts its connections'
// queue bytes. Past the high mark the node is `backed_up()` until the total falls below the low
// mark (hysteresis, so publishers are not let in and refused on alternate calls). While backed
// up, new sends are refused (REST 503, error ack) and the connections whose queues are at least
// the average non-empty queue (and at least kMinDropBytes) drop themselves as slow consumers;
// a fast reader's queue stays near empty, so it is never the one dropped.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hubcast::server {

class OutboundBudget {
 public:
  static constexpr size_t kMinDropBytes = 64 * 1024;
  // high == 0: unbounded (never backed up).
  explicit OutboundBudget(uint64_t high = 0) : high_(high), low_(high - high / 4) {}

  // A queue grew by `bytes`; `was_empty`: it held nothing before.
  void Add(size_t bytes, bool was_empty) {
    if (was_empty) queues_.fetch_add(1, std::memory_order_relaxed);
    uint64_t now = bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (high_ != 0 && now > high_) backed_up_.store(true, std::memory_order_relaxed);
  }
  // A queue shrank by `bytes`; `now_empty`: it holds nothing now.
  void Sub(size_t bytes, bool now_empty) {
    if (now_empty) queues_.fetch_sub(1, std::memory_order_relaxed);
    uint64_t now = bytes_.fetch_sub(bytes, std::memory_order_relaxed) - bytes;
    if (now < low_) backed_up_.store(false, std::memory_order_relaxed);
  }
  bool backed_up() const { return backed_up_.load(std::memory_order_relaxed); }
  // Whether a queue of `queued` bytes is among the largest while the node is backed up.
  bool ShouldDrop(size_t queued) const {
    if (!backed_up() || queued < kMinDropBytes) return false;
    size_t queues = queues_.load(std::memory_order_relaxed);
    return queues == 0 || queued >= bytes_.load(std::memory_order_relaxed) / queues;
  }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  const uint64_t high_;
  const uint64_t low_;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<size_t> queues_{0};
  std::atomic<bool> backed_up_{false};
};

}  // namespace hubcast::server
