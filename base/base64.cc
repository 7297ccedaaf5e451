#include "base/base64.h"

#include <array>
#include <cstdint>

namespace hubcast {
namespace {

constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr int8_t kInvalid = -1;

// Reverse lookup built at compile time; one table per alphabet, so base64url input containing
// '+' or '/' (and vice versa) is rejected rather than silently accepted.
constexpr std::array<int8_t, 256> MakeDecodeTable(const char* alphabet) {
  std::array<int8_t, 256> table{};
  for (int8_t& v : table) v = kInvalid;
  for (int i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return table;
}

constexpr std::array<int8_t, 256> kStdDecode = MakeDecodeTable(kStdAlphabet);
constexpr std::array<int8_t, 256> kUrlDecode = MakeDecodeTable(kUrlAlphabet);

std::string Encode(std::string_view bytes, const char* alphabet, bool pad) {
  const size_t n = bytes.size();
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(alphabet[(v >> 18) & 0x3F]);
    out.push_back(alphabet[(v >> 12) & 0x3F]);
    out.push_back(alphabet[(v >> 6) & 0x3F]);
    out.push_back(alphabet[v & 0x3F]);
  }
  const size_t rest = n - i;
  if (rest == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 0x3F]);
    out.push_back(alphabet[(v >> 12) & 0x3F]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 0x3F]);
    out.push_back(alphabet[(v >> 12) & 0x3F]);
    out.push_back(alphabet[(v >> 6) & 0x3F]);
    if (pad) out.push_back('=');
  }
  return out;
}

// Padding is optional, but when present it must be exactly what the encoder would have
// written (total length a multiple of 4). Non-zero bits in the final partial symbol are
// ignored, as RFC 4648 section 3.5 allows: rejecting them would only break lenient encoders.
std::optional<std::string> Decode(std::string_view text, const std::array<int8_t, 256>& table) {
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  const size_t data_len = text.size() - pad;
  if (pad > 0 && text.size() % 4 != 0) return std::nullopt;
  const size_t tail = data_len % 4;
  if (tail == 1) return std::nullopt;  // 6 bits cannot encode a byte
  if (pad > 0 && pad != 4 - tail) return std::nullopt;

  std::string out;
  out.reserve(data_len / 4 * 3 + 2);
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  for (; i + 4 <= data_len; i += 4) {
    const int a = table[p[i]], b = table[p[i + 1]], c = table[p[i + 2]], d = table[p[i + 3]];
    if ((a | b | c | d) < 0) return std::nullopt;
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>((v >> 8) & 0xFF));
    out.push_back(static_cast<char>(v & 0xFF));
  }
  if (tail >= 2) {
    const int a = table[p[i]], b = table[p[i + 1]];
    const int c = tail == 3 ? table[p[i + 2]] : 0;
    if ((a | b | c) < 0) return std::nullopt;
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6);
    out.push_back(static_cast<char>(v >> 16));
    if (tail == 3) out.push_back(static_cast<char>((v >> 8) & 0xFF));
  }
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) { return Encode(bytes, kStdAlphabet, true); }

std::optional<std::string> Base64Decode(std::string_view text) { return Decode(text, kStdDecode); }

std::string Base64UrlEncode(std::string_view bytes) { return Encode(bytes, kUrlAlphabet, false); }

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  return Decode(text, kUrlDecode);
}

}  // namespace hubcast
