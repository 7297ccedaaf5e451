// The lifecycle of a `hubcast serve` process under traffic: SIGHUP reloads of the hub settings
// while event-handler calls are made, and SIGTERM while blocking event-handler calls hang on a
// slow handler. Both must end in a clean exit (code 0), and with the sanitizer build
// (HUBCAST_BINARY pointing at build-asan/server/hubcast) with no report in the log.
//
// The event handler is a small HTTP server of this file on 127.0.0.1:0: it validates at once,
// answers the connects of users not named "slow-*" at once, and holds every other call until
// the test ends (or for `delay` when set).

#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/ws_client.h"
#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace hubcast::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// The event handler: one thread per connection, keep-alive, Content-Length bodies only.
class SlowHandler {
 public:
  // `delay`: how long calls other than validation and quick connects wait; zero = until Stop.
  explicit SlowHandler(milliseconds delay = milliseconds(0)) : delay_(delay) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 128) != 0) {
      ADD_FAILURE() << "handler listen: " << std::strerror(errno);
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~SlowHandler() { Stop(); }

  int port() const { return port_; }
  // Calls that reached the handler (validations excluded).
  int calls() const { return calls_.load(); }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    ::shutdown(fd_, SHUT_RDWR);
    if (accept_.joinable()) accept_.join();
    ::close(fd_);
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      workers.swap(workers_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers) t.join();
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::lock_guard lock(mu_);
      if (stopping_) {
        ::close(c);
        return;
      }
      open_.push_back(c);
      workers_.emplace_back([this, c] { Serve(c); });
    }
  }

  void Serve(int c) {
    std::string buffer;
    for (;;) {
      size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadSome(c, &buffer)) return Close(c);
      }
      std::string head = buffer.substr(0, head_end + 4);
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      size_t length = 0;
      if (size_t at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
        length = std::stoul(lower.substr(at + 17));
      }
      while (buffer.size() < head_end + 4 + length) {
        if (!ReadSome(c, &buffer)) return Close(c);
      }
      buffer.erase(0, head_end + 4 + length);
      const bool validation = head.rfind("OPTIONS ", 0) == 0 || head.rfind("GET ", 0) == 0;
      const bool quick_connect = HeaderValue(lower, "ce-type") == "azure.webpubsub.sys.connect" &&
                                 HeaderValue(lower, "ce-userid").rfind("slow-", 0) != 0;
      if (!validation) ++calls_;
      if (!validation && !quick_connect && !Wait()) return Close(c);
      const std::string body = validation ? "" : "{}";
      std::string answer =
          "HTTP/1.1 200 OK\r\nWebHook-Allowed-Origin: *\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      if (::send(c, answer.data(), answer.size(), MSG_NOSIGNAL) < 0) return Close(c);
    }
  }

  // Holds a call; false when the handler stops first.
  bool Wait() {
    std::unique_lock lock(mu_);
    if (delay_.count() == 0) {
      cv_.wait(lock, [this] { return stopping_; });
      return false;
    }
    return !cv_.wait_for(lock, delay_, [this] { return stopping_; });
  }

  // The value of header `name` in a lower-cased head, whatever the space after the colon.
  static std::string HeaderValue(const std::string& head, const std::string& name) {
    const size_t at = head.find("\r\n" + name + ":");
    if (at == std::string::npos) return "";
    size_t start = at + 3 + name.size();
    while (start < head.size() && head[start] == ' ') ++start;
    return head.substr(start, head.find("\r\n", start) - start);
  }

  bool ReadSome(int c, std::string* buffer) {
    char chunk[4096];
    ssize_t n = ::recv(c, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
    return true;
  }

  void Close(int c) {
    std::lock_guard lock(mu_);
    open_.erase(std::remove(open_.begin(), open_.end(), c), open_.end());
    ::close(c);
  }

  const milliseconds delay_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> calls_{0};
  std::thread accept_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::vector<int> open_;
};

// What a sanitizer writes when it finds something (ASan, LSan, UBSan).
bool HasSanitizerReport(const std::string& log) {
  return log.find("AddressSanitizer") != std::string::npos ||
         log.find("LeakSanitizer") != std::string::npos ||
         log.find("runtime error:") != std::string::npos;
}

