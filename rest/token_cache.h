// TokenCache: VerifyToken (rest/jwt.h) with a memory of the tokens it accepted, for the REST
// API, where an app server sends the same bearer token with thousands of requests: a cached
// token costs a hash lookup and one comparison instead of base64, two JSON parses and an HMAC
// per key.
//
// Rules that keep it exactly as strict as VerifyToken:
//   - the key is the exact token bytes: two tokens that differ in any byte are different
//     entries, and a lookup that lands on a cached token compares all its bytes in constant
//     time (CRYPTO_memcmp), so timing tells nothing about how much of a cached token a guess
//     got right;
//   - only accepted tokens are stored (a rejected token is verified again every time, so
//     garbage cannot fill the cache), each until its exp + kTokenClockSkewSeconds, the moment
//     VerifyToken would start refusing it; a hit past that is dropped and refused;
//   - the keys are fixed per cache (a new key set needs a new cache);
//   - at most max_entries tokens: when full, expired ones go first (looked for at most once
//     a second), then an arbitrary one.
//
// Thread-safety: Verify may be called from any number of threads (one mutex around the map;
// the verification itself runs outside it).
#pragma once

#include "base/status.h"
#include "rest/jwt.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hubcast::rest {

class TokenCache {
 public:
  static constexpr size_t kDefaultMaxEntries = 4096;

  explicit TokenCache(std::vector<std::string> keys, size_t max_entries = kDefaultMaxEntries);

  // As VerifyToken(token, keys, now_unix_seconds), answered from the cache when it can.
  Result<std::shared_ptr<const TokenClaims>> Verify(std::string_view token,
                                                    int64_t now_unix_seconds);

  size_t size() const;

 private:
  // Transparent, so a lookup by string_view needs no copy of the token.
  struct TokenHash {
    using is_transparent = void;
    size_t operator()(std::string_view token) const;
  };
  struct TokenEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const;
  };
  struct Entry {
    std::shared_ptr<const TokenClaims> claims;
    int64_t valid_until = 0;  // exp + skew: from this second on it is refused
  };

  void InsertLocked(std::string_view token, Entry entry, int64_t now_unix_seconds);

  const std::vector<std::string> keys_;
  const size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry, TokenHash, TokenEqual> entries_;
  int64_t last_sweep_ = INT64_MIN;  // the second of the last walk for expired entries
};

}  // namespace hubcast::rest
