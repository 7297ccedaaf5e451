#include "rest/rest_api.h"

#include "base/base64.h"
#include "base/clock.h"
#include "base/executor.h"
#include "base/json.h"
#include "base/names.h"
#include "replication/delivery_sink.h"
#include "replication/hub.h"
#include "rest/jwt.h"
#include "storage/entry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::rest {
namespace {

constexpr char kKey[] = "primary-access-key-0123456789ABCDEFGHIJ";
constexpr char kSecondaryKey[] = "secondary-access-key-0123456789";
constexpr int64_t kNowSeconds = 1700000000;
constexpr size_t kMaxBody = 4096;

class FixedClock : public Clock {
 public:
  int64_t NowUnixMs() const override { return now_ms; }
  std::chrono::steady_clock::time_point Monotonic() const override {
    return std::chrono::steady_clock::now();
  }
  int64_t now_ms = kNowSeconds * 1000 + 250;
};

struct Delivered {
  std::string hub;
  storage::Entry entry;
  Status status;
  std::vector<std::string> recipients;
};

class RecordingSink : public replication::DeliverySink {
 public:
  void Deliver(replication::Hub& hub, uint64_t, const storage::Entry& entry,
               const storage::ApplyResult& result) override {
    Delivered d{hub.name().str(), entry, result.status, {}};
    for (const storage::ConnectionRecord* r : result.recipients) d.recipients.push_back(r->id);
    std::sort(d.recipients.begin(), d.recipients.end());
    std::lock_guard lock(mu_);
    delivered_.push_back(std::move(d));
  }
  std::vector<Delivered> delivered() const {
    std::lock_guard lock(mu_);
    return delivered_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Delivered> delivered_;
};

struct HttpResult {
  int status = 0;
  std::string body;
  HttpResponse response;

  std::string Header(const std::string& name) const { return response.headers.Get(name); }
  json::Value Json() const {
    Result<json::Value> v = json::Parse(body);
    EXPECT_TRUE(v.ok()) << "not JSON: " << body;
    return v.ok() ? *v : json::Value();
  }
};

struct Call {
  std::string method = "POST";
  std::string target;  // path and query, as on the wire
  std::string body;
  std::string content_type;
  std::optional<std::string> authorization;  // default: a valid token for the target
};

RestOptions Options() {
  RestOptions options;
  options.access_keys = {kKey, kSecondaryKey};
  options.max_body_bytes = kMaxBody;
  return options;
}

// An event loop's inbox, run by the test thread: completions queue here until RunUntil.
class QueueExecutor : public Executor {
 public:
  void Execute(std::function<void()> task) override {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
    cv_.notify_all();
  }
  // Runs queued tasks until `done` holds; false after 10 s without it.
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, deadline, [&] { return !tasks_.empty(); })) return false;
      std::vector<std::function<void()>> batch;
      batch.swap(tasks_);
      lock.unlock();
      for (auto& task : batch) task();
    }
    return true;
  }
  size_t queued() {
    std::lock_guard lock(mu_);
    return tasks_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> tasks_;
};

enum class Path { kWorker, kLoop };

// RestApi is transport-neutral: the tests hand it requests as the front would, complete. Every
// test runs twice: on a worker (Handle) and as the front serves on an event loop
// (HandleWithoutWaiting first, Handle for what it defers), so both paths give the same answers.
class RestApiTest : public ::testing::TestWithParam<Path> {
 protected:
  RestApiTest()
      : registry_(replication::HubRegistryOptions{"node-1"}, &sink_),
        api_(&registry_, Options(), &clock_) {}

  static constexpr char kHost[] = "127.0.0.1:8080";
  std::string Base() const { return std::string("http://") + kHost; }

  // A token the way @azure/web-pubsub signs it: aud = the full request URL, query included.
  std::string TokenFor(const std::string& audience, const std::string& key = kKey,
                       int64_t exp = kNowSeconds + 3600) const {
    json::Value payload = json::Value::Object();
    payload.Add("iat", json::Value::Int(kNowSeconds));
    payload.Add("exp", json::Value::Int(exp));
    payload.Add("aud", json::Value::String(audience));
    return SignToken(payload, key);
  }

  HttpResult Do(const Call& call) {
    HttpRequest request;
    request.method = call.method;
    request.target = call.target;
    request.host = kHost;
    request.headers.Add("Host", kHost);
    const std::string auth =
        call.authorization ? *call.authorization : "Bearer " + TokenFor(Base() + call.target);
    if (!auth.empty()) request.headers.Add("Authorization", auth);
    if (!call.content_type.empty()) request.headers.Add("Content-Type", call.content_type);
    request.body = call.body;
    HttpResult result;
    result.response =
        GetParam() == Path::kLoop ? HandleAsTheLoopWould(request) : api_.Handle(request);
    result.status = result.response.status;
    result.body = result.response.body;
    return result;
  }

  HttpResult Do(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& content_type = "") {
    Call call;
    call.method = method;
    call.target = target;
    call.body = body;
    call.content_type = content_type;
    return Do(call);
  }

  HttpResponse HandleAsTheLoopWould(const HttpRequest& request) {
    auto answer = std::make_shared<std::optional<HttpResponse>>();
    int answers = 0;
    if (!api_.HandleWithoutWaiting(request, &loop_, [answer, &answers](HttpResponse r) {
          ++answers;
          *answer = std::move(r);
        })) {
      EXPECT_EQ(answers, 0) << "a deferred request was answered";
      return api_.Handle(request);
    }
    EXPECT_TRUE(loop_.RunUntil([&] { return answer->has_value(); })) << "never answered";
    EXPECT_EQ(answers, 1);
    return answer->value_or(HttpResponse{});
  }

