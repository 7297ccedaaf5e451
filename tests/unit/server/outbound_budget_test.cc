#include "server/outbound_budget.h"

#include <gtest/gtest.h>

namespace hubcast::server {
namespace {

constexpr size_t kMiB = 1 << 20;

TEST(OutboundBudget, StaysBackedUpUntilBelowThreeQuartersOfTheBound) {
  OutboundBudget budget(8 * kMiB);
  budget.Add(8 * kMiB, true);
  EXPECT_FALSE(budget.backed_up()) << "at the bound is not past it";
  budget.Add(1, false);
  EXPECT_TRUE(budget.backed_up());
  budget.Sub(2 * kMiB, false);  // 6 MiB + 1: still above the low-water mark
  EXPECT_TRUE(budget.backed_up());
  budget.Sub(2, false);
  EXPECT_FALSE(budget.backed_up());
  budget.Add(kMiB, false);  // back under the bound: admitted again
  EXPECT_FALSE(budget.backed_up());
}

TEST(OutboundBudget, DropsOnlyQueuesAtLeastTheAverageWhileBackedUp) {
  OutboundBudget budget(8 * kMiB);
  budget.Add(4 * kMiB, true);  // a slow client
  budget.Add(4 * kMiB, true);  // another
  EXPECT_FALSE(budget.ShouldDrop(4 * kMiB)) << "nothing is dropped under the bound";
  budget.Add(128 * 1024, true);  // a fast client with a little queued
  ASSERT_TRUE(budget.backed_up());
  EXPECT_TRUE(budget.ShouldDrop(4 * kMiB));
  EXPECT_FALSE(budget.ShouldDrop(128 * 1024)) << "a small queue is not the slow one";
  EXPECT_FALSE(budget.ShouldDrop(1024)) << "below kMinDropBytes";
}

TEST(OutboundBudget, ZeroIsUnbounded) {
  OutboundBudget budget(0);
  budget.Add(size_t{1} << 40, true);
  EXPECT_FALSE(budget.backed_up());
  EXPECT_FALSE(budget.ShouldDrop(size_t{1} << 40));
}

}  // namespace
}  // namespace hubcast::server
