#include "rest/jwt.h"

#include "base/base64.h"
#include "base/json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hubcast::rest {
namespace {

constexpr char kKey[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
constexpr char kOtherKey[] = "secondary-access-key-0123456789";
constexpr int64_t kIat = 1700000000;
constexpr int64_t kExp = 1700003600;
constexpr int64_t kNow = kIat + 10;

// Produced outside this code base (Python's hmac/base64/json) exactly the way
// @azure/web-pubsub's getClientAccessToken signs with jsonwebtoken: header
// {"alg":"HS256","typ":"JWT"}, payload {role:[...], "webpubsub.group":[...], iat, exp, aud, sub}
// in that order, key = the UTF-8 bytes of kKey.
constexpr char kSdkToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJyb2xlIjpbIndlYnB1YnN1Yi5zZW5kVG9Hcm91cCIsIndlYnB1YnN1Yi5qb2luTGVhdmVHcm91cC5yb29tMSJdLCJ3"
    "ZWJwdWJzdWIuZ3JvdXAiOlsicm9vbTEiLCJyb29tMiJdLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMCwi"
    "YXVkIjoiaHR0cDovL2xvY2FsaG9zdDo4MDgwL2NsaWVudC9odWJzL2NoYXQiLCJzdWIiOiJ1c2VyMSJ9."
    "557KADvGMkt7AuvWJJ-5S8bIGmEkSpzPMisSiVtbikw";
// Same tool: {"alg":"HS512","typ":"JWT"} / {"sub":"u","exp":1700003600}, key kKey.
constexpr char kHs512Token[] =
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1IiwiZXhwIjoxNzAwMDAzNjAwfQ."
    "cPZcoafU1UwMqtgOYJlGQ701tV7JcX14tnCz25rUzanUwgeWLYH2fG99_iBxc6MLulI1p-085qkBzwNw2XBNYw";
// Same tool: {"alg":"HS384"} (no typ) / {"sub":"u","exp":1700003600}, key kKey.
constexpr char kHs384Token[] =
    "eyJhbGciOiJIUzM4NCJ9.eyJzdWIiOiJ1IiwiZXhwIjoxNzAwMDAzNjAwfQ."
    "UDhxgbUV9QoOX4LT4_UMTe8_-CTB3eUK5ahHbgNVNNql4OZWx7qUgylTi54LLR2L";

std::string HexToBytes(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// Builds an HS256 token from arbitrary header and payload text, so malformed JSON can be
// tested behind a valid signature.
std::string MakeToken(const std::string& header, const std::string& payload,
                      const std::string& key = kKey) {
  const std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(payload);
  return input + "." + Base64UrlEncode(HexToBytes(HmacSha256Hex(key, input)));
}

std::string MakeToken(const std::string& payload) {
  return MakeToken(R"({"alg":"HS256","typ":"JWT"})", payload);
}

json::Value BasicPayload() {
  json::Value payload = json::Value::Object();
  payload.Add("sub", json::Value::String("user1"));
  payload.Add("iat", json::Value::Int(kIat));
  payload.Add("exp", json::Value::Int(kExp));
  return payload;
}

void ExpectUnauthorized(const Result<TokenClaims>& result, const std::string& token) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnauthorized);
  EXPECT_FALSE(result.status().message().empty());
  // The reason must be safe to log: no token, no token part, no key.
  EXPECT_EQ(result.status().message().find(kKey), std::string::npos);
  for (size_t start = 0; start < token.size();) {
    size_t dot = token.find('.', start);
    if (dot == std::string::npos) dot = token.size();
    const std::string part = token.substr(start, dot - start);
    if (part.size() >= 8) {
      EXPECT_EQ(result.status().message().find(part), std::string::npos);
    }
    start = dot + 1;
  }
}

const std::vector<std::string>* FindClaim(const TokenClaims& claims, const std::string& name) {
  for (const auto& [key, values] : claims.all) {
    if (key == name) return &values;
  }
  return nullptr;
}

TEST(JwtTest, SignThenVerifyRoundTrips) {
  json::Value payload = BasicPayload();
  payload.Add("role", json::Value::Array({json::Value::String("webpubsub.sendToGroup")}));
  payload.Add("aud", json::Value::String("https://example.com/client/hubs/chat"));
  const std::string token = SignToken(payload, kKey);

  Result<TokenClaims> claims = VerifyToken(token, {kKey}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->subject, "user1");
  EXPECT_EQ(claims->roles, std::vector<std::string>{"webpubsub.sendToGroup"});
  EXPECT_TRUE(claims->groups.empty());
  EXPECT_EQ(claims->audiences, std::vector<std::string>{"https://example.com/client/hubs/chat"});
  EXPECT_EQ(claims->issued_at, kIat);
  EXPECT_EQ(claims->expires_at, kExp);
  EXPECT_EQ(claims->not_before, std::nullopt);
}

TEST(JwtTest, SignedHeaderIsHs256Jwt) {
  const std::string token = SignToken(BasicPayload(), kKey);
  const std::string header_part = token.substr(0, token.find('.'));
  EXPECT_EQ(Base64UrlDecode(header_part), R"({"alg":"HS256","typ":"JWT"})");
}

TEST(JwtTest, VerifiesTokenShapedLikeTheJsSdk) {
  Result<TokenClaims> claims = VerifyToken(kSdkToken, {kKey}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->subject, "user1");
  EXPECT_EQ(claims->roles,
            (std::vector<std::string>{"webpubsub.sendToGroup", "webpubsub.joinLeaveGroup.room1"}));
  EXPECT_EQ(claims->groups, (std::vector<std::string>{"room1", "room2"}));
  EXPECT_EQ(claims->audiences, std::vector<std::string>{"http://localhost:8080/client/hubs/chat"});
  EXPECT_EQ(claims->issued_at, kIat);
  EXPECT_EQ(claims->expires_at, kExp);
  ASSERT_EQ(claims->all.size(), 6u);
  EXPECT_EQ(claims->all[0].first, "role");
  EXPECT_EQ(claims->all[0].second,
            (std::vector<std::string>{"webpubsub.sendToGroup", "webpubsub.joinLeaveGroup.room1"}));
  EXPECT_EQ(claims->all[2].first, "iat");
  EXPECT_EQ(claims->all[2].second, std::vector<std::string>{"1700000000"});
  EXPECT_EQ(claims->all[5].first, "sub");
  EXPECT_EQ(claims->all[5].second, std::vector<std::string>{"user1"});
  EXPECT_TRUE(AudiencePathMatches(claims->audiences[0], "/client/hubs/chat"));
}

TEST(JwtTest, RoleAndGroupMayBeSingleStrings) {
  const std::string token =
      MakeToken(R"({"role":"webpubsub.joinLeaveGroup","webpubsub.group":"g1","aud":"a",)"
                R"("exp":1700003600})");
  Result<TokenClaims> claims = VerifyToken(token, {kKey}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->roles, std::vector<std::string>{"webpubsub.joinLeaveGroup"});
  EXPECT_EQ(claims->groups, std::vector<std::string>{"g1"});
  EXPECT_EQ(claims->audiences, std::vector<std::string>{"a"});
  EXPECT_EQ(claims->subject, std::nullopt);
}

TEST(JwtTest, AllClaimsAreFlattenedToText) {
  const std::string token =
      MakeToken(R"({"exp":1700003600,"custom":true,"n":1.50,"nothing":null,"obj":{"a":1},)"
                R"("list":["x",2,false,[1]],"empty":[]})");
  Result<TokenClaims> claims = VerifyToken(token, {kKey}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(*FindClaim(*claims, "exp"), std::vector<std::string>{"1700003600"});
  EXPECT_EQ(*FindClaim(*claims, "custom"), std::vector<std::string>{"true"});
  EXPECT_EQ(*FindClaim(*claims, "n"), std::vector<std::string>{"1.50"});
  EXPECT_EQ(*FindClaim(*claims, "nothing"), std::vector<std::string>{""});
  EXPECT_EQ(*FindClaim(*claims, "obj"), std::vector<std::string>{R"({"a":1})"});
  EXPECT_EQ(*FindClaim(*claims, "list"), (std::vector<std::string>{"x", "2", "false", "[1]"}));
  EXPECT_TRUE(FindClaim(*claims, "empty")->empty());
}

TEST(JwtTest, AcceptsTheSecondaryKey) {
  const std::string token = SignToken(BasicPayload(), kOtherKey);
  EXPECT_TRUE(VerifyToken(token, {kKey, kOtherKey}, kNow).ok());
  EXPECT_TRUE(VerifyToken(token, {kOtherKey, kKey}, kNow).ok());
}

TEST(JwtTest, RejectsTheWrongKey) {
  const std::string token = SignToken(BasicPayload(), "not-the-key");
  ExpectUnauthorized(VerifyToken(token, {kKey, kOtherKey}, kNow), token);
}

TEST(JwtTest, KeyIsTheAccessKeyStringNotItsBase64Decoding) {
  const std::string token = SignToken(BasicPayload(), *Base64Decode(kKey));
  ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
}

TEST(JwtTest, RejectsWhenNoUsableKey) {
  const std::string token = SignToken(BasicPayload(), "");
  ExpectUnauthorized(VerifyToken(token, {}, kNow), token);
  // An unset (empty) key never verifies anything, even a token signed with the empty key.
  ExpectUnauthorized(VerifyToken(token, {""}, kNow), token);
}

TEST(JwtTest, RejectsTamperedPayload) {
  const std::string token = SignToken(BasicPayload(), kKey);
  json::Value other = BasicPayload();
  other.Add("role", json::Value::String("webpubsub.sendToGroup"));
  const std::string forged_payload = SignToken(other, kKey);
  const size_t a = token.find('.');
  const size_t b = token.rfind('.');
  const size_t fa = forged_payload.find('.');
  const size_t fb = forged_payload.rfind('.');
  const std::string forged =
      token.substr(0, a + 1) + forged_payload.substr(fa + 1, fb - fa - 1) + token.substr(b);
  ExpectUnauthorized(VerifyToken(forged, {kKey}, kNow), forged);
}

TEST(JwtTest, RejectsExpiredTokenBeyondSkew) {
  const std::string token = SignToken(BasicPayload(), kKey);
  EXPECT_TRUE(VerifyToken(token, {kKey}, kExp - 1).ok());
  EXPECT_TRUE(VerifyToken(token, {kKey}, kExp + kTokenClockSkewSeconds - 1).ok());
  ExpectUnauthorized(VerifyToken(token, {kKey}, kExp + kTokenClockSkewSeconds), token);
  ExpectUnauthorized(VerifyToken(token, {kKey}, kExp + 86400), token);
}

TEST(JwtTest, RequiresExp) {
  const std::string token = MakeToken(R"({"sub":"u","iat":1700000000})");
  ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
}

TEST(JwtTest, RejectsNonNumericExp) {
  const std::string token = MakeToken(R"({"exp":"1700003600"})");
  ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
}

TEST(JwtTest, AcceptsFractionalExp) {
  const std::string token = MakeToken(R"({"exp":1700003600.75})");
  Result<TokenClaims> claims = VerifyToken(token, {kKey}, kNow);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->expires_at, kExp);
}

TEST(JwtTest, RejectsNotBeforeInTheFuture) {
  const std::string token = MakeToken(R"({"exp":1700090000,"nbf":1700001000})");
  ExpectUnauthorized(VerifyToken(token, {kKey}, 1700001000 - kTokenClockSkewSeconds - 1), token);
  // Within the skew, and after nbf, it is fine.
  EXPECT_TRUE(VerifyToken(token, {kKey}, 1700001000 - kTokenClockSkewSeconds).ok());
  Result<TokenClaims> claims = VerifyToken(token, {kKey}, 1700002000);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->not_before, 1700001000);
}