  std::shared_ptr<replication::Hub> Hub(const std::string& name = "chat") {
    return *registry_.Get(*HubName::Parse(name));
  }

  void Open(const std::string& id, std::optional<std::string> user = std::nullopt,
            std::vector<std::string> groups = {}, std::vector<std::string> roles = {}) {
    storage::Entry e;
    e.kind = storage::EntryKind::kConnectionOpen;
    e.origin_connection = id;
    e.user_id = std::move(user);
    e.groups = std::move(groups);
    e.roles = std::move(roles);
    e.node_id = "node-1";
    ASSERT_TRUE(Hub()->AppendAndWait(std::move(e)).ok());
  }

  // The last entry applied in hub "chat", after everything appended so far.
  Delivered Last() {
    EXPECT_TRUE(Hub()->Barrier().ok());
    std::vector<Delivered> all = sink_.delivered();
    EXPECT_FALSE(all.empty());
    return all.empty() ? Delivered{} : all.back();
  }

  const storage::HubView& View() {
    EXPECT_TRUE(Hub()->Barrier().ok());
    return Hub()->view();
  }

  RecordingSink sink_;
  FixedClock clock_;
  replication::HubRegistry registry_;
  RestApi api_;
  QueueExecutor loop_;
};

INSTANTIATE_TEST_SUITE_P(Paths, RestApiTest, ::testing::Values(Path::kWorker, Path::kLoop),
                         [](const ::testing::TestParamInfo<Path>& info) {
                           return info.param == Path::kLoop ? "OnLoop" : "OnWorker";
                         });

void ExpectError(const HttpResult& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.Header("x-ms-error-code"), code);
  json::Value body = r.Json();
  ASSERT_TRUE(body.is_object()) << r.body;
  ASSERT_NE(body.Find("code"), nullptr);
  EXPECT_EQ(body.Find("code")->str(), code);
  ASSERT_NE(body.Find("message"), nullptr);
  EXPECT_FALSE(body.Find("message")->str().empty());
}

// --- health, routing, auth ------------------------------------------------------------------

TEST_P(RestApiTest, HealthAnswers200WithoutTokenForHeadAndGet) {
  for (const char* method : {"HEAD", "GET"}) {
    for (const char* target : {"/api/health", "/api/health?api-version=2024-12-01",
                               "/api/health?api-version=whatever"}) {
      Call call;
      call.method = method;
      call.target = target;
      call.authorization = "";
      HttpResult r = Do(call);
      EXPECT_EQ(r.status, 200) << method << " " << target;
      EXPECT_TRUE(r.body.empty());
    }
  }
}

TEST_P(RestApiTest, UnknownPathIs404) {
  for (const char* target : {"/api/hubs/chat/nope", "/api/unknown", "/api", "/other",
                             "/api/hubs/chat/groups/g1/connections/c1/extra"}) {
    ExpectError(Do("GET", target), 404, "NotFound");
  }
}

TEST_P(RestApiTest, WrongMethodIs405WithAllowHeader) {
  HttpResult r = Do("GET", "/api/hubs/chat/:send?api-version=2024-12-01");
  ExpectError(r, 405, "MethodNotAllowed");
  EXPECT_EQ(r.Header("Allow"), "POST");

  r = Do("POST", "/api/hubs/chat/permissions/sendToGroup/connections/c1");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "PUT, DELETE, HEAD");

  r = Do("POST", "/api/health");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET, HEAD");
}

TEST_P(RestApiTest, MissingTokenIs401WithBearerChallenge) {
  Call call;
  call.target = "/api/hubs/chat/:send?api-version=2024-12-01";
  call.authorization = "";
  HttpResult r = Do(call);
  ExpectError(r, 401, "Unauthorized");
  EXPECT_EQ(r.Header("WWW-Authenticate"), "Bearer");

  call.authorization = "Basic dXNlcjpwYXNz";
  ExpectError(Do(call), 401, "Unauthorized");
}

TEST_P(RestApiTest, TokenSignedWithUnknownKeyIs401) {
  Call call;
  call.target = "/api/hubs/chat/:send";
  call.authorization = "Bearer " + TokenFor(Base() + call.target, "not-the-key");
  HttpResult r = Do(call);
  ExpectError(r, 401, "Unauthorized");
  EXPECT_EQ(r.Header("WWW-Authenticate"), "Bearer");
}

TEST_P(RestApiTest, ExpiredTokenIs401) {
  Call call;
  call.target = "/api/hubs/chat/:send";
  call.authorization = "Bearer " + TokenFor(Base() + call.target, kKey, kNowSeconds - 3600);
  ExpectError(Do(call), 401, "Unauthorized");
}

TEST_P(RestApiTest, AnAcceptedTokenIsStillCheckedForExpiryAndAudienceOnLaterCalls) {
  Call call;
  call.target = "/api/hubs/chat/:send";
  const int64_t exp = kNowSeconds + 60;
  call.authorization = "Bearer " + TokenFor(Base() + call.target, kKey, exp);
  EXPECT_EQ(Do(call).status, 202);
  EXPECT_EQ(Do(call).status, 202);  // the second time from the cache
  // Same token, another path: its audience does not cover it.
  Call other = call;
  other.target = "/api/hubs/other/:send";
  ExpectError(Do(other), 401, "Unauthorized");
  // Past exp + the clock skew, the remembered token is refused like any expired one.
  clock_.now_ms = (exp + kTokenClockSkewSeconds) * 1000;
  ExpectError(Do(call), 401, "Unauthorized");
}

