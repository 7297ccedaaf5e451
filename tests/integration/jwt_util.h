// HS256 JWTs for integration tests, minted with OpenSSL directly so that tests never share code
// with the server's verifier (PROTOCOL.md 2.1 and 2.2). Header-only: include it from any
// tests/integration/*_test.cc (the integration_tests target links OpenSSL::Crypto).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::testing {

// Base64url without padding, as JWTs use it.
inline std::string Base64Url(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int bit_count = 0;
  for (unsigned char c : data) {
    bits = (bits << 8) | c;
    bit_count += 8;
    while (bit_count >= 6) {
      bit_count -= 6;
      out += kAlphabet[(bits >> bit_count) & 63];
    }
  }
  if (bit_count > 0) out += kAlphabet[(bits << (6 - bit_count)) & 63];
  return out;
}

// Quotes a claim value as a JSON string: '"', '\\' and control characters are escaped.
inline std::string JwtQuote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20) {  // control characters (a NUL in a user id)
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[(c >> 4) & 0xf];
      out += kHex[c & 0xf];
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

struct JwtClaims {
  std::string audience;                // "aud": the URL (REST) or client endpoint URL
  std::optional<std::string> subject;  // "sub": the client's user id
  std::vector<std::string> roles;      // "role", e.g. "webpubsub.joinLeaveGroup"
  std::vector<std::string> groups;     // "webpubsub.group": groups joined on connect
  std::chrono::seconds lifetime = std::chrono::hours(1);
};

// An HS256 JWT signed with the UTF-8 bytes of `key`.
inline std::string MintJwt(const std::string& key, const JwtClaims& claims) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto array = [](const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += ",";
      out += JwtQuote(items[i]);
    }
    return out + "]";
  };
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  std::string payload = "{\"aud\":" + JwtQuote(claims.audience) +
                        ",\"iat\":" + std::to_string(now) +
                        ",\"exp\":" + std::to_string(now + claims.lifetime.count()) +
                        ",\"role\":" + array(claims.roles);
  if (claims.subject) payload += ",\"sub\":" + JwtQuote(*claims.subject);
  if (!claims.groups.empty()) payload += ",\"webpubsub.group\":" + array(claims.groups);
  payload += "}";
  const std::string signing_input = Base64Url(header) + "." + Base64Url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return signing_input + "." +
         Base64Url(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

// The common case: a token for `audience` with no subject and no roles.
inline std::string MintJwt(const std::string& key, const std::string& audience) {
  JwtClaims claims;
  claims.audience = audience;
  return MintJwt(key, claims);
}

}  // namespace hubcast::testing
