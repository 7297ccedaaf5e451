#include "base/executor.h"

#include <gtest/gtest.h>

#include <thread>

namespace hubcast {
namespace {

TEST(RoundWakes, RunAtOnceOnAThreadThatIsNoEventLoop) {
  int woken = 0;
  WakeAfterThisRound([&] { ++woken; });
  EXPECT_EQ(woken, 1);
  RunRoundWakes();  // nothing was kept for later
  EXPECT_EQ(woken, 1);
}

TEST(RoundWakes, WaitForTheEndOfTheLoopsRoundAndRunOnceEach) {
  // A thread of its own: deferral is a property of the thread, and it must not leak into the
  // test runner's thread.
  std::thread loop([] {
    DeferWakesToRoundEnd();
    int woken = 0;
    WakeAfterThisRound([&] { ++woken; });
    WakeAfterThisRound([&] { woken += 10; });
    EXPECT_EQ(woken, 0) << "a wake ran before the round ended";
    RunRoundWakes();
    EXPECT_EQ(woken, 11);
    RunRoundWakes();
    EXPECT_EQ(woken, 11) << "a wake ran twice";
    WakeAfterThisRound([&] { ++woken; });
    RunRoundWakes();
    EXPECT_EQ(woken, 12) << "the next round's wake was lost";
  });
  loop.join();
}

}  // namespace
}  // namespace hubcast