TEST_P(RestApiTest, TokenForAnotherPathIs401) {
  Call call;
  call.target = "/api/hubs/chat/:send";
  call.authorization = "Bearer " + TokenFor(Base() + "/api/hubs/other/:send");
  ExpectError(Do(call), 401, "Unauthorized");
}

TEST_P(RestApiTest, AudienceIgnoresHostAndQueryAndAnyKeyMaySign) {
  Call call;
  call.target = "/api/hubs/chat/:send?api-version=2024-12-01";
  call.authorization =
      "Bearer " + TokenFor("https://PUBLIC.example.com/api/hubs/chat/:send?api-version=1");
  EXPECT_EQ(Do(call).status, 202);

  call.authorization = "bearer " + TokenFor(Base() + call.target, kSecondaryKey);
  EXPECT_EQ(Do(call).status, 202);
}

TEST_P(RestApiTest, ApiVersionIsOptionalAndFree) {
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:send", "x", "text/plain").status, 202);
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:send?api-version=1999-01-01", "x", "text/plain").status,
            202);
}

// --- validation -----------------------------------------------------------------------------

TEST_P(RestApiTest, InvalidHubNameIs400) {
  ExpectError(Do("POST", "/api/hubs/1bad/:send", "x", "text/plain"), 400, "BadRequest");
  ExpectError(Do("POST", "/api/hubs/bad-hub/:send", "x", "text/plain"), 400, "BadRequest");
  ExpectError(Do("POST", "/api/hubs/" + std::string(129, 'a') + "/:send", "x", "text/plain"), 400,
              "BadRequest");
  EXPECT_EQ(Do("HEAD", "/api/hubs/1bad/users/u1").status, 400);
}

TEST_P(RestApiTest, InvalidGroupNameIs400) {
  ExpectError(Do("POST", "/api/hubs/chat/groups/%20%20/:send", "x", "text/plain"), 400,
              "BadRequest");
  ExpectError(Do("PUT", "/api/hubs/chat/users/u1/groups/%09"), 400, "BadRequest");
  ExpectError(Do("PUT", "/api/hubs/chat/groups/" + std::string(1025, 'g') + "/connections/c1"), 400,
              "BadRequest");
  ExpectError(Do("GET", "/api/hubs/chat/groups/%20/connections"), 400, "BadRequest");
}

TEST_P(RestApiTest, InvalidIdsAre400) {
  ExpectError(Do("POST", "/api/hubs/chat/users//:send", "x", "text/plain"), 400, "BadRequest");
  ExpectError(Do("POST", "/api/hubs/chat/:send?excluded=", "x", "text/plain"), 400, "BadRequest");
  ExpectError(Do("POST", "/api/hubs/chat/users/%FF/:send", "x", "text/plain"), 400, "BadRequest");
}

TEST_P(RestApiTest, PathSegmentsAreSplitThenDecodedOnce) {
  struct Case {
    std::string raw;
    std::string decoded;
  };
  for (const Case& c : std::vector<Case>{{"a%2Fb", "a/b"},
                                         {"u%201", "u 1"},
                                         {"x%252Fy", "x%2Fy"},
                                         {"a+b", "a+b"},
                                         {"%E4%BD%A0", "\xE4\xBD\xA0"}}) {
    ASSERT_EQ(Do("POST", "/api/hubs/chat/users/" + c.raw + "/:send", "x", "text/plain").status, 202)
        << c.raw;
    Delivered d = Last();
    EXPECT_EQ(d.entry.scope, storage::Scope::kUser);
    EXPECT_EQ(d.entry.target, c.decoded) << c.raw;
  }
  // Hub names are case-insensitive; action segments too.
  ASSERT_EQ(Do("POST", "/api/hubs/CHAT/groups/g%2F1/:SEND", "x", "text/plain").status, 202);
  Delivered d = Last();
  EXPECT_EQ(d.hub, "chat");
  EXPECT_EQ(d.entry.target, "g/1");
}

// --- sends ----------------------------------------------------------------------------------

TEST_P(RestApiTest, SendToAllAppendsJsonMessageAndAnswers202) {
  Open("c1", "u1");
  Open("c2", "u1");
  Open("c3", "u2");
  HttpResult r = Do("POST",
                    "/api/hubs/chat/:send?api-version=2024-12-01&excluded=c2&excluded=c9"
                    "&filter=userId%20eq%20%27u1%27&messageTtlSeconds=30",
                    R"({"a": 1.0})", "application/json; charset=utf-8");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_TRUE(r.body.empty());
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kSend);
  EXPECT_EQ(d.entry.scope, storage::Scope::kAll);
  EXPECT_EQ(d.entry.excluded, (std::vector<std::string>{"c2", "c9"}));
  ASSERT_NE(d.entry.filter, nullptr);
  EXPECT_EQ(d.entry.filter->text(), "userId eq 'u1'");
  EXPECT_EQ(d.entry.from, storage::MessageFrom::kServer);
  EXPECT_EQ(d.entry.data_type, storage::DataType::kJson);
  EXPECT_EQ(d.entry.data, R"({"a": 1.0})");
  EXPECT_EQ(d.entry.message_ttl_seconds, 30);
  EXPECT_EQ(d.entry.timestamp_ms, kNowSeconds * 1000 + 250);
  EXPECT_TRUE(d.entry.origin_connection.empty());
  EXPECT_EQ(d.recipients, std::vector<std::string>{"c1"});
}

