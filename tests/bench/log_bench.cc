// log_bench: the cost of the durable hub log. Not a test (no pass/fail); bounded to well under
// a minute. Run it with:
//
//   cmake --build build -j2 --target log_bench && build/tests/bench/log_bench
//
// Flags (all optional): --seconds S (throughput phase per configuration, default 3)
//   --threads N (appender threads, default 4)  --rate R (latency phase appends/s, default 1000)
//   --latency-seconds S (default 2)  --payload B (message bytes, default 100)
//   --dir PATH (where the temporary databases go, default the system temp dir)
//   --sync-writes (only the fsync-per-write RocksDB configuration, plus memory for the ratio)
//
// For each configuration - the in-memory registry (HubRegistryOptions.store = nullptr), the
// RocksDB one with the default WAL, and RocksDB with StoreOptions.sync_writes = true - it
// measures, on one hub holding 8 connections (2 reliable), with a DeliverySink that only
// records what it is handed:
//   (a) append+apply throughput: N threads call Hub::Append with kSend entries (to all, a
//       `--payload`-byte text message of random base64 characters, so RocksDB's block
//       compression cannot shrink it to nothing) for S seconds; the rate counts until the
//       applier has applied and delivered all of them (Barrier); "drain s" is how long the
//       applier needed after the last append returned. Appenders keep at most 50k entries in
//       flight so the applier queue stays bounded.
//   (b) send-to-delivery latency: one thread appends at a fixed rate; latency is the time from
//       the Append call to the DeliverySink::Deliver call for that position (p50 / p99 / max),
//       and, separately, how long the Append call itself took (the durable acknowledgement a
//       sender waits for). If the applier cannot keep up with the rate, delivery latency grows
//       over the phase; "lat rate" shows the rate the appender actually achieved.
//   (c) on-disk bytes per replay-log entry: Store::LogBytes / entries in the log, and the size of
//       the database directory after the store is closed and every column family is flushed,
//       divided by the same count.
// It prints one table and the RocksDB / memory ratios.
#include "base/clock.h"
#include "base/names.h"
#include "base/status.h"
#include "replication/delivery_sink.h"
#include "replication/hub.h"
#include "storage/entry.h"
#include "storage/hub_view.h"
#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using hubcast::HubName;
using hubcast::SystemClock;
using hubcast::replication::DeliverySink;
using hubcast::replication::Hub;
using hubcast::replication::HubRegistry;
using hubcast::replication::HubRegistryOptions;
using hubcast::storage::ApplyResult;
using hubcast::storage::Entry;
using hubcast::storage::EntryKind;
using hubcast::storage::Scope;
using hubcast::storage::Store;
using hubcast::storage::StoreOptions;
using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Flags {
  double seconds = 3;
  int threads = 4;
  int rate = 1000;
  double latency_seconds = 2;
  size_t payload = 100;
  std::string dir;
  bool sync_only = false;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "log_bench: %s\nusage: log_bench [--seconds S] [--threads N] [--rate R] "
               "[--latency-seconds S] [--payload B] [--dir PATH] [--sync-writes]\n",
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
    } else if (a == "--threads") {
      f.threads = std::atoi(value().c_str());
    } else if (a == "--rate") {
      f.rate = std::atoi(value().c_str());
    } else if (a == "--latency-seconds") {
      f.latency_seconds = std::atof(value().c_str());
    } else if (a == "--payload") {
      f.payload = static_cast<size_t>(std::atol(value().c_str()));
    } else if (a == "--dir") {
      f.dir = value();
    } else if (a == "--sync-writes") {
      f.sync_only = true;
    } else {
      Usage(("unknown flag " + a).c_str());
    }
  }
  if (f.seconds <= 0 || f.threads <= 0 || f.rate <= 0 || f.latency_seconds <= 0) {
    Usage("values must be positive");
  }
  return f;
}

