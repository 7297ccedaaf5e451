#include "rest/jwt.h"

#include "base/base64.h"
#include "base/strings.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>

namespace hubcast::rest {
namespace {

// Every reason starts the same way so a log line is recognisable; none may quote the token.
Status Invalid(std::string_view reason) {
  return Status::Unauthorized("Invalid access token: " + std::string(reason) + ".");
}

// Raw HMAC bytes, or "" if OpenSSL fails (which a valid signature can never equal).
std::string Hmac(const EVP_MD* md, std::string_view key, std::string_view message) {
  // OpenSSL's HMAC() reads a null key with length 0 as "reuse the previous key"; an empty
  // std::string_view may have a null data(), so give it a real (unused) byte to point at.
  static const unsigned char kEmptyKey = 0;
  const void* key_data = key.empty() ? static_cast<const void*>(&kEmptyKey) : key.data();
  if (key.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return "";
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (HMAC(md, key_data, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out,
           &out_len) == nullptr) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

const EVP_MD* DigestForAlg(std::string_view alg) {
  // Compared case-sensitively, as RFC 7515 requires for "alg".
  if (alg == "HS256") return EVP_sha256();
  if (alg == "HS384") return EVP_sha384();
  if (alg == "HS512") return EVP_sha512();
  return nullptr;
}

// JSON allows repeated member names, but libraries disagree on which one wins (ours returns
// the first, JavaScript the last), so a token with repeats could mean different things to
// the signer and to us. Reject it, as RFC 7519 section 4 allows.
bool HasDuplicateMembers(const json::Value& object) {
  std::set<std::string_view> seen;
  for (const auto& [name, value] : object.members()) {
    if (!seen.insert(name).second) return true;
  }
  return false;
}

Result<json::Value> DecodeJsonObject(std::string_view part, std::string_view what) {
  std::optional<std::string> text = Base64UrlDecode(part);
  if (!text) return Invalid(std::string(what) + " is not base64url");
  Result<json::Value> value = json::Parse(*text);
  if (!value.ok()) return Invalid(std::string(what) + " is not JSON");
  if (!value->is_object()) return Invalid(std::string(what) + " is not a JSON object");
  if (HasDuplicateMembers(*value)) return Invalid(std::string(what) + " repeats a member");
  return value;
}

// A NumericDate (RFC 7519 section 2) may have a fraction; whole seconds are enough here.
std::optional<int64_t> NumericDate(const json::Value& v) {
  if (!v.is_number()) return std::nullopt;
  if (std::optional<int64_t> whole = v.as_int64()) return whole;
  std::optional<double> d = v.as_double();
  if (!d || std::isnan(*d)) return std::nullopt;
  // Clamp rather than reject far-off dates: a signed token asking to live "forever" is the
  // key holder's choice, and casting an out-of-range double would be undefined behaviour.
  if (*d >= 9.2e18) return std::numeric_limits<int64_t>::max();
  if (*d <= -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(std::floor(*d));
}

bool StringOrStrings(const json::Value& v, std::vector<std::string>* out) {
  if (v.is_string()) {
    out->push_back(v.str());
    return true;
  }
  if (!v.is_array()) return false;
  for (const json::Value& item : v.items()) {
    if (!item.is_string()) return false;
    out->push_back(item.str());
  }
  return true;
}

// How a claim value reads as text in the connect event, mirroring the .NET claim mapping the
// cloud uses: null becomes "", containers nested in an array stay JSON.
std::string ClaimText(const json::Value& v) {
  switch (v.kind()) {
    case json::Value::Kind::kNull:
      return "";
    case json::Value::Kind::kBool:
      return v.as_bool() ? "true" : "false";
    case json::Value::Kind::kNumber:
    case json::Value::Kind::kString:
      return v.str();
    case json::Value::Kind::kArray:
    case json::Value::Kind::kObject:
      return json::Serialize(v);
  }
  return "";
}

Result<TokenClaims> ReadClaims(const json::Value& payload) {
  TokenClaims claims;
  for (const auto& [name, value] : payload.members()) {
    std::vector<std::string> texts;
    if (value.is_array()) {
      for (const json::Value& item : value.items()) texts.push_back(ClaimText(item));
    } else {
      texts.push_back(ClaimText(value));
    }
    claims.all.emplace_back(name, std::move(texts));

    if (name == "sub") {
      if (!value.is_string()) return Invalid("sub is not a string");
      claims.subject = value.str();
    } else if (name == "role") {
      if (!StringOrStrings(value, &claims.roles)) return Invalid("role is not a string or array");
    } else if (name == "webpubsub.group") {
      if (!StringOrStrings(value, &claims.groups)) {
        return Invalid("webpubsub.group is not a string or array");
      }
    } else if (name == "aud") {
      if (!StringOrStrings(value, &claims.audiences)) {
        return Invalid("aud is not a string or array");
      }
    } else if (name == "exp" || name == "nbf" || name == "iat") {
      std::optional<int64_t> date = NumericDate(value);
      if (!date) return Invalid(name + " is not a number");
      if (name == "exp") claims.expires_at = date;
      if (name == "nbf") claims.not_before = date;
      if (name == "iat") claims.issued_at = date;
    }
  }
  return claims;
}

bool IsSchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

// The path of an absolute URL ("" when it has none), or the text itself when it has no
// scheme. Query and fragment are dropped first so a "://" inside them cannot confuse us.
std::string_view UrlPath(std::string_view url) {
  url = url.substr(0, url.find_first_of("?#"));
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0 ||
      !std::isalpha(static_cast<unsigned char>(url[0]))) {
    return url;
  }
  for (size_t i = 0; i < scheme_end; ++i) {
    if (!IsSchemeChar(url[i])) return url;
  }
  const std::string_view rest = url.substr(scheme_end + 3);
  const size_t slash = rest.find('/');
  return slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
}

// Malformed escapes stay as they are: the audience is signed, so leniency here cannot widen
// what a token grants, it only avoids rejecting an odd but honest SDK. Writes at most
// s.size() bytes to `out`; returns how many.
size_t PercentDecodeTo(std::string_view s, char* out) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigitValue(s[i + 1]) >= 0 &&
        HexDigitValue(s[i + 2]) >= 0) {
      out[n++] = static_cast<char>(HexDigitValue(s[i + 1]) * 16 + HexDigitValue(s[i + 2]));
      i += 2;
    } else {
      out[n++] = s[i];
    }
  }
  return n;
}

// In place: one trailing '/' dropped, ASCII letters lower-cased (the "C" locale's tolower).
std::string_view CanonicalPathIn(char* path, size_t n) {
  if (n > 0 && path[n - 1] == '/') --n;
  for (size_t i = 0; i < n; ++i) {
    if (path[i] >= 'A' && path[i] <= 'Z') path[i] = static_cast<char>(path[i] - 'A' + 'a');
  }
  return std::string_view(path, n);
}

std::string SignHs256(std::string_view signing_input, std::string_view key) {
  return Base64UrlEncode(Hmac(EVP_sha256(), key, signing_input));
}

}  // namespace

