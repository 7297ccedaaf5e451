#include "rest/http_client.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "tests/unit/rest/raw_http_server.h"
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::rest {
namespace {

using namespace std::chrono_literals;
using rawhttp::Answer;
using rawhttp::KeepAlive;
using rawhttp::RawConnection;
using rawhttp::RawHttpServer;
using rawhttp::RawRequest;

class HttpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { std::signal(SIGPIPE, SIG_IGN); }

  HttpClient& Client(HttpClientOptions options = {}) {
    if (!client_) {
      Result<std::unique_ptr<HttpClient>> made = HttpClient::Create(std::move(options));
      EXPECT_TRUE(made.ok()) << made.status().message();
      client_ = std::move(made).value();
    }
    return *client_;
  }

  HttpClientResponse Send(HttpClientRequest request) {
    auto promise = std::make_shared<std::promise<HttpClientResponse>>();
    std::future<HttpClientResponse> future = promise->get_future();
    Client().Send(std::move(request),
                  [promise](HttpClientResponse r) { promise->set_value(std::move(r)); });
    if (future.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << "done never ran";
      return {};
    }
    return future.get();
  }

  static HttpClientRequest Post(const std::string& url, const std::string& id = "") {
    HttpClientRequest r;
    r.method = "POST";
    r.url = url;
    r.body = "payload";
    r.timeout = 10s;
    if (!id.empty()) r.headers.emplace_back("X-Id", id);
    return r;
  }

  std::unique_ptr<HttpClient> client_;
};

// ---- connection reuse -----------------------------------------------------------------------

TEST_F(HttpClientTest, SequentialRequestsShareOneKeepAliveConnection) {
  RawHttpServer server(KeepAlive);
  for (int i = 0; i < 50; ++i) {
    const HttpClientResponse r = Send(Post(server.Url("/e"), std::to_string(i)));
    ASSERT_EQ(r.error, HttpError::kNone) << r.message;
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body, "ok");
  }
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(server.requests().size(), 50u);
  EXPECT_EQ(Client().Stats().connections_opened, 1u);
  EXPECT_EQ(Client().Stats().requests_on_reused, 49u);
}

TEST_F(HttpClientTest, ConcurrentRequestsUseBoundedConnectionsAndAllComplete) {
  RawHttpServer server(KeepAlive);
  constexpr int kConcurrent = 8;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::future<HttpClientResponse>> futures;
    for (int i = 0; i < kConcurrent; ++i) {
      auto promise = std::make_shared<std::promise<HttpClientResponse>>();
      futures.push_back(promise->get_future());
      Client().Send(Post(server.Url()), [promise](HttpClientResponse r) { promise->set_value(r); });
    }
    for (auto& f : futures) {
      ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
      ASSERT_EQ(f.get().status, 200);
    }
  }
  // Never more connections than requests at once, however many rounds.
  EXPECT_LE(server.accepted(), kConcurrent);
}

// The handler drops an idle keep-alive connection (as express does after 5 s). The next request
// must not be written on it: it goes on a fresh connection and arrives exactly once.
TEST_F(HttpClientTest, ServerClosedIdleConnectionIsReplacedAndTheRequestArrivesOnce) {
  RawHttpServer server([](RawHttpServer& s, RawConnection& c) {
    std::optional<RawRequest> r = c.ReadRequest();
    if (!r) return;
    s.Record(*r);
    c.Write(Answer("ok"));
    if (c.number() == 1) return;  // closes the first connection after one answer
    while ((r = c.ReadRequest())) {
      s.Record(*r);
      c.Write(Answer("ok"));
    }
  });
  ASSERT_EQ(Send(Post(server.Url(), "first")).status, 200);
  ASSERT_TRUE(server.WaitFor("closed 1"));
  const HttpClientResponse r = Send(Post(server.Url(), "second"));
  ASSERT_EQ(r.error, HttpError::kNone) << r.message;
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(server.CountWith("X-Id", "second"), 1);
  EXPECT_EQ(server.accepted(), 2);
  const HttpClientStats stats = Client().Stats();
  EXPECT_EQ(stats.connections_opened, 2u);
  EXPECT_EQ(stats.requests_on_reused, 0u);
}