TEST_P(RestApiTest, SendsUseTheirScopeAndContentType) {
  struct Case {
    std::string target;
    std::string content_type;
    storage::Scope scope;
    std::string scope_target;
    storage::DataType type;
  };
  const std::string binary("\x00\xff\x01", 3);
  for (const Case& c :
       std::vector<Case>{{"/api/hubs/chat/connections/c1/:send", "TEXT/Plain;charset=UTF-8",
                          storage::Scope::kConnection, "c1", storage::DataType::kText},
                         {"/api/hubs/chat/users/u1/:send", "application/octet-stream",
                          storage::Scope::kUser, "u1", storage::DataType::kBinary},
                         {"/api/hubs/chat/groups/g1/:send", "", storage::Scope::kGroup, "g1",
                          storage::DataType::kBinary}}) {
    const std::string body = c.type == storage::DataType::kText ? std::string("hello") : binary;
    EXPECT_EQ(Do("POST", c.target, body, c.content_type).status, 202) << c.target;
    Delivered d = Last();
    EXPECT_EQ(d.entry.kind, storage::EntryKind::kSend);
    EXPECT_EQ(d.entry.scope, c.scope);
    EXPECT_EQ(d.entry.target, c.scope_target);
    EXPECT_EQ(d.entry.data_type, c.type);
    EXPECT_EQ(d.entry.data, body);
  }
}

TEST_P(RestApiTest, SendToMissingTargetsStillAnswers202) {
  EXPECT_EQ(Do("POST", "/api/hubs/chat/connections/nobody/:send", "x", "text/plain").status, 202);
  EXPECT_EQ(Do("POST", "/api/hubs/chat/groups/empty/:send", "x", "text/plain").status, 202);
  EXPECT_TRUE(Last().recipients.empty());
}

TEST_P(RestApiTest, UnsupportedContentTypeIs415) {
  ExpectError(Do("POST", "/api/hubs/chat/:send", "<a/>", "application/xml"), 415,
              "UnsupportedMediaType");
  ExpectError(Do("POST", "/api/hubs/chat/users/u1/:send", "x", "text/html"), 415,
              "UnsupportedMediaType");
}

TEST_P(RestApiTest, MalformedJsonBodyIs400) {
  ExpectError(Do("POST", "/api/hubs/chat/:send", "{nope", "application/json"), 400, "BadRequest");
  ExpectError(Do("POST", "/api/hubs/chat/:send", "", "application/json"), 400, "BadRequest");
}

TEST_P(RestApiTest, InvalidFilterIs400WithParserMessage) {
  HttpResult r = Do("POST", "/api/hubs/chat/:send?filter=userId%20eq", "x", "text/plain");
  ExpectError(r, 400, "BadRequest");
  std::string message = r.Json().Find("message")->str();
  EXPECT_EQ(message.rfind("Invalid filter: ", 0), 0u) << message;
  EXPECT_GT(message.size(), std::string("Invalid filter: ").size());
  // Blank filters select everything instead.
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:send?filter=%20", "x", "text/plain").status, 202);
  EXPECT_EQ(Last().entry.filter, nullptr);
}

TEST_P(RestApiTest, MessageTtlOutsideZeroTo300Is400) {
  for (const char* ttl : {"301", "-1", "abc", "1.5", ""}) {
    ExpectError(
        Do("POST", std::string("/api/hubs/chat/:send?messageTtlSeconds=") + ttl, "x", "text/plain"),
        400, "BadRequest");
  }
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:send?messageTtlSeconds=300", "x", "text/plain").status,
            202);
  EXPECT_EQ(Last().entry.message_ttl_seconds, 300);
}

TEST_P(RestApiTest, BodyOverLimitIs413) {
  // The front refuses larger bodies before they arrive; the API keeps the limit as well.
  HttpResult r = Do("POST", "/api/hubs/chat/:send", std::string(kMaxBody + 1, 'x'), "text/plain");
  ExpectError(r, 413, "PayloadTooLarge");
  Call call;
  call.target = "/api/hubs/chat/groups/g1/:send";
  call.content_type = "application/octet-stream";
  call.body = std::string(kMaxBody, 'y');
  EXPECT_EQ(Do(call).status, 202);
  EXPECT_EQ(Last().entry.data.size(), kMaxBody);
}

TEST_P(RestApiTest, ErrorsChangeNothingWhateverTheBody) {
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:send", "<a/>", "application/xml").status, 415);
  Call call;
  call.target = "/api/hubs/chat/:send";
  call.body = "ignored body";
  call.authorization = "";
  EXPECT_EQ(Do(call).status, 401);
  call.method = "PUT";
  call.authorization.reset();
  EXPECT_EQ(Do(call).status, 405);
  EXPECT_TRUE(sink_.delivered().empty());
  call.method = "DELETE";
  call.target = "/api/hubs/chat/connections/c1";
  EXPECT_EQ(Do(call).status, 204);
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:send", "ok", "text/plain").status, 202);
  EXPECT_EQ(Last().entry.data, "ok");
}

TEST_P(RestApiTest, StoppedRegistryAnswers503) {
  registry_.Stop();
  ExpectError(Do("POST", "/api/hubs/chat/:send", "x", "text/plain"), 503, "ServiceUnavailable");
  ExpectError(Do("DELETE", "/api/hubs/chat/connections/c1"), 503, "ServiceUnavailable");
}

