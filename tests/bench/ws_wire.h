// The client side of the WebSocket wire, shared by the load tools in tests/bench/ (ws_loadgen,
// bench_loadgen): the opening handshake (RFC 6455 section 4), masked client frames (section
// 5.3) and the header of a server frame (section 5.2).
// Written from the RFC and independent of the server's frame code, so that a bug there cannot
// hide behind the same bug here. Header-only; needs OpenSSL's libcrypto for SHA-1.
//
// Thread-safety: pure functions; call them from any thread (the random generator passed in is
// the caller's).
#pragma once

#include <openssl/evp.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <string_view>

namespace hubcast::bench {

inline std::string Base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t n = static_cast<uint8_t>(data[i]) << 16;
    if (rest == 2) n |= static_cast<uint8_t>(data[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2); empty if SHA-1 failed.
inline std::string ExpectedAccept(std::string_view key) {
  std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1) {
    return {};
  }
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(digest), digest_len));
}

// A fresh Sec-WebSocket-Key: base64 of 16 random bytes.
inline std::string NewWebSocketKey(std::mt19937_64& rng) {
  std::string raw(16, '\0');
  for (char& c : raw) c = static_cast<char>(rng() & 0xff);
  return Base64Encode(raw);
}

// The GET that asks ws://127.0.0.1:port<target> to upgrade; no subprotocol offered if empty.
inline std::string UpgradeRequest(int port, std::string_view target, std::string_view key,
                                  std::string_view subprotocol) {
  std::string out;
  out.reserve(target.size() + 256);
  out.append("GET ").append(target).append(" HTTP/1.1\r\n");
  out.append("Host: 127.0.0.1:").append(std::to_string(port)).append("\r\n");
  out.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
  out.append("Sec-WebSocket-Key: ").append(key).append("\r\n");
  out.append("Sec-WebSocket-Version: 13\r\n");
  if (!subprotocol.empty()) {
    out.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

inline std::string LowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// Checks a handshake response head (the bytes before the blank line): 101, Upgrade: websocket,
// the right Sec-WebSocket-Accept, and the subprotocol offered (or none when none was offered).
// Returns an empty string when the connection is upgraded as asked, else why it is not.
inline std::string CheckUpgradeResponse(std::string_view head, std::string_view key,
                                        std::string_view subprotocol) {
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) {
    return "malformed status line: " + std::string(status_line.substr(0, 80));
  }
  if (status_line.substr(9, 3) != "101") {
    return "handshake answered " + std::string(status_line.substr(9));
  }
  std::map<std::string, std::string> headers;
  while (line_end != std::string_view::npos) {
    size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    std::string_view line = head.substr(
        start, line_end == std::string_view::npos ? std::string_view::npos : line_end - start);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    headers[LowerAscii(TrimSpaces(line.substr(0, colon)))] =
        std::string(TrimSpaces(line.substr(colon + 1)));
  }
  if (LowerAscii(headers["upgrade"]) != "websocket") return "101 without Upgrade: websocket";
  if (headers["sec-websocket-accept"] != ExpectedAccept(key)) return "wrong Sec-WebSocket-Accept";
  auto protocol = headers.find("sec-websocket-protocol");
  if (subprotocol.empty() && protocol != headers.end()) {
    return "server chose a subprotocol none was offered: " + protocol->second;
  }
  if (!subprotocol.empty() && (protocol == headers.end() || protocol->second != subprotocol)) {
    return "server did not accept subprotocol " + std::string(subprotocol);
  }
  return {};
}

// Appends one masked client frame (FIN set). Control frames must be at most 125 bytes.
inline void AppendClientFrame(std::string& out, uint8_t opcode, std::string_view payload,
                              uint32_t mask) {
  out += static_cast<char>(0x80 | opcode);
  const uint64_t size = payload.size();
  if (size < 126) {
    out += static_cast<char>(0x80 | size);
  } else if (size <= 0xffff) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(size >> 8);
    out += static_cast<char>(size & 0xff);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((size >> shift) & 0xff);
  }
  char key[4];
  std::memcpy(key, &mask, 4);
  out.append(key, 4);
  const size_t start = out.size();
  out.append(payload);
  for (size_t i = 0; i < size; ++i) out[start + i] ^= key[i & 3];
}

// The header of one server frame.
struct FrameHeader {
  bool fin = false;
  bool masked = false;   // servers must not mask (RFC 6455 section 5.1)
  uint8_t reserved = 0;  // RSV1-3; no extension is negotiated, so they must be 0
  uint8_t opcode = 0;
  size_t header_bytes = 0;
  uint64_t payload_bytes = 0;
};

// Parses the frame header at the start of `data`; false if `data` does not hold all of it yet.
inline bool ParseFrameHeader(std::string_view data, FrameHeader* frame) {
  if (data.size() < 2) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  frame->fin = (p[0] & 0x80) != 0;
  frame->reserved = p[0] & 0x70;
  frame->opcode = p[0] & 0x0f;
  frame->masked = (p[1] & 0x80) != 0;
  uint64_t length = p[1] & 0x7f;
  size_t header = 2;
  if (length == 126) {
    if (data.size() < 4) return false;
    length = (uint64_t{p[2]} << 8) | p[3];
    header = 4;
  } else if (length == 127) {
    if (data.size() < 10) return false;
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | p[2 + i];
    header = 10;
  }
  frame->header_bytes = header;
  frame->payload_bytes = length;
  return true;
}

}  // namespace hubcast::bench