// Counts deliveries; during the latency phase also stamps the time each position was
// delivered. Everything else it is handed is ignored (the gateway's work is not measured).
class RecordingSink : public DeliverySink {
 public:
  void Deliver(const HubName&, uint64_t position, const Entry&, const ApplyResult& r) override {
    int64_t now = NowNs();
    delivered_.fetch_add(1, std::memory_order_relaxed);
    recipients_.fetch_add(r.recipients.size(), std::memory_order_relaxed);
    std::atomic<int64_t>* stamps = stamps_.load(std::memory_order_acquire);
    if (stamps != nullptr && position >= first_ && position < first_ + count_) {
      stamps[position - first_].store(now, std::memory_order_release);
    }
  }

  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  uint64_t recipients() const { return recipients_.load(std::memory_order_relaxed); }

  // Call only while the applier is idle (after Barrier).
  void StampPositions(std::atomic<int64_t>* stamps, uint64_t first, uint64_t count) {
    first_ = first;
    count_ = count;
    stamps_.store(stamps, std::memory_order_release);
  }
  void StopStamping() { stamps_.store(nullptr, std::memory_order_release); }

 private:
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> recipients_{0};
  std::atomic<std::atomic<int64_t>*> stamps_{nullptr};
  uint64_t first_ = 0;
  uint64_t count_ = 0;
};

struct Config {
  std::string name;
  bool durable = false;
  bool sync = false;
};

struct Row {
  std::string name;
  uint64_t appended = 0;
  double appends_per_s = 0;
  double drain_s = 0;       // from the end of the appends until the applier had caught up
  double latency_rate = 0;  // achieved appends/s in the latency phase
  double p50_us = 0, p99_us = 0, max_us = 0;
  double append_p50_us = 0, append_p99_us = 0;
  std::optional<double> log_bytes_per_entry;
  std::optional<double> dir_bytes_per_entry;
  std::optional<double> sst_bytes_per_entry;
};

Entry OpenEntry(const std::string& id, bool reliable) {
  Entry e;
  e.kind = EntryKind::kConnectionOpen;
  e.timestamp_ms = SystemClock::Get().NowUnixMs();
  e.origin_connection = id;
  e.user_id = "user-" + id;
  e.reliable = reliable;
  e.subprotocol = reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  e.node_id = "bench";
  return e;
}

// Random base64 characters; each message is a different window of it.
const std::string& RandomText() {
  static const std::string text = [] {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string t(1 << 20, ' ');
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (char& c : t) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = kAlphabet[x & 63];
    }
    return t;
  }();
  return text;
}

void SetPayload(Entry* e, size_t size, uint64_t n) {
  const std::string& text = RandomText();
  size = std::min(size, text.size());
  size_t offset = static_cast<size_t>((n * 7919) % (text.size() - size + 1));
  e->data.assign(text, offset, size);
}

Entry SendEntry(size_t payload, uint64_t n) {
  Entry e;
  e.kind = EntryKind::kSend;
  e.scope = Scope::kAll;
  SetPayload(&e, payload, n);
  e.timestamp_ms = SystemClock::Get().NowUnixMs();
  return e;
}

uint64_t DirBytes(const fs::path& dir, bool sst_only) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    if (sst_only && it->path().extension() != ".sst") continue;
    total += it->file_size(ec);
  }
  return total;
}

// Opens the closed store's database directly and flushes every column family's memtable, so
// the directory holds the data in SST files rather than only in the WAL.
bool FlushDatabase(const std::string& path) {
  rocksdb::DBOptions options;
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, path, &names).ok()) return false;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, descs, &handles, &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "log_bench: cannot reopen %s: %s\n", path.c_str(), s.ToString().c_str());
    return false;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::FlushOptions fo;
  fo.wait = true;
  s = db->Flush(fo, handles);
  for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  (void)db->Close();
  return s.ok();
}