// --- existence, close, membership -------------------------------------------------------------

TEST_P(RestApiTest, ExistenceChecksAnswer200Or404WithoutBody) {
  Open("c1", "u1", {"g1"});
  struct Case {
    std::string target;
    int status;
  };
  for (const Case& c : std::vector<Case>{{"/api/hubs/chat/connections/c1", 200},
                                         {"/api/hubs/chat/connections/c2", 404},
                                         {"/api/hubs/chat/users/u1", 200},
                                         {"/api/hubs/chat/users/u2", 404},
                                         {"/api/hubs/chat/groups/g1", 200},
                                         {"/api/hubs/chat/groups/g2", 404},
                                         {"/api/hubs/other/connections/c1", 404}}) {
    HttpResult r = Do("HEAD", c.target + "?api-version=2024-12-01");
    EXPECT_EQ(r.status, c.status) << c.target;
    EXPECT_TRUE(r.body.empty()) << c.target;
  }
}

TEST_P(RestApiTest, CloseOperationsAnswer204AndRemoveConnections) {
  Open("c1", "u1", {"g1"});
  Open("c2", "u1");
  Open("c3", "u2", {"g1"});
  Open("c4", "u3", {"g1"});
  Open("c5");

  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/connections/c5?reason=bye").status, 204);
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kCloseConnections);
  EXPECT_EQ(d.entry.scope, storage::Scope::kConnection);
  EXPECT_EQ(d.entry.target, "c5");
  EXPECT_EQ(d.entry.reason, "bye");
  EXPECT_FALSE(View().ConnectionExists("c5"));
  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/connections/unknown").status, 204);

  EXPECT_EQ(Do("POST", "/api/hubs/chat/users/u1/:closeConnections?excluded=c2").status, 204);
  EXPECT_EQ(Last().entry.scope, storage::Scope::kUser);
  EXPECT_FALSE(View().ConnectionExists("c1"));
  EXPECT_TRUE(View().ConnectionExists("c2"));

  EXPECT_EQ(Do("POST", "/api/hubs/chat/groups/g1/:closeConnections?excluded=c4&reason=r").status,
            204);
  EXPECT_FALSE(View().ConnectionExists("c3"));
  EXPECT_TRUE(View().ConnectionExists("c4"));

  EXPECT_EQ(Do("POST", "/api/hubs/chat/:closeConnections?api-version=2024-12-01").status, 204);
  EXPECT_EQ(Last().entry.scope, storage::Scope::kAll);
  EXPECT_EQ(View().connection_count(), 0u);
}

TEST_P(RestApiTest, AddConnectionToGroupAnswers200Or404ForUnknownConnection) {
  Open("c1");
  EXPECT_EQ(Do("PUT", "/api/hubs/chat/groups/g%201/connections/c1").status, 200);
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kAddToGroups);
  EXPECT_EQ(d.entry.scope, storage::Scope::kConnection);
  EXPECT_EQ(d.entry.target, "c1");
  EXPECT_EQ(d.entry.groups, std::vector<std::string>{"g 1"});
  EXPECT_TRUE(View().GroupExists("g 1"));

  ExpectError(Do("PUT", "/api/hubs/chat/groups/g1/connections/ghost"), 404, "NotFound");
}

TEST_P(RestApiTest, RemovalsAnswer204EvenWhenNothingMatches) {
  Open("c1", "u1", {"g1", "g2", "g3"});
  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/groups/g1/connections/c1").status, 204);
  EXPECT_FALSE(View().GroupExists("g1"));
  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/groups/g1/connections/ghost").status, 204);

  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/users/u1/groups/g2").status, 204);
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kRemoveFromGroups);
  EXPECT_EQ(d.entry.scope, storage::Scope::kUser);
  EXPECT_EQ(d.entry.groups, std::vector<std::string>{"g2"});
  EXPECT_FALSE(View().GroupExists("g2"));

  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/connections/c1/groups").status, 204);
  d = Last();
  EXPECT_EQ(d.entry.scope, storage::Scope::kConnection);
  EXPECT_TRUE(d.entry.groups.empty());
  EXPECT_FALSE(View().GroupExists("g3"));
  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/connections/ghost/groups").status, 204);

  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/users/u1/groups").status, 204);
  EXPECT_TRUE(Last().entry.groups.empty());
  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/users/nobody/groups").status, 204);
  EXPECT_EQ(Do("DELETE", "/api/hubs/chat/users/nobody/groups/g1").status, 204);
}

TEST_P(RestApiTest, AddUserToGroupAnswers200EvenWithoutConnections) {
  EXPECT_EQ(Do("PUT", "/api/hubs/chat/users/nobody/groups/g1").status, 200);
  Open("c1", "u1");
  Open("c2", "u1");
  EXPECT_EQ(Do("PUT", "/api/hubs/chat/users/u1/groups/g1").status, 200);
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kAddToGroups);
  EXPECT_EQ(d.entry.scope, storage::Scope::kUser);
  EXPECT_EQ(d.entry.target, "u1");
  EXPECT_EQ(View().ListGroupConnections("g1", "", 10).size(), 2u);
}

