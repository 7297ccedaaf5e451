#include "base/lazy_deque.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace hubcast {
namespace {

std::vector<std::string> Items(const LazyDeque<std::string>& q) {
  return std::vector<std::string>(q.begin(), q.end());
}

TEST(LazyDeque, HoldsNoMemoryUntilTheFirstPushAndAfterATrimOnceEmpty) {
  LazyDeque<std::string> q;
  EXPECT_FALSE(q.allocated());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(Items(q).empty());
  q.push_back("a");
  q.emplace_back("b");
  EXPECT_TRUE(q.allocated());
  EXPECT_EQ(q.size(), 2u);
  q.pop_front();
  q.Trim();  // not empty: kept
  EXPECT_TRUE(q.allocated());
  EXPECT_EQ(q.front(), "b");
  q.pop_front();
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.allocated());  // a drained queue keeps its storage until trimmed
  q.Trim();
  EXPECT_FALSE(q.allocated());
  EXPECT_TRUE(q.empty());
  q.Trim();
  EXPECT_FALSE(q.allocated());
}

TEST(LazyDeque, IsFirstInFirstOut) {
  LazyDeque<std::string> q;
  for (const char* s : {"one", "two", "three"}) q.push_back(s);
  EXPECT_EQ(q.front(), "one");
  EXPECT_EQ(q.back(), "three");
  EXPECT_EQ(Items(q), (std::vector<std::string>{"one", "two", "three"}));
  q.pop_front();
  EXPECT_EQ(q.front(), "two");
  for (std::string& s : q) s += "!";
  EXPECT_EQ(Items(q), (std::vector<std::string>{"two!", "three!"}));
}

TEST(LazyDeque, ClearAndTakingOverADequeFreeOrKeepAsTheyShould) {
  LazyDeque<std::string> q;
  q.push_back("x");
  q.clear();
  EXPECT_FALSE(q.allocated());
  q = std::deque<std::string>{"p", "q"};
  EXPECT_TRUE(q.allocated());
  EXPECT_EQ(Items(q), (std::vector<std::string>{"p", "q"}));
  q = std::deque<std::string>{};
  EXPECT_FALSE(q.allocated());
  LazyDeque<std::string> moved;
  q.push_back("m");
  moved = std::move(q);
  EXPECT_EQ(Items(moved), (std::vector<std::string>{"m"}));
}

}  // namespace
}  // namespace hubcast
