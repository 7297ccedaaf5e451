// VerifyToken (rest/jwt.h) on arbitrary tokens. Input byte 0 picks the mode:
//   0: the rest is the token as it came off the wire;
//   1, 2, 3: the rest is "<header JSON>\n<payload JSON>", encoded and signed with HS256,
//      HS384 or HS512 under the first key, so the claim checks behind the signature get
//      explored too.
// Checks: failures are kUnauthorized and never quote the token; a verified token has an exp
// within the skew; audience matching takes any text.
#include "base/base64.h"
#include "rest/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int64_t kNow = 1700000000;
const std::vector<std::string> kKeys = {"fuzz-access-key-0123456789", ""};

std::string Sign(std::string_view header, std::string_view payload, const EVP_MD* md) {
  const std::string input =
      hubcast::Base64UrlEncode(header) + "." + hubcast::Base64UrlEncode(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(md, kKeys[0].data(), static_cast<int>(kKeys[0].size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
  return input + "." +
         hubcast::Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  if (data[0] % 4 == 0) {
    token = std::string(rest);
  } else {
    const size_t newline = rest.find('\n');
    const std::string_view header = rest.substr(0, newline);
    const std::string_view payload =
        newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    const EVP_MD* md = data[0] % 4 == 1   ? EVP_sha256()
                       : data[0] % 4 == 2 ? EVP_sha384()
                                          : EVP_sha512();
    token = Sign(header, payload, md);
  }

  auto claims = hubcast::rest::VerifyToken(token, kKeys, kNow);
  if (!claims.ok()) {
    FUZZ_CHECK(claims.status().code() == hubcast::StatusCode::kUnauthorized);
    // Error messages may be logged: no part of the token may appear in them. The reasons are
    // fixed English, which the fuzzer learns (it watches the search below) and can put in a
    // token; a part with a '_' cannot be reason text, so only such parts are looked for.
    size_t start = 0;
    while (start <= token.size()) {
      size_t dot = token.find('.', start);
      if (dot == std::string::npos) dot = token.size();
      const std::string_view part = std::string_view(token).substr(start, dot - start);
      if (part.size() >= 8 && part.find('_') != std::string_view::npos) {
        FUZZ_CHECK(claims.status().message().find(part) == std::string::npos);
      }
      start = dot + 1;
    }
  } else {
    FUZZ_CHECK(claims->expires_at.has_value());
    FUZZ_CHECK(*claims->expires_at > kNow - hubcast::rest::kTokenClockSkewSeconds);
    for (const std::string& audience : claims->audiences) {
      (void)hubcast::rest::AudiencePathMatches(audience, "/client/hubs/chat");
    }
  }
  (void)hubcast::rest::AudiencePathMatches(rest, "/api/hubs/chat/:send");
  return 0;
}