class Lifecycle : public ServerFixture {
 protected:
  std::string ClientTarget(int port, const std::string& user) const {
    JwtClaims claims;
    claims.audience = "http://127.0.0.1:" + std::to_string(port) + "/client/hubs/h";
    claims.subject = user;
    return "/client/hubs/h?access_token=" + MintJwt(kAccessKey, claims);
  }
  std::string HandlerFlag(const SlowHandler& handler) const {
    return "*=http://127.0.0.1:" + std::to_string(handler.port()) +
           "/{hub}/{event};user=*;system=connect,connected,disconnected";
  }
};

// A user event sent by a JSON client: a blocking call to the event handler.
constexpr char kUserEvent[] =
    R"({"type":"event","event":"work","dataType":"text","data":"payload"})";

// SIGTERM while connects and user events wait on a handler that never answers (the calls
// outlive the 5 s drain): the process ends with exit 0 and no sanitizer report, every time.
TEST_F(Lifecycle, SigtermWhileBlockingEventHandlerCallsHangExitsCleanly) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    SlowHandler handler;
    std::optional<int> port =
        StartServer({"--event-handler", HandlerFlag(handler), "--upstream-timeout-seconds", "60"});
    ASSERT_TRUE(port.has_value());
    ChildProcess* hubcast = servers_.back().get();
    // Connected clients whose user events hang.
    std::vector<std::unique_ptr<WsClient>> clients;
    for (int i = 0; i < 4; ++i) {
      auto c = std::make_unique<WsClient>();
      ASSERT_TRUE(c->Connect(*port, ClientTarget(*port, "u" + std::to_string(i)),
                             "json.webpubsub.azure.v1"))
          << c->error();
      ASSERT_TRUE(c->ReadText(seconds(10)).has_value()) << "no `connected`: " << c->error();
      for (int k = 0; k < 3; ++k) ASSERT_TRUE(c->SendText(kUserEvent));
      clients.push_back(std::move(c));
    }
    // Handshakes whose connect event hangs. Joined however the round ends (the handler lets
    // them go when it stops, the server when it exits).
    struct Joined {
      SlowHandler& handler;
      std::vector<std::thread> threads;
      ~Joined() {
        handler.Stop();
        for (auto& t : threads) t.join();
      }
    } connecting{handler, {}};
    for (int i = 0; i < 4; ++i) {
      connecting.threads.emplace_back([this, port = *port, i] {
        WsClient c;
        (void)c.Connect(port, ClientTarget(port, "slow-" + std::to_string(i)),
                        "json.webpubsub.azure.v1", seconds(30));
      });
    }
    // Per client: its connect, `connected` and the first user event (the connection waits for
    // its answer before it reads the next); and the four slow connects.
    constexpr int kCalls = 4 * 3 + 4;
    const auto deadline = Clock::now() + seconds(20);
    while (handler.calls() < kCalls && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    ASSERT_GE(handler.calls(), kCalls) << "the calls did not all reach the handler";

    ASSERT_EQ(::kill(hubcast->pid(), SIGTERM), 0);
    std::optional<ExitStatus> status = hubcast->WaitForExit(seconds(60));
    ASSERT_TRUE(status.has_value()) << "hubcast did not exit within 60 s of SIGTERM";
    EXPECT_TRUE(status->Success()) << status->ToString();
    const std::string log = hubcast->ReadLog();
    EXPECT_FALSE(HasSanitizerReport(log)) << log;
    if (HasFailure()) return;
  }
}

