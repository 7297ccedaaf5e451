// Base64 (RFC 4648 section 4, with padding) and base64url (section 5, no padding), used for
// binary payloads in JSON frames and for JWTs. Decoders reject invalid input (nullopt).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hubcast {

std::string Base64Encode(std::string_view bytes);
// Accepts standard base64 with or without padding; whitespace is not allowed.
std::optional<std::string> Base64Decode(std::string_view text);
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace hubcast