Result<TokenClaims> VerifyToken(std::string_view token, const std::vector<std::string>& keys,
                                int64_t now_unix_seconds) {
  const size_t first_dot = token.find('.');
  const size_t second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos ||
      token.find('.', second_dot + 1) != std::string_view::npos) {
    return Invalid("it does not have three dot-separated parts");
  }
  const std::string_view header_part = token.substr(0, first_dot);
  const std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_part = token.substr(second_dot + 1);
  if (header_part.empty() || payload_part.empty() || signature_part.empty()) {
    return Invalid("one of its parts is empty");
  }

  Result<json::Value> header = DecodeJsonObject(header_part, "header");
  if (!header.ok()) return header.status();
  const json::Value* alg = header->Find("alg");
  if (alg == nullptr || !alg->is_string()) return Invalid("header has no alg");
  const EVP_MD* md = DigestForAlg(alg->str());
  if (md == nullptr) return Invalid("alg must be HS256, HS384 or HS512");
  // RFC 7515 4.1.11: extensions named in "crit" must be understood, and we understand none.
  if (header->Find("crit") != nullptr) return Invalid("header has crit extensions");

  std::optional<std::string> signature = Base64UrlDecode(signature_part);
  if (!signature) return Invalid("signature is not base64url");
  // The signature covers the encoded text exactly as received, not a re-encoding.
  const std::string_view signing_input = token.substr(0, second_dot);
  bool verified = false;
  bool any_key = false;
  for (const std::string& key : keys) {
    // An unset secondary key must not turn into "tokens signed with the empty key verify".
    if (key.empty()) continue;
    any_key = true;
    const std::string expected = Hmac(md, key, signing_input);
    if (!expected.empty() && expected.size() == signature->size() &&
        CRYPTO_memcmp(expected.data(), signature->data(), expected.size()) == 0) {
      verified = true;
      break;
    }
  }
  if (!any_key) return Invalid("no access key is configured to verify it");
  if (!verified) return Invalid("signature does not match");

  Result<json::Value> payload = DecodeJsonObject(payload_part, "payload");
  if (!payload.ok()) return payload.status();
  Result<TokenClaims> claims = ReadClaims(*payload);
  if (!claims.ok()) return claims;
  if (!claims->expires_at) return Invalid("exp is required");
  // Written as comparisons against now +/- skew, which cannot overflow for any real clock,
  // instead of exp + skew, which can for a hostile exp.
  if (*claims->expires_at <= now_unix_seconds - kTokenClockSkewSeconds) {
    return Invalid("it has expired");
  }
  if (claims->not_before && *claims->not_before > now_unix_seconds + kTokenClockSkewSeconds) {
    return Invalid("it is not valid yet (nbf)");
  }
  return claims;
}

std::string SignToken(const json::Value& payload, std::string_view key) {
  std::string signing_input = Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})");
  signing_input.push_back('.');
  signing_input += Base64UrlEncode(json::Serialize(payload));
  const std::string signature = SignHs256(signing_input, key);
  signing_input.push_back('.');
  signing_input += signature;
  return signing_input;
}

bool AudiencePathMatches(std::string_view audience_url, std::string_view expected_path) {
  const std::string_view path = UrlPath(audience_url);
  if (!path.empty() && path.front() != '/') return false;  // Not a URL nor a path.
  // Every REST call checks its token's audience: three scratch copies on the stack for usual
  // lengths, on the heap only for long ones.
  constexpr size_t kStack = 512;
  char stack[3][kStack];
  std::string heap[3];
  auto scratch = [&](int i, size_t size) {
    if (size <= kStack) return stack[i];
    heap[i].resize(size);
    return heap[i].data();
  };
  char* a = scratch(0, path.size());
  const std::string_view audience = CanonicalPathIn(a, PercentDecodeTo(path, a));
  char* raw = scratch(1, expected_path.size());
  std::copy(expected_path.begin(), expected_path.end(), raw);
  if (audience == CanonicalPathIn(raw, expected_path.size())) return true;
  char* decoded = scratch(2, expected_path.size());
  return audience == CanonicalPathIn(decoded, PercentDecodeTo(expected_path, decoded));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string mac = Hmac(EVP_sha256(), key, message);
  std::string out;
  out.reserve(mac.size() * 2);
  for (unsigned char byte : mac) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0x0f]);
  }
  return out;
}

}  // namespace hubcast::rest
