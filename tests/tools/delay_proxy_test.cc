// delay_proxy, the simulated WAN link of the multi-region tests, run as a real process between
// two sockets this test holds: each chunk arrives at least the delay after it was sent, in
// order, in both directions; large transfers arrive intact; a receiver that does not read stops
// the proxy reading its sender (bounded buffering); FIN, reset and a refused target are passed on.

#include <gtest/gtest.h>

#include "tests/integration/process_util.h"
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace hubcast::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kIoDeadline = std::chrono::seconds(60);

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// A listening socket on 127.0.0.1:0; `port` receives the bound port. A `receive_buffer` is
// inherited by the accepted sockets (and turns the kernel's autotuning off for them).
Fd Listen(int* port, int receive_buffer = 0) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (receive_buffer > 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in addr = Loopback(0);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd.get(), 16) != 0) {
    return Fd();
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

Fd ConnectTo(int port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Fd();
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool WaitFor(int fd, short events, milliseconds timeout) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

Fd Accept(int listener) {
  if (!WaitFor(listener, POLLIN, milliseconds(10000))) return Fd();
  return Fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool SendAll(int fd, const std::string& data) { return SendAll(fd, data.data(), data.size()); }

// What one recv() call on a readable socket gave: bytes, EOF or an error.
struct Received {
  std::string bytes;
  bool eof = false;
  int error = 0;  // errno of a failed recv, or ETIMEDOUT when nothing came
};

// Reads until `size` bytes arrived, EOF, an error or the deadline.
Received ReceiveExactly(int fd, size_t size, Clock::duration timeout = kIoDeadline) {
  Received result;
  Clock::time_point deadline = Clock::now() + timeout;
  std::vector<char> buffer(256 * 1024);
  while (result.bytes.size() < size) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !WaitFor(fd, POLLIN, left)) {
      result.error = ETIMEDOUT;
      return result;
    }
    ssize_t n = ::recv(fd, buffer.data(), std::min(buffer.size(), size - result.bytes.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result.error = errno;
      return result;
    }
    if (n == 0) {
      result.eof = true;
      return result;
    }
    result.bytes.append(buffer.data(), static_cast<size_t>(n));
  }
  return result;
}

// Reads until EOF or an error (or the deadline).
Received ReceiveToEnd(int fd) { return ReceiveExactly(fd, SIZE_MAX); }

// A reproducible byte pattern, different per seed, so misplaced or lost bytes are caught.
std::string Pattern(size_t size, uint64_t seed) {
  std::string bytes(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    bytes[i] = static_cast<char>(x);
  }
  return bytes;
}

std::string DelayProxyBinary() {
  const char* value = std::getenv("DELAY_PROXY");
  return value != nullptr && *value != '\0' ? value : DELAY_PROXY_PATH;
}

class DelayProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (std::filesystem::temp_directory_path() / "hubcast-delay-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    reporter_.emplace(dir_);
    target_ = Listen(&target_port_);
    ASSERT_GE(target_.get(), 0);
  }

  // Starts the proxy in front of the test's target socket and returns its port (0 on failure).
  int StartProxy(int delay_ms, std::vector<std::string> extra = {}) {
    return StartProxyTo("127.0.0.1:" + std::to_string(target_port_), delay_ms, std::move(extra));
  }

  int StartProxyTo(const std::string& to, int delay_ms, std::vector<std::string> extra) {
    SpawnOptions options;
    options.binary = DelayProxyBinary();
    options.args = {"--listen-port", "0", "--ports-file", (dir_ / "proxy.port").string(),
                    "--to",          to,  "--delay-ms",   std::to_string(delay_ms)};
    options.args.insert(options.args.end(), extra.begin(), extra.end());
    options.log_path = (dir_ / "delay_proxy.log").string();
    std::string error;
    proxy_ = ChildProcess::Spawn(options, &error);
    if (proxy_ == nullptr) {
      ADD_FAILURE() << error;
      return 0;
    }
    reporter_->Add("delay_proxy", options.log_path);
    auto port =
        WaitForPortFile((dir_ / "proxy.port").string(), std::chrono::seconds(20), proxy_.get());
    if (!port) ADD_FAILURE() << "delay_proxy did not write its port";
    return port.value_or(0);
  }

  // A client connected through the proxy and the target's end of that connection.
  struct Link {
    Fd client;
    Fd target;
  };

  Link Connect(int proxy_port) {
    Link link;
    link.client = ConnectTo(proxy_port);
    EXPECT_GE(link.client.get(), 0) << "connect to the proxy: " << std::strerror(errno);
    link.target = Accept(target_.get());
    EXPECT_GE(link.target.get(), 0) << "the proxy did not connect to the target";
    return link;
  }

  std::filesystem::path dir_;
  std::optional<FailureReporter> reporter_;  // destroyed after the proxy: complete logs
  Fd target_;
  int target_port_ = 0;
  std::unique_ptr<ChildProcess> proxy_;
};

TEST_F(DelayProxyTest, DelaysEveryChunkByAtLeastTheDelayInEachDirection) {
  constexpr milliseconds kDelay(150);
  int port = StartProxy(static_cast<int>(kDelay.count()));
  ASSERT_NE(port, 0);
  Link link = Connect(port);
  ASSERT_GE(link.target.get(), 0);

  for (int round = 0; round < 3; ++round) {
    Clock::time_point sent = Clock::now();
    ASSERT_TRUE(SendAll(link.client.get(), "ping"));
    Received ping = ReceiveExactly(link.target.get(), 4);
    Clock::time_point ping_arrived = Clock::now();
    ASSERT_EQ(ping.bytes, "ping") << std::strerror(ping.error);
    EXPECT_GE(ping_arrived - sent, kDelay) << "client -> target, round " << round;

    sent = Clock::now();
    ASSERT_TRUE(SendAll(link.target.get(), "pong"));
    Received pong = ReceiveExactly(link.client.get(), 4);
    Clock::time_point pong_arrived = Clock::now();
    ASSERT_EQ(pong.bytes, "pong") << std::strerror(pong.error);
    EXPECT_GE(pong_arrived - sent, kDelay) << "target -> client, round " << round;
  }
}

TEST_F(DelayProxyTest, KeepsTheOrderOfManySmallWritesInBothDirectionsAtOnce) {
  int port = StartProxy(20);
  ASSERT_NE(port, 0);
  Link link = Connect(port);
  ASSERT_GE(link.target.get(), 0);

  auto messages = [](char tag) {
    std::vector<std::string> all;
    for (int i = 0; i < 3000; ++i) all.push_back(tag + std::to_string(i) + ";");
    return all;
  };
  auto joined = [](const std::vector<std::string>& all) {
    std::string text;
    for (const std::string& m : all) text += m;
    return text;
  };
  std::vector<std::string> up = messages('u'), down = messages('d');
  // One send() per message, from both ends at the same time.
  std::thread up_sender([&] {
    for (const std::string& m : up) SendAll(link.client.get(), m);
  });
  std::thread down_sender([&] {
    for (const std::string& m : down) SendAll(link.target.get(), m);
  });
  Received at_client;
  std::thread down_receiver(
      [&] { at_client = ReceiveExactly(link.client.get(), joined(down).size()); });
  Received at_target = ReceiveExactly(link.target.get(), joined(up).size());
  up_sender.join();
  down_sender.join();
  down_receiver.join();
  EXPECT_TRUE(at_target.bytes == joined(up)) << "client -> target bytes reordered or lost";
  EXPECT_TRUE(at_client.bytes == joined(down)) << "target -> client bytes reordered or lost";
}

TEST_F(DelayProxyTest, LargeTransfersArriveIntactBothWaysThroughASmallBound) {
  constexpr size_t kSize = 24u << 20;
  // 128 KiB pending per direction: the transfer pauses and resumes reading many times.
  int port = StartProxy(5, {"--max-pending-kib", "128"});
  ASSERT_NE(port, 0);
  Link link = Connect(port);
  ASSERT_GE(link.target.get(), 0);

  const std::string up = Pattern(kSize, 1), down = Pattern(kSize, 2);
  std::thread up_sender([&] {
    SendAll(link.client.get(), up);
    ::shutdown(link.client.get(), SHUT_WR);
  });
  std::thread down_sender([&] {
    SendAll(link.target.get(), down);
    ::shutdown(link.target.get(), SHUT_WR);
  });
  Received at_client;
  std::thread down_receiver([&] { at_client = ReceiveToEnd(link.client.get()); });
  Received at_target = ReceiveToEnd(link.target.get());
  up_sender.join();
  down_sender.join();
  down_receiver.join();

  EXPECT_TRUE(at_target.eof) << "no FIN at the target: " << std::strerror(at_target.error);
  EXPECT_TRUE(at_client.eof) << "no FIN at the client: " << std::strerror(at_client.error);
  ASSERT_EQ(at_target.bytes.size(), kSize);
  ASSERT_EQ(at_client.bytes.size(), kSize);
  EXPECT_TRUE(at_target.bytes == up) << "client -> target bytes differ";
  EXPECT_TRUE(at_client.bytes == down) << "target -> client bytes differ";
}

TEST_F(DelayProxyTest, StopsReadingASenderWhoseReceiverDoesNotRead) {
  // Without the bound the proxy would take in all of kOffered; with it, what the client manages
  // to write is the bound plus the socket buffers along the way: small ones at both ends here,
  // the proxy's own (kernel-tuned, a few MiB) in the middle.
  constexpr size_t kOffered = 256u << 20;
  constexpr size_t kMostAccepted = 64u << 20;
  constexpr int kSmallBuffer = 64 * 1024;
  target_ = Listen(&target_port_, kSmallBuffer);
  ASSERT_GE(target_.get(), 0);
  int port = StartProxy(1, {"--max-pending-kib", "1024"});
  ASSERT_NE(port, 0);
  Link link = Connect(port);
  ASSERT_GE(link.target.get(), 0);
  ::setsockopt(link.client.get(), SOL_SOCKET, SO_SNDBUF, &kSmallBuffer, sizeof kSmallBuffer);

  const std::string block = Pattern(1 << 20, 3);
  size_t written = 0;
  while (written < kOffered) {
    if (!WaitFor(link.client.get(), POLLOUT, milliseconds(2000))) break;  // the proxy stopped
    ssize_t n = ::send(link.client.get(), block.data() + written % block.size(),
                       block.size() - written % block.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    ASSERT_GT(n, 0) << std::strerror(errno);
    written += static_cast<size_t>(n);
  }
  EXPECT_LT(written, kMostAccepted) << "the proxy kept reading a sender nobody drained";
  ::shutdown(link.client.get(), SHUT_WR);

  // Everything written arrives, intact, once the target reads.
  Received at_target = ReceiveToEnd(link.target.get());
  EXPECT_TRUE(at_target.eof) << std::strerror(at_target.error);
  ASSERT_EQ(at_target.bytes.size(), written);
  for (size_t offset = 0; offset < written; offset += block.size()) {
    size_t length = std::min(block.size(), written - offset);
    ASSERT_EQ(0, std::memcmp(at_target.bytes.data() + offset, block.data(), length))
        << "bytes differ in the MiB at " << offset;
  }
}

TEST_F(DelayProxyTest, PassesOnAHalfCloseAndKeepsTheOtherDirectionOpen) {
  int port = StartProxy(30);
  ASSERT_NE(port, 0);
  Link link = Connect(port);
  ASSERT_GE(link.target.get(), 0);

  ASSERT_TRUE(SendAll(link.client.get(), "request"));
  ASSERT_EQ(::shutdown(link.client.get(), SHUT_WR), 0);
  Received request = ReceiveToEnd(link.target.get());
  EXPECT_EQ(request.bytes, "request");
  EXPECT_TRUE(request.eof) << "the client's FIN did not reach the target";

  // The target still answers on its half, then closes it.
  ASSERT_TRUE(SendAll(link.target.get(), "late answer"));
  ASSERT_EQ(::shutdown(link.target.get(), SHUT_WR), 0);
  Received answer = ReceiveToEnd(link.client.get());
  EXPECT_EQ(answer.bytes, "late answer");
  EXPECT_TRUE(answer.eof) << "the target's FIN did not reach the client";
}

TEST_F(DelayProxyTest, PassesOnAReset) {
  int port = StartProxy(30);
  ASSERT_NE(port, 0);
  Link link = Connect(port);
  ASSERT_GE(link.target.get(), 0);

  linger abort{1, 0};
  ::setsockopt(link.target.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  link.target.Reset();
  Received at_client = ReceiveToEnd(link.client.get());
  EXPECT_EQ(at_client.error, ECONNRESET) << "got " << (at_client.eof ? "EOF" : "timeout");
}

TEST_F(DelayProxyTest, ClosesTheClientWhenTheTargetRefuses) {
  int closed_port = 0;
  { Fd gone = Listen(&closed_port); }  // a port nobody listens on any more
  int port = StartProxyTo("127.0.0.1:" + std::to_string(closed_port), 10, {});
  ASSERT_NE(port, 0);
  Fd client = ConnectTo(port);
  ASSERT_GE(client.get(), 0);
  Received result = ReceiveToEnd(client.get());
  EXPECT_TRUE(result.eof || result.error == ECONNRESET)
      << "the client was left open: " << std::strerror(result.error);
  EXPECT_TRUE(proxy_->Running()) << "a refused target must not stop the proxy";
}

TEST_F(DelayProxyTest, RejectsBadArgumentsWithOneLineAndExitCode2) {
  const std::vector<std::vector<std::string>> bad = {
      {"--listen-port", "0", "--to", "example:1", "--delay-ms", "5"},
      {"--listen-port", "0", "--to", "127.0.0.1:4222", "--delay-ms", "-1"},
      {"--listen-port", "70000", "--to", "127.0.0.1:4222", "--delay-ms", "5"},
      {"--listen-port", "0", "--delay-ms", "5"},
      {"--listen-port", "0", "--to", "127.0.0.1:4222", "--delay-ms", "5", "--jitter", "1"},
  };
  for (const auto& args : bad) {
    SpawnOptions options;
    options.binary = DelayProxyBinary();
    options.args = args;
    options.log_path = (dir_ / "bad.log").string();
    std::string error;
    auto child = ChildProcess::Spawn(options, &error);
    ASSERT_NE(child, nullptr) << error;
    auto status = child->WaitForExit(std::chrono::seconds(20));
    ASSERT_TRUE(status.has_value()) << "delay_proxy kept running with bad arguments";
    EXPECT_TRUE(status->exited && status->code == 2) << status->ToString();
    std::string log = child->ReadLog();
    EXPECT_EQ(log.rfind("delay_proxy: ", 0), 0u) << log;
  }
}

}  // namespace
}  // namespace hubcast::testing
