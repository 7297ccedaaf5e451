// The data-plane REST API (PROTOCOL.md section 4): routes, bearer-token auth, validation,
// and the mapping of every operation to a log command or a view query, with exactly the
// status codes the official SDKs accept (SDK-NOTES.md section 3).
//
// Error table (one place): 400 BadRequest (names, query values, filter, body), 401
// Unauthorized (token), 404 NotFound (route or entity), 405 MethodNotAllowed, 413
// PayloadTooLarge, 415 UnsupportedMediaType, 500 InternalServerError, 503 ServiceUnavailable.
// Every error has a JSON body {"code":"<Name>","message":"..."} and header x-ms-error-code.
//
// Transport-neutral: Handle takes a complete request (rest/http_message.h) and returns the
// response; the front (server/) owns sockets, framing and body limits.
//
// Two ways to serve a request. Handle waits for the log (a worker thread). Writes, which are
// most of an app server's traffic, can instead be served on the event loop that read them
// (HandleWithoutWaiting): the entry is appended without waiting and the answer is made by the
// append's completion on that loop, so a publish costs no thread hop to a worker and back.
// Reads wait for the view (a read barrier), and a hub not open yet may have to be created:
// those stay on workers.
// Thread-safety: both may be called concurrently from any number of threads.
#pragma once

#include "base/clock.h"
#include "base/executor.h"
#include "replication/hub.h"
#include "rest/http_message.h"
#include "rest/token_cache.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hubcast::rest {

struct RestOptions {
  std::vector<std::string> access_keys;  // primary first; tokens signed with any are accepted
  size_t max_body_bytes = 1024 * 1024;
};

class RestApi {
 public:
  RestApi(replication::HubRegistry* hubs, RestOptions options,
          const Clock* clock = &SystemClock::Get());
  // Serves any request whose path starts with /api/. Never throws; an unexpected failure is
  // a 500 with the usual JSON error body.
  HttpResponse Handle(const HttpRequest& request) const;
  // On an event loop: serves the request if that needs no waiting and returns true; then
  // `respond` runs exactly once, before the return for an immediate answer (an error, a
  // token) or on `loop` when the append completes. Returns false, having answered nothing
  // and changed nothing, for a request that would wait: serve it with Handle elsewhere.
  bool HandleWithoutWaiting(const HttpRequest& request, Executor* loop,
                            std::function<void(HttpResponse)> respond) const;

 private:
  replication::HubRegistry* hubs_;
  RestOptions options_;
  const Clock* clock_;
  // Bearer tokens already verified (an app server sends the same one with every call).
  std::unique_ptr<TokenCache> tokens_;
};

}  // namespace hubcast::rest
