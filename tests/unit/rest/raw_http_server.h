// RawHttpServer: a test HTTP server on 127.0.0.1 (port chosen by the kernel) that does exactly
// what a test scripts, byte for byte: how it answers, whether it keeps the connection, closes
// it unanswered or never answers. It counts accepted connections and records every request,
// so tests can prove how many TCP connections a client used and how often a request arrived.
// Optionally TLS (OpenSSL, blocking) with a certificate and key the test made.
//
// Thread-safety: one thread accepts, one thread per connection runs the script; the
// accessors may be called from any thread. The destructor closes every socket and joins.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace hubcast::rest::rawhttp {

struct RawRequest {
  std::string head;  // request line and headers
  std::string body;
  int connection = 0;  // 1 for the first accepted connection, 2 for the next, ...
  // The value of the first header `name` (case-insensitive), or "".
  std::string Header(const std::string& name) const {
    size_t at = head.find("\r\n");
    while (at != std::string::npos) {
      const size_t start = at + 2;
      const size_t end = head.find("\r\n", start);
      const std::string line = head.substr(start, end - start);
      const size_t colon = line.find(':');
      if (colon == name.size() &&
          std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          })) {
        const size_t value = line.find_first_not_of(" \t", colon + 1);
        return value == std::string::npos ? "" : line.substr(value);
      }
      at = end;
    }
    return "";
  }
};

class RawConnection {
 public:
  RawConnection(int fd, SSL* ssl, int number) : fd_(fd), ssl_(ssl), number_(number) {}
  int number() const { return number_; }

  // The next whole request (head and Content-Length body); nullopt on EOF, error or timeout.
  std::optional<RawRequest> ReadRequest(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const size_t end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        RawRequest r;
        r.head = buf_.substr(0, end + 2);
        r.connection = number_;
        size_t length = 0;
        const std::string cl = r.Header("Content-Length");
        if (!cl.empty()) length = std::stoul(cl);
        if (buf_.size() >= end + 4 + length) {
          r.body = buf_.substr(end + 4, length);
          buf_.erase(0, end + 4 + length);
          return r;
        }
      }
      if (!ReadSome(deadline)) return std::nullopt;
    }
  }

  bool Write(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n =
          ssl_ ? SSL_write(ssl_, bytes.data() + done, static_cast<int>(bytes.size() - done))
               : send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // True when the peer closed the connection within `timeout` (bytes it sends are dropped).
  bool WaitForPeerClose(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (ReadSome(deadline)) buf_.clear();
    return eof_;
  }

 private:
  bool ReadSome(std::chrono::steady_clock::time_point deadline) {
    if (!ssl_ || SSL_pending(ssl_) == 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    }
    char chunk[16384];
    const ssize_t n =
        ssl_ ? SSL_read(ssl_, chunk, sizeof chunk) : recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  SSL* ssl_;
  int number_;
  std::string buf_;
  bool eof_ = false;
};

class RawHttpServer;
// The script: runs once per accepted connection; the connection closes when it returns.
using RawScript = std::function<void(RawHttpServer&, RawConnection&)>;

class RawHttpServer {
 public:
  // tls: a server context whose certificate the test made (nullptr: plain TCP). Owned.
  explicit RawHttpServer(RawScript script, SSL_CTX* tls = nullptr)
      : script_(std::move(script)), tls_(tls) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 128) != 0) {
      return;
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~RawHttpServer() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    close(listen_fd_);
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);  // ends scripts waiting for bytes
      workers.swap(workers_);
    }
    for (std::thread& t : workers) t.join();
    if (tls_) SSL_CTX_free(tls_);
  }

  uint16_t port() const { return port_; }
  std::string Url(const std::string& path = "/") const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  int accepted() const { return accepted_.load(); }

  // Scripts call it for every request they read, so tests can count arrivals.
  void Record(const RawRequest& r) {
    std::lock_guard lock(mu_);
    requests_.push_back(r);
    cv_.notify_all();
  }
  std::vector<RawRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // How many recorded requests carry header `name` with `value`.
  int CountWith(const std::string& name, const std::string& value) const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const RawRequest& r : requests_) n += r.Header(name) == value ? 1 : 0;
    return n;
  }
  // Scripts signal milestones (e.g. "closed"); tests wait for them.
  void Signal(const std::string& what) {
    std::lock_guard lock(mu_);
    signals_.push_back(what);
    cv_.notify_all();
  }
  bool WaitFor(const std::string& what,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const std::string& s : signals_) {
        if (s == what) return true;
      }
      return false;
    });
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      const int number = ++accepted_;
      std::lock_guard lock(mu_);
      open_fds_.push_back(fd);
      workers_.emplace_back([this, fd, number] { Serve(fd, number); });
    }
  }

  void Serve(int fd, int number) {
    SSL* ssl = nullptr;
    if (tls_) {
      ssl = SSL_new(tls_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        Signal("handshake failed");
        Close(fd);
        return;
      }
    }
    RawConnection conn(fd, ssl, number);
    script_(*this, conn);
    if (ssl) {
      SSL_shutdown(ssl);
      SSL_free(ssl);
      ERR_clear_error();
    }
    Close(fd);
    Signal("closed " + std::to_string(number));
  }

  void Close(int fd) {
    std::lock_guard lock(mu_);
    std::erase(open_fds_, fd);
    close(fd);
  }

  RawScript script_;
  SSL_CTX* tls_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> open_fds_;
  std::vector<std::thread> workers_;
  std::vector<RawRequest> requests_;
  std::vector<std::string> signals_;
};

// A keep-alive answer with a Content-Length body.
inline std::string Answer(const std::string& body, const std::string& extra_headers = "",
                          int status = 200) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" +
         body;
}

// The script of a well-behaved keep-alive server: answers "ok" to every request.
inline void KeepAlive(RawHttpServer& server, RawConnection& c) {
  while (std::optional<RawRequest> r = c.ReadRequest()) {
    server.Record(*r);
    if (!c.Write(Answer("ok"))) return;
  }
}

}  // namespace hubcast::rest::rawhttp
