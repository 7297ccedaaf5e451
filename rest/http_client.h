// HttpClient: an asynchronous HTTP/1.1 client with keep-alive connection pools, for the calls
// Hubcast makes to the app (the upstream event handler, rest/upstream_client.h).
//
// Owns one event thread (epoll, non-blocking sockets, OpenSSL on non-blocking sockets for
// https://), one resolver thread for host names that are not IP literals, and a pool of idle
// connections per scheme://host:port. A slow server holds only its own connection: no thread
// waits for an answer.
//
// Connections:
//   - kept alive after an answer unless it says `Connection: close`, is HTTP/1.0, or is framed
//     by the end of the connection; at most max_idle_per_origin idle ones per origin (the
//     most recently used goes first);
//   - an idle connection is dropped before the server would drop it: at its
//     `Keep-Alive: timeout=N` minus a second (half of it when N <= 2), else after idle_timeout;
//     and as soon as it turns readable (the server closed it, or sent bytes nobody asked for);
//   - before a request goes on a pooled connection, a zero-timeout poll checks it is neither
//     readable nor closed; one that is gets discarded without a byte written.
// Safe retry rule: a request goes again on a fresh connection, by the client itself, only
// when not one byte of it was written on a reused connection: the pooled connection was found
// closed before writing, or the first write failed (EPIPE, ECONNRESET). Once any byte was
// written, every failure is the caller's (kNetwork): the server may have acted on the request,
// and only the caller knows whether it may be sent twice.
//
// Answers: status line, headers (repeats kept in order), bodies framed by Content-Length,
// chunked transfer coding, or the end of the connection; interim 1xx answers are skipped. A
// malformed answer fails the request (kMalformed, with the reason) and closes the connection;
// a body over max_response_bytes fails it (kTooLarge) as soon as that is known, without
// buffering the rest. https:// verifies the chain (system CAs plus ca_file) and the host name
// or IP address (SNI is sent for names). Every request has a deadline covering connect, TLS,
// write and the whole answer.
//
// Thread-safety: Send from any thread. `done` runs exactly once per Send, on the event thread
// (after Shutdown: inside Send, with kShuttingDown): it must be quick and must not call
// Shutdown or destroy the client.
// Shutdown (and the destructor) fails what is in flight with kShuttingDown, runs those `done`s,
// and joins the threads; it must not be called on the event thread. Writes use MSG_NOSIGNAL,
// but OpenSSL writes with write(2): a process using https:// ignores SIGPIPE (hubcast does).
#pragma once

#include "base/status.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcast::rest {

using HttpClientHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpClientOptions {
  std::string ca_file;  // PEM certificates trusted besides the system's (may be empty)
  size_t max_idle_per_origin = 256;
  // How long an idle connection is kept when the server did not say (Keep-Alive: timeout=N).
  std::chrono::milliseconds idle_timeout{4000};
  uint64_t max_response_bytes = uint64_t{1} << 20;  // body limit
  size_t max_head_bytes = 64 * 1024;                // status line and headers
};

struct HttpClientRequest {
  std::string method;  // GET, POST, OPTIONS, ...
  std::string url;     // http:// or https://
  // Sent as given after Host; Content-Length is added (always, 0 without a body).
  HttpClientHeaders headers;
  std::string body;
  std::chrono::milliseconds timeout{10000};  // the whole exchange
};

enum class HttpError {
  kNone,
  kInvalidRequest,  // the URL is not http(s)://host[:port]/..., or a header is unsafe
  kNetwork,         // resolve, connect, TLS, write or read failed; closed before the answer ended
  kTimedOut,        // the deadline passed
  kTooLarge,        // the body is over max_response_bytes
  kMalformed,       // not a valid HTTP/1.x answer
  kShuttingDown,    // Shutdown ran
};

struct HttpClientResponse {
  HttpError error = HttpError::kNone;
  std::string message;  // why, when error != kNone
  int status = 0;
  HttpClientHeaders headers;  // in arrival order, repeats kept
  std::string body;
  // The values of every header named `name` (case-insensitive) joined with `separator`;
  // nullopt when there is none.
  std::optional<std::string> Header(std::string_view name, std::string_view separator = ", ") const;
};

// How often the client wrote requests and opened connections (for tests and benchmarks).
struct HttpClientStats {
  uint64_t connections_opened = 0;
  uint64_t requests_on_reused = 0;  // requests written on a pooled connection
  uint64_t stale_discarded = 0;     // pooled connections found closed (before writing)
  uint64_t fresh_retries = 0;       // requests sent again under the safe retry rule
};

class HttpClient {
 public:
  // Fails when the CA file cannot be loaded.
  static Result<std::unique_ptr<HttpClient>> Create(HttpClientOptions options);
  virtual ~HttpClient() = default;

  virtual void Send(HttpClientRequest request, std::function<void(HttpClientResponse)> done) = 0;
  virtual HttpClientStats Stats() const = 0;
  virtual void Shutdown() = 0;  // idempotent
};

}  // namespace hubcast::rest
