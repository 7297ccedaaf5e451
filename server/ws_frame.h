// WebSocket framing (RFC 6455) for the server side: an incremental reader that never waits
// on a partial frame (POCO 1.11's receiveFrame blocks on one, see ARCHITECTURE.md Threads)
// and encoders for the unmasked frames a server sends.
//
// WsReader is fed whatever bytes a non-blocking read returned and yields complete messages:
// data messages reassembled from fragments, and control frames (which may arrive between
// fragments) as they come. It enforces: client frames are masked (else 1002), reserved bits
// are zero (no extension is negotiated; else 1002), control frames are <= 125 bytes and not
// fragmented (1002), continuation only inside a fragmented message (1002), a message of at
// most max_message_bytes (else 1009, detected from the header before the payload arrives),
// text messages are valid UTF-8 (else 1007), a close frame carries a code a peer may send
// (WsCloseCodeIsValid, else 1002) and a UTF-8 reason (else 1007). Bytes fed but not yet
// parsed are bounded too: past max_message_bytes + kWsReaderSlack (a caller that feeds while
// it does not call Next, e.g. a paused connection) the reader fails with 1009 and drops them.
// After an error the reader stays failed.
// Not thread-safe: one reader per connection, used on that connection's event loop.
#pragma once

#include "base/shared_bytes.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace hubcast::server {

enum class WsOpcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

struct WsMessage {
  WsOpcode opcode;      // kText, kBinary, kClose, kPing or kPong (never kContinuation)
  std::string payload;  // unmasked; for kClose the raw close payload (code + reason)
};

struct WsError {
  uint16_t close_code;  // 1002, 1007 or 1009
  std::string reason;
};

// What a reader holds unparsed beyond one whole message: headers and a few reads' worth.
inline constexpr size_t kWsReaderSlack = 256 * 1024;

class WsReader {
 public:
  explicit WsReader(size_t max_message_bytes = 1024 * 1024);
  // Buffers bytes; cheap, no parsing happens until Next(). Fails the reader (1009) when the
  // unparsed bytes would pass max_message_bytes + kWsReaderSlack.
  void Feed(const char* data, size_t n);
  // The next complete message, or nullopt when more bytes are needed or the reader failed
  // (then error() is set).
  std::optional<WsMessage> Next();
  const std::optional<WsError>& error() const;
  // Bytes buffered but not yet consumed (for tests and memory accounting).
  size_t buffered() const;
  // Whether the reader holds heap memory now (for tests): only while bytes of an unfinished
  // frame or message wait, or after an error.
  bool allocated() const { return buf_.capacity() > std::string().capacity() || rare_; }

 private:
  // A fragmented message in progress, or the error: allocated only while one exists, so an
  // idle connection's reader is a few words.
  struct Rare {
    std::optional<WsOpcode> frag_opcode;  // set while a fragmented message is in progress
    std::string frag_payload;
    std::optional<WsError> error;
  };
  void Fail(uint16_t code, std::string reason);
  Rare& MutableRare();
  bool Fragmented() const { return rare_ && rare_->frag_opcode; }

  size_t max_message_bytes_;
  std::string buf_;  // released whenever every byte in it was consumed
  size_t pos_ = 0;   // consumed prefix of buf_
  std::unique_ptr<Rare> rare_;
};

// Header (2-10 bytes) of an unmasked server frame with FIN set.
std::string WsFrameHeader(WsOpcode opcode, size_t payload_len);
// A whole unmasked frame.
std::string WsFrame(WsOpcode opcode, std::string_view payload);
// Frames built in one buffer: the payload is written after kWsHeaderRoom reserved bytes, and
// the header is then put right before it, so the payload is never copied again.
inline constexpr size_t kWsHeaderRoom = 10;
// Writes the header so that it ends at `end`; returns its length (2-10).
size_t WsPutFrameHeader(char* end, WsOpcode opcode, size_t payload_len);
// `buffer` = kWsHeaderRoom bytes of room + payload: the shared whole frame.
SharedBytes WsSharedFrame(std::string buffer, WsOpcode opcode);
// A close frame with code and reason (reason truncated to fit 125 bytes at a UTF-8 boundary).
std::string WsCloseFrame(uint16_t code, std::string_view reason);
// Parses a close payload; code 1005 when empty.
void WsParseClose(std::string_view payload, uint16_t* code, std::string* reason);
// Sec-WebSocket-Accept for a Sec-WebSocket-Key.
std::string WsAcceptKey(std::string_view client_key);

// True for a close code a peer may put in a close frame (RFC 6455 7.4): 1000-1003, 1007-1014
// and 3000-4999. 1005, 1006 and 1015 only describe a close locally; the rest of 0-2999 is
// unassigned or reserved, and nothing above 4999 exists.
bool WsCloseCodeIsValid(uint16_t code);
// True for a Sec-WebSocket-Key that is what RFC 6455 4.1 requires: the canonical base64 of
// exactly 16 bytes (22 characters, the last of which leaves no stray bits, then "==").
bool WsKeyIsValid(std::string_view key);

}  // namespace hubcast::server