TEST(JwtTest, RejectsAlgNone) {
  const std::string body = Base64UrlEncode(R"({"exp":1700003600})");
  const std::string unsigned_token =
      Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + body + ".";
  ExpectUnauthorized(VerifyToken(unsigned_token, {kKey}, kNow), unsigned_token);
  // Even with a signature part that is a valid HS256 MAC, "none" is not an algorithm we run.
  const std::string signed_none = MakeToken(R"({"alg":"none"})", R"({"exp":1700003600})");
  ExpectUnauthorized(VerifyToken(signed_none, {kKey}, kNow), signed_none);
}

TEST(JwtTest, RejectsOtherAlgorithms) {
  for (const char* header : {R"({"alg":"RS256"})", R"({"alg":"hs256"})", R"({"alg":"HS1"})",
                             R"({"typ":"JWT"})", R"({"alg":256})"}) {
    const std::string token = MakeToken(header, R"({"exp":1700003600})");
    ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
  }
}

TEST(JwtTest, AcceptsHs512AndHs384) {
  Result<TokenClaims> hs512 = VerifyToken(kHs512Token, {kKey}, kNow);
  ASSERT_TRUE(hs512.ok()) << hs512.status().message();
  EXPECT_EQ(hs512->subject, "u");
  Result<TokenClaims> hs384 = VerifyToken(kHs384Token, {kKey}, kNow);
  ASSERT_TRUE(hs384.ok()) << hs384.status().message();
  EXPECT_EQ(hs384->subject, "u");
  ExpectUnauthorized(VerifyToken(kHs512Token, {kOtherKey}, kNow), kHs512Token);
}