// The server reads the request on a reused connection and closes without answering. The
// request may have been acted on: it is not sent again, the caller gets a network error.
TEST_F(HttpClientTest, RequestReadThenDroppedOnAReusedConnectionIsNotResent) {
  RawHttpServer server([](RawHttpServer& s, RawConnection& c) {
    std::optional<RawRequest> r = c.ReadRequest();
    if (!r) return;
    s.Record(*r);
    c.Write(Answer("ok"));
    if ((r = c.ReadRequest())) s.Record(*r);  // then closes, unanswered
  });
  ASSERT_EQ(Send(Post(server.Url(), "first")).status, 200);
  const HttpClientResponse r = Send(Post(server.Url(), "second"));
  EXPECT_EQ(r.error, HttpError::kNetwork);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.message.find("closed before the answer"), std::string::npos) << r.message;
  EXPECT_EQ(server.CountWith("X-Id", "second"), 1);
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(Client().Stats().requests_on_reused, 1u);
}

// Connection: close ends reuse even when the server leaves the socket open: a client that
// reused it would wait for an answer that never comes.
TEST_F(HttpClientTest, ConnectionCloseIsHonoured) {
  RawHttpServer server([](RawHttpServer& s, RawConnection& c) {
    std::optional<RawRequest> r = c.ReadRequest();
    if (!r) return;
    s.Record(*r);
    c.Write(Answer("ok", "Connection: close\r\n"));
    c.WaitForPeerClose(20s);
  });
  for (int i = 0; i < 3; ++i) {
    const HttpClientResponse r = Send(Post(server.Url()));
    ASSERT_EQ(r.status, 200) << r.message;
  }
  EXPECT_EQ(server.accepted(), 3);
}

// Keep-Alive: timeout=1 means the server may drop the connection after a second idle: the
// client drops it first (at half that) and never writes on it.
TEST_F(HttpClientTest, KeepAliveTimeoutDropsTheIdleConnectionBeforeTheServerWould) {
  RawHttpServer server([](RawHttpServer& s, RawConnection& c) {
    while (std::optional<RawRequest> r = c.ReadRequest(20s)) {
      s.Record(*r);
      c.Write(Answer("ok", "Keep-Alive: timeout=1\r\n"));
    }
  });
  ASSERT_EQ(Send(Post(server.Url())).status, 200);
  const int before = server.accepted();
  // Longer than the server's second (well within the client's own default of 4 s): the
  // server keeps the connection open, yet it must not be used again.
  std::this_thread::sleep_for(1200ms);
  ASSERT_EQ(Send(Post(server.Url())).status, 200);
  EXPECT_EQ(server.accepted(), before + 1);
  EXPECT_EQ(Client().Stats().stale_discarded, 0u);  // dropped for its age, not found closed
}

// ---- answers --------------------------------------------------------------------------------

// A server that answers every request with `answer` (raw bytes), then closes when told.
std::unique_ptr<RawHttpServer> OneAnswer(std::string answer, bool close_after = true) {
  return std::make_unique<RawHttpServer>([answer, close_after](RawHttpServer& s, RawConnection& c) {
    while (std::optional<RawRequest> r = c.ReadRequest()) {
      s.Record(*r);
      if (!c.Write(answer) || close_after) return;
    }
  });
}

