#include "rest/token_cache.h"

#include <openssl/crypto.h>

#include <cstdint>
#include <functional>
#include <iterator>

namespace hubcast::rest {

size_t TokenCache::TokenHash::operator()(std::string_view token) const {
  return std::hash<std::string_view>()(token);
}

bool TokenCache::TokenEqual::operator()(std::string_view a, std::string_view b) const {
  // Lengths are public (the token is on the wire); the bytes are compared in constant time.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

TokenCache::TokenCache(std::vector<std::string> keys, size_t max_entries)
    : keys_(std::move(keys)), max_entries_(max_entries == 0 ? 1 : max_entries) {}

Result<std::shared_ptr<const TokenClaims>> TokenCache::Verify(std::string_view token,
                                                              int64_t now_unix_seconds) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(token);
    if (it != entries_.end()) {
      // Same comparison as VerifyToken's expiry check: exp <= now - skew is refused.
      if (now_unix_seconds < it->second.valid_until) return it->second.claims;
      entries_.erase(it);
    }
  }
  Result<TokenClaims> verified = VerifyToken(token, keys_, now_unix_seconds);
  if (!verified.ok()) return verified.status();
  auto claims = std::make_shared<const TokenClaims>(std::move(*verified));
  // VerifyToken requires exp, and accepted the token only when exp > now - skew. A token
  // whose nbf is still ahead (within the skew) is not cached: it is rare, and caching it
  // would need a second bound.
  const int64_t exp = *claims->expires_at;
  if (!claims->not_before || *claims->not_before <= now_unix_seconds) {
    const int64_t valid_until =
        exp > INT64_MAX - kTokenClockSkewSeconds ? INT64_MAX : exp + kTokenClockSkewSeconds;
    std::lock_guard lock(mu_);
    InsertLocked(token, Entry{claims, valid_until}, now_unix_seconds);
  }
  return claims;
}

void TokenCache::InsertLocked(std::string_view token, Entry entry, int64_t now_unix_seconds) {
  auto it = entries_.find(token);
  if (it != entries_.end()) {
    it->second = std::move(entry);
    return;
  }
  if (entries_.size() >= max_entries_) {
    // The sweep for expired tokens walks every entry: at most once a second, or an app
    // server using more distinct tokens than the cache holds (a token per URL, per user)
    // paid a walk of thousands of entries on every request.
    if (now_unix_seconds != last_sweep_) {
      last_sweep_ = now_unix_seconds;
      for (auto e = entries_.begin(); e != entries_.end();) {
        e = now_unix_seconds >= e->second.valid_until ? entries_.erase(e) : std::next(e);
      }
    }
    if (entries_.size() >= max_entries_) entries_.erase(entries_.begin());
  }
  entries_.emplace(std::string(token), std::move(entry));
}

size_t TokenCache::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace hubcast::rest
