// log_bench: the cost of the hub log and its appliers. Not a test (no pass/fail); bounded to
// about a minute. Run it with:
//
//   cmake --build build -j2 --target log_bench && build/tests/bench/log_bench
//
// It prints one table, side by side in one run: the in-memory log (no store), RocksDB with the
// default WAL, and RocksDB with --sync-writes (an fsync per writer round), each with 1, 16 and
// 256 concurrent appenders across 1 and 64 hubs, and the ratios against memory (and of sync
// against the default mode).
//
// An appender is one append in flight: it issues the next append when its previous one was
// applied (closed loop), as a client waiting for its ack or an app server waiting for 202
// does. Appenders are spread over up to 4 issuing threads that work like the gateway's event
// loops: completions arrive in their inbox (AppendCallbacks::executor) and the next appends
// are issued from there. Each hub holds 8 connections (2 of
// them reliable), so apply numbers and selects recipients like a real send; the DeliverySink
// only counts (the gateway's socket work is not measured). "appends/s" counts applied appends;
// "fsyncs/s" is the writer's rounds per second (one store write each; an fsync with
// --sync-writes); "p50/p99 ms" is the append-to-applied time of the appends.
//
// Flags (all optional): --seconds S (per cell, default 1.5)  --payload B (default 100)
//   --dir PATH (temporary databases; default the system temp dir)  --appliers N (default 2)
#include "base/executor.h"
#include "base/names.h"
#include "base/status.h"
#include "replication/delivery_sink.h"
#include "replication/hub.h"
#include "replication/local_log.h"
#include "storage/entry.h"
#include "storage/hub_view.h"
#include "storage/store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using hubcast::HubName;
using hubcast::Result;
using hubcast::Status;
using hubcast::replication::AppendCallbacks;
using hubcast::replication::DeliverySink;
using hubcast::replication::Hub;
using hubcast::replication::HubRegistry;
using hubcast::replication::HubRegistryOptions;
using hubcast::replication::LocalLogProvider;
using hubcast::storage::ApplyResult;
using hubcast::storage::Entry;
using hubcast::storage::EntryKind;
using hubcast::storage::Scope;
using hubcast::storage::Store;
using hubcast::storage::StoreOptions;
using Clock = std::chrono::steady_clock;

struct Flags {
  double seconds = 1.5;
  size_t payload = 100;
  std::string dir;
  int appliers = 2;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "log_bench: %s\nusage: log_bench [--seconds S] [--payload B] [--dir PATH] "
               "[--appliers N]\n",
               why);
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--seconds") {
      f.seconds = std::atof(value().c_str());
    } else if (a == "--payload") {
      f.payload = static_cast<size_t>(std::atol(value().c_str()));
    } else if (a == "--dir") {
      f.dir = value();
    } else if (a == "--appliers") {
      f.appliers = std::atoi(value().c_str());
    } else {
      Usage(("unknown flag " + a).c_str());
    }
  }
  if (f.seconds <= 0 || f.appliers <= 0) Usage("values must be positive");
  return f;
}

