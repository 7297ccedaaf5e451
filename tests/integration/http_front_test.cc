// The HTTP front of `hubcast serve` under attack and under ordinary load (hardening issue #9,
// performance issue #10), against the real binary:
//   A. connections that send nothing, trickle a head, or stop half-way through an upgrade
//      hold no worker: REST calls and new WebSocket handshakes keep answering, and the
//      stragglers are cut off after the head timeout (408, or silently when nothing came);
//   B. broken chunked bodies (truncated, an invalid chunk size hiding a second request, a
//      stalled body) execute nothing and end the connection (400 / 408);
//   C. framing ambiguities follow RFC 9112 section 6 (Content-Length with Transfer-Encoding,
//      two lengths, unknown codings, absurd lengths);
//   and keep-alive: a connection serves any number of requests, pipelined ones in order, until
//   it idles past --http-idle-timeout-seconds; oversized heads and bodies are refused without
//   being read.
// "Nothing executed" is checked end to end: a WebSocket client of the hub must receive a
// marker sent after the attack as its first message.
#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/test_stream.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <cstring>
#include <memory>
#include <netinet/in.h>
#include <optional>
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

constexpr char kHub[] = "front";
constexpr auto kPrompt = seconds(3);  // "answers within a second or two", with slack

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class HttpFront : public ServerFixture {
 protected:
  std::string Base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string Host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string SendTarget() const { return std::string("/api/hubs/") + kHub + "/:send"; }

  void Start(const std::vector<std::string>& extra = {}) {
    std::optional<int> port = StartServer(extra);
    ASSERT_TRUE(port.has_value());
    port_ = *port;
  }

  std::string ClientTarget() const {
    const std::string path = std::string("/client/hubs/") + kHub;
    return path + "?access_token=" + MintJwt(kAccessKey, Base() + path);
  }

  // A raw WebSocket client of the hub: every message sent to the hub arrives as a frame.
  std::unique_ptr<WsClient> Listener() {
    auto client = std::make_unique<WsClient>();
    EXPECT_TRUE(client->Connect(port_, ClientTarget(), "", kPrompt)) << client->error();
    return client;
  }

  // The head of a POST to the hub's :send, without its framing fields.
  std::string SendHead() const {
    return "POST " + SendTarget() + " HTTP/1.1\r\nHost: " + Host() +
           "\r\nAuthorization: " + Bearer(Base(), SendTarget()) +
           "\r\nContent-Type: text/plain\r\n";
  }

  int SendToHub(const std::string& text) {
    return HttpRequest(
               port_, "POST", SendTarget(),
               {{"Authorization", Bearer(Base(), SendTarget())}, {"Content-Type", "text/plain"}},
               text, kPrompt)
        .status;
  }

  // Nothing reached the hub before `marker`: the listener's first message is the marker.
  void ExpectNothingExecutedBefore(WsClient& listener, const std::string& marker) {
    ASSERT_EQ(SendToHub(marker), 202);
    std::optional<WsMessage> first = listener.Read(seconds(5));
    ASSERT_TRUE(first.has_value()) << listener.error();
    EXPECT_EQ(first->payload, marker) << "something was executed before the marker";
  }

  // Connects and sends `bytes`; the stream stays open.
  std::unique_ptr<TestStream> Open(const std::string& bytes = "") {
    auto s = std::make_unique<TestStream>();
    EXPECT_TRUE(s->Connect(port_)) << s->error();
    if (!bytes.empty()) {
      EXPECT_TRUE(s->Send(bytes)) << s->error();
    }
    return s;
  }

  // Expects an error answer with the JSON body, then the end of the connection.
  void ExpectErrorAndClose(TestStream& s, std::string& buffer, int status,
                           milliseconds timeout = kPrompt) {
    std::string why;
    std::optional<RawResponse> r = ReadResponse(s, buffer, timeout, false, &why);
    ASSERT_TRUE(r.has_value()) << "no answer: " << why;
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_FALSE(r->Header("x-ms-error-code").empty());
    EXPECT_NE(r->body.find("\"code\":"), std::string::npos) << r->body;
    // A client that sends nothing more is let go after a short linger (2 s, on the 1 s tick).
    EXPECT_TRUE(WaitForClose(s, seconds(5))) << "the connection stayed open after " << status;
  }

  void ExpectRestAndHandshakesPrompt(int rounds) {
    for (int i = 0; i < rounds; ++i) {
      const auto start = Clock::now();
      HttpResponse health = HttpRequest(port_, "GET", "/api/health", {}, "", kPrompt);
      EXPECT_EQ(health.status, 200)
          << "REST call " << i << ": " << health.error << " after " << SecondsSince(start) << " s";
      WsClient ws;
      EXPECT_TRUE(ws.Connect(port_, ClientTarget(), "", kPrompt))
          << "handshake " << i << ": " << ws.error() << " after " << SecondsSince(start) << " s";
    }
  }

  int port_ = 0;
};

