#include "tests/unit/testing/alloc_meter.h"

#include <algorithm>
#include <cstdlib>
#include <malloc.h>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HUBCAST_ALLOC_METER 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HUBCAST_ALLOC_METER 0
#endif
#endif
#ifndef HUBCAST_ALLOC_METER
#define HUBCAST_ALLOC_METER 1
#endif

namespace hubcast::testing {
namespace {

struct Meter {
  bool active = false;
  int64_t live = 0;  // may go negative: blocks from before the meter are freed too
  int64_t peak = 0;
  size_t allocations = 0;
};

thread_local Meter meter;

}  // namespace

#if HUBCAST_ALLOC_METER
namespace {

void* Allocate(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  if (meter.active) {
    meter.live += static_cast<int64_t>(malloc_usable_size(p));
    meter.peak = std::max(meter.peak, meter.live);
    ++meter.allocations;
  }
  return p;
}

void* AllocateNoThrow(size_t n) noexcept {
  try {
    return Allocate(n);
  } catch (...) {
    return nullptr;
  }
}

void Release(void* p) noexcept {
  if (p == nullptr) return;
  if (meter.active) meter.live -= static_cast<int64_t>(malloc_usable_size(p));
  std::free(p);
}

}  // namespace

bool AllocationMeter::Available() { return true; }
#else
bool AllocationMeter::Available() { return false; }
#endif

AllocationMeter::AllocationMeter() { meter = Meter{true, 0, 0, 0}; }
AllocationMeter::~AllocationMeter() { meter.active = false; }
size_t AllocationMeter::peak_bytes() const { return static_cast<size_t>(meter.peak); }
size_t AllocationMeter::allocations() const { return meter.allocations; }

}  // namespace hubcast::testing

#if HUBCAST_ALLOC_METER
// The replaceable global allocation functions ([replacement.functions]); the aligned forms
// keep the library's own (they allocate with aligned_alloc and free with free).
void* operator new(size_t n) { return hubcast::testing::Allocate(n); }
void* operator new[](size_t n) { return hubcast::testing::Allocate(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return hubcast::testing::AllocateNoThrow(n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return hubcast::testing::AllocateNoThrow(n);
}
void operator delete(void* p) noexcept { hubcast::testing::Release(p); }
void operator delete[](void* p) noexcept { hubcast::testing::Release(p); }
void operator delete(void* p, size_t) noexcept { hubcast::testing::Release(p); }
void operator delete[](void* p, size_t) noexcept { hubcast::testing::Release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { hubcast::testing::Release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { hubcast::testing::Release(p); }
#endif