TEST_P(RestApiTest, AddAndRemoveConnectionsByFilterAnswer200) {
  Open("c1", "u1");
  Open("c2", "u2");
  Open("c3");
  HttpResult r = Do("POST", "/api/hubs/chat/:addToGroups?api-version=2024-12-01",
                    R"({"groups":["g1","g2"],"filter":"userId eq 'u1' or userId eq 'u2'"})",
                    "application/json");
  EXPECT_EQ(r.status, 200) << r.body;
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kAddToGroups);
  EXPECT_EQ(d.entry.scope, storage::Scope::kAll);
  EXPECT_EQ(d.entry.groups, (std::vector<std::string>{"g1", "g2"}));
  ASSERT_NE(d.entry.filter, nullptr);
  EXPECT_EQ(View().ListGroupConnections("g1", "", 10).size(), 2u);

  // Omitted, null or empty filter: every connection of the hub.
  EXPECT_EQ(Do("POST", "/api/hubs/chat/:addToGroups", R"({"groups":["all"]})",
               "application/json; charset=utf-8")
                .status,
            200);
  EXPECT_EQ(Last().entry.filter, nullptr);
  EXPECT_EQ(View().ListGroupConnections("all", "", 10).size(), 3u);

  EXPECT_EQ(Do("POST", "/api/hubs/chat/:removeFromGroups", R"({"groups":["all"],"filter":null})",
               "application/json")
                .status,
            200);
  EXPECT_EQ(Last().entry.kind, storage::EntryKind::kRemoveFromGroups);
  EXPECT_FALSE(View().GroupExists("all"));

  EXPECT_EQ(Do("POST", "/api/hubs/chat/:removeFromGroups", R"({"groups":["g1"],"filter":""})",
               "application/json")
                .status,
            200);
  EXPECT_FALSE(View().GroupExists("g1"));
  EXPECT_TRUE(View().GroupExists("g2"));
}

TEST_P(RestApiTest, GroupsByFilterRejectsBadBodies) {
  const std::string target = "/api/hubs/chat/:addToGroups";
  ExpectError(Do("POST", target, R"({"groups":["g1"]})", "text/plain"), 415,
              "UnsupportedMediaType");
  ExpectError(Do("POST", target, R"({"groups":["g1"]})", ""), 415, "UnsupportedMediaType");
  for (const char* body :
       {R"(not json)", R"([])", R"({})", R"({"groups":[]})", R"({"groups":"g1"})",
        R"({"groups":[1]})", R"({"groups":["  "]})", R"({"groups":["g1"],"filter":5})",
        R"({"groups":["g1"],"filter":"userId eq"})"}) {
    ExpectError(Do("POST", target, body, "application/json"), 400, "BadRequest");
  }
}

TEST_P(RestApiTest, DeeplyNestedFilterIs400WithTheNestingError) {
  // As deep as this fixture's 4 KiB body limit allows (the integration tests send 10000).
  const std::string deep = std::string(2000, '(') + "true" + std::string(2000, ')');
  HttpResult r = Do("POST", "/api/hubs/chat/:addToGroups",
                    R"({"groups":["g1"],"filter":")" + deep + R"("})", "application/json");
  ExpectError(r, 400, "BadRequest");
  EXPECT_EQ(r.Json().Find("message")->str(),
            "Invalid filter: Invalid filter at position 64: expressions are nested deeper than 64 "
            "levels.");
}

// --- permissions ------------------------------------------------------------------------------

TEST_P(RestApiTest, PermissionsGrantCheckAndRevoke) {
  Open("c1");
  const std::string base = "/api/hubs/chat/permissions/";
  EXPECT_EQ(Do("HEAD", base + "sendToGroup/connections/c1?targetName=g1").status, 404);
  ExpectError(Do("PUT", base + "sendToGroup/connections/ghost?targetName=g1"), 404, "NotFound");

  EXPECT_EQ(Do("PUT", base + "sendToGroup/connections/c1?targetName=g1").status, 200);
  Delivered d = Last();
  EXPECT_EQ(d.entry.kind, storage::EntryKind::kGrant);
  EXPECT_EQ(d.entry.target, "c1");
  EXPECT_EQ(d.entry.permission, storage::Permission::kSendToGroup);
  EXPECT_EQ(d.entry.permission_target, std::optional<std::string>("g1"));
  EXPECT_EQ(Do("HEAD", base + "sendToGroup/connections/c1?targetName=g1").status, 200);
  EXPECT_EQ(Do("HEAD", base + "sendToGroup/connections/c1?targetName=g2").status, 404);
  EXPECT_EQ(Do("HEAD", base + "joinLeaveGroup/connections/c1?targetName=g1").status, 404);

  // Without targetName: all groups.
  EXPECT_EQ(Do("PUT", base + "joinLeaveGroup/connections/c1").status, 200);
  EXPECT_EQ(Last().entry.permission_target, std::nullopt);
  EXPECT_EQ(Do("HEAD", base + "joinLeaveGroup/connections/c1?targetName=any").status, 200);

  EXPECT_EQ(Do("DELETE", base + "sendToGroup/connections/c1?targetName=g1").status, 204);
  EXPECT_EQ(Last().entry.kind, storage::EntryKind::kRevoke);
  EXPECT_EQ(Do("HEAD", base + "sendToGroup/connections/c1?targetName=g1").status, 404);
  EXPECT_EQ(Do("DELETE", base + "sendToGroup/connections/ghost").status, 204);
  EXPECT_EQ(Do("HEAD", base + "sendToGroup/connections/ghost").status, 404);

  ExpectError(Do("PUT", base + "sendToEveryone/connections/c1"), 400, "BadRequest");
  ExpectError(Do("PUT", base + "sendToGroup/connections/c1?targetName=%20"), 400, "BadRequest");
}