TEST(JwtTest, IgnoresKidAndTyp) {
  const std::string token =
      MakeToken(R"({"alg":"HS256","typ":"at+jwt","kid":"whatever"})", R"({"exp":1700003600})");
  EXPECT_TRUE(VerifyToken(token, {kKey}, kNow).ok());
}

TEST(JwtTest, RejectsCritHeader) {
  const std::string token =
      MakeToken(R"({"alg":"HS256","crit":["exp"],"exp":1})", R"({"exp":1700003600})");
  ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
}

TEST(JwtTest, RejectsWrongNumberOfParts) {
  const std::string token = SignToken(BasicPayload(), kKey);
  const std::string two_parts = token.substr(0, token.rfind('.'));
  for (const std::string& bad : {std::string(), std::string("abc"), two_parts, token + ".",
                                 token + ".extra", std::string(".."), "." + token}) {
    ExpectUnauthorized(VerifyToken(bad, {kKey}, kNow), bad);
  }
}

TEST(JwtTest, RejectsBadBase64) {
  const std::string token = SignToken(BasicPayload(), kKey);
  const size_t a = token.find('.');
  const size_t b = token.rfind('.');
  const std::string bad_header = "e!J" + token.substr(a);
  const std::string bad_payload = token.substr(0, a + 1) + "%%%" + token.substr(b);
  const std::string bad_signature = token.substr(0, b + 1) + "***";
  const std::string padded_std_base64 = token.substr(0, b + 1) + "ab+/cd==";
  for (const std::string& bad : {bad_header, bad_payload, bad_signature, padded_std_base64}) {
    ExpectUnauthorized(VerifyToken(bad, {kKey}, kNow), bad);
  }
}