class CountingSink : public DeliverySink {
 public:
  void Deliver(Hub&, uint64_t, const Entry&, const ApplyResult& r) override {
    recipients_.fetch_add(r.recipients.size(), std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> recipients_{0};
};

Entry OpenEntry(const std::string& id, bool reliable) {
  Entry e;
  e.kind = EntryKind::kConnectionOpen;
  e.origin_connection = id;
  e.reliable = reliable;
  e.subprotocol = reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  e.node_id = "bench";
  return e;
}

std::string Payload(size_t n) {
  // Random base64 characters, so RocksDB's compression cannot shrink it to nothing.
  static const char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s(n, 'x');
  uint64_t x = 88172645463325252ull;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = kChars[x % 64];
  }
  return s;
}

// An event loop in miniature: completions arrive in its inbox (the Executor) and run on its
// thread, several per wake-up, as they do on the gateway's loops.
class BenchLoop : public hubcast::Executor {
 public:
  BenchLoop() : thread_([this] { Run(); }) {}
  ~BenchLoop() override {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Execute(std::function<void()> task) override {
    bool was_empty;
    {
      std::lock_guard lock(mu_);
      was_empty = inbox_.empty();
      inbox_.push_back(std::move(task));
    }
    if (was_empty) cv_.notify_one();
  }
  // Appends in flight that were started on / finished by this loop.
  void Started() { live_.fetch_add(1); }
  void Done() { live_.fetch_sub(1); }
  void WaitIdle() {
    while (live_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

 private:
  void Run() {
    std::vector<std::function<void()>> tasks;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return quit_ || !inbox_.empty(); });
        if (quit_ && inbox_.empty()) return;
        tasks.swap(inbox_);
      }
      for (auto& t : tasks) t();
      tasks.clear();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> inbox_;
  bool quit_ = false;
  std::atomic<int> live_{0};
  std::thread thread_;
};

enum class Mode { kMemory, kRocks, kRocksSync };
const char* ModeName(Mode m) {
  return m == Mode::kMemory ? "memory" : m == Mode::kRocks ? "rocksdb" : "rocksdb-sync";
}

struct Cell {
  Mode mode;
  int appenders;
  int hubs;
  double rate = 0;
  double fsyncs = 0;
  double p50_ms = 0, p99_ms = 0;
  uint64_t refused = 0;
};

void Run(const Flags& flags, Cell& cell) {
  fs::path dir;
  std::unique_ptr<Store> store;
  if (cell.mode != Mode::kMemory) {
    fs::path base = flags.dir.empty() ? fs::temp_directory_path() : fs::path(flags.dir);
    std::string pattern = (base / "hubcast-log-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    dir = pattern;
    auto opened = Store::Open(StoreOptions{(dir / "db").string(), cell.mode == Mode::kRocksSync});
    if (!opened.ok()) {
      std::fprintf(stderr, "log_bench: %s\n", opened.status().message().c_str());
      std::exit(1);
    }
    store = std::move(opened).value();
  }
  CountingSink sink;
  auto logs = LocalLogProvider::New(store.get());
  {
    HubRegistryOptions ro;
    ro.node_id = "bench";
    ro.store = store.get();
    ro.logs = logs.get();
    ro.appliers = flags.appliers;
    HubRegistry registry(ro, &sink);
    std::vector<std::shared_ptr<Hub>> hubs;
    for (int h = 0; h < cell.hubs; ++h) {
      auto hub = registry.Get(HubName::Parse("hub" + std::to_string(h)).value());
      if (!hub.ok()) std::exit(1);
      hubs.push_back(*hub);
      for (int i = 0; i < 8; ++i) {
        (void)(*hub)->AppendAndWait(OpenEntry("conn-" + std::to_string(i), i < 2));
      }
    }
    const std::string payload = Payload(flags.payload);
    const int loops = std::min(cell.appenders, 4);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> applied{0}, refused{0};
    std::vector<std::unique_ptr<BenchLoop>> issuers;
    for (int t = 0; t < loops; ++t) issuers.push_back(std::make_unique<BenchLoop>());
    std::mutex lat_mu;
    std::vector<double> latencies;
    latencies.reserve(1 << 20);
    // One append of loop `t`; its completion, run by the loop, issues the next one.
    std::function<void(int, uint64_t)> issue = [&](int t, uint64_t n) {
      if (stop.load(std::memory_order_relaxed)) {
        issuers[t]->Done();
        return;
      }
      Hub& hub = *hubs[n % hubs.size()];
      Entry e;
      e.kind = EntryKind::kSend;
      e.scope = Scope::kAll;
      e.timestamp_ms = 1;
      e.data = payload;
      auto sent = Clock::now();
      AppendCallbacks cb;
      cb.executor = issuers[t].get();
      cb.durable = [&, t, n](Result<uint64_t> r) {
        if (r.ok()) return;
        refused.fetch_add(1, std::memory_order_relaxed);
        issue(t, n + loops);
      };
      cb.applied = [&, t, n, sent](uint64_t, const Status&) {
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        {
          std::lock_guard lock(lat_mu);
          if (latencies.size() < latencies.capacity()) latencies.push_back(ms);
        }
        applied.fetch_add(1, std::memory_order_relaxed);
        issue(t, n + loops);
      };
      hub.Append(std::move(e), std::move(cb));
    };
    auto start_rounds = logs->stats().rounds;
    auto start = Clock::now();
    for (int a = 0; a < cell.appenders; ++a) {
      int t = a % loops;
      issuers[t]->Started();
      issuers[t]->Execute([&issue, t, a] { issue(t, static_cast<uint64_t>(a)); });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(flags.seconds));
    uint64_t done = applied.load();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    auto rounds = logs->stats().rounds - start_rounds;
    stop.store(true);
    for (auto& l : issuers) l->WaitIdle();
    cell.rate = done / seconds;
    cell.fsyncs = rounds / seconds;
    cell.refused = refused.load();
    std::sort(latencies.begin(), latencies.end());
    if (!latencies.empty()) {
      cell.p50_ms = latencies[latencies.size() / 2];
      cell.p99_ms = latencies[latencies.size() * 99 / 100];
    }
    registry.Stop();
  }
  logs.reset();
  store.reset();
  if (!dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  std::vector<Cell> cells;
  for (int hubs : {1, 64}) {
    for (int appenders : {1, 16, 256}) {
      for (Mode mode : {Mode::kMemory, Mode::kRocks, Mode::kRocksSync}) {
        cells.push_back({mode, appenders, hubs});
      }
    }
  }
  for (auto& c : cells) Run(flags, c);

  std::printf("log_bench: %zu-byte sends to 8 connections, %d appliers, %.1f s per cell\n\n",
              flags.payload, flags.appliers, flags.seconds);
  std::printf(
      "| hubs | appenders | mode | appends/s | fsyncs/s | p50 ms | p99 ms | vs memory |"
      " vs rocksdb |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < cells.size(); i += 3) {
    const Cell& mem = cells[i];
    const Cell& rocks = cells[i + 1];
    for (size_t j = i; j < i + 3; ++j) {
      const Cell& c = cells[j];
      std::printf("| %d | %d | %s | %.0f | %.0f | %.2f | %.2f | %.2fx | %s |\n", c.hubs,
                  c.appenders, ModeName(c.mode), c.rate, c.fsyncs, c.p50_ms, c.p99_ms,
                  c.rate / mem.rate,
                  c.mode == Mode::kRocksSync
                      ? (std::to_string(c.rate / rocks.rate).substr(0, 4) + "x").c_str()
                      : "-");
      if (c.refused)
        std::printf("|   | (%llu appends refused as busy) |\n",
                    static_cast<unsigned long long>(c.refused));
    }
  }
  return 0;
}
