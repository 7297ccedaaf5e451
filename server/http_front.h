// HttpFront: the process's HTTP/1.1 server on the project's own event loops, for the one port
// that serves WebSocket clients (/client/...) and the REST API (/api/...), over plain TCP or
// TLS (server/tls.h).
//
// How a connection is served (server/http_connection.h has the state machine):
//   1. Every loop accepts from the shared listening socket; an accepted socket becomes an
//      HttpConnection on that loop. No thread is tied to a connection.
//   2. The connection reads the request head and body with the incremental parser
//      (server/http_parser.h). Until a request is complete nothing else happens: a
//      connection that sends nothing, or trickles its head, costs a socket and a few hundred
//      bytes, never a worker. Bounds: the head must arrive within head_timeout (408, close;
//      a connection that sent nothing is closed silently), a body may not stall for
//      body_stall_timeout (408, close), a keep-alive connection idle for idle_timeout
//      between requests is closed.
//   3. A complete request is first offered to the loop handler, on the loop: it takes what
//      it can serve without waiting (REST writes, whose answer comes from the log's
//      completion on this loop). Everything else goes to the fixed WorkerPool with an
//      HttpExchange; the handler (the gateway) answers through it from any thread, and the
//      answer is written on the connection's loop. Requests of one connection are served one
//      at a time, in order (pipelining): the next is parsed after the previous answer left.
//   4. A framing error (server/http_parser.h) is answered with its status and the JSON
//      error body, and the connection closes, executing nothing. Closing is lingering: the
//      write side is shut and input discarded for a moment, so the client reads the answer.
//   5. An upgrade (HttpExchange::Upgrade) writes the 101 and hands the connection's
//      transport, and any bytes the client sent after its request, to the caller.
//
// Thread-safety: Start and Stop from one control thread (not a loop or worker thread).
// HttpExchange may be used from any thread.
#pragma once

#include "base/status.h"
#include "rest/http_message.h"
#include "server/event_loop.h"
#include "server/http_parser.h"
#include "server/transport.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace hubcast {
class WorkerPool;
}  // namespace hubcast

namespace hubcast::server {

class HttpConnection;
class TlsContext;

struct HttpFrontOptions {
  std::string bind = "127.0.0.1";
  int port = 8080;
  HttpParserLimits limits;  // max_body_bytes: the REST body limit (the message limit)
  std::chrono::seconds head_timeout{10};
  std::chrono::seconds body_stall_timeout{10};
  std::chrono::seconds idle_timeout{60};   // a keep-alive connection between requests
  std::chrono::seconds write_timeout{30};  // an answer that makes no progress
  int workers = 64;
  size_t max_queued_requests = 4096;  // complete requests waiting for a worker; past: 503
  std::shared_ptr<TlsContext> tls;    // null: plain TCP
};

// One complete request and the way to answer it, exactly once. Any thread.
class HttpExchange {
 public:
  using UpgradeDone =
      std::function<void(std::unique_ptr<Transport> transport, std::string early_bytes)>;

  HttpExchange(std::weak_ptr<HttpConnection> connection, EventLoop* loop, uint64_t sequence,
               rest::HttpRequest request);
  // An exchange dropped unanswered (a bug, or a shutdown) answers 500.
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const rest::HttpRequest& request() const { return request_; }
  // The loop that reads and writes the connection.
  EventLoop* loop() const { return loop_; }
  // The answer; Content-Length, Date and Connection are the front's. Later answers are
  // ignored.
  void Respond(rest::HttpResponse response);
  // Writes `response` (a 101) and then calls `done` on the connection's loop with its
  // transport and the bytes the client sent after the request. When the connection is gone
  // first, `done` gets a null transport (it is not called when the loop has stopped).
  void Upgrade(rest::HttpResponse response, UpgradeDone done);

 private:
  bool Claim() { return !answered_.exchange(true); }

  std::weak_ptr<HttpConnection> connection_;
  EventLoop* loop_;
  uint64_t sequence_;
  rest::HttpRequest request_;
  std::atomic<bool> answered_{false};
};

// Runs on a worker thread for every complete request.
using HttpHandler = std::function<void(const std::shared_ptr<HttpExchange>&)>;
// Runs on the connection's loop for every complete request, first; true when it took the
// exchange (then it must answer it, and must never block), false to hand it to a worker.
using HttpLoopHandler = std::function<bool(const std::shared_ptr<HttpExchange>&)>;

class HttpFront {
 public:
  HttpFront(HttpFrontOptions options, std::vector<EventLoop*> loops, HttpHandler handler,
            HttpLoopHandler loop_handler = {});
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Listens and starts accepting on every loop (the loops run already); the bound port.
  Result<int> Start();
  // Stops accepting, closes every HTTP connection (upgraded ones are not HTTP any more),
  // and stops the workers. Idempotent.
  void Stop();

  const HttpFrontOptions& options() const { return options_; }
  TlsContext* tls() const { return options_.tls.get(); }

  // --- for HttpConnection and the listeners, on the loop thread named ---
  void Adopt(EventLoop* loop, int fd);
  void Forget(EventLoop* loop, HttpConnection* connection);
  // Serves a complete request: the loop handler, else the worker queue; false when the
  // queue is full (answer 503).
  bool Dispatch(std::shared_ptr<HttpExchange> exchange);

 private:
  class Listener;

  const HttpFrontOptions options_;
  const std::vector<EventLoop*> loops_;
  const HttpHandler handler_;
  const HttpLoopHandler loop_handler_;
  std::unique_ptr<WorkerPool> workers_;
  int listen_fd_ = -1;
  std::vector<std::shared_ptr<Listener>> listeners_;
  // Per loop (by index, touched only on that loop): its open HTTP connections.
  std::vector<std::unordered_set<HttpConnection*>> connections_;
  std::atomic<bool> stopped_{false};
};

}  // namespace hubcast::server
