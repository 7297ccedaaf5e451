#include "server/http_connection.h"

#include "base/log.h"
#include "base/strings.h"

#include <ctime>
#include <sys/epoll.h>
#include <utility>

namespace hubcast::server {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxReadsPerEvent = 4;  // fairness between the connections of one loop
// Lingering close: how long and how much input is read away after the last answer, so the
// client is not sent a reset (which may destroy the answer) for data it already sent.
constexpr auto kLinger = std::chrono::seconds(2);
constexpr size_t kMaxLingerBytes = 1024 * 1024;
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

using Clock = std::chrono::steady_clock;

// IMF-fixdate, computed at most once a second per thread.
const std::string& HttpDate() {
  thread_local std::time_t last = 0;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != last) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    text = buf;
    last = now;
  }
  return text;
}

bool FrontOwned(std::string_view name, int status) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Date") || (status != 101 && EqualsIgnoreCase(name, "Connection"));
}

}  // namespace

std::string SerializeResponse(const rest::HttpResponse& response, bool head_request, bool close,
                              int request_version_minor) {
  const int status = response.status;
  const bool informational = status >= 100 && status < 200;
  const bool no_body = informational || status == 204 || status == 304;
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + rest::ReasonPhrase(status) + "\r\n";
  for (const auto& [name, value] : response.headers) {
    if (FrontOwned(name, status)) continue;
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      continue;  // never let a value end the head early
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "Date: " + HttpDate() + "\r\n";
  if (!no_body) out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  if (!informational) {
    if (close) {
      out += "Connection: close\r\n";
    } else if (request_version_minor == 0) {
      out += "Connection: keep-alive\r\n";
    }
  }
  out += "\r\n";
  if (!no_body && !head_request) out += response.body;
  return out;
}

HttpConnection::HttpConnection(HttpFront* front, EventLoop* loop,
                               std::unique_ptr<Transport> transport)
    : front_(front),
      loop_(loop),
      transport_(std::move(transport)),
      options_(front->options()),
      parser_(front->options().limits),
      interest_(EPOLLIN) {
  accepted_ = progress_ = idle_since_ = Clock::now();
}

HttpConnection::~HttpConnection() = default;

void HttpConnection::UpdateInterest() {
  if (state_ == State::kClosed) return;
  const bool reading = state_ == State::kReading || state_ == State::kLingering;
  if (reading) reads_paused_ = false;
  uint32_t want = 0;
  // Read interest stays on while a request is served: a client that waits for each answer
  // (an SDK's agent) sends nothing meanwhile, and turning it off and on again cost two
  // epoll_ctl calls per request. It goes off only once bytes do come early (OnEvents).
  if (reading || !reads_paused_) want |= EPOLLIN;
  if (want_write_) want |= EPOLLOUT;
  if (want != interest_) {
    interest_ = want;
    loop_->Modify(transport_->fd(), want);
  }
}

void HttpConnection::OnEvents(uint32_t events) {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();
  if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
    // Reset or fully closed while nothing was being read: nothing left to serve.
    Close();
    return;
  }
  if (events & EPOLLOUT) WriteSome();
  if ((events & EPOLLIN) && state_ != State::kClosed) {
    if (state_ == State::kReading || state_ == State::kLingering) {
      ReadSome();
    } else {
      // Pipelined bytes (or the FIN) while a request is served: they wait in the socket until
      // the answer is written; level-triggered epoll would report them again and again.
      reads_paused_ = true;
      UpdateInterest();
    }
  }
}

void HttpConnection::OnFlush() {
  if (state_ != State::kClosed) WriteSome();
}

void HttpConnection::ReadSome() {
  char buf[kReadChunk];
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    if (state_ != State::kReading && state_ != State::kLingering) break;
    IoResult r = transport_->Read(buf, sizeof buf);
    if (r.status == IoStatus::kOk) {
      if (state_ == State::kLingering) {
        discarded_ += r.bytes;
        if (discarded_ > kMaxLingerBytes) {
          Close();
          return;
        }
        continue;
      }
      Parse(std::string_view(buf, r.bytes));
      if (r.bytes < sizeof buf && !transport_->HasBufferedInput()) break;
      continue;
    }
    if (r.status == IoStatus::kAgain) break;
    // EOF or an error: a client that leaves before its request is complete gets no answer.
    Close();
    return;
  }
  // A TLS handshake or key update may have produced output.
  if (state_ != State::kClosed && transport_->HasPendingOutput()) loop_->RequestFlush(this);
}

void HttpConnection::Parse(std::string_view data) {
  std::string joined;
  if (!in_.empty()) {
    joined = std::move(in_);
    joined.append(data);
    in_.clear();
    data = joined;
  }
  const size_t used = parser_.Feed(data);
  const auto now = Clock::now();
  if (!head_started_ && parser_.started()) {
    head_started_ = true;
    head_start_ = progress_ = now;
  }
  if (parser_.body_received() != body_seen_) {
    body_seen_ = parser_.body_received();
    progress_ = now;
  }
  if (parser_.failed()) {
    const HttpParseError& e = parser_.error();
    Fail(e.status, e.code, e.message);
    return;
  }
  if (parser_.complete()) {
    in_.assign(data.substr(used));
    Dispatch();
    return;
  }
  if (parser_.head_complete() && parser_.expects_continue() && !continue_sent_) {
    // The client waits for this before it sends the body (RFC 9110 10.1.1).
    continue_sent_ = true;
    progress_ = now;
    out_.append(kContinue);
    WriteSome();
  }
}

