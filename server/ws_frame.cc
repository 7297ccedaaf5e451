#include "server/ws_frame.h"

#include <openssl/sha.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

namespace hubcast::server {
namespace {

constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kInvalidPayload = 1007;
constexpr uint16_t kMessageTooBig = 1009;
constexpr uint16_t kNoStatusReceived = 1005;

constexpr size_t kMaxControlPayload = 125;
constexpr size_t kMaskKeyBytes = 4;

bool IsKnownOpcode(uint8_t op) {
  return op == 0x0 || op == 0x1 || op == 0x2 || op == 0x8 || op == 0x9 || op == 0xA;
}

// XORs 8 bytes per step; the mask is laid out in memory order in a uint64_t so the result
// is independent of endianness. Every frame is unmasked from its first payload byte, so the
// mask phase always starts at 0.
void Unmask(const char* src, size_t n, const unsigned char key[4], char* dst) {
  const unsigned char key8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  uint64_t mask;
  std::memcpy(&mask, key8, sizeof(mask));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, src + i, sizeof(word));
    word ^= mask;
    std::memcpy(dst + i, &word, sizeof(word));
  }
  for (; i < n; ++i) dst[i] = static_cast<char>(src[i] ^ key[i & 3]);
}

// Appends the unmasked payload to *out (resize then write in place: no temporary copy).
void AppendUnmasked(const char* src, size_t n, const unsigned char key[4], std::string* out) {
  const size_t old_size = out->size();
  out->resize(old_size + n);
  Unmask(src, n, key, out->data() + old_size);
}

// Strict UTF-8 (RFC 3629): rejects overlong forms, surrogates, code points above U+10FFFF
// and truncated sequences. Kept local so framing does not depend on the JSON helpers.
bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = p + text.size();
  while (p < end) {
    // Chat traffic is mostly ASCII: skip it a word at a time.
    if (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, sizeof(word));
      if ((word & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    // Number of continuation bytes and the allowed range of the first one (the narrowed
    // ranges are what exclude overlongs, surrogates and > U+10FFFF).
    ptrdiff_t extra;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c == 0xE0) {
      extra = 2;
      lo = 0xA0;
    } else if (c == 0xED) {
      extra = 2;
      hi = 0x9F;
    } else if (c >= 0xE1 && c <= 0xEF) {
      extra = 2;
    } else if (c == 0xF0) {
      extra = 3;
      lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      extra = 3;
    } else if (c == 0xF4) {
      extra = 3;
      hi = 0x8F;
    } else {
      return false;  // 0x80-0xC1 (stray continuation or overlong lead) and 0xF5-0xFF
    }
    if (end - p - 1 < extra) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (ptrdiff_t i = 2; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
    }
    p += extra + 1;
  }
  return true;
}

// Drops the consumed prefix once it is more than half of the buffer. Each erase moves fewer
// bytes than were consumed since the previous one, so the cost is amortised O(1) per byte
// whether the peer sends one byte per read or megabyte messages. A buffer whose every byte
// was consumed is released: most connections are idle between messages, and each would keep
// its largest read's worth of memory otherwise.
void Compact(std::string* buf, size_t* pos) {
  if (*pos == buf->size()) {
    std::string().swap(*buf);
    *pos = 0;
  } else if (*pos > buf->size() / 2) {
    buf->erase(0, *pos);
    *pos = 0;
  }
}

