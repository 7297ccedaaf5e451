#include "base/metrics.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace hubcast::metrics {
namespace {

struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using KeyMap = std::unordered_map<std::string, int64_t, KeyHash, std::equal_to<>>;
using HistMap = std::unordered_map<std::string, HistogramValue, KeyHash, std::equal_to<>>;

// The separator between family and labels inside a shard's key (never in either).
constexpr char kSep = '\x1f';

struct Shard {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Counter::kCount)> counters{};
  std::mutex mu;  // the maps; contended only by Collect
  KeyMap series;
  HistMap histograms;
};

struct Registry {
  std::mutex mu;
  std::vector<std::shared_ptr<Shard>> shards;
};

Registry& GetRegistry() {
  static Registry* r = new Registry;  // never destroyed: threads may count during exit
  return *r;
}

Shard& MyShard() {
  thread_local Shard* shard = [] {
    auto s = std::make_shared<Shard>();
    Registry& r = GetRegistry();
    std::lock_guard lock(r.mu);
    r.shards.push_back(s);
    return s.get();
  }();
  return *shard;
}

// The shard key of a series, built in a reused buffer (no allocation once warm).
const std::string& Key(std::string_view family, std::string_view labels) {
  thread_local std::string key;
  key.assign(family);
  key += kSep;
  key.append(labels);
  return key;
}

std::pair<std::string_view, std::string_view> SplitKey(std::string_view key) {
  size_t at = key.find(kSep);
  return {key.substr(0, at), key.substr(at + 1)};
}

}  // namespace

void Add(Counter counter, uint64_t n) {
  auto& c = MyShard().counters[static_cast<size_t>(counter)];
  // Only this thread writes its shard: no read-modify-write instruction needed.
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

void Count(std::string_view family, std::string_view labels, int64_t n) {
  Shard& s = MyShard();
  const std::string& key = Key(family, labels);
  std::lock_guard lock(s.mu);
  auto it = s.series.find(std::string_view(key));
  if (it == s.series.end()) it = s.series.emplace(key, 0).first;
  it->second += n;
}

void Observe(std::string_view family, std::string_view labels, double seconds) {
  Shard& s = MyShard();
  const std::string& key = Key(family, labels);
  size_t bucket = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) -
                  kLatencyBuckets.begin();
  std::lock_guard lock(s.mu);
  auto it = s.histograms.find(std::string_view(key));
  if (it == s.histograms.end()) it = s.histograms.emplace(key, HistogramValue{}).first;
  it->second.buckets[bucket]++;
  it->second.count++;
  it->second.sum += seconds;
}

Snapshot Collect() {
  std::vector<std::shared_ptr<Shard>> shards;
  {
    Registry& r = GetRegistry();
    std::lock_guard lock(r.mu);
    shards = r.shards;
  }
  Snapshot out;
  for (const auto& s : shards) {
    for (size_t i = 0; i < out.counters.size(); ++i) {
      out.counters[i] += s->counters[i].load(std::memory_order_relaxed);
    }
    std::lock_guard lock(s->mu);
    for (const auto& [key, v] : s->series) {
      auto [family, labels] = SplitKey(key);
      auto f = out.series.find(family);
      if (f == out.series.end()) f = out.series.try_emplace(std::string(family)).first;
      f->second[std::string(labels)] += v;
    }
    for (const auto& [key, h] : s->histograms) {
      auto [family, labels] = SplitKey(key);
      auto f = out.histograms.find(family);
      if (f == out.histograms.end()) f = out.histograms.try_emplace(std::string(family)).first;
      HistogramValue& sum = f->second[std::string(labels)];
      for (size_t i = 0; i < sum.buckets.size(); ++i) sum.buckets[i] += h.buckets[i];
      sum.count += h.count;
      sum.sum += h.sum;
    }
  }
  return out;
}

int64_t Snapshot::Get(std::string_view family, std::string_view labels) const {
  auto f = series.find(family);
  if (f == series.end()) return 0;
  auto it = f->second.find(std::string(labels));
  return it == f->second.end() ? 0 : it->second;
}

int64_t Snapshot::Total(std::string_view family) const {
  auto f = series.find(family);
  if (f == series.end()) return 0;
  int64_t n = 0;
  for (const auto& [labels, v] : f->second) n += v;
  return n;
}

std::string Label(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(int64_t start_ns) { return static_cast<double>(NowNs() - start_ns) / 1e9; }

}  // namespace hubcast::metrics
