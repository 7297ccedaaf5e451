// Metrics: the process's counters, gauges and latency histograms, kept per thread and summed
// when they are read (the admin listener's /metrics scrape, the dashboard).
//
// Why per thread: a counter bumped on the delivery path must not be a cache line shared by
// every event loop and applier. Each thread that counts gets its own shard on first use (a
// thread_local pointer); only that thread writes it, so a bump of a fixed counter is a relaxed
// load and store of its own atomic (no lock prefix, no sharing). Labelled series (by hub, by
// event, by operation) and histograms live in the shard's maps under the shard's own mutex,
// which only the scrape ever contends for. A shard outlives its thread (a thread that ends
// keeps its counts in the totals), so a counter never goes backwards.
//
// Series are named by a family name (`hubcast_messages_delivered_total`) and a label text
// already in exposition syntax (`hub="chat",subprotocol="json"`; Label() escapes a value).
// A gauge that moves both ways (connections) is a sum of +1 and -1 from whichever threads
// saw the change; gauges that are a state (store size, NATS connected) are not kept here but
// computed at scrape by the code that owns the state.
//
// Thread-safety: every function may be called from any thread. Collect() sees each counter
// at some recent value (not one instant across all of them).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace hubcast::metrics {

// Fixed counters: the hot ones, bumped on every read or write of a socket.
enum class Counter : int {
  kBytesIn = 0,  // WebSocket bytes read from clients
  kBytesOut,     // WebSocket bytes written to clients
  kCount,
};
void Add(Counter counter, uint64_t n = 1);

// A labelled series of a counter (n >= 0) or of a gauge kept as a sum of changes (n may be
// negative).
void Count(std::string_view family, std::string_view labels, int64_t n = 1);
// One observation (seconds) into a histogram with the buckets below.
void Observe(std::string_view family, std::string_view labels, double seconds);

// Upper bounds of the latency buckets, in seconds (+Inf follows).
inline constexpr std::array<double, 14> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};

struct HistogramValue {
  std::array<uint64_t, kLatencyBuckets.size() + 1> buckets{};  // not cumulative; last: +Inf
  uint64_t count = 0;
  double sum = 0;
};

// The sums over every shard, by family then label text.
struct Snapshot {
  std::array<uint64_t, static_cast<size_t>(Counter::kCount)> counters{};
  std::map<std::string, std::map<std::string, int64_t>, std::less<>> series;
  std::map<std::string, std::map<std::string, HistogramValue>, std::less<>> histograms;

  // A series' value (0 when absent), and a family's total over its label sets.
  int64_t Get(std::string_view family, std::string_view labels = {}) const;
  int64_t Total(std::string_view family) const;
};
Snapshot Collect();

// `name="value"` with the value escaped for the exposition format (\\, \" and \n).
std::string Label(std::string_view name, std::string_view value);

// Seconds since `start` on the steady clock: for Observe.
double SecondsSince(int64_t start_ns);
int64_t NowNs();

}  // namespace hubcast::metrics
