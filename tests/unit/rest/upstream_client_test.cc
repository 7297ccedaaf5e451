#include "rest/upstream_client.h"

#include <Poco/DigestEngine.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/SHA2Engine.h>
#include <Poco/StreamCopier.h>
#include <Poco/String.h>
#include <Poco/ThreadPool.h>
#include <gtest/gtest.h>

#include "tests/unit/rest/raw_http_server.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace hubcast::rest {
namespace {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kPrimaryKey[] = "primary-access-key-0123456789ABCDEFGHIJ";
constexpr char kSecondaryKey[] = "secondary-access-key-0123456789";
constexpr char kOrigin[] = "hubcast.example.com";
constexpr char kValidationPrefix[] = "abuse protection validation failed: ";

bool IEquals(const std::string& a, const std::string& b) { return Poco::icompare(a, b) == 0; }

// HMAC-SHA256 written out from RFC 2104 over Poco's SHA-256, so the test does not trust the
// code under test for the expected signature.
std::string ReferenceHmacSha256Hex(const std::string& key, const std::string& message) {
  constexpr size_t kBlock = 64;
  std::string k = key;
  if (k.size() > kBlock) {
    Poco::SHA2Engine h;
    h.update(k);
    const Poco::DigestEngine::Digest& d = h.digest();
    k.assign(d.begin(), d.end());
  }
  k.resize(kBlock, '\0');
  std::string inner_pad(kBlock, '\0'), outer_pad(kBlock, '\0');
  for (size_t i = 0; i < kBlock; ++i) {
    inner_pad[i] = static_cast<char>(k[i] ^ 0x36);
    outer_pad[i] = static_cast<char>(k[i] ^ 0x5c);
  }
  Poco::SHA2Engine inner;
  inner.update(inner_pad);
  inner.update(message);
  const Poco::DigestEngine::Digest inner_digest = inner.digest();
  Poco::SHA2Engine outer;
  outer.update(outer_pad);
  outer.update(inner_digest.data(), inner_digest.size());
  return Poco::DigestEngine::digestToHex(outer.digest());
}

struct Recorded {
  std::string method;
  std::string uri;  // path and query as on the wire
  Headers headers;  // in arrival order, repeats kept
  std::string body;
  std::string peer;  // client address and port: tells connections apart

  int Count(const std::string& name) const {
    int n = 0;
    for (const auto& [k, v] : headers) n += IEquals(k, name) ? 1 : 0;
    return n;
  }
  std::optional<std::string> Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (IEquals(k, name)) return v;
    }
    return std::nullopt;
  }
};

struct Reply {
  int status = 200;
  Headers headers;
  std::string body;
  std::string content_type;
  bool block = false;  // hold the answer until the test ends (or the gate opens)
  std::chrono::milliseconds delay{0};
  std::chrono::milliseconds drip{0};  // when set: the body goes out one byte per interval
  bool chunked = false;               // chunked transfer encoding instead of Content-Length
};

using Script = std::function<Reply(const Recorded&)>;

// The app's event handler in miniature: records every request and answers as the test says.
class FakeHandler {
 public:
  void SetScript(Script script) {
    std::lock_guard lock(mu_);
    script_ = std::move(script);
  }
  void Reset(Script script) {
    std::lock_guard lock(mu_);
    script_ = std::move(script);
    recorded_.clear();
  }
  Reply Handle(const Recorded& r) {
    Script script;
    {
      std::lock_guard lock(mu_);
      recorded_.push_back(r);
      script = script_;
    }
    cv_.notify_all();
    return script(r);
  }
  // Blocks until the next OpenGate (at the latest when the test ends).
  void WaitGate() {
    std::unique_lock lock(mu_);
    const uint64_t generation = gate_generation_;
    cv_.wait_for(lock, 10s, [&] { return gate_generation_ != generation; });
  }
  void OpenGate() {
    {
      std::lock_guard lock(mu_);
      ++gate_generation_;
    }
    cv_.notify_all();
  }
  std::vector<Recorded> Requests(const std::string& method = "") const {
    std::lock_guard lock(mu_);
    std::vector<Recorded> out;
    for (const Recorded& r : recorded_) {
      if (method.empty() || r.method == method) out.push_back(r);
    }
    return out;
  }
  // Waits until at least n requests with this method have arrived.
  bool WaitForRequests(const std::string& method, size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      size_t count = 0;
      for (const Recorded& r : recorded_) count += r.method == method ? 1 : 0;
      return count >= n;
    });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Script script_;
  std::vector<Recorded> recorded_;
  uint64_t gate_generation_ = 0;
};

FakeHandler* fake = nullptr;

