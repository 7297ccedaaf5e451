#include "base/lazy_box.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace hubcast {
namespace {

TEST(LazyBox, ReadsAsEmptyWithoutAllocating) {
  LazyBox<std::map<std::string, int>> box;
  EXPECT_TRUE(box.get().empty());
  EXPECT_EQ(box.get().count("a"), 0u);
  EXPECT_FALSE(box.allocated());
}

TEST(LazyBox, AllocatesOnFirstWriteAndFreesWhenTrimmedEmpty) {
  LazyBox<std::map<std::string, int>> box;
  box.mut()["a"] = 1;
  EXPECT_TRUE(box.allocated());
  box.Trim();  // not empty: kept
  EXPECT_EQ(box.get().at("a"), 1);
  box.mut().erase("a");
  box.Trim();
  EXPECT_FALSE(box.allocated());
  EXPECT_TRUE(box.get().empty());
}

TEST(LazyBox, UnallocatedBoxesShareAnUntouchedDefault) {
  LazyBox<std::map<std::string, int>> a, b;
  a.mut()["x"] = 1;
  EXPECT_TRUE(b.get().empty());  // a's write went to its own value
  using Box = LazyBox<std::map<std::string, int>>;
  EXPECT_EQ(&Box().get(), &b.get());
}

}  // namespace
}  // namespace hubcast
