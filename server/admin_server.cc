#include "server/admin_server.h"

#include "base/log.h"
#include "server/http_parser.h"
#include "server/transport.h"

#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hubcast::server {
namespace {

constexpr int kRequestSeconds = 10;

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Head(const rest::HttpResponse& r, bool streamed, size_t body_size) {
  std::string h =
      "HTTP/1.1 " + std::to_string(r.status) + " " + rest::ReasonPhrase(r.status) + "\r\n";
  for (const auto& [name, value] : r.headers) h += name + ": " + value + "\r\n";
  if (!streamed) h += "Content-Length: " + std::to_string(body_size) + "\r\n";
  h += "Connection: close\r\n\r\n";
  return h;
}

class SocketStream : public AdminStream {
 public:
  SocketStream(int fd, const std::atomic<bool>& stopping) : fd_(fd), stopping_(stopping) {}
  bool Write(std::string_view bytes) override { return !stopping() && SendAll(fd_, bytes); }
  bool stopping() const override { return stopping_.load(std::memory_order_acquire); }

 private:
  int fd_;
  const std::atomic<bool>& stopping_;
};

}  // namespace

AdminServer::AdminServer(AdminHandler handler) : handler_(std::move(handler)) {}

AdminServer::~AdminServer() { Stop(); }

Result<int> AdminServer::Start(const std::string& host, int port) {
  auto listening = ListenTcp(host, port, 64, /*nonblocking=*/false);
  if (!listening.ok()) return listening.status();
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    ::close(listening->fd);
    return Status::Unavailable("cannot create the admin listener's wake-up pipe");
  }
  listen_fd_ = listening->fd;
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return listening->port;
}

void AdminServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (acceptor_.joinable()) acceptor_.join();
  std::unique_lock lock(mu_);
  // Wakes connection threads blocked in a read or a write; each closes its own socket.
  for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
  idle_cv_.wait(lock, [&] { return open_.empty(); });
  lock.unlock();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int& fd : wake_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  listen_fd_ = -1;
}

void AdminServer::AcceptLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
  while (!stopping_.load(std::memory_order_acquire)) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval timeout{kRequestSeconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::lock_guard lock(mu_);
    if (open_.size() >= kMaxConnections) {
      rest::HttpResponse busy =
          rest::ErrorResponse(503, "ServiceUnavailable", "Too many admin connections.");
      busy.headers.Set("Content-Type", "application/json");
      SendAll(fd, Head(busy, false, busy.body.size()) + busy.body);
      ::close(fd);
      continue;
    }
    open_.insert(fd);
    std::thread([this, fd] { Serve(fd); }).detach();
  }
}

void AdminServer::Serve(int fd) {
  HttpRequestParser parser;
  char buf[8192];
  while (!parser.complete() && !parser.failed()) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t used = 0;
    while (used < static_cast<size_t>(n) && !parser.complete() && !parser.failed()) {
      used += parser.Feed(std::string_view(buf + used, static_cast<size_t>(n) - used));
    }
  }
  if (parser.failed()) {
    rest::HttpResponse r =
        rest::ErrorResponse(parser.error().status, parser.error().code, parser.error().message);
    SendAll(fd, Head(r, false, r.body.size()) + r.body);
  } else if (parser.complete()) {
    rest::HttpRequest request = parser.TakeRequest();
    AdminAnswer answer;
    try {
      answer = handler_(request);
    } catch (const std::exception& e) {
      Logger("admin").Error("request failed: ", e.what());
      answer.response = rest::ErrorResponse(500, "InternalServerError", "The request failed.");
    }
    const bool head_only = request.method == "HEAD";
    if (answer.stream && answer.response.status == 200 && !head_only) {
      if (SendAll(fd, Head(answer.response, true, 0))) {
        // A stream ends on its own schedule: no more send timeout than a blocked client needs.
        SocketStream stream(fd, stopping_);
        answer.stream(stream);
      }
    } else {
      const std::string& body = answer.response.body;
      SendAll(fd, Head(answer.response, false, body.size()) + (head_only ? "" : body));
    }
  }
  ::shutdown(fd, SHUT_WR);
  std::lock_guard lock(mu_);
  ::close(fd);
  open_.erase(fd);
  idle_cv_.notify_all();
}

}  // namespace hubcast::server