class ScriptedRequestHandler : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    Recorded r;
    r.method = request.getMethod();
    r.uri = request.getURI();
    r.peer = request.clientAddress().toString();
    for (const auto& [name, value] : request) r.headers.emplace_back(name, value);
    Poco::StreamCopier::copyToString(request.stream(), r.body);
    const Reply reply = fake->Handle(r);
    if (reply.block) fake->WaitGate();
    if (reply.delay > 0ms) std::this_thread::sleep_for(reply.delay);
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
    for (const auto& [name, value] : reply.headers) response.add(name, value);
    if (!reply.content_type.empty()) response.setContentType(reply.content_type);
    if (reply.chunked) {
      response.setChunkedTransferEncoding(true);
    } else {
      response.setContentLength(static_cast<std::streamsize>(reply.body.size()));
    }
    std::ostream& out = response.send();
    if (reply.drip == 0ms) {
      out << reply.body;
      return;
    }
    for (char c : reply.body) {
      out << c;
      out.flush();
      if (!out) return;
      std::this_thread::sleep_for(reply.drip);
    }
  }
};

class ScriptedFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new ScriptedRequestHandler;
  }
};

// Answers validation with "*" and events with 200 "ok".
Reply DefaultReply(const Recorded& r) {
  Reply reply;
  if (r.method == "OPTIONS" || r.method == "GET") {
    reply.headers = {{"WebHook-Allowed-Origin", "*"}};
  } else {
    reply.body = "ok";
    reply.content_type = "text/plain; charset=utf-8";
  }
  return reply;
}

// Collects completions; counts every invocation of every callback it handed out.
class Completions {
 public:
  std::function<void(UpstreamResponse)> Callback(int index = 0) {
    return [this, index](UpstreamResponse r) {
      // Notifies under the lock: the waiter may destroy this object as soon as it wakes.
      std::lock_guard lock(mu_);
      results_[index].push_back(std::move(r));
      ++total_;
      cv_.notify_all();
    };
  }
  bool WaitForTotal(int n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return total_ >= n; });
  }
  int Total() const {
    std::lock_guard lock(mu_);
    return total_;
  }
  std::vector<UpstreamResponse> Results(int index) const {
    std::lock_guard lock(mu_);
    auto it = results_.find(index);
    return it == results_.end() ? std::vector<UpstreamResponse>{} : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::vector<UpstreamResponse>> results_;
  int total_ = 0;
};

class UpstreamClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Blocked answers are written after the client gave up on them.
    std::signal(SIGPIPE, SIG_IGN);
    fake = new FakeHandler;
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    auto* params = new Poco::Net::HTTPServerParams;
    // A kept-alive connection holds a server thread, and the client opens one connection per
    // concurrent request: the 50-call test needs more threads than POCO's default pool has.
    params->setMaxThreads(kServerThreads);
    params->setMaxQueued(200);
    params->setKeepAlive(true);
    pool_ = new Poco::ThreadPool(4, kServerThreads);
    server_ = new Poco::Net::HTTPServer(new ScriptedFactory, *pool_, socket, params);
    server_->start();
    port_ = socket.address().port();
  }
  static void TearDownTestSuite() {
    fake->OpenGate();
    server_->stopAll(true);
    delete server_;
    server_ = nullptr;
    pool_->joinAll();
    delete pool_;
    pool_ = nullptr;
    delete fake;
    fake = nullptr;
  }

  void SetUp() override { fake->Reset(DefaultReply); }
  void TearDown() override {
    fake->OpenGate();
    client_.reset();
  }

  static std::string Url(const std::string& path_and_query) {
    return "http://127.0.0.1:" + std::to_string(port_) + path_and_query;
  }

  static UpstreamOptions Options() {
    UpstreamOptions options;
    options.access_keys = {kPrimaryKey, kSecondaryKey};
    options.origin = kOrigin;
    options.timeout = 3s;
    options.max_attempts = 4;
    options.retry_base = 10ms;
    options.validation_retry = 300ms;
    options.threads = 4;
    return options;
  }

  static UpstreamRequest Request() {
    UpstreamRequest r;
    r.url = Url("/api/webpubsub/hubs/chat/?event=message&code=s3cret");
    r.validation_url = Url("/api/webpubsub/hubs/chat/?event=validate&code=s3cret");
    r.ce_type = "azure.webpubsub.user.message";
    r.event_name = "message";
    r.hub = "chat";
    r.connection_id = "conn-1";
    r.user_id = "user-1";
    r.subprotocol = "json.webpubsub.azure.v1";
    r.connection_state = "eyJrIjoidiJ9";
    r.event_id = "7";
    r.content_type = "text/plain";
    r.body = "hello";
    return r;
  }

  UpstreamClient& Client(UpstreamOptions options = Options()) {
    if (!client_) client_ = NewUpstreamClient(std::move(options));
    return *client_;
  }

  UpstreamResponse CallAndWait(UpstreamRequest request) {
    Completions done;
    Client().Call(std::move(request), done.Callback());
    EXPECT_TRUE(done.WaitForTotal(1)) << "done never ran";
    std::vector<UpstreamResponse> results = done.Results(0);
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? UpstreamResponse{} : results[0];
  }

  static constexpr int kServerThreads = 80;
  static inline Poco::ThreadPool* pool_ = nullptr;
  static inline Poco::Net::HTTPServer* server_ = nullptr;
  static inline uint16_t port_ = 0;
  std::unique_ptr<UpstreamClient> client_;
};

