#include "base/interned_string.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace hubcast {
namespace {

TEST(InternedString, EqualTextsShareOneString) {
  InternedString a = std::string("json.webpubsub.azure.v1");
  InternedString b("json.webpubsub.azure.v1");
  EXPECT_EQ(&a.str(), &b.str());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, "json.webpubsub.azure.v1");
  EXPECT_EQ(a, std::string("json.webpubsub.azure.v1"));
  EXPECT_FALSE(a == "json");
  const std::string& as_string = a;
  EXPECT_EQ(as_string, "json.webpubsub.azure.v1");
}

TEST(InternedString, TheTextGoesWithItsLastHandle) {
  const size_t before = InternedString::TableSize();
  {
    InternedString a("interned-test-only-text-1");
    InternedString copy = a;
    EXPECT_EQ(InternedString::TableSize(), before + 1);
    a.clear();
    EXPECT_EQ(copy, "interned-test-only-text-1");
    EXPECT_EQ(InternedString::TableSize(), before + 1);
  }
  EXPECT_EQ(InternedString::TableSize(), before);
  InternedString again("interned-test-only-text-1");  // interned anew
  EXPECT_EQ(again, "interned-test-only-text-1");
}

TEST(InternedString, EmptyIsTheNullHandle) {
  const size_t before = InternedString::TableSize();
  InternedString empty(""), none;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty, none);
  EXPECT_EQ(empty, "");
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(InternedString::TableSize(), before);
}

TEST(InternedString, ThreadsInterningAndReleasingTheSameTextsAgree) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 20000; ++i) {
        InternedString s("interned-race-" + std::to_string(i % 7));
        ASSERT_EQ(s, "interned-race-" + std::to_string(i % 7));
      }
    });
  }
  for (auto& t : threads) t.join();
  InternedString probe("interned-race-3");
  EXPECT_EQ(probe, "interned-race-3");
}

}  // namespace
}  // namespace hubcast
