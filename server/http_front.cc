#include "server/http_front.h"

#include "base/log.h"
#include "base/worker_pool.h"
#include "server/http_connection.h"
#include "server/tls.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hubcast::server {

// ---------------------------------------------------------------------------------------------
// HttpExchange

HttpExchange::HttpExchange(std::weak_ptr<HttpConnection> connection, EventLoop* loop,
                           uint64_t sequence, rest::HttpRequest request)
    : connection_(std::move(connection)),
      loop_(loop),
      sequence_(sequence),
      request_(std::move(request)) {}

HttpExchange::~HttpExchange() {
  if (!answered_.load()) {
    Respond(rest::ErrorResponse(500, "InternalServerError", "The request was not answered."));
  }
}

void HttpExchange::Respond(rest::HttpResponse response) {
  if (!Claim()) return;
  loop_->Post([weak = connection_, sequence = sequence_, response = std::move(response)] {
    if (auto c = weak.lock()) c->Answer(sequence, response);
  });
}

void HttpExchange::Upgrade(rest::HttpResponse response, UpgradeDone done) {
  if (!Claim()) return;
  loop_->Post([weak = connection_, sequence = sequence_, response = std::move(response),
               done = std::move(done)] {
    if (auto c = weak.lock()) {
      c->Upgrade(sequence, response, done);
    } else {
      done(nullptr, {});
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Listener: the shared listening socket, watched by every loop; whichever wakes accepts.

class HttpFront::Listener final : public IoHandler {
 public:
  Listener(HttpFront* front, EventLoop* loop, int fd) : front_(front), loop_(loop), fd_(fd) {}

  void OnEvents(uint32_t) override {
    for (int i = 0; i < kMaxAcceptsPerEvent; ++i) {
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client >= 0) {
        front_->Adopt(loop_, client);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of descriptors or memory: stop watching until the next tick instead of spinning
      // on a socket that stays readable.
      if (!paused_) {
        Logger("http").Warn("accept: ", std::strerror(errno), "; pausing accepts for a second");
      }
      paused_ = true;
      loop_->Modify(fd_, 0);
      return;
    }
  }

  void OnTick(std::chrono::steady_clock::time_point) override {
    if (!paused_) return;
    paused_ = false;
    loop_->Modify(fd_, EPOLLIN);
  }

 private:
  static constexpr int kMaxAcceptsPerEvent = 64;
  HttpFront* front_;
  EventLoop* loop_;
  int fd_;
  bool paused_ = false;
};

// ---------------------------------------------------------------------------------------------
// HttpFront

HttpFront::HttpFront(HttpFrontOptions options, std::vector<EventLoop*> loops, HttpHandler handler,
                     HttpLoopHandler loop_handler)
    : options_(std::move(options)),
      loops_(std::move(loops)),
      handler_(std::move(handler)),
      loop_handler_(std::move(loop_handler)) {
  connections_.resize(loops_.size());
}

HttpFront::~HttpFront() { Stop(); }

Result<int> HttpFront::Start() {
  // A deep backlog: thousands of clients reconnect at once after a restart.
  auto listening = ListenTcp(options_.bind, options_.port, 4096, /*nonblocking=*/true);
  if (!listening.ok()) return listening.status();
  listen_fd_ = listening->fd;
  const int bound_port = listening->port;

  workers_ = std::make_unique<WorkerPool>(options_.workers, options_.max_queued_requests, "http");
  for (EventLoop* loop : loops_) {
    auto listener = std::make_shared<Listener>(this, loop, listen_fd_);
    listeners_.push_back(listener);
    loop->RunAndWait([&] { loop->Add(listen_fd_, EPOLLIN, listener); });
  }
  return bound_port;
}

void HttpFront::Stop() {
  if (stopped_.exchange(true)) return;
  if (listen_fd_ >= 0) {
    for (EventLoop* loop : loops_) {
      loop->RunAndWait([&] {
        loop->Remove(listen_fd_);
        std::unordered_set<HttpConnection*> open = connections_[loop->index()];
        for (HttpConnection* c : open) c->Close();
      });
    }
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  if (workers_) workers_->Stop();
}

void HttpFront::Adopt(EventLoop* loop, int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::unique_ptr<Transport> transport =
      options_.tls ? options_.tls->NewTransport(fd) : NewPlainTransport(fd);
  if (!transport) return;
  auto connection = std::make_shared<HttpConnection>(this, loop, std::move(transport));
  if (!loop->Add(fd, EPOLLIN, connection)) return;  // the connection closes the socket
  connections_[loop->index()].insert(connection.get());
}

void HttpFront::Forget(EventLoop* loop, HttpConnection* connection) {
  connections_[loop->index()].erase(connection);
}

bool HttpFront::Dispatch(std::shared_ptr<HttpExchange> exchange) {
  if (stopped_.load()) return false;
  if (loop_handler_ && loop_handler_(exchange)) return true;
  return workers_->TrySubmit([this, exchange = std::move(exchange)] { handler_(exchange); });
}

}  // namespace hubcast::server
