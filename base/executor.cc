#include "base/executor.h"

#include <functional>
#include <utility>
#include <vector>

namespace hubcast {
namespace {
thread_local bool non_blocking = false;
thread_local bool defer_wakes = false;
thread_local std::vector<std::function<void()>> round_wakes;
}  // namespace

void MarkNonBlockingThread() { non_blocking = true; }
bool OnNonBlockingThread() { return non_blocking; }

void WakeAfterThisRound(std::function<void()> wake) {
  if (defer_wakes) {
    round_wakes.push_back(std::move(wake));
  } else {
    wake();
  }
}

void DeferWakesToRoundEnd() { defer_wakes = true; }

void RunRoundWakes() {
  // A wake may not ask for another, but swap anyway so the list is never iterated while
  // it grows.
  std::vector<std::function<void()>> wakes;
  wakes.swap(round_wakes);
  for (auto& wake : wakes) wake();
  wakes.clear();
  if (round_wakes.empty()) round_wakes.swap(wakes);  // keep the capacity
}

}  // namespace hubcast
