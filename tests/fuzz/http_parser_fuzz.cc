// Fuzz target for server/http_parser.h. The input is a byte stream as a connection would
// deliver it; the first byte chooses how it is split into reads. Checks what the front relies
// on: Feed never consumes more than it is given, never waits (it consumes all it is given
// unless it stopped at a complete request or an error), a complete request respects the
// limits, an error is one of the documented statuses, and the outcome does not depend on how
// the stream was split into reads. Pipelined requests are parsed one after the other.
#include "server/http_parser.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using hubcast::server::HttpParserLimits;
using hubcast::server::HttpRequestParser;

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  std::vector<std::string> bodies;  // of each complete request, in order
  int error = 0;
  size_t consumed = 0;
};

// Parses every request in `stream`, feeding at most `step` bytes per call (0: all at once).
Outcome Run(std::string_view stream, size_t step, const HttpParserLimits& limits) {
  Outcome out;
  HttpRequestParser parser(limits);
  size_t pos = 0;
  while (pos < stream.size()) {
    const size_t give = step == 0 ? stream.size() - pos : std::min(step, stream.size() - pos);
    const size_t used = parser.Feed(stream.substr(pos, give));
    Check(used <= give);
    pos += used;
    if (parser.failed()) {
      const int s = parser.error().status;
      Check(s == 400 || s == 413 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505);
      Check(parser.error().code != nullptr && !parser.error().message.empty());
      out.error = s;
      break;
    }
    if (parser.complete()) {
      const hubcast::rest::HttpRequest& r = parser.request();
      Check(r.body.size() <= limits.max_body_bytes);
      Check(!r.method.empty() && !r.target.empty());
      Check(r.headers.size() <= limits.max_header_count);
      out.bodies.push_back(parser.TakeRequest().body);
      parser.Reset();
      continue;
    }
    Check(used == give);  // never waits while holding unparsed input
  }
  out.consumed = pos;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = data[0] % 17;  // 0 = one read; else reads of 1..16 bytes
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  HttpParserLimits limits;
  limits.max_request_line = 256;
  limits.max_header_count = 16;
  limits.max_head_bytes = 1024;
  limits.max_chunk_line = 64;
  limits.max_body_bytes = 4096;
  const Outcome whole = Run(stream, 0, limits);
  const Outcome split = Run(stream, step == 0 ? 1 : step, limits);
  Check(whole.error == split.error);
  Check(whole.bodies == split.bodies);
  // After an error the connection closes: how much was consumed does not matter.
  Check(whole.error != 0 || whole.consumed == split.consumed);
  return 0;
}