// Plain sockets that connect and send nothing.
std::vector<int> OpenSilentSockets(int port, int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      break;
    }
    fds.push_back(fd);
  }
  return fds;
}

struct Sockets {
  std::vector<int> fds;
  ~Sockets() {
    for (int fd : fds) ::close(fd);
  }
};

// --- A: connections that hold no worker -------------------------------------------------------

TEST_F(HttpFront, ThousandsOfIdleSocketsDelayNeitherRestNorHandshakes) {
  Start();
  Sockets idle{OpenSilentSockets(port_, 5000)};
  ASSERT_EQ(idle.fds.size(), 5000u);
  ExpectRestAndHandshakesPrompt(10);
  auto listener = Listener();
  ExpectNothingExecutedBefore(*listener, "after 5000 idle sockets");
}

TEST_F(HttpFront, SilentConnectionsAreClosedWithoutAnswerAfterTheHeadTimeout) {
  Start();
  std::vector<std::unique_ptr<TestStream>> silent;
  for (int i = 0; i < 100; ++i) silent.push_back(Open());
  const auto start = Clock::now();
  for (auto& s : silent) {
    std::string got;
    const auto left = seconds(14) - (Clock::now() - start);
    ASSERT_EQ(s->Receive(&got, Clock::now() + left), TestStream::Got::kEof)
        << "still open after " << SecondsSince(start) << " s; got '" << got << "'";
    EXPECT_TRUE(got.empty()) << got;  // nothing was asked, nothing is answered
  }
  EXPECT_GE(SecondsSince(start), 8.0);
}

TEST_F(HttpFront, SlowlorisHeadIsCutOffWith408) {
  Start();
  auto s = Open("GET /api/health HTTP/1.1\r\nHost: " + Host() + "\r\n");
  const auto start = Clock::now();
  std::string buffer;
  bool checked_others = false;
  // One byte a second keeps every per-read timeout happy; only a bound on the whole head
  // ends it.
  while (buffer.empty() && SecondsSince(start) < 16) {
    if (s->Receive(&buffer, Clock::now() + seconds(1)) != TestStream::Got::kTimeout) break;
    if (!s->Send("X")) break;
    if (!checked_others && SecondsSince(start) > 3) {
      ExpectRestAndHandshakesPrompt(1);
      checked_others = true;
    }
  }
  const double elapsed = SecondsSince(start);
  ExpectErrorAndClose(*s, buffer, 408);
  EXPECT_GE(elapsed, 8.0);
  EXPECT_LE(elapsed, 13.0);
}

TEST_F(HttpFront, HalfUpgradesHoldNoWorker) {
  Start();
  const std::string half = "GET " + ClientTarget() + " HTTP/1.1\r\nHost: " + Host() +
                           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  std::vector<std::unique_ptr<TestStream>> halves;
  for (int i = 0; i < 200; ++i) halves.push_back(Open(half));
  ExpectRestAndHandshakesPrompt(5);
  // They are answered 408 once their head time is up.
  std::string buffer;
  ExpectErrorAndClose(*halves.front(), buffer, 408, seconds(14));
  std::string last;
  ExpectErrorAndClose(*halves.back(), last, 408);
}

// --- B: broken chunked bodies execute nothing -------------------------------------------------

