#include "replication/hub_log.h"
#include "storage/entry_codec.h"

#include <atomic>
#include <mutex>

namespace hubcast::replication {
namespace {

class LocalLog final : public HubLog {
 public:
  LocalLog(uint64_t epoch, storage::Store* store, std::string hub, uint64_t head)
      : epoch_(epoch), store_(store), hub_(std::move(hub)), head_(head) {}

  void SetConsumer(Consumer consumer) override { consumer_ = std::move(consumer); }

  Result<uint64_t> Append(storage::EntryPtr entry) override {
    // Encoding outside the lock keeps the critical section to the write itself.
    std::string bytes = store_ ? storage::EncodeEntry(*entry) : std::string();
    // Handing the entry to the consumer under the lock is what orders delivery by position.
    std::lock_guard lock(mu_);
    uint64_t pos = head_.load(std::memory_order_relaxed) + 1;
    if (store_) {
      // Acknowledged only once durable: a failed write consumes no position.
      if (Status s = store_->AppendLog(hub_, pos, bytes); !s.ok()) return s;
    }
    // The head moves only once the consumer took the entry, so Barrier() never waits for an
    // entry nobody will apply (a refused stored entry is overwritten by the next append, or
    // applied by the start-up catch-up).
    if (!consumer_(pos, std::move(entry))) {
      return Status::Unavailable("The service is shutting down.");
    }
    head_.store(pos, std::memory_order_release);
    return pos;
  }

  uint64_t head() const override { return head_.load(std::memory_order_acquire); }
  uint64_t epoch() const override { return epoch_; }

 private:
  const uint64_t epoch_;
  storage::Store* const store_;
  const std::string hub_;
  std::mutex mu_;
  std::atomic<uint64_t> head_;
  Consumer consumer_;
};

}  // namespace

std::unique_ptr<HubLog> NewLocalLog(uint64_t epoch, storage::Store* store, std::string hub,
                                    uint64_t head) {
  return std::make_unique<LocalLog>(epoch, store, std::move(hub), head);
}

}  // namespace hubcast::replication
