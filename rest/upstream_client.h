// UpstreamClient: the service's calls to the app's event handler (PROTOCOL.md section 5):
// CloudEvents over HTTP in binary mode, asynchronous, so a slow app server never blocks an
// event loop or another connection.
//
// What it does for every call:
//   - abuse protection (5.7) before the first use of a handler URL: OPTIONS on the URL with
//     {event}=validate, headers WebHook-Request-Origin and ce-awpsversion: 1.0; valid iff 2xx
//     and WebHook-Allowed-Origin is "*" or the origin (case-insensitive; comma-separated and
//     repeated headers accepted). The result is cached per validation URL; a failure fails
//     the call and is retried on a later call after a back-off.
//   - every ce-* header of 5.2 (specversion, awpsversion, type, source, id, time, signature
//     with one sha256=<hex> per access key, userId, connectionId, hub, eventName,
//     subprotocol, connectionState) and WebHook-Request-Origin;
//   - a per-attempt timeout; retries with back-off on 408, 5xx and network errors when the
//     request says it may be retried;
//   - connection reuse: every request (blocking events included) rides a kept-alive
//     connection per scheme://host:port (rest/http_client.h). A request goes again on a
//     fresh connection by itself only when not one byte of it was written on the reused one;
//     once written, a failure is a failed attempt, retried only when the request is retryable;
//   - answers over max_response_bytes (1 MiB) fail the call without being buffered whole, as
//     do malformed answers ("invalid answer: ..."); neither is retried;
//   - https:// handlers: the certificate chain and host name are verified against the
//     system's CAs and, when given, the CAs in UpstreamOptions::ca_file (private CAs).
//
// Thread-safety: Call may be used from any thread; `done` runs on one of the client's own
// threads (a small fixed pool), exactly once per call. The HTTP exchanges themselves run on
// the HttpClient's one event thread: no thread waits for an answer.
#pragma once

#include "base/status.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::rest {

struct UpstreamOptions {
  std::vector<std::string> access_keys;              // ce-signature: one entry per key
  std::string origin;                                // WebHook-Request-Origin (host name)
  std::chrono::milliseconds timeout{10000};          // per attempt
  int max_attempts = 4;                              // for retryable requests
  std::chrono::milliseconds retry_base{1000};        // back-off: base, 3*base, 5*base, ...
  std::chrono::milliseconds validation_retry{5000};  // after a failed validation
  int threads = 4;  // the pool that runs `done`, validation and retries (fixed)
  // An answer with a larger body fails the call (docs/PROTOCOL-DECISIONS.md).
  uint64_t max_response_bytes = uint64_t{1} << 20;
  std::string ca_file;  // PEM certificates trusted besides the system's (may be empty)
};

struct UpstreamRequest {
  std::string url;             // resolved handler URL ({hub} and {event} substituted)
  std::string validation_url;  // same template with {event}=validate
  std::string ce_type;         // e.g. azure.webpubsub.sys.connect, azure.webpubsub.user.message
  std::string event_name;      // ce-eventName
  std::string hub;
  std::string connection_id;
  std::optional<std::string> user_id;
  std::string subprotocol;  // omitted when empty
  std::optional<std::string> connection_state;
  std::string event_id;      // ce-id
  std::string content_type;  // e.g. application/json; charset=utf-8
  std::string body;
  bool retryable = false;
};

struct UpstreamResponse {
  // HTTP status of the final attempt; 0 when no response came (network error, timeout,
  // failed validation): then `error` says why.
  int status = 0;
  std::string content_type;
  std::string body;
  // The ce-connectionState response header when present (may be empty: "set to empty").
  std::optional<std::string> connection_state;
  std::string error;
  bool timed_out = false;  // no answer within the timeout (`error` says so too)
  bool ok() const { return status >= 200 && status < 300; }
};

class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  virtual void Call(UpstreamRequest request, std::function<void(UpstreamResponse)> done) = 0;
  // Forgets cached validations (after a settings reload).
  virtual void ResetValidations() = 0;
  // Waits until every call made so far has finished (retries included), at most `limit`;
  // false on timeout. For a graceful shutdown: the last `disconnected` events go out.
  virtual bool Drain(std::chrono::milliseconds limit) = 0;
  // Ends every pending call now (`done` runs with a "shutting down" error) and refuses later
  // ones the same way; returns once every `done` has returned (bounded by a few seconds). The
  // owner calls it before destroying what the callbacks touch. Idempotent; the destructor
  // calls it too.
  virtual void Shutdown() = 0;
};

std::unique_ptr<UpstreamClient> NewUpstreamClient(UpstreamOptions options);

// Whether `path` is a readable PEM file holding at least one certificate (for start-up).
Status CheckCaFile(const std::string& path);

}  // namespace hubcast::rest