TEST_F(HttpClientTest, ReadsContentLengthChunkedAndReadToCloseBodies) {
  struct Case {
    const char* name;
    std::string answer;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"content-length", "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
       "hello"},
      {"chunked",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n"
       "0\r\nX-Trailer: t\r\n\r\n",
       "hello world"},
      {"to close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
       "until the end"},
      {"http/1.0", "HTTP/1.0 200 OK\r\n\r\nold", "old"},
      {"interim 100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
       "hi"},
      {"no body 204", "HTTP/1.1 204 No Content\r\n\r\n", ""},
      {"LF only", "HTTP/1.1 200 OK\nContent-Length: 2\n\nlf", "lf"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<RawHttpServer> server = OneAnswer(c.answer);
    const HttpClientResponse r = Send(Post(server->Url()));
    EXPECT_EQ(r.error, HttpError::kNone) << r.message;
    EXPECT_EQ(r.body, c.body);
  }
}

TEST_F(HttpClientTest, ByteByByteAnswerIsParsed) {
  RawHttpServer server([](RawHttpServer& s, RawConnection& c) {
    std::optional<RawRequest> r = c.ReadRequest();
    if (!r) return;
    s.Record(*r);
    const std::string answer =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-A: 1\r\nSet-A: 2\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n";
    for (char ch : answer) {
      if (!c.Write(std::string(1, ch))) return;
      std::this_thread::sleep_for(1ms);
    }
    c.WaitForPeerClose(20s);
  });
  const HttpClientResponse r = Send(Post(server.Url()));
  ASSERT_EQ(r.error, HttpError::kNone) << r.message;
  EXPECT_EQ(r.body, "abc");
  EXPECT_EQ(r.Header("set-a"), "1, 2");
  EXPECT_EQ(r.Header("Set-A", ","), "1,2");
  EXPECT_EQ(r.Header("Missing"), std::nullopt);
}