// SIGHUP replaces the hub settings again and again while clients' connects, user events and
// system events call the handler (each answered after 20 ms): the calls go on, and the process
// exits cleanly, with no sanitizer report (a handler's settings freed while a call used them).
TEST_F(Lifecycle, SettingsReloadedInALoopDuringTrafficFreeNothingInUse) {
  SlowHandler handler(milliseconds(20));
  std::optional<int> port = StartServer({"--event-handler", HandlerFlag(handler)});
  ASSERT_TRUE(port.has_value());
  ChildProcess* hubcast = servers_.back().get();
  std::atomic<bool> done{false};
  std::thread reloader([&] {
    while (!done.load()) {
      ::kill(hubcast->pid(), SIGHUP);
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  std::vector<std::thread> traffic;
  for (int t = 0; t < 4; ++t) {
    traffic.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        WsClient c;
        if (!c.Connect(*port, ClientTarget(*port, "u" + std::to_string(t)),
                       "json.webpubsub.azure.v1")) {
          continue;
        }
        if (!c.ReadText(seconds(10))) continue;  // `connected`
        for (int k = 0; k < 5; ++k) {
          if (!c.SendText(kUserEvent)) break;
        }
      }
    });
  }
  for (auto& t : traffic) t.join();
  // At least each connection's connect, `connected` and first user event reach the handler
  // while reloads go on.
  constexpr int kCalls = 40 * 3;
  const auto deadline = Clock::now() + seconds(30);
  while (handler.calls() < kCalls && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  done = true;
  reloader.join();
  EXPECT_GE(handler.calls(), kCalls) << "calls that reached the handler";
  ASSERT_TRUE(hubcast->Running()) << hubcast->exit_status()->ToString();
  EXPECT_NE(hubcast->ReadLog().find("SIGHUP: hub settings reloaded"), std::string::npos);
  ExitStatus status = hubcast->Stop(seconds(30));
  handler.Stop();
  EXPECT_TRUE(status.Success()) << status.ToString();
  const std::string log = hubcast->ReadLog();
  EXPECT_FALSE(HasSanitizerReport(log)) << log;
}

// A reliable session whose user event waits on the handler is paused: the server reads no
// more of its frames until the answer comes. A socket that recovers the session meanwhile
// stays unread too, so a client cannot make the server buffer what it sends (it could before:
// the recovered socket was read at once, into the frame reader, with no bound).
TEST_F(Lifecycle, RecoveredSocketOfAPausedSessionIsNotReadUntilTheAnswer) {
  SlowHandler handler;
  std::optional<int> port =
      StartServer({"--event-handler", HandlerFlag(handler), "--upstream-timeout-seconds", "60"});
  ASSERT_TRUE(port.has_value());
  constexpr char kReliable[] = "json.reliable.webpubsub.azure.v1";
  WsClient first;
  ASSERT_TRUE(first.Connect(*port, ClientTarget(*port, "u1"), kReliable)) << first.error();
  std::optional<std::string> connected = first.ReadText(seconds(10));
  ASSERT_TRUE(connected.has_value()) << first.error();
  auto field = [&](const char* name) {
    const std::string key = std::string("\"") + name + "\":\"";
    size_t at = connected->find(key);
    if (at == std::string::npos) return std::string();
    at += key.size();
    return connected->substr(at, connected->find('"', at) - at);
  };
  const std::string id = field("connectionId"), token = field("reconnectionToken");
  ASSERT_FALSE(id.empty() || token.empty()) << *connected;
  const int calls_before = handler.calls();
  ASSERT_TRUE(first.SendText(kUserEvent));
  const auto deadline = Clock::now() + seconds(20);
  while (handler.calls() == calls_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_GT(handler.calls(), calls_before) << "the user event did not reach the handler";
  first.Close();  // the client lost its network; the session recovers on a new socket

  WsClient second;
  ASSERT_TRUE(second.Connect(
      *port, "/client/hubs/h?awps_connection_id=" + id + "&awps_reconnection_token=" + token,
      kReliable))
      << second.error();
  std::optional<std::string> reconnected = second.ReadText(seconds(10));
  ASSERT_TRUE(reconnected.has_value()) << second.error();
  ASSERT_NE(reconnected->find("\"connected\""), std::string::npos) << *reconnected;
  // 64 MiB of user events: with the socket unread, the kernel's buffers (a few MiB on
  // loopback) fill and a send stops making progress (WsClient gives up after 10 s).
  const std::string frame = R"({"type":"event","event":"work","dataType":"text","data":")" +
                            std::string(64 * 1024, 'x') + "\"}";
  size_t sent = 0;
  while (sent < size_t{64} << 20 && second.SendText(frame)) sent += frame.size();
  EXPECT_LT(sent, size_t{32} << 20) << "the server read a paused session's socket";
  handler.Stop();
  EXPECT_TRUE(server()->Stop(seconds(30)).Success());
}

}  // namespace
}  // namespace hubcast::testing
