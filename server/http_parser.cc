#include "server/http_parser.h"

#include "base/strings.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace hubcast::server {
namespace {

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

// Field values may hold HTAB, visible ASCII and obs-text (bytes >= 0x80), nothing else.
bool IsFieldValueChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return c == '\t' || (u >= 0x20 && u != 0x7f);
}

// Every byte of a value is checked (a bearer token alone is hundreds): one loop the compiler
// can inline, instead of a call per byte through a function pointer.
bool IsFieldValue(std::string_view s) {
  bool ok = true;
  for (char c : s) ok &= IsFieldValueChar(c);
  return ok;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The non-empty elements of a comma-separated field value, trimmed (RFC 9110 5.6.1).
void AppendListElements(std::string_view value, std::vector<std::string_view>* out) {
  for (std::string_view item : Split(value, ',')) {
    item = TrimOws(item);
    if (!item.empty()) out->push_back(item);
  }
}

// Whether a chunk-size line received so far can still become valid: hex digits, optional
// whitespace, then an extension (';' ...) or the end of the line. Checked as bytes arrive so
// that garbage fails at once instead of waiting for a line end.
bool ChunkLinePrefixOk(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && HexDigitValue(line[i]) >= 0) ++i;
  if (i == line.size()) return true;
  if (i == 0) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i == line.size()) return true;
  return line[i] == ';' || line[i] == '\r';
}

// Whether a request line received so far can still become valid: it must start with a token
// method. A TLS hello or binary noise on the plain port fails at its first byte.
bool RequestLinePrefixOk(std::string_view line) {
  for (char c : line) {
    if (c == ' ') return true;
    if (!IsTokenChar(c)) return line.size() == 1 && c == '\r';  // an empty line's CR
  }
  return true;
}

}  // namespace

HttpRequestParser::HttpRequestParser(HttpParserLimits limits) : limits_(limits) {}

bool HttpRequestParser::Fail(int status, const char* code, std::string message) {
  state_ = State::kError;
  error_ = HttpParseError{status, code, std::move(message)};
  line_ = std::string();
  return false;
}

void HttpRequestParser::Finish() {
  phase_ = Phase::kDone;
  state_ = State::kComplete;
  line_ = std::string();
}

rest::HttpRequest HttpRequestParser::TakeRequest() {
  rest::HttpRequest out = std::move(request_);
  request_ = rest::HttpRequest();
  return out;
}

void HttpRequestParser::Reset() {
  state_ = State::kNeedMore;
  phase_ = Phase::kRequestLine;
  error_ = HttpParseError{};
  request_ = rest::HttpRequest();
  line_ = std::string();
  head_bytes_ = 0;
  field_count_ = 0;
  started_ = false;
  chunked_ = false;
  content_length_ = 0;
  remaining_ = 0;
  expects_continue_ = false;
  keep_alive_ = true;
  wants_upgrade_ = false;
}

size_t HttpRequestParser::Feed(std::string_view data) {
  size_t used = 0;
  while (used < data.size() && state_ == State::kNeedMore) {
    const std::string_view in = data.substr(used);
    switch (phase_) {
      case Phase::kRequestLine:
      case Phase::kHeaders:
      case Phase::kChunkSize:
      case Phase::kTrailers: {
        started_ = true;
        const size_t nl = in.find('\n');
        size_t take = nl == std::string_view::npos ? in.size() : nl + 1;
        // Limits are checked at the byte that crosses them, so the outcome is the same
        // however the input was split into reads: a line of max_line characters may be
        // followed by CRLF; the head (and trailers) may have max_head_bytes in all.
        const bool head = phase_ != Phase::kChunkSize;
        const size_t max_line = phase_ == Phase::kRequestLine ? limits_.max_request_line
                                : phase_ == Phase::kChunkSize ? limits_.max_chunk_line
                                                              : limits_.max_head_bytes;
        const size_t content = nl == std::string_view::npos ? take : take - 1;
        const size_t line_room = max_line + 1 - std::min(max_line + 1, line_.size());
        const size_t head_room =
            head ? limits_.max_head_bytes - std::min(limits_.max_head_bytes, head_bytes_)
                 : SIZE_MAX;
        const bool head_over = take > head_room;
        const bool line_over = content > line_room;
        if (head_over || line_over) {
          take = head_over && head_room <= line_room ? head_room : line_room;
        }
        line_.append(in.data(), take);
        used += take;
        if (head) head_bytes_ += take;
        if (head_over || line_over || nl == std::string_view::npos) {
          if (phase_ == Phase::kChunkSize && !ChunkLinePrefixOk(line_)) {
            Fail(400, "BadRequest", "Invalid chunk size.");
          } else if (phase_ == Phase::kRequestLine && !RequestLinePrefixOk(line_)) {
            Fail(400, "BadRequest", "Invalid request method.");
          } else if (head_over && head_room <= line_room) {
            Fail(431, "RequestHeaderFieldsTooLarge",
                 "The request head is larger than " + std::to_string(limits_.max_head_bytes) +
                     " bytes.");
          } else if (line_over) {
            if (phase_ == Phase::kRequestLine) {
              Fail(414, "UriTooLong",
                   "The request line is longer than " + std::to_string(max_line) + " bytes.");
            } else {
              Fail(400, "BadRequest",
                   "A chunk-size line is longer than " + std::to_string(max_line) + " bytes.");
            }
          }
          if (head_over || line_over) return used + 1;
          continue;
        }
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r') {
          Fail(400, "BadRequest", "A line does not end with CRLF.");
          return used;
        }
        std::string_view line(line_.data(), line_.size() - 2);
        if (line.find('\r') != std::string_view::npos) {
          Fail(400, "BadRequest", "A line holds a CR that is not followed by LF.");
          return used;
        }
        OnLine(line);
        if (state_ == State::kNeedMore && phase_ != Phase::kDone) line_.clear();
        break;
      }
      case Phase::kFixedBody:
      case Phase::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
        request_.body.append(in.data(), take);
        used += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          if (phase_ == Phase::kFixedBody) {
            Finish();
          } else {
            phase_ = Phase::kChunkDataEnd;
          }
        }
        break;
      }
      case Phase::kChunkDataEnd: {
        // Exactly CRLF after the chunk data; checked byte by byte so nothing waits.
        const char expected = remaining_ == 0 ? '\r' : '\n';
        if (in.front() != expected) {
          Fail(400, "BadRequest", "Chunk data is not followed by CRLF.");
          return used + 1;
        }
        ++used;
        if (remaining_ == 0) {
          remaining_ = 1;
        } else {
          remaining_ = 0;
          phase_ = Phase::kChunkSize;
        }
        break;
      }
      case Phase::kBody:
      case Phase::kDone:
        return used;
    }
  }
  return used;
}

