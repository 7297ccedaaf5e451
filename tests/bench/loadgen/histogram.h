// A latency histogram with log-linear buckets: exact below 64 ns, then 64 buckets per power of
// two (under 1.6% relative error), up to 2^40 ns (18 minutes; larger values land in the last
// bucket). Histograms of several generator processes are merged by the driver (compare.py)
// through the sparse text form "index:count,...", so the bucket layout is part of the
// generator's output format: compare.py's BucketValue() inverts BucketIndex().
//
// Thread-safety: none; one owner thread.
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

namespace hubcast::bench {

class Histogram {
 public:
  static constexpr int kSubBuckets = 64;
  static constexpr int kMaxExponent = 40;
  static constexpr int kBuckets = kSubBuckets * (kMaxExponent - 4);

  static int BucketIndex(uint64_t value) {
    if (value < kSubBuckets) return static_cast<int>(value);
    const int exponent = 63 - std::countl_zero(value);  // >= 6
    if (exponent >= kMaxExponent) return kBuckets - 1;
    const int mantissa = static_cast<int>(value >> (exponent - 6)) - kSubBuckets;  // 0..63
    return kSubBuckets * (exponent - 5) + mantissa;
  }

  Histogram() : counts_(kBuckets, 0) {}

  void Record(int64_t value) {
    ++counts_[BucketIndex(value < 0 ? 0 : static_cast<uint64_t>(value))];
    ++total_;
  }
  uint64_t total() const { return total_; }
  void Clear() {
    counts_.assign(kBuckets, 0);
    total_ = 0;
  }

  // "index:count" for every non-empty bucket, comma-separated.
  std::string Sparse() const {
    std::string out;
    for (int i = 0; i < kBuckets; ++i) {
      if (counts_[i] == 0) continue;
      if (!out.empty()) out += ',';
      out += std::to_string(i);
      out += ':';
      out += std::to_string(counts_[i]);
    }
    return out;
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

}  // namespace hubcast::bench