TEST(JwtTest, RejectsTruncatedSignature) {
  const std::string token = SignToken(BasicPayload(), kKey);
  const std::string truncated = token.substr(0, token.size() - 4);
  ExpectUnauthorized(VerifyToken(truncated, {kKey}, kNow), truncated);
}

TEST(JwtTest, RejectsMalformedJsonEvenWhenSigned) {
  const std::vector<std::string> bad = {
      MakeToken(R"({"alg":"HS256")", R"({"exp":1700003600})"),     // header not JSON
      MakeToken(R"(["HS256"])", R"({"exp":1700003600})"),          // header not an object
      MakeToken(R"({"alg":"HS256"})", R"({"exp":1700003600)"),     // payload not JSON
      MakeToken(R"({"alg":"HS256"})", R"("exp")"),                 // payload not an object
      MakeToken(R"({"alg":"HS256"})", R"({"exp":1700003600} x)"),  // trailing garbage
  };
  for (const std::string& token : bad) ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
}

TEST(JwtTest, RejectsDuplicateMembers) {
  const std::string dup_claim = MakeToken(R"({"exp":1,"exp":1700003600})");
  ExpectUnauthorized(VerifyToken(dup_claim, {kKey}, kNow), dup_claim);
  const std::string dup_alg = MakeToken(R"({"alg":"HS256","alg":"none"})", R"({"exp":1700003600})");
  ExpectUnauthorized(VerifyToken(dup_alg, {kKey}, kNow), dup_alg);
}

TEST(JwtTest, RejectsWrongClaimTypes) {
  for (const char* payload : {
           R"({"exp":1700003600,"sub":42})",
           R"({"exp":1700003600,"role":{"a":1}})",
           R"({"exp":1700003600,"role":["ok",1]})",
           R"({"exp":1700003600,"webpubsub.group":7})",
           R"({"exp":1700003600,"aud":null})",
           R"({"exp":1700003600,"nbf":"soon"})",
           R"({"exp":1700003600,"iat":true})",
       }) {
    const std::string token = MakeToken(payload);
    ExpectUnauthorized(VerifyToken(token, {kKey}, kNow), token);
  }
}

