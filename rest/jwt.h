// HMAC JSON Web Tokens as Web PubSub uses them (PROTOCOL.md 2.1-2.2): verifying client access
// tokens and REST bearer tokens signed with an AccessKey, signing our own tokens, matching an
// audience URL against a request path, and the HMAC-SHA256 hex digest used for CloudEvents
// signatures and reconnection tokens. The HMAC key is always the UTF-8 bytes of the AccessKey
// string as given, never base64-decoded (every SDK signs that way).
//
// Tokens are untrusted input: VerifyToken never throws or asserts, and its error messages
// never contain the token, any part of it, or a key, so callers may log them.
//
// Thread-safety: every function is pure (OpenSSL's one-shot HMAC is reentrant); call them from
// any thread.
#pragma once

#include "base/json.h"
#include "base/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcast::rest {

// Clock skew tolerated on exp and nbf, as the emulator does.
inline constexpr int64_t kTokenClockSkewSeconds = 300;

struct TokenClaims {
  std::optional<std::string> subject;                        // "sub"
  std::vector<std::string> roles;                            // "role": string or array of strings
  std::vector<std::string> groups;                           // "webpubsub.group": string or array
  std::vector<std::string> audiences;                        // "aud": string or array
  std::optional<int64_t> expires_at, not_before, issued_at;  // seconds since the Unix epoch
  // Every claim in token order as strings, for the upstream connect event's claims map:
  // strings as they are, numbers as their source text, booleans as "true"/"false", null as "",
  // arrays flattened one level (each element converted the same way), objects as compact JSON.
  std::vector<std::pair<std::string, std::vector<std::string>>> all;
};

// Verifies a compact JWS: three base64url parts whose first two are JSON objects; header alg
// HS256, HS384 or HS512 (anything else, "none" included, is rejected); typ optional and kid
// ignored; signature valid under any of keys (constant-time compare; empty keys are skipped);
// exp present and > now - skew; nbf, if present, <= now + skew. Claims with a documented type
// (sub, role, webpubsub.group, aud, exp, nbf, iat) of the wrong type, and duplicate member
// names, make the token invalid. Errors are Status::Unauthorized.
Result<TokenClaims> VerifyToken(std::string_view token, const std::vector<std::string>& keys,
                                int64_t now_unix_seconds);

// Signs payload (a JSON object) with HS256 under header {"alg":"HS256","typ":"JWT"}.
std::string SignToken(const json::Value& payload, std::string_view key);

// True if the path of audience_url equals expected_path. Scheme, host, port, query string and
// fragment are ignored, and the paths are compared ASCII case-insensitively after dropping one
// trailing '/': SDKs differ in host case, and tokens minted behind a proxy carry the proxy's
// host (PROTOCOL.md 2.1/2.2). The audience path is percent-decoded once, because SDKs escape
// different characters; expected_path may be given raw (as on the wire) or already decoded.
// An audience that is only a path ("/client/hubs/chat") is accepted too.
bool AudiencePathMatches(std::string_view audience_url, std::string_view expected_path);

// HMAC-SHA256(key, message) as lower-case hex.
std::string HmacSha256Hex(std::string_view key, std::string_view message);
// Equal bytes, compared in time that depends only on the lengths (for secrets and MACs).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace hubcast::rest
