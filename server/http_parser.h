// HttpRequestParser: an incremental HTTP/1.1 request parser (RFC 9112) for the front. It is
// fed whatever bytes a non-blocking read returned, never waits on a partial input, and yields
// one complete request (head and whole body) at a time; bytes after that request stay with the
// caller, so pipelined requests are parsed one after the other, in order.
//
// Rules (each has a unit test in tests/unit/server/http_parser_test.cc):
//   - Lines end in CRLF; a bare LF or a CR not followed by LF is an error (400). Empty lines
//     before the request line are skipped (RFC 9112 2.2).
//   - Request line: token method, one space, a target of visible characters, one space,
//     HTTP/1.x (another major version: 505). Longer than max_request_line: 414.
//   - Header fields: token name immediately followed by ':' (whitespace before the colon, an
//     obsolete line folding or control characters in a value: 400). More than
//     max_header_count fields or a head (request line + fields) over max_head_bytes: 431.
//     HTTP/1.1 needs exactly one Host (400).
//   - Body length (RFC 9112 6.3), decided from the head:
//       Transfer-Encoding in HTTP/1.0: 400. Transfer-Encoding whose final coding is not
//       chunked, or chunked applied twice: 400. Any coding besides chunked (gzip, identity):
//       501. Chunked with Content-Length too: the Content-Length is ignored and the
//       connection closes after the answer.
//       Content-Length: every value (repeated fields, comma lists) must be the same run of
//       digits, else 400; a length over max_body_bytes is 413 before any body byte arrives.
//       Neither: no body.
//   - Chunked body: hex size (400 when not hex), optional extensions (ignored), CRLF, data,
//     CRLF (400 when anything else follows the data); the last chunk's trailer fields are
//     checked like header fields and dropped. A body growing past max_body_bytes: 413.
//   - Expect: 100-continue is reported (expects_continue); any other expectation is 417.
// Every error is final: the request is not executed, and the connection must answer
// error().status and close, because where the next request would start is unknown.
//
// Memory: the head is held until complete (at most max_head_bytes); the body grows only with
// bytes received (never reserved from a declared length), up to max_body_bytes.
// Not thread-safe: one parser per connection, used on that connection's event loop.
#pragma once

#include "rest/http_message.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hubcast::server {

struct HttpParserLimits {
  size_t max_request_line = 8 * 1024;     // 414 URI Too Long
  size_t max_header_count = 100;          // 431, trailer fields included
  size_t max_head_bytes = 64 * 1024;      // 431: request line and fields (trailers included)
  size_t max_chunk_line = 4 * 1024;       // a chunk-size line with its extensions; over it: 400
  uint64_t max_body_bytes = 1024 * 1024;  // 413
};

struct HttpParseError {
  int status = 0;    // 400, 413, 414, 417, 431, 501 or 505
  const char* code;  // the x-ms-error-code / JSON "code" of the answer
  std::string message;
};

class HttpRequestParser {
 public:
  enum class State { kNeedMore, kComplete, kError };

  explicit HttpRequestParser(HttpParserLimits limits = {});

  // Consumes bytes from the front of `data` that belong to the current request and returns
  // how many. Stops at the end of a complete request (state() == kComplete) or at an error;
  // the rest of `data` is not looked at.
  size_t Feed(std::string_view data);

  State state() const { return state_; }
  bool complete() const { return state_ == State::kComplete; }
  bool failed() const { return state_ == State::kError; }
  const HttpParseError& error() const { return error_; }
  // Some byte of the current request (empty lines before it included) has arrived.
  bool started() const { return started_; }
  // The request line and header fields are complete (the body may still be arriving).
  bool head_complete() const { return phase_ >= Phase::kBody; }
  // Body bytes received so far (after removing chunk framing).
  size_t body_received() const { return request_.body.size(); }
  // After head_complete(): a body is expected and the client asked for 100-continue first.
  bool expects_continue() const { return expects_continue_; }
  // After head_complete(): the request allows the connection to serve another one after it
  // (HTTP/1.1 without "Connection: close", HTTP/1.0 with "keep-alive", and no framing that
  // RFC 9112 says must close, such as Transfer-Encoding with Content-Length).
  bool keep_alive() const { return keep_alive_; }
  // After head_complete(): the request asked for a protocol upgrade (Connection: upgrade).
  bool wants_upgrade() const { return wants_upgrade_; }
  // After head_complete(): whether the request has a body at all.
  bool has_body() const { return chunked_ || content_length_ > 0; }

  // The request so far (complete when complete()).
  const rest::HttpRequest& request() const { return request_; }
  rest::HttpRequest TakeRequest();
  // Ready for the next request on the same connection.
  void Reset();

 private:
  enum class Phase {
    kRequestLine,
    kHeaders,
    kBody,  // marker: everything from here on means the head is complete
    kFixedBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDone,
  };

  size_t FeedLine(std::string_view data, size_t max_line, int too_long_status);
  bool OnLine(std::string_view line);
  bool OnRequestLine(std::string_view line);
  bool OnHeaderLine(std::string_view line, bool trailer);
  bool OnHeadComplete();
  bool OnChunkSizeLine(std::string_view line);
  bool Fail(int status, const char* code, std::string message);
  void Finish();

  HttpParserLimits limits_;
  State state_ = State::kNeedMore;
  Phase phase_ = Phase::kRequestLine;
  HttpParseError error_;
  rest::HttpRequest request_;
  std::string line_;       // the line being assembled (head, chunk-size and trailer lines)
  size_t head_bytes_ = 0;  // request line and fields, CRLFs included
  size_t field_count_ = 0;
  bool started_ = false;
  bool chunked_ = false;
  uint64_t content_length_ = 0;
  uint64_t remaining_ = 0;  // of the fixed body or of the current chunk
  bool expects_continue_ = false;
  bool keep_alive_ = true;
  bool wants_upgrade_ = false;
};

}  // namespace hubcast::server