Row RunConfig(const Config& config, const Flags& flags) {
  Row row;
  row.name = config.name;
  const std::string hub_name = "bench";

  fs::path dir;
  std::unique_ptr<Store> store;
  if (config.durable) {
    fs::path base = flags.dir.empty() ? fs::temp_directory_path() : fs::path(flags.dir);
    std::string pattern = (base / "hubcast-log-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    dir = pattern;
    auto opened = Store::Open(StoreOptions{(dir / "db").string(), config.sync});
    if (!opened.ok()) {
      std::fprintf(stderr, "log_bench: %s\n", opened.status().message().c_str());
      std::exit(1);
    }
    store = std::move(opened).value();
  }

  RecordingSink sink;
  uint64_t log_entries = 0;
  {
    HubRegistryOptions ro;
    ro.node_id = "bench";
    ro.store = store.get();
    HubRegistry registry(ro, &sink);
    auto name = HubName::Parse(hub_name);
    std::shared_ptr<Hub> hub = registry.Get(name.value());
    for (int i = 0; i < 8; ++i) {
      (void)hub->AppendAndWait(OpenEntry("conn-" + std::to_string(i), i < 2));
    }

    // (a) throughput.
    constexpr uint64_t kMaxInFlight = 50'000;
    std::atomic<uint64_t> appended{0};
    std::atomic<bool> go{false};
    std::atomic<bool> failed{false};
    const uint64_t delivered_before = sink.delivered();
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration<double>(flags.seconds);
    std::vector<std::thread> threads;
    for (int t = 0; t < flags.threads; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        uint64_t n = static_cast<uint64_t>(t) << 40;
        Entry e = SendEntry(flags.payload, n);
        while (Clock::now() < deadline) {
          if (appended.load(std::memory_order_relaxed) - (sink.delivered() - delivered_before) >
              kMaxInFlight) {
            std::this_thread::yield();
            continue;
          }
          if ((++n & 1023) == 0) e.timestamp_ms = SystemClock::Get().NowUnixMs();
          SetPayload(&e, flags.payload, n);
          if (!hub->Append(e).ok()) {
            failed.store(true);
            return;
          }
          appended.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    go.store(true);
    for (auto& th : threads) th.join();
    const auto appends_done = Clock::now();
    hub->Barrier();
    const auto applied = Clock::now();
    const double elapsed = std::chrono::duration<double>(applied - start).count();
    row.drain_s = std::chrono::duration<double>(applied - appends_done).count();
    if (failed.load()) std::fprintf(stderr, "log_bench: %s: an append failed\n", row.name.c_str());
    row.appended = appended.load();
    row.appends_per_s = static_cast<double>(row.appended) / elapsed;

    // (b) latency at a fixed rate, one appender.
    const uint64_t samples =
        std::max<uint64_t>(1, static_cast<uint64_t>(flags.rate * flags.latency_seconds));
    const uint64_t first = hub->applied_position() + 1;
    std::vector<int64_t> sent(samples, 0);
    std::vector<double> append_us(samples, 0);
    std::unique_ptr<std::atomic<int64_t>[]> delivered(new std::atomic<int64_t>[samples]);
    for (uint64_t i = 0; i < samples; ++i) delivered[i].store(0);
    sink.StampPositions(delivered.get(), first, samples);
    const auto period = std::chrono::duration<double>(1.0 / flags.rate);
    const auto lat_start = Clock::now();
    for (uint64_t i = 0; i < samples; ++i) {
      std::this_thread::sleep_until(
          lat_start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i)));
      Entry e = SendEntry(flags.payload, i);
      sent[i] = NowNs();
      auto pos = hub->Append(std::move(e));
      append_us[i] = static_cast<double>(NowNs() - sent[i]) / 1000.0;
      if (!pos.ok() || *pos != first + i) {
        std::fprintf(stderr, "log_bench: %s: unexpected position\n", row.name.c_str());
        std::exit(1);
      }
    }
    const double lat_elapsed = std::chrono::duration<double>(Clock::now() - lat_start).count();
    hub->Barrier();
    sink.StopStamping();
    row.latency_rate = static_cast<double>(samples) / lat_elapsed;
    std::vector<double> us;
    us.reserve(samples);
    for (uint64_t i = 0; i < samples; ++i) {
      us.push_back(static_cast<double>(delivered[i].load() - sent[i]) / 1000.0);
    }
    auto pct = [](std::vector<double>& v, double p) {
      std::sort(v.begin(), v.end());
      size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
      return v[std::min(idx, v.size() - 1)];
    };
    row.p50_us = pct(us, 0.50);
    row.p99_us = pct(us, 0.99);
    row.max_us = us.back();
    row.append_p50_us = pct(append_us, 0.50);
    row.append_p99_us = pct(append_us, 0.99);

    // (c) bytes per entry, from the store's own count.
    if (store) {
      uint64_t firstpos = store->FirstLogPosition(hub_name);
      uint64_t lastpos = store->LastLogPosition(hub_name);
      log_entries = firstpos == 0 ? 0 : lastpos - firstpos + 1;
      if (log_entries > 0) {
        row.log_bytes_per_entry =
            static_cast<double>(store->LogBytes(hub_name)) / static_cast<double>(log_entries);
      }
    }
    registry.Stop();
  }
  if (store) {
    store.reset();
    if (log_entries > 0 && FlushDatabase((dir / "db").string())) {
      row.dir_bytes_per_entry =
          static_cast<double>(DirBytes(dir / "db", false)) / static_cast<double>(log_entries);
      row.sst_bytes_per_entry =
          static_cast<double>(DirBytes(dir / "db", true)) / static_cast<double>(log_entries);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return row;
}

std::string Opt(const std::optional<double>& v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", *v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  std::vector<Config> configs = {{"memory", false, false}};
  if (!flags.sync_only) configs.push_back({"rocksdb", true, false});
  configs.push_back({"rocksdb-sync", true, true});

  std::printf(
      "log_bench: %d appender threads x %.1f s, %zu-byte kSend to all of 8 connections; "
      "latency at %d/s x %.1f s\n",
      flags.threads, flags.seconds, flags.payload, flags.rate, flags.latency_seconds);
  std::fflush(stdout);
  std::vector<Row> rows;
  for (const Config& c : configs) {
    rows.push_back(RunConfig(c, flags));
    std::fprintf(stderr, "  %s done\n", c.name.c_str());
  }

  std::printf("\n%-13s %9s %9s %7s | %8s %10s %10s %10s %8s %8s | %7s %7s %7s\n", "config",
              "appended", "appends", "drain", "lat rate", "deliv p50", "deliv p99", "deliv max",
              "app p50", "app p99", "log", "dir", "sst");
  std::printf("%-13s %9s %9s %7s | %8s %10s %10s %10s %8s %8s | %7s %7s %7s\n", "", "", "/s", "s",
              "/s", "us", "us", "us", "us", "us", "B/entry", "B/entry", "B/entry");
  for (const Row& r : rows) {
    std::printf("%-13s %9llu %9.0f %7.2f | %8.0f %10.1f %10.1f %10.1f %8.1f %8.1f | %7s %7s %7s\n",
                r.name.c_str(), static_cast<unsigned long long>(r.appended), r.appends_per_s,
                r.drain_s, r.latency_rate, r.p50_us, r.p99_us, r.max_us, r.append_p50_us,
                r.append_p99_us, Opt(r.log_bytes_per_entry).c_str(),
                Opt(r.dir_bytes_per_entry).c_str(), Opt(r.sst_bytes_per_entry).c_str());
  }
  const Row& mem = rows.front();
  std::printf("\nratios RocksDB / memory:\n");
  for (size_t i = 1; i < rows.size(); ++i) {
    const Row& r = rows[i];
    std::printf(
        "  %-13s throughput x%.4f   delivery p50 x%.2f   delivery p99 x%.2f   "
        "append p50 x%.2f\n",
        r.name.c_str(), r.appends_per_s / mem.appends_per_s, r.p50_us / mem.p50_us,
        r.p99_us / mem.p99_us, r.append_p50_us / mem.append_p50_us);
  }
  return 0;
}