// --- generateToken --------------------------------------------------------------------------

TEST_P(RestApiTest, GenerateTokenClaimsVerifyWithTheAccessKey) {
  HttpResult r = Do("POST",
                    "/api/hubs/Chat/:generateToken?api-version=2024-12-01&userId=u%201"
                    "&role=webpubsub.sendToGroup&role=webpubsub.joinLeaveGroup.g1"
                    "&group=g1&group=g2&minutesToExpire=5");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  json::Value body = r.Json();
  ASSERT_NE(body.Find("token"), nullptr);
  Result<TokenClaims> claims = VerifyToken(body.Find("token")->str(), {kKey}, kNowSeconds);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->audiences, std::vector<std::string>{Base() + "/client/hubs/Chat"});
  EXPECT_EQ(claims->subject, "u 1");
  EXPECT_EQ(claims->roles,
            (std::vector<std::string>{"webpubsub.sendToGroup", "webpubsub.joinLeaveGroup.g1"}));
  EXPECT_EQ(claims->groups, (std::vector<std::string>{"g1", "g2"}));
  EXPECT_EQ(claims->issued_at, kNowSeconds);
  EXPECT_EQ(claims->expires_at, kNowSeconds + 5 * 60);
  // Not signed with the secondary key.
  EXPECT_FALSE(VerifyToken(body.Find("token")->str(), {kSecondaryKey}, kNowSeconds).ok());
}

TEST_P(RestApiTest, GenerateTokenDefaultsAndClientTypes) {
  struct Case {
    std::string query;
    std::string path;
  };
  for (const Case& c : std::vector<Case>{{"", "/client/hubs/chat"},
                                         {"?clientType=Default", "/client/hubs/chat"},
                                         {"?clientType=default", "/client/hubs/chat"}}) {
    HttpResult r = Do("POST", "/api/hubs/chat/:generateToken" + c.query);
    ASSERT_EQ(r.status, 200) << c.query;
    Result<TokenClaims> claims = VerifyToken(r.Json().Find("token")->str(), {kKey}, kNowSeconds);
    ASSERT_TRUE(claims.ok());
    EXPECT_EQ(claims->audiences, std::vector<std::string>{Base() + c.path});
    EXPECT_EQ(claims->subject, std::nullopt);
    EXPECT_TRUE(claims->roles.empty());
    EXPECT_TRUE(claims->groups.empty());
    EXPECT_EQ(claims->expires_at, kNowSeconds + 60 * 60);
  }
  for (const char* query : {"?clientType=signalr", "?minutesToExpire=0", "?minutesToExpire=x",
                            "?group=%20", "?userId="}) {
    ExpectError(Do("POST", std::string("/api/hubs/chat/:generateToken") + query), 400,
                "BadRequest");
  }
}

// Hubcast serves no MQTT or Socket.IO endpoint: a token for one would only fail when the
// client connects, so the request fails now, saying why.
TEST_P(RestApiTest, GenerateTokenRefusesClientTypesHubcastDoesNotServe) {
  for (const char* query :
       {"?clientType=MQTT", "?clientType=mqtt", "?clientType=SocketIO", "?clientType=socketio"}) {
    HttpResult r = Do("POST", std::string("/api/hubs/chat/:generateToken") + query);
    ExpectError(r, 400, "BadRequest");
    EXPECT_NE(r.body.find("not supported"), std::string::npos) << r.body;
  }
}

// --- listConnections ------------------------------------------------------------------------

std::string StripBase(const std::string& link, const std::string& base) {
  EXPECT_EQ(link.rfind(base, 0), 0u) << link;
  return link.substr(base.size());
}

std::vector<std::string> Ids(const json::Value& page) {
  std::vector<std::string> ids;
  for (const json::Value& item : page.Find("value")->items()) {
    ids.push_back(item.Find("connectionId")->str());
  }
  return ids;
}

TEST_P(RestApiTest, ListConnectionsPagesThroughNextLink) {
  Open("c5", "u5", {"g 1"});
  Open("c1", std::nullopt, {"g 1"});
  Open("c3", "u3", {"g 1"});
  Open("c2", "u2", {"g 1"});
  Open("c4", "u4", {"g 1"});
  Open("c6", "u6", {"other"});

  HttpResult r =
      Do("GET", "/api/hubs/chat/groups/g%201/connections?api-version=2024-12-01&maxpagesize=2");
  ASSERT_EQ(r.status, 200) << r.body;
  json::Value page = r.Json();
  EXPECT_EQ(Ids(page), (std::vector<std::string>{"c1", "c2"}));
  EXPECT_TRUE(page.Find("value")->items()[0].Find("userId")->is_null());
  EXPECT_EQ(page.Find("value")->items()[1].Find("userId")->str(), "u2");
  ASSERT_TRUE(page.Find("nextLink")->is_string());
  const std::string link = page.Find("nextLink")->str();
  EXPECT_EQ(link.rfind(Base() + "/api/hubs/chat/groups/g%201/connections?api-version=2024-12-01"
                                "&maxpagesize=2&continuationToken=",
                       0),
            0u)
      << link;

  // The SDK signs the next request for the nextLink URL itself.
  r = Do("GET", StripBase(link, Base()));
  ASSERT_EQ(r.status, 200) << r.body;
  page = r.Json();
  EXPECT_EQ(Ids(page), (std::vector<std::string>{"c3", "c4"}));
  ASSERT_TRUE(page.Find("nextLink")->is_string());

  r = Do("GET", StripBase(page.Find("nextLink")->str(), Base()));
  ASSERT_EQ(r.status, 200) << r.body;
  page = r.Json();
  EXPECT_EQ(Ids(page), std::vector<std::string>{"c5"});
  EXPECT_TRUE(page.Find("nextLink")->is_null());
}