void HttpConnection::Dispatch() {
  rest::HttpRequest request = parser_.TakeRequest();
  keep_alive_ = parser_.keep_alive();
  method_ = request.method;
  version_minor_ = request.version_minor;
  request.secure = transport_->secure();
  if (request.host.empty()) request.host = LocalAddress(transport_->fd());
  state_ = State::kHandling;
  UpdateInterest();
  auto exchange =
      std::make_shared<HttpExchange>(std::static_pointer_cast<HttpConnection>(shared_from_this()),
                                     loop_, ++sequence_, std::move(request));
  if (!front_->Dispatch(exchange)) {
    // Every worker busy and the queue full: pushed back like any other full queue.
    rest::HttpResponse busy = rest::ErrorResponse(503, "ServiceUnavailable",
                                                  "Too many requests are waiting; retry later.");
    busy.headers.Set("Retry-After", "1");
    exchange->Respond(std::move(busy));
  }
}

void HttpConnection::Answer(uint64_t sequence, rest::HttpResponse response) {
  if (state_ != State::kHandling || sequence != sequence_) return;
  Send(response, !keep_alive_);
}

void HttpConnection::Upgrade(uint64_t sequence, rest::HttpResponse response,
                             HttpExchange::UpgradeDone done) {
  if (state_ != State::kHandling || sequence != sequence_) {
    done(nullptr, {});
    return;
  }
  upgrade_done_ = std::move(done);
  out_ += SerializeResponse(response, false, false, version_minor_);
  state_ = State::kUpgrading;
  progress_ = Clock::now();
  WriteSome();
}

void HttpConnection::Fail(int status, const char* code, const std::string& message) {
  if (!transport_->established()) {
    Close();  // no TLS session: nothing can be said
    return;
  }
  Logger("http").Debug("answering ", status, ": ", message);
  method_.clear();
  version_minor_ = 1;
  Send(rest::ErrorResponse(status, code, message), true);
}

void HttpConnection::Send(const rest::HttpResponse& response, bool close) {
  closing_ = close;
  out_ += SerializeResponse(response, method_ == "HEAD", close, version_minor_);
  state_ = State::kWriting;
  progress_ = Clock::now();
  WriteSome();
}

void HttpConnection::WriteSome() {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();
  bool blocked = false;
  while (out_offset_ < out_.size()) {
    IoResult r = transport_->Write(out_.data() + out_offset_, out_.size() - out_offset_);
    if (r.status == IoStatus::kOk) {
      out_offset_ += r.bytes;
      progress_ = Clock::now();
      continue;
    }
    if (r.status == IoStatus::kAgain) {
      blocked = true;
      break;
    }
    Close();
    return;
  }
  if (!blocked && transport_->HasPendingOutput()) {
    IoResult r = transport_->Flush();
    if (r.status == IoStatus::kError) {
      Close();
      return;
    }
    blocked = transport_->HasPendingOutput();
  }
  want_write_ = blocked;
  if (blocked) {
    UpdateInterest();
    return;
  }
  out_.clear();
  out_offset_ = 0;
  switch (state_) {
    case State::kWriting:
      if (closing_) {
        Linger();
      } else {
        NextRequest();
      }
      return;
    case State::kUpgrading:
      HandOver();
      return;
    default:
      UpdateInterest();
      return;
  }
}

void HttpConnection::NextRequest() {
  parser_.Reset();
  ++served_;
  state_ = State::kReading;
  head_started_ = false;
  continue_sent_ = false;
  body_seen_ = 0;
  method_.clear();
  idle_since_ = Clock::now();
  if (out_.capacity() > kReadChunk) out_ = std::string();
  UpdateInterest();
  if (!in_.empty()) {
    std::string pending = std::move(in_);
    in_.clear();
    Parse(pending);
  }
}

void HttpConnection::Linger() {
  if (!transport_->established()) {
    Close();
    return;
  }
  transport_->ShutdownWrite();
  state_ = State::kLingering;
  linger_until_ = Clock::now() + kLinger;
  in_ = std::string();
  UpdateInterest();
}

void HttpConnection::HandOver() {
  auto self = shared_from_this();
  HttpExchange::UpgradeDone done = std::move(upgrade_done_);
  loop_->Remove(transport_->fd());
  front_->Forget(loop_, this);
  state_ = State::kClosed;
  std::unique_ptr<Transport> transport = std::move(transport_);
  std::string early = std::move(in_);
  done(std::move(transport), std::move(early));
}

void HttpConnection::Close() {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();
  const State was = state_;
  state_ = State::kClosed;
  loop_->Remove(transport_->fd());
  front_->Forget(loop_, this);
  transport_.reset();
  if (was == State::kUpgrading && upgrade_done_) {
    HttpExchange::UpgradeDone done = std::move(upgrade_done_);
    done(nullptr, {});
  }
}

void HttpConnection::OnTick(Clock::time_point now) {
  switch (state_) {
    case State::kReading:
      if (!parser_.started()) {
        // Nothing of a request yet: a fresh connection gets head_timeout, a kept-alive one
        // idle_timeout. Nothing was asked, so nothing is answered.
        const auto deadline =
            served_ == 0 ? accepted_ + options_.head_timeout : idle_since_ + options_.idle_timeout;
        if (now >= deadline) Close();
      } else if (!parser_.head_complete()) {
        if (now >= head_start_ + options_.head_timeout) {
          Fail(408, "RequestTimeout",
               "The request head did not arrive within " +
                   std::to_string(options_.head_timeout.count()) + " s.");
        }
      } else if (now >= progress_ + options_.body_stall_timeout) {
        Fail(408, "RequestTimeout",
             "The request body made no progress for " +
                 std::to_string(options_.body_stall_timeout.count()) + " s.");
      }
      return;
    case State::kWriting:
    case State::kUpgrading:
      if (now >= progress_ + options_.write_timeout) Close();
      return;
    case State::kLingering:
      if (now >= linger_until_) Close();
      return;
    default:
      return;
  }
}

}  // namespace hubcast::server
