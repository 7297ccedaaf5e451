// HttpConnection: one accepted socket of the HTTP front (server/http_front.h), served on one
// EventLoop without any worker thread while a request arrives.
//
// States (loop thread only):
//   kReading   parse input; no request yet, or one partly received. Timers: the first head
//              within head_timeout of the accept (silent close when nothing came), then
//              idle_timeout between requests; once a head has started, head_timeout from
//              its first byte (408); once the body is arriving, body_stall_timeout without
//              progress (408). A head asking for 100-continue gets it here.
//   kHandling  a complete request is with a worker; the socket is not read (the next
//              pipelined request waits in the buffer and the kernel).
//   kWriting   the answer is leaving; then back to kReading for the next request, or
//   kLingering the last answer left: write side shut, input discarded briefly, then closed.
//   kUpgrading the 101 is leaving; then the transport is handed over (the handler's done).
//   kClosed    gone from the loop.
#pragma once

#include "rest/http_message.h"
#include "server/event_loop.h"
#include "server/http_front.h"
#include "server/http_parser.h"
#include "server/transport.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace hubcast::server {

// The bytes of an answer: status line, the handler's fields (minus the ones the front owns:
// Content-Length, Transfer-Encoding, Connection, Date; for a 101 Connection stays), Date,
// Content-Length (not for 1xx, 204, 304), "Connection: close" when closing (or keep-alive to
// an HTTP/1.0 client that asked for it), the body unless the request was HEAD. A field whose
// value holds CR or LF is dropped.
std::string SerializeResponse(const rest::HttpResponse& response, bool head_request, bool close,
                              int request_version_minor);

class HttpConnection final : public IoHandler {
 public:
  HttpConnection(HttpFront* front, EventLoop* loop, std::unique_ptr<Transport> transport);
  ~HttpConnection() override;

  // --- loop thread only ---
  void OnEvents(uint32_t events) override;
  void OnFlush() override;
  void OnTick(std::chrono::steady_clock::time_point now) override;
  // The answer to request `sequence` (ignored when stale).
  void Answer(uint64_t sequence, rest::HttpResponse response);
  void Upgrade(uint64_t sequence, rest::HttpResponse response, HttpExchange::UpgradeDone done);
  // Drops the connection now.
  void Close();

 private:
  enum class State { kReading, kHandling, kWriting, kLingering, kUpgrading, kClosed };

  void ReadSome();
  void Parse(std::string_view data);
  void Dispatch();
  void Send(const rest::HttpResponse& response, bool close);
  void Fail(int status, const char* code, const std::string& message);
  void WriteSome();
  void NextRequest();
  void Linger();
  void HandOver();
  void UpdateInterest();

  HttpFront* front_;
  EventLoop* loop_;
  std::unique_ptr<Transport> transport_;
  const HttpFrontOptions& options_;
  HttpRequestParser parser_;
  State state_ = State::kReading;
  uint32_t interest_ = 0;      // what epoll watches now
  bool reads_paused_ = false;  // bytes came while a request was served: unwatched until then
  std::string in_;             // bytes read after a complete request (pipelining)
  std::string out_;            // the answer being written
  size_t out_offset_ = 0;
  bool want_write_ = false;  // the transport said kAgain
  bool keep_alive_ = true;   // for the request in hand
  bool closing_ = false;     // the answer being written is the last
  bool continue_sent_ = false;
  bool head_started_ = false;
  std::string method_;  // of the request in hand (HEAD answers have no body)
  int version_minor_ = 1;
  uint64_t sequence_ = 0;  // of the request in hand
  uint64_t served_ = 0;    // requests answered on this connection
  size_t body_seen_ = 0;
  size_t discarded_ = 0;  // while lingering
  HttpExchange::UpgradeDone upgrade_done_;
  std::chrono::steady_clock::time_point accepted_, head_start_, progress_, idle_since_,
      linger_until_;
};

}  // namespace hubcast::server
