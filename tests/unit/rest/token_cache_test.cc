#include "rest/token_cache.h"

#include "base/json.h"
#include "rest/jwt.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

namespace hubcast::rest {
namespace {

constexpr char kKey[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
constexpr int64_t kNow = 1700000000;
constexpr int64_t kExp = kNow + 3600;

std::string Token(const std::string& subject, int64_t exp = kExp,
                  std::optional<int64_t> nbf = std::nullopt, const std::string& key = kKey) {
  json::Value payload = json::Value::Object();
  payload.Add("sub", json::Value::String(subject));
  payload.Add("aud", json::Value::String("http://localhost/api/hubs/chat"));
  payload.Add("exp", json::Value::Int(exp));
  if (nbf) payload.Add("nbf", json::Value::Int(*nbf));
  return SignToken(payload, key);
}

TEST(TokenCache, AnswersAsVerifyTokenAndRemembersTheToken) {
  TokenCache cache({kKey});
  const std::string token = Token("user1");
  for (int i = 0; i < 3; ++i) {
    auto claims = cache.Verify(token, kNow);
    ASSERT_TRUE(claims.ok()) << claims.status().message();
    EXPECT_EQ((*claims)->subject, "user1");
    ASSERT_EQ((*claims)->audiences.size(), 1u);
    EXPECT_EQ((*claims)->expires_at, kExp);
  }
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenCache, RejectedTokensAreNotRemembered) {
  TokenCache cache({kKey});
  EXPECT_EQ(cache.Verify(Token("u", kExp, std::nullopt, "another-key"), kNow).status().code(),
            StatusCode::kUnauthorized);
  EXPECT_EQ(cache.Verify("not.a.token", kNow).status().code(), StatusCode::kUnauthorized);
  EXPECT_EQ(cache.Verify(Token("u", kNow - 1000), kNow).status().code(), StatusCode::kUnauthorized);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TokenCache, ACachedTokenIsRefusedFromTheSecondVerifyTokenWould) {
  TokenCache cache({kKey});
  const std::string token = Token("user1");
  ASSERT_TRUE(cache.Verify(token, kNow).ok());
  const int64_t last_good = kExp + kTokenClockSkewSeconds - 1;
  ASSERT_TRUE(VerifyToken(token, {kKey}, last_good).ok());
  ASSERT_FALSE(VerifyToken(token, {kKey}, last_good + 1).ok());
  EXPECT_TRUE(cache.Verify(token, last_good).ok());
  auto late = cache.Verify(token, last_good + 1);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kUnauthorized);
  EXPECT_EQ(cache.size(), 0u);  // dropped, not kept
}

TEST(TokenCache, ATokenDifferingInOneByteIsVerifiedAfresh) {
  TokenCache cache({kKey});
  const std::string token = Token("user1");
  ASSERT_TRUE(cache.Verify(token, kNow).ok());
  std::string forged = token;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(cache.Verify(forged, kNow).status().code(), StatusCode::kUnauthorized);
  // A prefix of a cached token is not the token either.
  EXPECT_FALSE(cache.Verify(std::string_view(token).substr(0, token.size() - 1), kNow).ok());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TokenCache, ATokenNotYetValidIsCheckedEveryTime) {
  TokenCache cache({kKey});
  // nbf within the skew: accepted, but not remembered.
  const std::string token = Token("user1", kExp, kNow + 10);
  EXPECT_TRUE(cache.Verify(token, kNow).ok());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.Verify(Token("user1", kExp, kNow + kTokenClockSkewSeconds + 1), kNow).ok());
}

TEST(TokenCache, HoldsAtMostMaxEntriesAndDropsExpiredOnesFirst) {
  TokenCache cache({kKey}, 2);
  const std::string short_lived = Token("a", kNow + 10);
  ASSERT_TRUE(cache.Verify(short_lived, kNow).ok());
  ASSERT_TRUE(cache.Verify(Token("b"), kNow).ok());
  EXPECT_EQ(cache.size(), 2u);
  const int64_t later = kNow + 10 + kTokenClockSkewSeconds;  // "a" has expired
  ASSERT_TRUE(cache.Verify(Token("c"), later).ok());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.Verify(Token("b"), later).ok());
  EXPECT_TRUE(cache.Verify(Token("c"), later).ok());
  EXPECT_FALSE(cache.Verify(short_lived, later).ok());
  for (const char* s : {"d", "e", "f"}) ASSERT_TRUE(cache.Verify(Token(s), later).ok());
  EXPECT_EQ(cache.size(), 2u);
}

TEST(TokenCache, NoKeyMeansNothingVerifies) {
  TokenCache cache({});
  EXPECT_EQ(cache.Verify(Token("user1"), kNow).status().code(), StatusCode::kUnauthorized);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace hubcast::rest