TEST_F(UpstreamClientTest, SendsEveryCloudEventsHeader) {
  const UpstreamResponse response = CallAndWait(Request());
  ASSERT_EQ(response.status, 200) << response.error;
  EXPECT_TRUE(response.ok());
  EXPECT_EQ(response.body, "ok");
  EXPECT_EQ(response.content_type, "text/plain; charset=utf-8");
  EXPECT_FALSE(response.connection_state.has_value());

  const std::vector<Recorded> posts = fake->Requests("POST");
  ASSERT_EQ(posts.size(), 1u);
  const Recorded& p = posts[0];
  EXPECT_EQ(p.uri, "/api/webpubsub/hubs/chat/?event=message&code=s3cret");
  EXPECT_EQ(p.Header("WebHook-Request-Origin"), kOrigin);
  EXPECT_EQ(p.Header("Content-Type"), "text/plain");
  EXPECT_EQ(p.Header("ce-specversion"), "1.0");
  EXPECT_EQ(p.Header("ce-awpsversion"), "1.0");
  EXPECT_EQ(p.Header("ce-type"), "azure.webpubsub.user.message");
  EXPECT_EQ(p.Header("ce-source"), "/hubs/chat/client/conn-1");
  EXPECT_EQ(p.Header("ce-id"), "7");
  EXPECT_EQ(p.Header("ce-userId"), "user-1");
  EXPECT_EQ(p.Header("ce-connectionId"), "conn-1");
  EXPECT_EQ(p.Header("ce-hub"), "chat");
  EXPECT_EQ(p.Header("ce-eventName"), "message");
  EXPECT_EQ(p.Header("ce-subprotocol"), "json.webpubsub.azure.v1");
  EXPECT_EQ(p.Header("ce-connectionState"), "eyJrIjoidiJ9");
  EXPECT_EQ(p.body, "hello");

  const std::string time = p.Header("ce-time").value_or("");
  EXPECT_TRUE(std::regex_match(time, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << time;

  const std::string signature = p.Header("ce-signature").value_or("");
  EXPECT_EQ(signature, "sha256=" + ReferenceHmacSha256Hex(kPrimaryKey, "conn-1") +
                           ",sha256=" + ReferenceHmacSha256Hex(kSecondaryKey, "conn-1"));
  for (const auto& [name, value] : p.headers) {
    if (name.rfind("ce-", 0) == 0) {
      EXPECT_EQ(p.Count(name), 1) << name;
    }
  }
}

TEST_F(UpstreamClientTest, OmitsUserIdSubprotocolAndStateWhenUnset) {
  UpstreamRequest request = Request();
  request.ce_type = "azure.webpubsub.sys.connected";
  request.event_name = "connected";
  request.user_id.reset();
  request.subprotocol.clear();
  request.connection_state.reset();
  request.content_type = "application/json; charset=utf-8";
  request.body = "{}";
  ASSERT_EQ(CallAndWait(request).status, 200);

  const std::vector<Recorded> posts = fake->Requests("POST");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].Count("ce-userId"), 0);
  EXPECT_EQ(posts[0].Count("ce-subprotocol"), 0);
  EXPECT_EQ(posts[0].Count("ce-connectionState"), 0);
  EXPECT_EQ(posts[0].Header("ce-type"), "azure.webpubsub.sys.connected");
  EXPECT_EQ(posts[0].Header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(posts[0].body, "{}");
}

TEST_F(UpstreamClientTest, SendsEmptyConnectionStateWhenSetToEmpty) {
  UpstreamRequest request = Request();
  request.connection_state = "";
  ASSERT_EQ(CallAndWait(request).status, 200);
  const std::vector<Recorded> posts = fake->Requests("POST");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].Header("ce-connectionState"), "");
}

TEST_F(UpstreamClientTest, BinaryBodyRoundTrips) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  bytes += std::string("\0\r\n\xff", 4);
  fake->SetScript([&bytes](const Recorded& r) {
    if (r.method != "POST") return DefaultReply(r);
    Reply reply;
    reply.body = bytes;
    reply.content_type = "application/octet-stream";
    return reply;
  });
  UpstreamRequest request = Request();
  request.content_type = "application/octet-stream";
  request.body = bytes;
  const UpstreamResponse response = CallAndWait(request);
  ASSERT_EQ(response.status, 200) << response.error;
  EXPECT_EQ(response.content_type, "application/octet-stream");
  EXPECT_EQ(response.body, bytes);
  const std::vector<Recorded> posts = fake->Requests("POST");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].body, bytes);
  EXPECT_EQ(posts[0].Header("Content-Type"), "application/octet-stream");
}