TEST_F(HttpFront, TruncatedChunkedBodyIsNotExecuted) {
  Start();
  auto listener = Listener();
  auto s = Open(SendHead() + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  s->ShutdownWrite();  // the client is gone before the last chunk
  std::string buffer;
  std::optional<RawResponse> r = ReadResponse(*s, buffer, kPrompt);
  if (r) {
    EXPECT_GE(r->status, 400) << "a truncated body was answered " << r->status;
  }
  EXPECT_TRUE(WaitForClose(*s, kPrompt));
  ExpectNothingExecutedBefore(*listener, "after a truncated body");
}

TEST_F(HttpFront, InvalidChunkSizeIsRejectedAndTheSmuggledRequestIsNotExecuted) {
  Start();
  auto listener = Listener();
  const std::string smuggled = SendHead() + "Content-Length: 8\r\n\r\nsmuggled";
  auto s = Open(SendHead() + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + smuggled);
  std::string buffer;
  ExpectErrorAndClose(*s, buffer, 400);
  ExpectNothingExecutedBefore(*listener, "after a smuggling attempt");
}

TEST_F(HttpFront, StalledChunkedBodyIsCutOffWith408) {
  Start();
  auto listener = Listener();
  auto s = Open(SendHead() + "Transfer-Encoding: chunked\r\n\r\n5\r\nhel");
  const auto start = Clock::now();
  std::string buffer;
  ExpectErrorAndClose(*s, buffer, 408, seconds(15));
  EXPECT_GE(SecondsSince(start), 8.0);
  ExpectNothingExecutedBefore(*listener, "after a stalled body");
}

// --- C: RFC 9112 section 6 ------------------------------------------------------------------

TEST_F(HttpFront, ContentLengthWithTransferEncodingIsAnsweredThenClosed) {
  Start();
  auto s = Open(SendHead() +
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  std::string buffer;
  std::optional<RawResponse> r = ReadResponse(*s, buffer, kPrompt);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(WaitForClose(*s, kPrompt)) << "RFC 9112 6.3: close after such a request";
}

TEST_F(HttpFront, TwoDifferentContentLengthsAre400) {
  Start();
  auto listener = Listener();
  auto s = Open(SendHead() + "Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!");
  std::string buffer;
  ExpectErrorAndClose(*s, buffer, 400);
  ExpectNothingExecutedBefore(*listener, "after two lengths");
}

TEST_F(HttpFront, TransferCodingsOtherThanChunkedAreRefused) {
  Start();
  auto listener = Listener();
  auto s = Open(SendHead() + "Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  std::string buffer;
  ExpectErrorAndClose(*s, buffer, 501);
  ExpectNothingExecutedBefore(*listener, "after identity, chunked");
}

TEST_F(HttpFront, AstronomicalContentLengthIs413) {
  Start();
  auto s = Open(SendHead() + "Content-Length: 100000000000000000000000\r\n\r\nhello");
  std::string buffer;
  ExpectErrorAndClose(*s, buffer, 413);
}

// --- keep-alive, limits -----------------------------------------------------------------------

TEST_F(HttpFront, KeepAliveConnectionServesManyRequestsInOrder) {
  Start();
  auto listener = Listener();
  auto s = Open();
  std::string buffer;
  const std::string health = "GET /api/health HTTP/1.1\r\nHost: " + Host() + "\r\n\r\n";
  for (int i = 0; i < 250; ++i) {
    ASSERT_TRUE(s->Send(health)) << "request " << i << ": " << s->error();
    std::optional<RawResponse> r = ReadResponse(*s, buffer, kPrompt);
    ASSERT_TRUE(r.has_value()) << "request " << i << " on one connection got no answer";
    ASSERT_EQ(r->status, 200);
    ASSERT_NE(r->Header("connection"), "close") << "closed after " << i + 1 << " requests";
  }
  // Pipelined: 60 requests in one write, answered in order.
  const std::string missing = "GET /nowhere HTTP/1.1\r\nHost: " + Host() + "\r\n\r\n";
  std::string batch;
  for (int i = 0; i < 30; ++i) batch += health + missing;
  ASSERT_TRUE(s->Send(batch));
  for (int i = 0; i < 60; ++i) {
    std::optional<RawResponse> r = ReadResponse(*s, buffer, kPrompt);
    ASSERT_TRUE(r.has_value()) << "pipelined answer " << i;
    ASSERT_EQ(r->status, i % 2 == 0 ? 200 : 404) << "answer " << i << " out of order";
  }
  // Pipelined sends, served on the loop (answered by their appends' completions) between
  // reads served by workers: still answered, delivered and in order.
  const std::string group_path = std::string("/api/hubs/") + kHub + "/groups/nobody";
  const std::string exists = "HEAD " + group_path + " HTTP/1.1\r\nHost: " + Host() +
                             "\r\nAuthorization: " + Bearer(Base(), group_path) + "\r\n\r\n";
  batch.clear();
  for (int i = 0; i < 10; ++i) {
    const std::string body = "p" + std::to_string(i);
    batch += SendHead() + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    batch += exists;
  }
  ASSERT_TRUE(s->Send(batch));
  for (int i = 0; i < 20; ++i) {
    std::optional<RawResponse> r = ReadResponse(*s, buffer, kPrompt);
    ASSERT_TRUE(r.has_value()) << "pipelined answer " << i;
    ASSERT_EQ(r->status, i % 2 == 0 ? 202 : 404) << "answer " << i << " out of order";
  }
  for (int i = 0; i < 10; ++i) {
    std::optional<WsMessage> m = listener->Read(seconds(5));
    ASSERT_TRUE(m.has_value()) << "delivery " << i;
    EXPECT_EQ(m->payload, "p" + std::to_string(i));
  }
  // Errors with bodies leave the connection usable: the bodies were read.
  const std::string xml = SendHead();
  std::string wrong_type = xml;
  wrong_type.replace(wrong_type.find("text/plain"), 10, "application/xml");
  ASSERT_TRUE(s->Send(wrong_type + "Content-Length: 4\r\n\r\n<a/>"));
  std::optional<RawResponse> r = ReadResponse(*s, buffer, kPrompt);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 415);
  ASSERT_TRUE(s->Send(SendHead() + "Content-Length: 4\r\n\r\nlast"));
  r = ReadResponse(*s, buffer, kPrompt);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 202);
  std::optional<WsMessage> m = listener->Read(seconds(5));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "last");
}

