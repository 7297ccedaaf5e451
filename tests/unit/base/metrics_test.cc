#include "base/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace hubcast::metrics {
namespace {

// Each test uses families of its own: the registry is process-wide.
TEST(Metrics, CountsFromManyThreadsSumExactlyAtCollect) {
  constexpr int kThreads = 8, kPerThread = 10000;
  const int64_t before_bytes =
      static_cast<int64_t>(Collect().counters[static_cast<size_t>(Counter::kBytesIn)]);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kPerThread; ++i) {
        Count("test_sum_total", Label("hub", t % 2 ? "odd" : "even"));
        Add(Counter::kBytesIn, 3);
      }
    });
  }
  for (auto& t : threads) t.join();  // shards outlive their threads
  Snapshot s = Collect();
  EXPECT_EQ(s.Get("test_sum_total", "hub=\"odd\""), kThreads / 2 * kPerThread);
  EXPECT_EQ(s.Get("test_sum_total", "hub=\"even\""), kThreads / 2 * kPerThread);
  EXPECT_EQ(s.Total("test_sum_total"), kThreads * kPerThread);
  EXPECT_EQ(static_cast<int64_t>(s.counters[static_cast<size_t>(Counter::kBytesIn)]) - before_bytes,
            3 * kThreads * kPerThread);
}

TEST(Metrics, GaugeOfChangesFromDifferentThreadsSumsToTheBalance) {
  std::thread up([] { Count("test_gauge", "", 5); });
  up.join();
  std::thread down([] { Count("test_gauge", "", -3); });
  down.join();
  EXPECT_EQ(Collect().Get("test_gauge"), 2);
}

TEST(Metrics, HistogramPutsEachObservationInItsBucket) {
  Observe("test_seconds", "", 0.00005);  // first bucket
  Observe("test_seconds", "", 0.003);    // (0.0025, 0.005]
  Observe("test_seconds", "", 0.005);    // the bound itself belongs to its bucket
  Observe("test_seconds", "", 60);       // +Inf
  Snapshot s = Collect();
  const HistogramValue& h = s.histograms.at("test_seconds").at("");
  EXPECT_EQ(h.count, 4u);
  EXPECT_DOUBLE_EQ(h.sum, 0.00005 + 0.003 + 0.005 + 60);
  EXPECT_EQ(h.buckets[0], 1u);
  EXPECT_EQ(h.buckets[5], 2u);  // kLatencyBuckets[5] == 0.005
  EXPECT_EQ(h.buckets.back(), 1u);
}

TEST(Metrics, LabelEscapesQuotesBackslashesAndNewlines) {
  EXPECT_EQ(Label("hub", "plain"), "hub=\"plain\"");
  EXPECT_EQ(Label("reason", "a\"b\\c\nd"), "reason=\"a\\\"b\\\\c\\nd\"");
}

}  // namespace
}  // namespace hubcast::metrics