TEST(AudienceTest, MatchesSamePathIgnoringHostCaseSchemeAndPort) {
  EXPECT_TRUE(AudiencePathMatches("http://localhost:8080/client/hubs/chat", "/client/hubs/chat"));
  EXPECT_TRUE(AudiencePathMatches("https://EXAMPLE.webpubsub.azure.com/client/hubs/chat",
                                  "/client/hubs/chat"));
  EXPECT_TRUE(
      AudiencePathMatches("https://proxy.internal:443/client/hubs/chat", "/client/hubs/chat"));
}

TEST(AudienceTest, ComparesPathCaseInsensitively) {
  EXPECT_TRUE(AudiencePathMatches("http://localhost/client/hubs/Chat", "/client/hubs/chat"));
  EXPECT_TRUE(AudiencePathMatches("http://localhost/CLIENT/HUBS/CHAT", "/client/hubs/chat"));
}

TEST(AudienceTest, IgnoresTrailingSlash) {
  EXPECT_TRUE(AudiencePathMatches("http://localhost/client/hubs/chat/", "/client/hubs/chat"));
  EXPECT_TRUE(AudiencePathMatches("http://localhost/client/hubs/chat", "/client/hubs/chat/"));
  EXPECT_TRUE(AudiencePathMatches("http://localhost", "/"));
  EXPECT_TRUE(AudiencePathMatches("http://localhost/", "/"));
}

TEST(AudienceTest, IgnoresQueryString) {
  EXPECT_TRUE(AudiencePathMatches(
      "http://localhost:8080/api/hubs/chat/:send?api-version=2024-12-01&excluded=c1"
      "&filter=userId%20eq%20%27u1%27",
      "/api/hubs/chat/:send"));
  EXPECT_TRUE(
      AudiencePathMatches("http://localhost/client/hubs/chat/?x=1#frag", "/client/hubs/chat"));
}

TEST(AudienceTest, DecodesPercentEscapesOnce) {
  // encodeURIComponent("u 1") is "u%201"; the server may hold the path raw or decoded.
  EXPECT_TRUE(AudiencePathMatches("http://h/api/hubs/chat/users/u%201/:send?api-version=1",
                                  "/api/hubs/chat/users/u%201/:send"));
  EXPECT_TRUE(AudiencePathMatches("http://h/api/hubs/chat/users/u%201/:send",
                                  "/api/hubs/chat/users/u 1/:send"));
  EXPECT_TRUE(
      AudiencePathMatches("http://h/api/hubs/chat/groups/a%2cb", "/api/hubs/chat/groups/a,b"));
  EXPECT_FALSE(AudiencePathMatches("http://h/api/hubs/chat/users/u%201/:send",
                                   "/api/hubs/chat/users/u2/:send"));
}

TEST(AudienceTest, AcceptsPathOnlyAudience) {
  EXPECT_TRUE(AudiencePathMatches("/client/hubs/chat", "/client/hubs/chat"));
}

TEST(AudienceTest, RejectsDifferentPaths) {
  EXPECT_FALSE(AudiencePathMatches("http://localhost/client/hubs/other", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("http://localhost/client/hubs/chat2", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("http://localhost/client/hubs/chat/x", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("http://localhost/clients/mqtt/hubs/chat", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("http://localhost/client/hubs", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("http://localhost", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("localhost/client/hubs/chat", "/client/hubs/chat"));
  EXPECT_FALSE(AudiencePathMatches("https://webpubsub.azure.com", "/client/hubs/chat"));
  // The hub name in the query cannot stand in for the path.
  EXPECT_FALSE(AudiencePathMatches("http://localhost/?p=/client/hubs/chat", "/client/hubs/chat"));
}

TEST(HmacTest, Rfc4231TestCase2) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacTest, EmptyKeyAndMessage) {
  // HMAC-SHA256 with an empty key over an empty message (a widely published value).
  EXPECT_EQ(HmacSha256Hex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

}  // namespace
}  // namespace hubcast::rest