// Standard base64 with padding. base/base64 is not a dependency here: the handshake needs
// only this 20-byte encode, and framing stays buildable on its own.
std::string Base64(const unsigned char* data, size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 0x3F]);
    out.push_back(kAlphabet[(v >> 12) & 0x3F]);
    out.push_back(kAlphabet[(v >> 6) & 0x3F]);
    out.push_back(kAlphabet[v & 0x3F]);
  }
  if (i < n) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (i + 1 < n) v |= uint32_t{data[i + 1]} << 8;
    out.push_back(kAlphabet[(v >> 18) & 0x3F]);
    out.push_back(kAlphabet[(v >> 12) & 0x3F]);
    out.push_back(i + 1 < n ? kAlphabet[(v >> 6) & 0x3F] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace

WsReader::WsReader(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

const std::optional<WsError>& WsReader::error() const {
  static const std::optional<WsError> kNone;
  return rare_ ? rare_->error : kNone;
}

WsReader::Rare& WsReader::MutableRare() {
  if (!rare_) rare_ = std::make_unique<Rare>();
  return *rare_;
}

void WsReader::Feed(const char* data, size_t n) {
  // A failed reader never parses again; buffering would only grow memory until the
  // connection is torn down.
  if (error()) return;
  if (buffered() + n > max_message_bytes_ + kWsReaderSlack) {
    return Fail(kMessageTooBig, "more unread data than the server buffers");
  }
  buf_.append(data, n);
}

void WsReader::Fail(uint16_t code, std::string reason) {
  // The connection is about to be closed: release what it held.
  rare_ = std::make_unique<Rare>();
  rare_->error = WsError{code, std::move(reason)};
  std::string().swap(buf_);
  pos_ = 0;
}

size_t WsReader::buffered() const { return buf_.size() - pos_; }

std::optional<WsMessage> WsReader::Next() {
  auto fail = [this](uint16_t code, std::string reason) -> std::optional<WsMessage> {
    Fail(code, std::move(reason));
    return std::nullopt;
  };
  if (error()) return std::nullopt;

  // Each iteration consumes one whole frame; non-final data fragments loop on without
  // returning so the caller only ever sees complete messages.
  while (true) {
    const size_t avail = buf_.size() - pos_;
    if (avail < 2) break;
    const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);

    // Everything that the first two bytes decide is checked before waiting for more, so a
    // bad peer is rejected as early as possible.
    const bool fin = (p[0] & 0x80) != 0;
    if ((p[0] & 0x70) != 0) return fail(kProtocolError, "reserved bits set without extension");
    const uint8_t op = p[0] & 0x0F;
    if (!IsKnownOpcode(op)) return fail(kProtocolError, "unknown opcode " + std::to_string(op));
    const auto opcode = static_cast<WsOpcode>(op);
    const bool control = (op & 0x8) != 0;
    if ((p[1] & 0x80) == 0) return fail(kProtocolError, "client frame is not masked");
    uint64_t len = p[1] & 0x7F;
    if (control) {
      if (!fin) return fail(kProtocolError, "fragmented control frame");
      if (len > kMaxControlPayload) return fail(kProtocolError, "control frame over 125 bytes");
      if (opcode == WsOpcode::kClose && len == 1) {
        return fail(kProtocolError, "close payload of 1 byte");
      }
    } else if (opcode == WsOpcode::kContinuation) {
      if (!Fragmented()) return fail(kProtocolError, "continuation without a started message");
    } else if (Fragmented()) {
      return fail(kProtocolError, "new data frame inside a fragmented message");
    }

    // Non-minimal length encodings are accepted: RFC 6455 says "minimal number of bytes MUST
    // be used" but rejecting them buys nothing and some clients get it wrong.
    size_t header = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t{p[2]} << 8) | p[3];
      header = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 2; i < 10; ++i) len = (len << 8) | p[i];
      if ((len >> 63) != 0) return fail(kProtocolError, "64-bit payload length has MSB set");
      header = 10;
    }

    // Decided from the header alone so an oversized message is refused before its payload
    // is buffered. A fragmented payload never exceeds the limit, so the subtraction cannot wrap.
    if (!control) {
      const size_t so_far = Fragmented() ? rare_->frag_payload.size() : 0;
      if (len > max_message_bytes_ - so_far) {
        return fail(kMessageTooBig,
                    "message exceeds " + std::to_string(max_message_bytes_) + " bytes");
      }
    }

    header += kMaskKeyBytes;
    if (avail < header || avail - header < len) break;
    const size_t n = static_cast<size_t>(len);
    const unsigned char* key = p + header - kMaskKeyBytes;
    const char* payload = buf_.data() + pos_ + header;

    if (control || (fin && opcode != WsOpcode::kContinuation)) {
      // Unfragmented message or control frame: unmask straight into the result.
      WsMessage msg{opcode, {}};
      AppendUnmasked(payload, n, key, &msg.payload);
      pos_ += header + n;
      if (opcode == WsOpcode::kText && !IsValidUtf8(msg.payload)) {
        return fail(kInvalidPayload, "text message is not valid UTF-8");
      }
      if (opcode == WsOpcode::kClose && msg.payload.size() >= 2) {
        uint16_t code;
        std::string reason;
        WsParseClose(msg.payload, &code, &reason);
        if (!WsCloseCodeIsValid(code)) {
          return fail(kProtocolError, "close code " + std::to_string(code) + " is not allowed");
        }
        if (!IsValidUtf8(reason)) return fail(kInvalidPayload, "close reason is not valid UTF-8");
      }
      Compact(&buf_, &pos_);
      return msg;
    }

    Rare& rare = MutableRare();
    AppendUnmasked(payload, n, key, &rare.frag_payload);
    pos_ += header + n;
    if (opcode != WsOpcode::kContinuation) rare.frag_opcode = opcode;
    if (!fin) continue;

    // Final fragment. Validated as a whole because a code point may span fragments.
    WsMessage msg{*rare.frag_opcode, std::move(rare.frag_payload)};
    rare_.reset();  // no error here: it would have returned
    if (msg.opcode == WsOpcode::kText && !IsValidUtf8(msg.payload)) {
      return fail(kInvalidPayload, "text message is not valid UTF-8");
    }
    Compact(&buf_, &pos_);
    return msg;
  }
  Compact(&buf_, &pos_);
  return std::nullopt;
}