bool HttpRequestParser::OnLine(std::string_view line) {
  switch (phase_) {
    case Phase::kRequestLine:
      if (line.empty()) return true;  // RFC 9112 2.2: empty lines before a request
      return OnRequestLine(line);
    case Phase::kHeaders:
      if (line.empty()) return OnHeadComplete();
      return OnHeaderLine(line, /*trailer=*/false);
    case Phase::kChunkSize:
      return OnChunkSizeLine(line);
    case Phase::kTrailers:
      if (line.empty()) {
        Finish();
        return true;
      }
      return OnHeaderLine(line, /*trailer=*/true);
    default:
      return false;
  }
}

bool HttpRequestParser::OnRequestLine(std::string_view line) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || !IsToken(line.substr(0, sp1))) {
    return Fail(400, "BadRequest", "Invalid request line.");
  }
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return Fail(400, "BadRequest", "Invalid request line.");
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7f;
      })) {
    return Fail(400, "BadRequest", "Invalid request target.");
  }
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) ||
      version[6] != '.' || !digit(version[7])) {
    return Fail(400, "BadRequest", "Invalid HTTP version.");
  }
  if (version[5] != '1') {
    return Fail(505, "HttpVersionNotSupported", "Only HTTP/1.x is supported.");
  }
  request_.method = std::string(line.substr(0, sp1));
  request_.target = std::string(target);
  request_.version_minor = version[7] - '0';
  phase_ = Phase::kHeaders;
  return true;
}

bool HttpRequestParser::OnHeaderLine(std::string_view line, bool trailer) {
  if (line.front() == ' ' || line.front() == '\t') {
    return Fail(400, "BadRequest", "Obsolete line folding is not accepted.");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return Fail(400, "BadRequest", "A header line has no colon.");
  }
  const std::string_view name = line.substr(0, colon);
  if (!IsToken(name)) {
    return Fail(400, "BadRequest",
                name.empty() || name.back() == ' ' || name.back() == '\t'
                    ? "Whitespace before the colon of a header field is not accepted."
                    : "Invalid header field name.");
  }
  const std::string_view value = TrimOws(line.substr(colon + 1));
  if (!IsFieldValue(value)) {
    return Fail(400, "BadRequest", "A header field value holds a control character.");
  }
  if (++field_count_ > limits_.max_header_count) {
    return Fail(431, "RequestHeaderFieldsTooLarge",
                "The request has more than " + std::to_string(limits_.max_header_count) +
                    " header fields.");
  }
  if (!trailer) request_.headers.Add(std::string(name), std::string(value));
  return true;
}

