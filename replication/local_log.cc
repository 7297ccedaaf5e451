#include "replication/local_log.h"

#include "base/executor.h"
#include "base/random.h"
#include "storage/entry_codec.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hubcast::replication {
namespace {

class Writer;

class LocalLog final : public HubLog {
 public:
  LocalLog(Writer* writer, storage::Store* store, std::string hub, uint64_t epoch, uint64_t last)
      : writer_(writer),
        store_(store),
        hub_(std::move(hub)),
        epoch_(epoch),
        head_(last),
        next_(last + 1) {}

  void SetConsumer(Consumer consumer) override { consumer_ = std::move(consumer); }

  Status Start(uint64_t after) override {
    if (!store_ || after >= head_.load()) return Status::Ok();
    // Entries that were durable but not applied when the process stopped, in order. Nothing
    // is appended before Start returns (the hub is not published yet).
    Status bad;
    Status scan =
        store_->ScanLog(hub_, after + 1, head_.load(), [&](uint64_t pos, std::string_view v) {
          auto e = storage::DecodeEntry(v);
          if (!e.ok()) {
            bad = Status::InvalidArgument("hub " + hub_ + " log entry " + std::to_string(pos) +
                                          ": " + e.status().message());
            return false;
          }
          consumer_(
              LogRecord{pos, std::make_shared<const storage::Entry>(std::move(e).value()), {}, {}});
          return true;
        });
    if (!bad.ok()) return bad;
    return scan;
  }

  void Append(storage::EntryPtr entry, DurableFn durable, AppliedFn applied,
              const std::string& request_id) override;

  Result<uint64_t> Head() override { return head_.load(std::memory_order_acquire); }
  uint64_t epoch() const override { return epoch_; }

  // Writer thread only.
  const std::string& hub() const { return hub_; }
  uint64_t next() const { return next_; }
  void set_next(uint64_t n) { next_ = n; }
  void Durable(uint64_t pos) { head_.store(pos, std::memory_order_release); }
  void Hand(LogRecord record) { consumer_(std::move(record)); }

 private:
  Writer* const writer_;
  storage::Store* const store_;
  const std::string hub_;
  const uint64_t epoch_;
  std::atomic<uint64_t> head_;  // last durable position
  uint64_t next_;               // writer thread only
  Consumer consumer_;
};

// The one thread that orders and writes the appends of every LocalLog of a provider.
class Writer {
 public:
  explicit Writer(storage::Store* store) : store_(store), thread_([this] { Run(); }) {}
  ~Writer() { Stop(); }

  struct Pending {
    LocalLog* log;
    storage::EntryPtr entry;
    std::string bytes;
    DurableFn durable;
    AppliedFn applied;
  };

  void Submit(Pending p) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        queue_.push_back(std::move(p));
        // From an event loop: once per round of the loop, so one wake carries all its appends.
        if (queue_.size() == 1) WakeAfterThisRound([this] { cv_.notify_one(); });
        return;
      }
    }
    p.durable(Status::Unavailable("The service is shutting down."));
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  LocalLogStats stats() const {
    return {rounds_.load(std::memory_order_relaxed), entries_.load(std::memory_order_relaxed)};
  }

 private:
  void Run() {
    std::vector<Pending> round;
    std::vector<uint64_t> positions;
    std::vector<storage::Store::LogAppend> writes;
    std::unordered_map<LocalLog*, uint64_t> first_next;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and everything accepted was handled
        round.swap(queue_);
      }
      positions.clear();
      writes.clear();
      first_next.clear();
      for (Pending& p : round) {
        first_next.emplace(p.log, p.log->next());
        uint64_t pos = p.log->next();
        p.log->set_next(pos + 1);
        positions.push_back(pos);
        if (store_) writes.push_back({p.log->hub(), pos, p.bytes});
      }
      Status written = store_ ? store_->AppendLog(writes) : Status::Ok();
      if (!written.ok()) {
        // Nothing of the round is durable: no position is consumed.
        for (auto& [log, next] : first_next) log->set_next(next);
        for (Pending& p : round) p.durable(written);
      } else {
        rounds_.fetch_add(1, std::memory_order_relaxed);
        entries_.fetch_add(round.size(), std::memory_order_relaxed);
        for (size_t i = 0; i < round.size(); ++i) round[i].log->Durable(positions[i]);
        for (size_t i = 0; i < round.size(); ++i) round[i].durable(positions[i]);
        for (size_t i = 0; i < round.size(); ++i) {
          Pending& p = round[i];
          p.log->Hand(LogRecord{positions[i], std::move(p.entry), {}, std::move(p.applied)});
        }
      }
      round.clear();
    }
  }

  storage::Store* const store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;
  bool stopping_ = false;
  std::atomic<uint64_t> rounds_{0}, entries_{0};
  std::thread thread_;  // last: starts after the members it uses
};

void LocalLog::Append(storage::EntryPtr entry, DurableFn durable, AppliedFn applied,
                      const std::string& /*request_id: one process appends everything once*/) {
  // Encoded on the caller's thread: the writer's round is the bottleneck, not the callers.
  std::string bytes = store_ ? storage::EncodeEntry(*entry) : std::string();
  writer_->Submit(
      {this, std::move(entry), std::move(bytes), std::move(durable), std::move(applied)});
}

class Provider final : public LocalLogProvider {
 public:
  explicit Provider(storage::Store* store) : store_(store), writer_(store) {}

  Result<std::vector<std::string>> Hubs() override {
    if (!store_) return std::vector<std::string>{};
    return store_->Hubs();
  }

  Result<std::unique_ptr<HubLog>> Open(const HubName& name, bool create) override {
    const std::string& hub = name.str();
    if (!store_) {
      if (!create) return Status::NotFound("hub " + hub + " has no log");
      return std::unique_ptr<HubLog>(
          std::make_unique<LocalLog>(&writer_, nullptr, hub, RandomU64(), 0));
    }
    if (!create) {
      auto hubs = store_->Hubs();
      if (!hubs.ok()) return hubs.status();
      if (std::find(hubs->begin(), hubs->end(), hub) == hubs->end()) {
        return Status::NotFound("hub " + hub + " has no log");
      }
    }
    // Reads first: the epoch is the hub's first write (it puts the hub in the store's list),
    // so a failure before it leaves nothing behind.
    auto logged = store_->LastLogPosition(hub);
    if (!logged.ok()) return logged.status();
    auto applied = store_->AppliedPosition(hub);
    if (!applied.ok()) return applied.status();
    auto epoch = store_->Epoch(hub, RandomU64());
    if (!epoch.ok()) return epoch.status();
    uint64_t last = std::max(*logged, *applied);
    return std::unique_ptr<HubLog>(std::make_unique<LocalLog>(&writer_, store_, hub, *epoch, last));
  }

  void Stop() override { writer_.Stop(); }
  LocalLogStats stats() const override { return writer_.stats(); }

 private:
  storage::Store* const store_;
  Writer writer_;
};

}  // namespace

std::unique_ptr<LocalLogProvider> LocalLogProvider::New(storage::Store* store) {
  return std::make_unique<Provider>(store);
}

}  // namespace hubcast::replication