TEST_F(UpstreamClientTest, EmptyResponseBodyIsEmpty) {
  fake->SetScript([](const Recorded& r) {
    if (r.method != "POST") return DefaultReply(r);
    Reply reply;
    reply.status = 204;
    return reply;
  });
  const UpstreamResponse response = CallAndWait(Request());
  EXPECT_EQ(response.status, 204);
  EXPECT_TRUE(response.ok());
  EXPECT_TRUE(response.body.empty());
}

// Answers over max_response_bytes fail the call, whether their size is announced
// (Content-Length) or only found while reading (chunked); one at the limit is taken whole.
TEST_F(UpstreamClientTest, AnswerOverTheSizeLimitFailsTheCall) {
  constexpr size_t kLimit = size_t{1} << 20;
  for (const bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "Content-Length");
    for (const size_t size : {kLimit, kLimit + 1, 4 * kLimit}) {
      fake->SetScript([size, chunked](const Recorded& r) {
        Reply reply = DefaultReply(r);
        if (r.method == "POST") reply.body.assign(size, 'a');
        reply.chunked = chunked;
        return reply;
      });
      UpstreamRequest request = Request();
      request.retryable = true;
      const UpstreamResponse response = CallAndWait(std::move(request));
      if (size <= kLimit) {
        EXPECT_EQ(response.status, 200) << response.error;
        EXPECT_EQ(response.body.size(), size);
      } else {
        EXPECT_EQ(response.status, 0) << "an answer of " << size << " bytes was taken";
        EXPECT_FALSE(response.ok());
        EXPECT_TRUE(response.body.empty());
        EXPECT_NE(response.error.find("larger than the limit"), std::string::npos)
            << response.error;
      }
    }
  }
  // Over-limit answers are not retried: the handler would answer the same again.
  EXPECT_EQ(fake->Requests("POST").size(), 6u);
}

TEST_F(UpstreamClientTest, ValidatesOnceThenUsesTheCachedResult) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(CallAndWait(Request()).status, 200);

  const std::vector<Recorded> options = fake->Requests("OPTIONS");
  ASSERT_EQ(options.size(), 1u);
  EXPECT_EQ(options[0].uri, "/api/webpubsub/hubs/chat/?event=validate&code=s3cret");
  EXPECT_EQ(options[0].Header("WebHook-Request-Origin"), kOrigin);
  EXPECT_EQ(options[0].Header("ce-awpsversion"), "1.0");
  EXPECT_EQ(options[0].Count("ce-signature"), 0);
  EXPECT_EQ(fake->Requests("POST").size(), 3u);

  // Validation comes before the first event.
  const std::vector<Recorded> all = fake->Requests();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0].method, "OPTIONS");
}

TEST_F(UpstreamClientTest, SequentialRetryableCallsReuseOneConnection) {
  for (int i = 0; i < 4; ++i) {
    UpstreamRequest request = Request();
    request.retryable = true;
    ASSERT_EQ(CallAndWait(request).status, 200);
  }
  // Validation and every event on one kept-alive connection.
  const std::vector<Recorded> all = fake->Requests();
  ASSERT_EQ(all.size(), 5u);
  for (const Recorded& r : all) EXPECT_EQ(r.peer, all[0].peer);
}

// Every attempt's deadline waits in the client's timer thread. A call that answers first
// cancels it while the thread sleeps until that deadline; the next call's deadline wakes the
// thread, which must not read the cancelled one again (the ASan build caught a use after
// free there).
TEST_F(UpstreamClientTest, CallsAfterOnesThatBeatTheirDeadlineStillComplete) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(CallAndWait(Request()).status, 200);
    std::this_thread::sleep_for(10ms);  // lets the timer thread go back to sleep
  }
  EXPECT_EQ(fake->Requests("POST").size(), 5u);
}

// Blocking events (connect, user events) may not be idempotent; they ride kept-alive
// connections all the same, because a request is sent again only when not one byte of it
// reached the handler (rest/http_client.h).
TEST_F(UpstreamClientTest, BlockingCallsReuseOneKeepAliveConnection) {
  for (int i = 0; i < 10; ++i) ASSERT_EQ(CallAndWait(Request()).status, 200);
  const std::vector<Recorded> posts = fake->Requests("POST");
  ASSERT_EQ(posts.size(), 10u);
  for (const Recorded& r : posts) EXPECT_EQ(r.peer, posts[0].peer);
}

// The fixture's event, as a blocking one (not retryable), to a raw handler.
UpstreamRequest RawEvent(UpstreamRequest request, const rawhttp::RawHttpServer& server) {
  request.url = server.Url("/events");
  request.validation_url.clear();
  return request;
}