bool HttpRequestParser::OnHeadComplete() {
  const rest::HttpHeaders& h = request_.headers;
  const bool http11 = request_.version_minor >= 1;
  const size_t hosts = h.Count("Host");
  if (hosts > 1 || (http11 && hosts == 0)) {
    return Fail(400, "BadRequest",
                hosts > 1 ? "The request has more than one Host header."
                          : "An HTTP/1.1 request needs a Host header.");
  }
  request_.host = h.Get("Host");

  bool close = false, keep = false;
  std::vector<std::string_view> items;
  for (const auto& [name, value] : h) {
    if (EqualsIgnoreCase(name, "Connection")) AppendListElements(value, &items);
  }
  for (std::string_view item : items) {
    if (EqualsIgnoreCase(item, "close")) close = true;
    if (EqualsIgnoreCase(item, "keep-alive")) keep = true;
    if (EqualsIgnoreCase(item, "upgrade")) wants_upgrade_ = true;
  }
  keep_alive_ = !close && (http11 || keep);

  // Body length, RFC 9112 6.3.
  items.clear();
  bool has_te = false, has_cl = false;
  for (const auto& [name, value] : h) {
    if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      has_te = true;
      AppendListElements(value, &items);
    } else if (EqualsIgnoreCase(name, "Content-Length")) {
      has_cl = true;
    }
  }
  if (has_te) {
    if (!http11) {
      return Fail(400, "BadRequest", "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
    }
    if (items.empty() || !EqualsIgnoreCase(items.back(), "chunked")) {
      return Fail(400, "BadRequest", "The final transfer coding is not chunked.");
    }
    for (size_t i = 0; i + 1 < items.size(); ++i) {
      if (EqualsIgnoreCase(items[i], "chunked")) {
        return Fail(400, "BadRequest", "The chunked transfer coding is applied more than once.");
      }
      return Fail(501, "NotImplemented",
                  "Transfer coding '" + std::string(items[i]) + "' is not supported.");
    }
    chunked_ = true;
    // RFC 9112 6.3 (3): Transfer-Encoding wins, and the connection closes after the answer.
    if (has_cl) keep_alive_ = false;
  } else if (has_cl) {
    std::optional<uint64_t> length;
    items.clear();
    bool empty_field = false;
    for (const auto& [name, value] : h) {
      if (!EqualsIgnoreCase(name, "Content-Length")) continue;
      const size_t before = items.size();
      AppendListElements(value, &items);
      empty_field = empty_field || items.size() == before;
    }
    for (std::string_view item : items) {
      uint64_t v = 0;
      for (char c : item) {
        if (c < '0' || c > '9') return Fail(400, "BadRequest", "Invalid Content-Length.");
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        // Saturates: any length past the body limit is refused the same way.
        v = v > (std::numeric_limits<uint64_t>::max() - digit) / 10
                ? std::numeric_limits<uint64_t>::max()
                : v * 10 + digit;
      }
      if (length && *length != v) {
        return Fail(400, "BadRequest", "The request has different Content-Length values.");
      }
      length = v;
    }
    if (empty_field || !length) return Fail(400, "BadRequest", "Invalid Content-Length.");
    if (*length > limits_.max_body_bytes) {
      return Fail(
          413, "PayloadTooLarge",
          "The request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes.");
    }
    content_length_ = *length;
  }

  if (const std::string* expect = h.Find("Expect")) {
    if (!EqualsIgnoreCase(TrimOws(*expect), "100-continue") || h.Count("Expect") > 1) {
      return Fail(417, "ExpectationFailed", "Only 'Expect: 100-continue' is supported.");
    }
    expects_continue_ = http11 && has_body();
  }

  if (chunked_) {
    phase_ = Phase::kChunkSize;
  } else if (content_length_ > 0) {
    remaining_ = content_length_;
    phase_ = Phase::kFixedBody;
  } else {
    Finish();
  }
  return true;
}

bool HttpRequestParser::OnChunkSizeLine(std::string_view line) {
  size_t i = 0;
  uint64_t size = 0;
  bool huge = false;
  while (i < line.size() && HexDigitValue(line[i]) >= 0) {
    if (size > (std::numeric_limits<uint64_t>::max() >> 4)) huge = true;
    size = (size << 4) | static_cast<uint64_t>(HexDigitValue(line[i]));
    ++i;
  }
  if (i == 0) return Fail(400, "BadRequest", "Invalid chunk size.");
  std::string_view rest = TrimOws(line.substr(i));
  if (!rest.empty() && rest.front() != ';') {
    return Fail(400, "BadRequest", "Invalid chunk size.");
  }
  if (!IsFieldValue(rest)) {
    return Fail(400, "BadRequest", "A chunk extension holds a control character.");
  }
  if (huge || size > limits_.max_body_bytes -
                         std::min<uint64_t>(limits_.max_body_bytes, request_.body.size())) {
    return Fail(
        413, "PayloadTooLarge",
        "The request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes.");
  }
  if (size == 0) {
    phase_ = Phase::kTrailers;
  } else {
    remaining_ = size;
    phase_ = Phase::kChunkData;
  }
  return true;
}

}  // namespace hubcast::server
