// upstream_client_bench: blocking event calls per second from rest::UpstreamClient to one
// keep-alive handler, without Node in the way (tests/bench/upstream_bench.mjs measures the whole
// server with express, which a 2-core machine saturates first). A benchmark, not a test.
//
//   build/tests/bench/upstream_client_bench [--calls-in-flight 100] [--seconds 10]
//
// The handler is in-process: a thread per connection on 127.0.0.1 (port chosen by the kernel)
// that answers every request "200 ok" and keeps the connection. The bench keeps N blocking
// (non-retryable) calls in flight, each `done` starting the next, for the given time, then
// prints calls/s, the connections the handler accepted, and the sockets on the handler's port
// in TIME_WAIT (/proc/net/tcp): a client that reuses its connections opens N and leaves none.
#include "rest/upstream_client.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

class KeepAliveHandler {
 public:
  KeepAliveHandler() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 1024);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~KeepAliveHandler() {
    shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    close(fd_);
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      for (int c : conns_) shutdown(c, SHUT_RDWR);
      workers.swap(workers_);
    }
    for (std::thread& t : workers) t.join();
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void Accept() {
    while (true) {
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++accepted_;
      std::lock_guard lock(mu_);
      conns_.push_back(c);
      workers_.emplace_back([this, c] {
        Serve(c);
        // Closed once the client closed: the client's end is the one left in TIME_WAIT.
        std::lock_guard lock(mu_);
        std::erase(conns_, c);
        close(c);
      });
    }
  }
  static void Serve(int c) {
    static const std::string kAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    std::string buf;
    char chunk[16384];
    while (true) {
      const size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) {
        const ssize_t n = recv(c, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buf.append(chunk, static_cast<size_t>(n));
        continue;
      }
      size_t length = 0;
      if (size_t at = buf.find("Content-Length: "); at != std::string::npos && at < end) {
        length = std::strtoul(buf.c_str() + at + 16, nullptr, 10);
      }
      if (buf.size() < end + 4 + length) {
        const ssize_t n = recv(c, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buf.append(chunk, static_cast<size_t>(n));
        continue;
      }
      buf.erase(0, end + 4 + length);
      if (send(c, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL) < 0) return;
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
};

// Sockets in TIME_WAIT (state 06) whose local or remote port is `port`.
int TimeWait(int port) {
  char hex[8];
  std::snprintf(hex, sizeof hex, ":%04X", port);
  int n = 0;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state;
      fields >> sl >> local >> remote >> state;
      if (state == "06" && (local.ends_with(hex) || remote.ends_with(hex))) ++n;
    }
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  int in_flight = 100;
  int seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--calls-in-flight") {
      in_flight = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--seconds") {
      seconds = std::max(1, std::atoi(argv[i + 1]));
    } else {
      std::fprintf(stderr, "unknown option %s (--calls-in-flight N, --seconds S)\n", argv[i]);
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  KeepAliveHandler handler;
  hubcast::rest::UpstreamOptions options;
  options.access_keys = {"bench-access-key"};
  options.origin = "bench.example";
  std::unique_ptr<hubcast::rest::UpstreamClient> client = hubcast::rest::NewUpstreamClient(options);

  hubcast::rest::UpstreamRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(handler.port()) + "/api/webpubsub/hubs/h/";
  request.ce_type = "azure.webpubsub.user.message";
  request.event_name = "message";
  request.hub = "h";
  request.connection_id = "bench-connection";
  request.event_id = "1";
  request.content_type = "text/plain";
  request.body = "hello";

  std::atomic<bool> running{true};
  std::atomic<uint64_t> ok{0}, failed{0};
  std::atomic<int> outstanding{0};
  std::function<void()> next = [&] {
    ++outstanding;
    client->Call(request, [&](hubcast::rest::UpstreamResponse r) {
      (r.ok() ? ok : failed)++;
      if (running.load()) next();
      --outstanding;
    });
  };
  const auto start = Clock::now();
  for (int i = 0; i < in_flight; ++i) next();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  running = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const uint64_t done = ok.load();
  const int time_wait = TimeWait(handler.port());
  while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::printf(
      "%d calls in flight, %d s: %llu blocking calls = %.0f calls/s (%llu failed); the handler "
      "accepted %d connections; %d sockets on its port in TIME_WAIT\n",
      in_flight, seconds, static_cast<unsigned long long>(done), done / elapsed,
      static_cast<unsigned long long>(failed.load()), handler.accepted(), time_wait);
  client.reset();
  return 0;
}