// A raw handler that answers the validation and the first event on one connection, then reads
// the next event and drops the connection unanswered: that event may have been acted on.
TEST_F(UpstreamClientTest, BlockingCallDroppedUnansweredIsNotSentTwice) {
  rawhttp::RawHttpServer server([](rawhttp::RawHttpServer& s, rawhttp::RawConnection& c) {
    int events = 0;
    while (std::optional<rawhttp::RawRequest> r = c.ReadRequest()) {
      s.Record(*r);
      if (r->head.rfind("OPTIONS", 0) == 0) {
        c.Write(rawhttp::Answer("", "WebHook-Allowed-Origin: *\r\n"));
      } else if (++events == 1) {
        c.Write(rawhttp::Answer("ok"));
      } else {
        return;  // read, never answered
      }
    }
  });
  UpstreamRequest request = RawEvent(Request(), server);
  request.validation_url = server.Url("/events?event=validate");
  for (const std::string id : {"first", "second"}) {
    request.event_id = id;
    Completions done;
    Client().Call(request, done.Callback());
    ASSERT_TRUE(done.WaitForTotal(1));
    const UpstreamResponse response = done.Results(0)[0];
    if (id == "first") {
      ASSERT_EQ(response.status, 200) << response.error;
    } else {
      EXPECT_EQ(response.status, 0);
      EXPECT_EQ(response.error.rfind("network error", 0), 0u) << response.error;
    }
  }
  EXPECT_EQ(server.CountWith("ce-id", "second"), 1) << "a blocking event was sent twice";
  EXPECT_EQ(server.accepted(), 1);
}

// The handler closes its idle keep-alive connection between two blocking events (express does
// after 5 s): the second goes on a fresh connection, once.
TEST_F(UpstreamClientTest, BlockingCallAfterTheHandlerDroppedTheIdleConnectionArrivesOnce) {
  rawhttp::RawHttpServer server([](rawhttp::RawHttpServer& s, rawhttp::RawConnection& c) {
    while (std::optional<rawhttp::RawRequest> r = c.ReadRequest()) {
      s.Record(*r);
      c.Write(rawhttp::Answer("ok"));
      if (c.number() == 1) return;  // one answer, then the connection is closed
    }
  });
  UpstreamRequest request = RawEvent(Request(), server);
  for (const std::string id : {"first", "second", "third"}) {
    request.event_id = id;
    Completions done;
    Client().Call(request, done.Callback());
    ASSERT_TRUE(done.WaitForTotal(1));
    ASSERT_EQ(done.Results(0)[0].status, 200) << done.Results(0)[0].error;
    if (id == "first") {
      ASSERT_TRUE(server.WaitFor("closed 1"));
    }
  }
  EXPECT_EQ(server.CountWith("ce-id", "second"), 1);
  EXPECT_EQ(server.CountWith("ce-id", "third"), 1);
  EXPECT_EQ(server.accepted(), 2);  // the second and third share the new connection
}

TEST_F(UpstreamClientTest, WrongAllowedOriginBlocksTheCallAndSendsNoEvent) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") reply.headers = {{"WebHook-Allowed-Origin", "evil.example.com"}};
    return reply;
  });
  const UpstreamResponse response = CallAndWait(Request());
  EXPECT_EQ(response.status, 0);
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.error.rfind(kValidationPrefix, 0), 0u) << response.error;
  EXPECT_TRUE(fake->Requests("POST").empty());
}

TEST_F(UpstreamClientTest, MissingAllowedOriginOrNon2xxBlocksTheCall) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") {
      reply.headers.clear();
      if (r.uri.find("forbidden") != std::string::npos) {
        reply.status = 403;
        reply.headers = {{"WebHook-Allowed-Origin", "*"}};
      }
    }
    return reply;
  });
  UpstreamRequest missing = Request();
  missing.validation_url = Url("/missing?event=validate");
  UpstreamResponse response = CallAndWait(missing);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error.rfind(kValidationPrefix, 0), 0u) << response.error;

  UpstreamRequest forbidden = Request();
  forbidden.validation_url = Url("/forbidden?event=validate");
  response = CallAndWait(forbidden);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error.rfind(kValidationPrefix, 0), 0u) << response.error;
  EXPECT_TRUE(fake->Requests("POST").empty());
}

TEST_F(UpstreamClientTest, AcceptsWildcardAndCommaSeparatedAllowedOrigins) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS" && r.uri.find("list") != std::string::npos) {
      reply.headers = {{"WebHook-Allowed-Origin", "other.example.com, HubCast.Example.COM"}};
    }
    return reply;
  });
  UpstreamRequest wildcard = Request();
  wildcard.validation_url = Url("/wildcard?event=validate");
  EXPECT_EQ(CallAndWait(wildcard).status, 200);
  UpstreamRequest list = Request();
  list.validation_url = Url("/list?event=validate");
  EXPECT_EQ(CallAndWait(list).status, 200);
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 2u);
  EXPECT_EQ(fake->Requests("POST").size(), 2u);
}

