#include "replication/hub_log.h"

#include <atomic>
#include <mutex>

namespace hubcast::replication {
namespace {

class LocalLog final : public HubLog {
 public:
  explicit LocalLog(uint64_t epoch) : epoch_(epoch) {}

  void SetConsumer(Consumer consumer) override { consumer_ = std::move(consumer); }

  Result<uint64_t> Append(storage::EntryPtr entry) override {
    // Handing the entry to the consumer under the lock is what orders delivery by position.
    std::lock_guard lock(mu_);
    uint64_t pos = head_.load(std::memory_order_relaxed) + 1;
    head_.store(pos, std::memory_order_release);
    consumer_(pos, std::move(entry));
    return pos;
  }

  uint64_t head() const override { return head_.load(std::memory_order_acquire); }
  uint64_t epoch() const override { return epoch_; }

 private:
  const uint64_t epoch_;
  std::mutex mu_;
  std::atomic<uint64_t> head_{0};
  Consumer consumer_;
};

}  // namespace

std::unique_ptr<HubLog> NewLocalLog(uint64_t epoch) { return std::make_unique<LocalLog>(epoch); }

}  // namespace hubcast::replication
