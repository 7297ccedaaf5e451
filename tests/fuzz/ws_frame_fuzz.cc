// WsReader (server/ws_frame.h) on arbitrary bytes fed in arbitrary splits. The first input byte
// seeds the split sizes and the second picks the message limit; the rest is the stream.
// Checks: the messages and the error do not depend on how the stream was split; what comes
// out respects the reader's contract (limits, UTF-8, close codes); the encoders keep their
// size promises on what came out.
#include "base/json.h"
#include "server/ws_frame.h"

#include "tests/fuzz/fuzz_check.h"
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using hubcast::server::WsCloseCodeIsValid;
using hubcast::server::WsCloseFrame;
using hubcast::server::WsError;
using hubcast::server::WsMessage;
using hubcast::server::WsOpcode;
using hubcast::server::WsReader;

struct Outcome {
  std::vector<WsMessage> messages;
  std::optional<WsError> error;
};

void Drain(WsReader& reader, Outcome& out) {
  while (auto msg = reader.Next()) out.messages.push_back(std::move(*msg));
  out.error = reader.error();
}

Outcome ReadInSplits(std::string_view stream, size_t limit, uint32_t seed) {
  WsReader reader(limit);
  Outcome out;
  size_t pos = 0;
  uint32_t state = seed * 2654435761u + 1;
  while (pos < stream.size()) {
    state = state * 1103515245u + 12345u;
    // Mostly small pieces (1-16 bytes) so every header boundary gets split, now and then big.
    size_t n = (state >> 16) % 8 == 0 ? (state >> 8) % 4096 + 1 : (state >> 16) % 16 + 1;
    n = std::min(n, stream.size() - pos);
    reader.Feed(stream.data() + pos, n);
    pos += n;
    Drain(reader, out);
  }
  Drain(reader, out);
  return out;
}

bool SameMessages(const Outcome& a, const Outcome& b) {
  if (a.messages.size() != b.messages.size()) return false;
  for (size_t i = 0; i < a.messages.size(); ++i) {
    if (a.messages[i].opcode != b.messages[i].opcode) return false;
    if (a.messages[i].payload != b.messages[i].payload) return false;
  }
  if (a.error.has_value() != b.error.has_value()) return false;
  return !a.error || (a.error->close_code == b.error->close_code);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t seed = data[0];
  const size_t limit = (data[1] & 1) ? 1024 * 1024 : 200 + (data[1] >> 1);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  WsReader whole(limit);
  whole.Feed(stream.data(), stream.size());
  Outcome at_once;
  Drain(whole, at_once);
  const Outcome split = ReadInSplits(stream, limit, seed);
  FUZZ_CHECK(SameMessages(at_once, split));

  for (const WsMessage& m : at_once.messages) {
    FUZZ_CHECK(m.opcode != WsOpcode::kContinuation);
    switch (m.opcode) {
      case WsOpcode::kText:
        FUZZ_CHECK(hubcast::json::IsValidUtf8(m.payload));
        [[fallthrough]];
      case WsOpcode::kBinary:
        FUZZ_CHECK(m.payload.size() <= limit);
        break;
      case WsOpcode::kClose: {
        FUZZ_CHECK(m.payload.size() <= 125 && m.payload.size() != 1);
        uint16_t code = 0;
        std::string reason;
        hubcast::server::WsParseClose(m.payload, &code, &reason);
        FUZZ_CHECK(m.payload.empty() ? code == 1005 : WsCloseCodeIsValid(code));
        FUZZ_CHECK(hubcast::json::IsValidUtf8(reason));
        // Echoing it back stays a legal control frame.
        FUZZ_CHECK(WsCloseFrame(code, reason).size() <= 2 + 125);
        break;
      }
      default:
        FUZZ_CHECK(m.payload.size() <= 125);
    }
  }
  if (at_once.error) {
    const uint16_t code = at_once.error->close_code;
    FUZZ_CHECK(code == 1002 || code == 1007 || code == 1009);
    FUZZ_CHECK(!whole.Next().has_value());
    FUZZ_CHECK(whole.buffered() == 0);
    // The server closes with this reason: it must fit a close frame and be valid UTF-8.
    FUZZ_CHECK(hubcast::json::IsValidUtf8(at_once.error->reason));
  }

  // The handshake helpers take any header value.
  if (stream.size() <= 64) {
    const bool valid_key = hubcast::server::WsKeyIsValid(stream);
    FUZZ_CHECK(!valid_key || stream.size() == 24);
    FUZZ_CHECK(hubcast::server::WsAcceptKey(stream).size() == 28);
  }
  return 0;
}