TEST_F(HttpClientTest, AnswerOverTheLimitIsRefusedWhateverItsFraming) {
  HttpClientOptions options;
  options.max_response_bytes = 1000;
  Client(options);
  const std::string big(1001, 'x');
  const std::vector<std::string> answers = {
      "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n" + big,
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + big + "\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n" + big.substr(0, 500) +
          "\r\n1f5\r\n" + big.substr(0, 501) + "\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\n\r\n" + big,
  };
  for (const std::string& answer : answers) {
    SCOPED_TRACE(answer.substr(0, 60));
    std::unique_ptr<RawHttpServer> server = OneAnswer(answer);
    const HttpClientResponse r = Send(Post(server->Url()));
    EXPECT_EQ(r.error, HttpError::kTooLarge) << r.message;
    EXPECT_NE(r.message.find("larger than the limit of 1000 bytes"), std::string::npos);
    EXPECT_TRUE(r.body.empty());
  }
  std::unique_ptr<RawHttpServer> at_limit =
      OneAnswer("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + big.substr(1));
  EXPECT_EQ(Send(Post(at_limit->Url())).body.size(), 1000u);
}

TEST_F(HttpClientTest, MalformedAnswersAreRefusedWithAReason) {
  struct Case {
    std::string answer;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 20 OK\r\n\r\n", "malformed status line"},
      {"HTTP/2 200 OK\r\n\r\n", "malformed status line"},
      {"ICY 200 OK\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 200OK\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 999 Nope\r\n\r\n", "malformed status line"},
      {"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "malformed header line"},
      {"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header line"},
      {"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "malformed header line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
       "conflicting Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n", "bad chunk end"},
      {"HTTP/1.1 101 Switching\r\n\r\n", "unexpected 101"},
      {"HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'a') + "\r\n\r\n", "too"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.answer.substr(0, 60));
    std::unique_ptr<RawHttpServer> server = OneAnswer(c.answer, /*close_after=*/false);
    const HttpClientResponse r = Send(Post(server->Url()));
    EXPECT_EQ(r.error, HttpError::kMalformed) << r.message;
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.message.find(c.reason), std::string::npos) << r.message;
  }
}

TEST_F(HttpClientTest, AnswerCutShortIsANetworkError) {
  for (const std::string& answer :
       {std::string(""), std::string("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")}) {
    std::unique_ptr<RawHttpServer> server = OneAnswer(answer);
    const HttpClientResponse r = Send(Post(server->Url()));
    EXPECT_EQ(r.error, HttpError::kNetwork) << r.message;
    EXPECT_EQ(server->requests().size(), 1u) << "a fresh connection's request was resent";
  }
}

TEST_F(HttpClientTest, SilentServerTimesOut) {
  RawHttpServer server([](RawHttpServer& s, RawConnection& c) {
    if (std::optional<RawRequest> r = c.ReadRequest()) s.Record(*r);
    c.WaitForPeerClose(20s);
  });
  HttpClientRequest request = Post(server.Url());
  request.timeout = 300ms;
  const HttpClientResponse r = Send(request);
  EXPECT_EQ(r.error, HttpError::kTimedOut);
  EXPECT_EQ(r.message, "timed out");
  // The connection is not pooled: the server sees it closed.
  EXPECT_TRUE(server.WaitFor("closed 1"));
}

TEST_F(HttpClientTest, SlowServerDoesNotHoldUpOthers) {
  RawHttpServer slow([](RawHttpServer& s, RawConnection& c) {
    if (std::optional<RawRequest> r = c.ReadRequest()) s.Record(*r);
    c.WaitForPeerClose(20s);
  });
  RawHttpServer fast(KeepAlive);
  auto promise = std::make_shared<std::promise<HttpClientResponse>>();
  std::future<HttpClientResponse> slow_answer = promise->get_future();
  HttpClientRequest request = Post(slow.Url());
  request.timeout = 20s;
  Client().Send(request, [promise](HttpClientResponse r) { promise->set_value(r); });
  for (int i = 0; i < 20; ++i) ASSERT_EQ(Send(Post(fast.Url())).status, 200);
  EXPECT_EQ(slow_answer.wait_for(0s), std::future_status::timeout);
  client_->Shutdown();
  ASSERT_EQ(slow_answer.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(slow_answer.get().error, HttpError::kShuttingDown);
}

TEST_F(HttpClientTest, InvalidUrlsAndHeadersFailWithoutConnecting) {
  RawHttpServer server(KeepAlive);
  const std::string port = std::to_string(server.port());
  for (const std::string& url :
       {std::string("not a url"), std::string("ftp://127.0.0.1:") + port + "/",
        std::string("http://:80/"), std::string("http://127.0.0.1:99999/"),
        std::string("http://127.0.0.1:") + port + "/a b", std::string("http://[::1/")}) {
    SCOPED_TRACE(url);
    const HttpClientResponse r = Send(Post(url));
    EXPECT_EQ(r.error, HttpError::kInvalidRequest);
    EXPECT_EQ(r.message, "invalid url");
  }
  HttpClientRequest request = Post(server.Url());
  request.headers.emplace_back("X-Bad", "a\r\nInjected: 1");
  EXPECT_EQ(Send(request).error, HttpError::kInvalidRequest);
  EXPECT_EQ(server.accepted(), 0);
}

TEST_F(HttpClientTest, ConnectionRefusedIsANetworkError) {
  uint16_t port;
  {
    RawHttpServer probe(KeepAlive);
    port = probe.port();
  }
  const HttpClientResponse r = Send(Post("http://127.0.0.1:" + std::to_string(port) + "/"));
  EXPECT_EQ(r.error, HttpError::kNetwork);
  EXPECT_NE(r.message.find("connect"), std::string::npos) << r.message;
}

TEST_F(HttpClientTest, HostNamesAreResolved) {
  RawHttpServer server(KeepAlive);
  const HttpClientResponse r =
      Send(Post("http://localhost:" + std::to_string(server.port()) + "/"));
  EXPECT_EQ(r.status, 200) << r.message;
  EXPECT_EQ(server.requests()[0].Header("Host"), "localhost:" + std::to_string(server.port()));
}

TEST_F(HttpClientTest, SendAfterShutdownFailsAtOnce) {
  Client().Shutdown();
  const HttpClientResponse r = Send(Post("http://127.0.0.1:1/"));
  EXPECT_EQ(r.error, HttpError::kShuttingDown);
}

// ---- https ----------------------------------------------------------------------------------

// A private CA and a leaf it signed, made with the openssl command in a temporary folder.
class TestCa {
 public:
  explicit TestCa(const std::string& leaf_san) {
    char tmpl[] = "/tmp/hubcast-http-client-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    dir_ = tmpl;
    std::ofstream(dir_ / "ext.cnf") << "subjectAltName=" << leaf_san << "\n";
    const std::string d = dir_.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    ok_ = Run("openssl req -x509" + ec + "-keyout " + d + "/ca.key -out " + d +
              "/ca.pem -days 2 -subj /CN=hubcast-test-ca") &&
          Run("openssl req" + ec + "-keyout " + d + "/leaf.key -out " + d +
              "/leaf.csr -subj /CN=leaf") &&
          Run("openssl x509 -req -in " + d + "/leaf.csr -CA " + d + "/ca.pem -CAkey " + d +
              "/ca.key -CAcreateserial -out " + d + "/leaf.pem -days 2 -extfile " + d + "/ext.cnf");
  }
  ~TestCa() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  bool ok() const { return ok_; }
  HttpClientOptions Options() const {
    HttpClientOptions options;
    options.ca_file = (dir_ / "ca.pem").string();
    return options;
  }
  SSL_CTX* ServerContext() const {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_file(ctx, (dir_ / "leaf.pem").c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx, (dir_ / "leaf.key").c_str(), SSL_FILETYPE_PEM);
    return ctx;
  }

 private:
  static bool Run(const std::string& command) {
    return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
  }
  std::filesystem::path dir_;
  bool ok_ = false;
};

// The handshake failed on the certificate: nothing of the request reached the server.
void ExpectUnverified(const HttpClientResponse& r, const RawHttpServer& server) {
  EXPECT_EQ(r.error, HttpError::kNetwork);
  EXPECT_NE(r.message.find("certificate verify failed"), std::string::npos) << r.message;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(HttpClientTest, HttpsIsVerifiedAgainstThePrivateCaAndKeepsItsConnection) {
  TestCa ca("IP:127.0.0.1");
  ASSERT_TRUE(ca.ok());
  RawHttpServer server(KeepAlive, ca.ServerContext());
  Client(ca.Options());
  for (int i = 0; i < 5; ++i) {
    const HttpClientResponse r = Send(Post(server.Url()));
    ASSERT_EQ(r.error, HttpError::kNone) << r.message;
    ASSERT_EQ(r.body, "ok");
  }
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpClientTest, HttpsWithoutTheCaIsRefused) {
  TestCa ca("IP:127.0.0.1");
  ASSERT_TRUE(ca.ok());
  RawHttpServer server(KeepAlive, ca.ServerContext());
  ExpectUnverified(Send(Post(server.Url())), server);
}

TEST_F(HttpClientTest, HttpsCertificateForAnotherHostIsRefused) {
  TestCa ca("DNS:other.example,IP:10.9.8.7");
  ASSERT_TRUE(ca.ok());
  RawHttpServer server(KeepAlive, ca.ServerContext());
  Client(ca.Options());
  ExpectUnverified(Send(Post(server.Url())), server);
  // By name too: "localhost" is not in the certificate.
  ExpectUnverified(Send(Post("https://localhost:" + std::to_string(server.port()) + "/")), server);
}

TEST(HttpClient, UnreadableCaFileIsRefusedAtCreation) {
  HttpClientOptions options;
  options.ca_file = "/nonexistent/ca.pem";
  const Result<std::unique_ptr<HttpClient>> made = HttpClient::Create(options);
  EXPECT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("/nonexistent/ca.pem"), std::string::npos);
}

}  // namespace
}  // namespace hubcast::rest