TEST_F(UpstreamClientTest, AcceptsRepeatedAllowedOriginHeaders) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") {
      reply.headers = {{"WebHook-Allowed-Origin", "other.example.com"},
                       {"WebHook-Allowed-Origin", kOrigin}};
    }
    return reply;
  });
  const UpstreamResponse response = CallAndWait(Request());
  EXPECT_EQ(response.status, 200) << response.error;
  EXPECT_EQ(fake->Requests("POST").size(), 1u);
}

TEST_F(UpstreamClientTest, FallsBackToGetWhenOptionsIsNotRouted) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") {
      reply.status = r.uri.find("405") != std::string::npos ? 405 : 404;
      reply.headers.clear();
    }
    return reply;
  });
  UpstreamRequest not_found = Request();
  not_found.validation_url = Url("/404?event=validate");
  EXPECT_EQ(CallAndWait(not_found).status, 200);
  UpstreamRequest not_allowed = Request();
  not_allowed.validation_url = Url("/405?event=validate");
  EXPECT_EQ(CallAndWait(not_allowed).status, 200);

  const std::vector<Recorded> gets = fake->Requests("GET");
  ASSERT_EQ(gets.size(), 2u);
  EXPECT_EQ(gets[0].uri, "/404?event=validate");
  EXPECT_EQ(gets[0].Header("WebHook-Request-Origin"), kOrigin);
  EXPECT_EQ(gets[0].Header("ce-awpsversion"), "1.0");
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 2u);
  EXPECT_EQ(fake->Requests("POST").size(), 2u);
}

TEST_F(UpstreamClientTest, FailedValidationFailsFastUntilTheBackOffPasses) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") reply.status = 500;
    return reply;
  });
  const UpstreamResponse first = CallAndWait(Request());
  EXPECT_EQ(first.status, 0);
  EXPECT_EQ(first.error.rfind(kValidationPrefix, 0), 0u) << first.error;

  const UpstreamResponse second = CallAndWait(Request());
  EXPECT_EQ(second.status, 0);
  EXPECT_EQ(second.error, first.error);
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 1u);

  fake->SetScript(DefaultReply);
  std::this_thread::sleep_for(Options().validation_retry + 50ms);
  const UpstreamResponse third = CallAndWait(Request());
  EXPECT_EQ(third.status, 200) << third.error;
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 2u);
  EXPECT_EQ(fake->Requests("POST").size(), 1u);
}

TEST_F(UpstreamClientTest, ConcurrentFirstCallsShareOneValidation) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") reply.delay = 200ms;
    return reply;
  });
  Completions done;
  constexpr int kCalls = 10;
  for (int i = 0; i < kCalls; ++i) Client().Call(Request(), done.Callback(i));
  ASSERT_TRUE(done.WaitForTotal(kCalls));
  for (int i = 0; i < kCalls; ++i) {
    const std::vector<UpstreamResponse> results = done.Results(i);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, 200) << results[0].error;
  }
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 1u);
  EXPECT_EQ(fake->Requests("POST").size(), static_cast<size_t>(kCalls));
}

TEST_F(UpstreamClientTest, ResetValidationsValidatesAgain) {
  ASSERT_EQ(CallAndWait(Request()).status, 200);
  Client().ResetValidations();
  ASSERT_EQ(CallAndWait(Request()).status, 200);
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 2u);
}

TEST_F(UpstreamClientTest, EmptyValidationUrlSkipsValidation) {
  UpstreamRequest request = Request();
  request.validation_url.clear();
  ASSERT_EQ(CallAndWait(request).status, 200);
  EXPECT_TRUE(fake->Requests("OPTIONS").empty());
}

TEST_F(UpstreamClientTest, RetryableServerErrorsAreRetriedWithBackOff) {
  std::atomic<int> posts{0};
  fake->SetScript([&posts](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST" && ++posts <= 2) reply.status = 503;
    return reply;
  });
  UpstreamRequest request = Request();
  request.retryable = true;
  const auto start = std::chrono::steady_clock::now();
  const UpstreamResponse response = CallAndWait(request);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(response.status, 200) << response.error;
  EXPECT_EQ(response.body, "ok");
  EXPECT_EQ(fake->Requests("POST").size(), 3u);
  EXPECT_GE(elapsed, 40ms);  // 10 ms, then 30 ms
  // Every attempt carries the same event id: handlers deduplicate on it.
  for (const Recorded& r : fake->Requests("POST")) EXPECT_EQ(r.Header("ce-id"), "7");
}

TEST_F(UpstreamClientTest, RetriesStopAfterMaxAttempts) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") reply.status = r.Header("ce-id") == "408" ? 408 : 500;
    return reply;
  });
  UpstreamOptions options = Options();
  options.max_attempts = 3;
  Client(options);
  UpstreamRequest request = Request();
  request.retryable = true;
  EXPECT_EQ(CallAndWait(request).status, 500);
  EXPECT_EQ(fake->Requests("POST").size(), 3u);

  request.event_id = "408";
  EXPECT_EQ(CallAndWait(request).status, 408);
  EXPECT_EQ(fake->Requests("POST").size(), 6u);
}

