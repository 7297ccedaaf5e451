// Clock: the one source of wall-clock and monotonic time, injectable so tests can control
// time. Apply-time decisions never read it (they use the entry's own timestamp); it drives
// timers only. Implementations must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace hubcast {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t NowUnixMs() const = 0;
  virtual std::chrono::steady_clock::time_point Monotonic() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t NowUnixMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::chrono::steady_clock::time_point Monotonic() const override {
    return std::chrono::steady_clock::now();
  }
  static const SystemClock& Get() {
    static SystemClock c;
    return c;
  }
};

}  // namespace hubcast