TEST_F(HttpFront, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  Start({"--http-idle-timeout-seconds", "2"});
  auto s = Open("GET /api/health HTTP/1.1\r\nHost: " + Host() + "\r\n\r\n");
  std::string buffer;
  ASSERT_TRUE(ReadResponse(*s, buffer, kPrompt).has_value());
  const auto start = Clock::now();
  EXPECT_TRUE(WaitForClose(*s, seconds(6)));
  EXPECT_GE(SecondsSince(start), 1.5);
}

TEST_F(HttpFront, MegabyteHeaderIsRefusedWith431) {
  Start();
  std::string request = "GET /api/health HTTP/1.1\r\nHost: " + Host() + "\r\nX-Big: ";
  request += std::string(1024 * 1024, 'a');
  request += "\r\n\r\n";
  auto s = Open();
  (void)s->Send(request);  // the server may stop reading before the end
  std::string buffer;
  ExpectErrorAndClose(*s, buffer, 431);
  ExpectRestAndHandshakesPrompt(1);
}

TEST_F(HttpFront, HugeAndEndlessBodiesAre413WithoutBeingRead) {
  Start();
  auto listener = Listener();
  // Declared 100 MB, asking to continue: refused at once, no 100 Continue first.
  {
    auto s = Open(SendHead() + "Content-Length: 104857600\r\nExpect: 100-continue\r\n\r\n");
    std::string buffer;
    ExpectErrorAndClose(*s, buffer, 413);
  }
  // Declared 100 MB and sent: the answer comes before the client is done.
  {
    auto s = Open(SendHead() + "Content-Length: 104857600\r\n\r\n");
    const std::string chunk(64 * 1024, 'x');
    std::string buffer;
    for (int i = 0; i < 1600 && buffer.empty(); ++i) {
      if (!s->Send(chunk, seconds(2))) break;
      (void)s->Receive(&buffer, Clock::now() + milliseconds(1));
    }
    ExpectErrorAndClose(*s, buffer, 413);
  }
  // A chunked body that never ends.
  {
    auto s = Open(SendHead() + "Transfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'y') + "\r\n";
    std::string buffer;
    const auto start = Clock::now();
    while (buffer.empty() && SecondsSince(start) < 10) {
      if (!s->Send(chunk, seconds(2))) break;
      (void)s->Receive(&buffer, Clock::now() + milliseconds(1));
    }
    ExpectErrorAndClose(*s, buffer, 413);
  }
  ExpectNothingExecutedBefore(*listener, "after oversized bodies");
}

}  // namespace
}  // namespace hubcast::testing