TEST_F(UpstreamClientTest, NonRetryableRequestIsAttemptedOnce) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") reply.status = 503;
    return reply;
  });
  const UpstreamResponse response = CallAndWait(Request());
  EXPECT_EQ(response.status, 503);
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(fake->Requests("POST").size(), 1u);
}

TEST_F(UpstreamClientTest, ClientErrorsAreNotRetried) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") {
      reply.status = 429;
      reply.body = "slow down";
    }
    return reply;
  });
  UpstreamRequest request = Request();
  request.retryable = true;
  const UpstreamResponse response = CallAndWait(request);
  EXPECT_EQ(response.status, 429);
  EXPECT_EQ(response.body, "slow down");
  EXPECT_EQ(fake->Requests("POST").size(), 1u);
}

TEST_F(UpstreamClientTest, TimeoutYieldsStatusZeroWithinTheTimeout) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") reply.block = true;
    return reply;
  });
  UpstreamOptions options = Options();
  options.timeout = 300ms;
  Client(options);
  const auto start = std::chrono::steady_clock::now();
  const UpstreamResponse response = CallAndWait(Request());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "timed out");
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(UpstreamClientTest, TricklingAnswerIsTimedOutAfterTheTimeout) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") {
      reply.body = std::string(30, 'x');
      reply.drip = 100ms;  // 3 s in all, never idle for the timeout
    }
    return reply;
  });
  UpstreamOptions options = Options();
  options.timeout = 400ms;
  Client(options);
  const auto start = std::chrono::steady_clock::now();
  const UpstreamResponse response = CallAndWait(Request());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "timed out");
  EXPECT_LT(elapsed, 1500ms);
}

TEST_F(UpstreamClientTest, RetryableTimeoutIsRetried) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") reply.block = true;
    return reply;
  });
  UpstreamOptions options = Options();
  options.timeout = 200ms;
  options.max_attempts = 2;
  Client(options);
  UpstreamRequest request = Request();
  request.retryable = true;
  const UpstreamResponse response = CallAndWait(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "timed out");
  EXPECT_EQ(fake->Requests("POST").size(), 2u);
}

TEST_F(UpstreamClientTest, ConnectionRefusedIsANetworkError) {
  uint16_t closed_port;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    closed_port = probe.address().port();
  }
  UpstreamRequest request = Request();
  request.url = "http://127.0.0.1:" + std::to_string(closed_port) + "/api/events";
  const UpstreamResponse response = CallAndWait(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error.rfind("network error", 0), 0u) << response.error;

  // The same failure during validation blocks the call.
  request.validation_url = request.url + "?event=validate";
  const UpstreamResponse blocked = CallAndWait(request);
  EXPECT_EQ(blocked.status, 0);
  EXPECT_EQ(blocked.error.rfind(kValidationPrefix, 0), 0u) << blocked.error;
}

TEST_F(UpstreamClientTest, InvalidUrlFailsWithoutSending) {
  UpstreamRequest request = Request();
  request.validation_url.clear();
  request.url = "not a url";
  UpstreamResponse response = CallAndWait(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "invalid url");
  request.url = "ftp://127.0.0.1/x";
  response = CallAndWait(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "invalid url");
  EXPECT_TRUE(fake->Requests().empty());
}

TEST_F(UpstreamClientTest, HeaderValueWithLineBreakIsRejectedWithoutSending) {
  UpstreamRequest request = Request();
  request.user_id = "user\r\nX-Injected: 1";
  const UpstreamResponse response = CallAndWait(request);
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "invalid header value for ce-userId");
  EXPECT_TRUE(fake->Requests().empty());
}

TEST_F(UpstreamClientTest, SurfacesResponseConnectionState) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST" && r.Header("ce-id") == "set") {
      reply.headers = {{"ce-connectionState", "bmV3LXN0YXRl"}};
    } else if (r.method == "POST" && r.Header("ce-id") == "empty") {
      reply.headers = {{"ce-connectionState", ""}};
    }
    return reply;
  });
  UpstreamRequest request = Request();
  request.event_id = "set";
  UpstreamResponse response = CallAndWait(request);
  ASSERT_EQ(response.status, 200) << response.error;
  EXPECT_EQ(response.connection_state, "bmV3LXN0YXRl");

  request.event_id = "empty";
  response = CallAndWait(request);
  ASSERT_EQ(response.status, 200) << response.error;
  ASSERT_TRUE(response.connection_state.has_value());
  EXPECT_EQ(*response.connection_state, "");

  request.event_id = "absent";
  response = CallAndWait(request);
  ASSERT_EQ(response.status, 200) << response.error;
  EXPECT_FALSE(response.connection_state.has_value());
}