TEST_P(RestApiTest, ListConnectionsStopsAtTop) {
  for (const char* id : {"a", "b", "c", "d", "e"}) Open(id, std::nullopt, {"g1"});
  HttpResult r = Do("GET", "/api/hubs/chat/groups/g1/connections?maxpagesize=2&top=3");
  ASSERT_EQ(r.status, 200) << r.body;
  json::Value page = r.Json();
  EXPECT_EQ(Ids(page), (std::vector<std::string>{"a", "b"}));
  const std::string link = page.Find("nextLink")->str();
  EXPECT_NE(link.find("?api-version=2024-12-01&maxpagesize=2&top=1&continuationToken="),
            std::string::npos)
      << link;
  r = Do("GET", StripBase(link, Base()));
  page = r.Json();
  EXPECT_EQ(Ids(page), std::vector<std::string>{"c"});
  EXPECT_TRUE(page.Find("nextLink")->is_null());

  // Default page size: everything in one page.
  page = Do("GET", "/api/hubs/chat/groups/g1/connections").Json();
  EXPECT_EQ(Ids(page).size(), 5u);
  EXPECT_TRUE(page.Find("nextLink")->is_null());
}

TEST_P(RestApiTest, ListConnectionsOfMissingGroupIsEmpty) {
  HttpResult r = Do("GET", "/api/hubs/chat/groups/nobody/connections?api-version=2024-12-01");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"value":[],"nextLink":null})");
}

TEST_P(RestApiTest, ListConnectionsRejectsBadPagingParameters) {
  const std::string base = "/api/hubs/chat/groups/g1/connections?";
  for (const char* query : {"maxpagesize=0", "maxpagesize=201", "maxpagesize=x", "top=0",
                            "top=2147483648", "continuationToken=%21%21", "continuationToken="}) {
    ExpectError(Do("GET", base + query), 400, "BadRequest");
  }
  EXPECT_EQ(Do("GET", base + "continuationToken=" + Base64UrlEncode("c0")).status, 200);
}

// --- served on an event loop -------------------------------------------------------------------

TEST_P(RestApiTest, WritesOnTheLoopAreAnsweredByTheAppendsCompletionOnThatLoop) {
  Open("c1", "u1", {"g1"});
  const std::string target = "/api/hubs/chat/groups/g1/:send";
  HttpRequest request;
  request.method = "POST";
  request.target = target;
  request.host = kHost;
  request.headers.Add("Authorization", "Bearer " + TokenFor(Base() + target));
  request.headers.Add("Content-Type", "text/plain");
  request.body = "hi";
  std::optional<HttpResponse> answer;
  ASSERT_TRUE(
      api_.HandleWithoutWaiting(request, &loop_, [&](HttpResponse r) { answer = std::move(r); }));
  // Not answered on the spot: the answer is the durable completion, a task for the loop.
  EXPECT_FALSE(answer.has_value());
  ASSERT_TRUE(loop_.RunUntil([&] { return answer.has_value(); }));
  EXPECT_EQ(answer->status, 202);
  EXPECT_EQ(Last().entry.data, "hi");
  EXPECT_EQ(Last().recipients, std::vector<std::string>{"c1"});
}

TEST_P(RestApiTest, ReadsAndHubsNotYetOpenAreLeftToAWorkerUntouched) {
  Open("c1", "u1", {"g1"});
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"HEAD", "/api/hubs/chat/groups/g1"},
           {"GET", "/api/hubs/chat/groups/g1/connections"},
           {"HEAD", "/api/hubs/chat/permissions/sendToGroup/connections/c1"},
           {"POST", "/api/hubs/fresh/:send"},
           {"PUT", "/api/hubs/fresh/users/u1/groups/g1"}}) {
    HttpRequest request;
    request.method = method;
    request.target = target;
    request.host = kHost;
    request.headers.Add("Authorization", "Bearer " + TokenFor(Base() + target));
    request.headers.Add("Content-Type", "text/plain");
    bool answered = false;
    EXPECT_FALSE(api_.HandleWithoutWaiting(request, &loop_, [&](HttpResponse) { answered = true; }))
        << method << " " << target;
    EXPECT_FALSE(answered);
  }
  // A loop never creates a hub (that may wait on the store or the cluster).
  EXPECT_EQ(registry_.Find(*HubName::Parse("fresh")), nullptr);
  EXPECT_EQ(loop_.queued(), 0u);
  // The worker path then serves them.
  EXPECT_EQ(Do("POST", "/api/hubs/fresh/:send", "x", "text/plain").status, 202);
  EXPECT_NE(registry_.Find(*HubName::Parse("fresh")), nullptr);
}

TEST_P(RestApiTest, RefusedAppendOnTheLoopIs503WithRetryAfter) {
  Open("c1");
  Hub();  // open
  registry_.Stop();
  HttpResult r = Do("POST", "/api/hubs/chat/:send", "x", "text/plain");
  ExpectError(r, 503, "ServiceUnavailable");
  EXPECT_EQ(r.Header("Retry-After"), "1");
}

}  // namespace
}  // namespace hubcast::rest
