// Measures the heap a piece of code uses on the calling thread, for tests that bound the
// memory a parser may spend per byte of untrusted input. The unit_tests binary replaces the
// global operator new/delete (alloc_meter.cc) with versions that forward to malloc/free and,
// while an AllocationMeter is alive on the thread, add up what they hand out.
//
// Under AddressSanitizer or ThreadSanitizer the replacement is left out (their own operator
// new checks more than ours would), Available() is false and tests skip the measurement.
// One meter per thread at a time; not shared between threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hubcast::testing {

class AllocationMeter {
 public:
  // False when the build keeps the sanitizer's allocator (nothing is measured).
  static bool Available();

  AllocationMeter();
  ~AllocationMeter();
  AllocationMeter(const AllocationMeter&) = delete;
  AllocationMeter& operator=(const AllocationMeter&) = delete;

  // The most heap held at once since construction, counting only blocks allocated since then
  // (malloc's usable size, so allocator rounding is included).
  size_t peak_bytes() const;
  // Number of allocations since construction.
  size_t allocations() const;
};

}  // namespace hubcast::testing