TEST_F(UpstreamClientTest, DoneNeverRunsOnTheCallingThread) {
  UpstreamRequest request = Request();
  request.url = "not a url";  // fails before any I/O
  request.validation_url.clear();
  Completions done;
  auto callback = done.Callback();
  std::thread::id done_thread;
  for (int i = 0; i < 20; ++i) {
    Client().Call(request, [&, callback](UpstreamResponse r) {
      done_thread = std::this_thread::get_id();
      callback(std::move(r));
    });
    ASSERT_TRUE(done.WaitForTotal(i + 1));
    EXPECT_NE(done_thread, std::this_thread::get_id());
  }
}

TEST_F(UpstreamClientTest, FiftyConcurrentCallsEachCompleteExactlyOnce) {
  constexpr int kThreads = 5;
  constexpr int kPerThread = 10;
  Completions done;
  UpstreamClient& client = Client();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        UpstreamRequest request = Request();
        const int index = t * kPerThread + i;
        request.event_id = std::to_string(index);
        request.connection_id = "conn-" + std::to_string(index);
        client.Call(std::move(request), done.Callback(index));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(done.WaitForTotal(kThreads * kPerThread, 20s));
  std::this_thread::sleep_for(100ms);  // a duplicate completion would show up by now
  EXPECT_EQ(done.Total(), kThreads * kPerThread);
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    const std::vector<UpstreamResponse> results = done.Results(i);
    ASSERT_EQ(results.size(), 1u) << i;
    EXPECT_EQ(results[0].status, 200) << results[0].error;
  }
  EXPECT_EQ(fake->Requests("POST").size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(fake->Requests("OPTIONS").size(), 1u);
}

TEST_F(UpstreamClientTest, DestroyingTheClientCompletesCallsInFlight) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "POST") {
      if (r.Header("ce-id") == "backoff") {
        reply.status = 503;
      } else {
        reply.block = true;
      }
    }
    return reply;
  });
  UpstreamOptions options = Options();
  options.retry_base = 10s;  // the retryable call sits in the back-off queue
  Client(options);
  Completions done;
  constexpr int kBlocked = 5;
  for (int i = 0; i < kBlocked; ++i) Client().Call(Request(), done.Callback(i));
  UpstreamRequest backoff = Request();
  backoff.event_id = "backoff";
  backoff.retryable = true;
  Client().Call(backoff, done.Callback(kBlocked));
  ASSERT_TRUE(fake->WaitForRequests("POST", kBlocked + 1, 5s));
  std::this_thread::sleep_for(100ms);  // lets the 503 reach the client

  const auto start = std::chrono::steady_clock::now();
  client_.reset();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 2s);
  EXPECT_EQ(done.Total(), kBlocked + 1);  // all completed before the destructor returned
  for (int i = 0; i <= kBlocked; ++i) {
    const std::vector<UpstreamResponse> results = done.Results(i);
    ASSERT_EQ(results.size(), 1u) << i;
    EXPECT_EQ(results[0].status, 0);
    EXPECT_EQ(results[0].error, "shutting down");
  }
  EXPECT_EQ(fake->Requests("POST").size(), static_cast<size_t>(kBlocked + 1));
}

TEST_F(UpstreamClientTest, DestroyingTheClientInsideDoneDoesNotWaitForItself) {
  Client();
  std::atomic<bool> destroyed{false};
  std::chrono::steady_clock::duration took{};
  Completions done;
  auto callback = done.Callback();
  client_->Call(Request(), [&, callback](UpstreamResponse r) {
    const auto start = std::chrono::steady_clock::now();
    client_.reset();
    took = std::chrono::steady_clock::now() - start;
    destroyed = true;
    callback(std::move(r));
  });
  ASSERT_TRUE(done.WaitForTotal(1));
  EXPECT_TRUE(destroyed);
  EXPECT_LT(took, 1s);
  EXPECT_EQ(done.Results(0)[0].status, 200);
}

TEST_F(UpstreamClientTest, DestroyingTheClientDuringValidationCompletesTheWaiters) {
  fake->SetScript([](const Recorded& r) {
    Reply reply = DefaultReply(r);
    if (r.method == "OPTIONS") reply.block = true;
    return reply;
  });
  Completions done;
  for (int i = 0; i < 3; ++i) Client().Call(Request(), done.Callback(i));
  ASSERT_TRUE(fake->WaitForRequests("OPTIONS", 1, 5s));
  client_.reset();
  EXPECT_EQ(done.Total(), 3);
  for (int i = 0; i < 3; ++i) {
    const std::vector<UpstreamResponse> results = done.Results(i);
    ASSERT_EQ(results.size(), 1u) << i;
    EXPECT_EQ(results[0].status, 0);
    EXPECT_EQ(results[0].error, "shutting down");
  }
  EXPECT_TRUE(fake->Requests("POST").empty());
}

}  // namespace
}  // namespace hubcast::rest