std::string WsFrameHeader(WsOpcode opcode, size_t payload_len) {
  std::string header;
  header.reserve(10);
  header.push_back(static_cast<char>(0x80 | static_cast<uint8_t>(opcode)));
  if (payload_len < 126) {
    header.push_back(static_cast<char>(payload_len));
  } else if (payload_len <= 0xFFFF) {
    header.push_back(static_cast<char>(126));
    header.push_back(static_cast<char>((payload_len >> 8) & 0xFF));
    header.push_back(static_cast<char>(payload_len & 0xFF));
  } else {
    header.push_back(static_cast<char>(127));
    const uint64_t len = payload_len;
    for (int shift = 56; shift >= 0; shift -= 8) {
      header.push_back(static_cast<char>((len >> shift) & 0xFF));
    }
  }
  return header;
}

size_t WsPutFrameHeader(char* end, WsOpcode opcode, size_t payload_len) {
  std::string header = WsFrameHeader(opcode, payload_len);
  std::memcpy(end - header.size(), header.data(), header.size());
  return header.size();
}

SharedBytes WsSharedFrame(std::string buffer, WsOpcode opcode) {
  size_t payload = buffer.size() - kWsHeaderRoom;
  size_t header = WsPutFrameHeader(buffer.data() + kWsHeaderRoom, opcode, payload);
  size_t start = kWsHeaderRoom - header;
  size_t size = header + payload;
  return SharedBytes(std::make_shared<const std::string>(std::move(buffer)), start, size);
}

std::string WsFrame(WsOpcode opcode, std::string_view payload) {
  std::string frame = WsFrameHeader(opcode, payload.size());
  frame.append(payload);
  return frame;
}

std::string WsCloseFrame(uint16_t code, std::string_view reason) {
  // 1005 means "no status" and must never appear on the wire (RFC 6455 7.4.1); it is what
  // WsParseClose reports for an empty close, so echoing it back sends an empty close.
  if (code == kNoStatusReceived) return WsFrame(WsOpcode::kClose, {});
  constexpr size_t kMaxReason = kMaxControlPayload - 2;
  if (reason.size() > kMaxReason) {
    // Back up over continuation bytes so a multi-byte character is dropped whole rather than
    // cut, which would make the peer fail the close with 1007.
    size_t cut = kMaxReason;
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  std::string payload;
  payload.reserve(2 + reason.size());
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason);
  return WsFrame(WsOpcode::kClose, payload);
}

void WsParseClose(std::string_view payload, uint16_t* code, std::string* reason) {
  // WsReader rejects a 1-byte close payload, so fewer than 2 bytes here means "no status".
  if (payload.size() < 2) {
    *code = kNoStatusReceived;
    reason->clear();
    return;
  }
  *code = static_cast<uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                static_cast<unsigned char>(payload[1]));
  reason->assign(payload.substr(2));
}

std::string WsAcceptKey(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input;
  input.reserve(client_key.size() + kGuid.size());
  input.append(client_key);
  input.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64(digest, sizeof(digest));
}

bool WsCloseCodeIsValid(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool WsKeyIsValid(std::string_view key) {
  // 16 bytes encode to 22 significant characters: 21 carry 6 bits each and the 22nd the last
  // 2 bits plus 4 zero bits, so it is one of A, Q, g, w.
  auto is_base64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  };
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (size_t i = 0; i < 21; ++i) {
    if (!is_base64(key[i])) return false;
  }
  const char last = key[21];
  return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

}  // namespace hubcast::server
