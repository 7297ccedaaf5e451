// The admin listener (`--admin-bind`) and the logs of a real `hubcast serve` (issue #12,
// parts 3 and 5):
//   - after a scripted workload (WebSocket clients of two subprotocols, group messages, REST
//     sends) /metrics reports exactly the connections and messages it made, and the text
//     passes a strict exposition-format parser (admin_util.h);
//   - /healthz and /readyz answer, the dashboard page is served from the binary, and its
//     event stream and /status refuse callers without an access token;
//   - with --log-format json every line of the server's log is one JSON object, every line
//     about a connection names its hub and connection id, and neither tokens nor payloads
//     appear.
#include "base/json.h"

#include "tests/integration/admin_util.h"
#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::testing {
namespace {

using std::chrono::seconds;
constexpr char kHub[] = "metrics";
constexpr char kJson[] = "json.webpubsub.azure.v1";
constexpr auto kWait = seconds(20);

class AdminListener : public ServerFixture {
 protected:
  void Start(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--admin-bind", "127.0.0.1:0"});
    std::optional<int> port = StartServer(extra);
    ASSERT_TRUE(port.has_value());
    port_ = *port;
    std::optional<int> admin = WaitForAdminPort(*server(), kWait);
    ASSERT_TRUE(admin.has_value()) << server()->ReadLog();
    admin_ = *admin;
  }
  std::string Base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::string ClientToken(const std::string& user) const {
    JwtClaims claims;
    claims.audience = Base() + "/client/hubs/" + kHub;
    claims.subject = user;
    claims.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"};
    return MintJwt(kAccessKey, claims);
  }
  std::unique_ptr<WsClient> Connect(const std::string& user, const std::string& protocol) {
    auto c = std::make_unique<WsClient>();
    const std::string target =
        std::string("/client/hubs/") + kHub + "?access_token=" + ClientToken(user);
    EXPECT_TRUE(c->Connect(port_, target, protocol)) << c->error();
    tokens_.push_back(ClientToken(user));
    return c;
  }
  HttpResponse RestSend(const std::string& text) {
    const std::string target = std::string("/api/hubs/") + kHub + "/:send?api-version=2024-12-01";
    const std::string bearer = Bearer(Base(), target);
    tokens_.push_back(bearer.substr(7));
    return HttpRequest(port_, "POST", target,
                       {{"Authorization", bearer}, {"Content-Type", "text/plain"}}, text);
  }
  std::optional<Exposition> Scrape() {
    HttpResponse r = HttpRequest(admin_, "GET", "/metrics");
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    std::string error;
    auto parsed = ParseExposition(r.body, &error);
    EXPECT_TRUE(parsed.has_value()) << error << "\n" << r.body;
    return parsed;
  }
  // Scrapes until `series` has `value` (gauges follow applied entries asynchronously).
  bool WaitForValue(const std::string& series, double value) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      auto e = Scrape();
      if (!e) return false;
      if (e->Value(series) == value) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  int port_ = 0;
  int admin_ = 0;
  std::vector<std::string> tokens_;
};

std::string Series(const std::string& family, const std::string& labels) {
  return family + "{" + labels + "}";
}

TEST_F(AdminListener, ScrapeCountsExactlyTheWorkload) {
  Start();
  const std::string hub = std::string("hub=\"") + kHub + "\"";
  // Three JSON clients in group g, one raw client.
  std::vector<std::unique_ptr<WsClient>> json;
  for (int i = 0; i < 3; ++i) json.push_back(Connect("user" + std::to_string(i), kJson));
  auto raw = Connect("raw", "");
  for (auto& c : json) ASSERT_TRUE(ReadUntil(*c, "\"connected\""));
  for (size_t i = 0; i < json.size(); ++i) {
    ASSERT_TRUE(json[i]->SendText(R"({"type":"joinGroup","group":"g","ackId":1})"));
    ASSERT_TRUE(ReadUntil(*json[i], "\"ackId\":1"));
  }
  // Five group messages from the first client: each reaches the three members.
  for (int n = 1; n <= 5; ++n) {
    const std::string text = "group-" + std::to_string(n);
    ASSERT_TRUE(
        json[0]->SendText(R"({"type":"sendToGroup","group":"g","dataType":"text","data":")" + text +
                          R"(","ackId":)" + std::to_string(n + 1) + "}"));
    for (auto& c : json) ASSERT_TRUE(ReadUntil(*c, text));
  }
  // Two REST sends to the hub: each reaches all four clients.
  for (int n = 1; n <= 2; ++n) {
    const std::string text = "rest-" + std::to_string(n);
    ASSERT_EQ(RestSend(text).status, 202);
    for (auto& c : json) ASSERT_TRUE(ReadUntil(*c, text));
    ASSERT_TRUE(ReadUntil(*raw, text));
  }

  auto e = Scrape();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->types["hubcast_connections"], "gauge");
  EXPECT_EQ(e->types["hubcast_messages_delivered_total"], "counter");
  EXPECT_EQ(e->types["hubcast_append_seconds"], "histogram");
  EXPECT_EQ(e->Value(Series("hubcast_connections", hub + ",subprotocol=\"" + kJson + "\"")), 3);
  EXPECT_EQ(e->Value(Series("hubcast_connections", hub + ",subprotocol=\"none\"")), 1);
  EXPECT_EQ(e->Value(Series("hubcast_connections_opened_total", hub)), 4);
  // 3 joins + 5 group messages from clients; 2 REST sends.
  EXPECT_EQ(e->Value(Series("hubcast_messages_received_total", hub + ",source=\"client\"")), 8);
  EXPECT_EQ(e->Value(Series("hubcast_messages_received_total", hub + ",source=\"rest\"")), 2);
  // 5 x 3 group deliveries + 2 x 4 hub deliveries.
  EXPECT_EQ(e->Value(Series("hubcast_messages_delivered_total", hub)), 23);
  EXPECT_EQ(e->Value(Series("hubcast_rest_requests_total",
                            "operation=\"POST /api/hubs/{hub}/:send\",status=\"202\"")),
            2);
  EXPECT_EQ(e->Value(Series("hubcast_deliveries_dropped_total", "reason=\"forbidden\"")), 0);
  EXPECT_EQ(e->Value("hubcast_reliable_sessions_held"), 0);
  EXPECT_EQ(e->Value("hubcast_store_open"), 1);
  EXPECT_EQ(e->Value("hubcast_ready"), 1);
  EXPECT_EQ(e->Value("hubcast_hubs"), 1);
  EXPECT_GT(e->Value("hubcast_bytes_received_total"), 0);
  EXPECT_GT(e->Value("hubcast_bytes_sent_total"), 0);
  EXPECT_GT(e->Value(Series("hubcast_replay_log_bytes", hub)), 0);
  // Every append of the workload was timed: 4 opens + 3 joins + 5 + 2 sends at least.
  EXPECT_GE(e->Value("hubcast_append_seconds_count"), 14);
  EXPECT_GE(e->Value("hubcast_apply_seconds_count"), 14);

  // A client leaves: its hub's gauge follows once the close is applied.
  ASSERT_TRUE(json[2]->SendClose(1000));
  EXPECT_TRUE(
      WaitForValue(Series("hubcast_connections", hub + ",subprotocol=\"" + kJson + "\""), 2));
}

TEST_F(AdminListener, ProbesDashboardAndAccessKey) {
  Start();
  EXPECT_EQ(HttpRequest(admin_, "GET", "/healthz").status, 200);
  HttpResponse ready = HttpRequest(admin_, "GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  HttpResponse page = HttpRequest(admin_, "GET", "/dashboard");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<canvas id=\"chart\""), std::string::npos);
  // Offline: nothing the page loads comes from elsewhere.
  EXPECT_EQ(page.body.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.body.find("href=\"http"), std::string::npos);

  EXPECT_EQ(HttpRequest(admin_, "GET", "/dashboard/events").status, 401);
  EXPECT_EQ(HttpRequest(admin_, "GET", "/status").status, 401);
  const std::string admin_base = "http://127.0.0.1:" + std::to_string(admin_);
  const std::string wrong_key =
      MintJwt("another-key-of-at-least-32-characters-x", admin_base + "/dashboard");
  EXPECT_EQ(HttpRequest(admin_, "GET", "/status?access_token=" + wrong_key).status, 401);
  const std::string wrong_audience = MintJwt(kAccessKey, Base() + "/api/hubs/x");
  EXPECT_EQ(HttpRequest(admin_, "GET", "/status?access_token=" + wrong_audience).status, 401);
  const std::string token = MintJwt(kAccessKey, admin_base + "/dashboard");
  HttpResponse status =
      HttpRequest(admin_, "GET", "/status", {{"Authorization", "Bearer " + token}});
  EXPECT_EQ(status.status, 200) << status.body;
  EXPECT_NE(status.body.find("\"ready\":true"), std::string::npos) << status.body;
  EXPECT_EQ(HttpRequest(admin_, "POST", "/metrics").status, 405);
  EXPECT_EQ(HttpRequest(admin_, "GET", "/nothing").status, 404);
  // The client port does not serve the admin routes.
  EXPECT_EQ(HttpRequest(port_, "GET", "/metrics").status, 404);
}

TEST_F(AdminListener, StatusVerbPrintsTheNodeItsHubsAndConnections) {
  Start();
  auto a = Connect("alice", kJson);
  auto b = Connect("bob", kJson);
  ASSERT_TRUE(ReadUntil(*a, "\"connected\""));
  ASSERT_TRUE(ReadUntil(*b, "\"connected\""));
  auto run = [&](const std::string& key, const std::vector<std::string>& args, int n) {
    SpawnOptions options;
    options.binary = Binary();
    options.args = {"status"};
    options.args.insert(options.args.end(), args.begin(), args.end());
    options.env["HUBCAST_CONNECTION_STRING"] =
        "Endpoint=" + Base() + ";AccessKey=" + key + ";Version=1.0;";
    options.log_path = dir_ / ("status-" + std::to_string(n) + ".log");
    std::string error;
    auto child = ChildProcess::Spawn(options, &error);
    EXPECT_TRUE(child) << error;
    auto status = child->WaitForExit(seconds(30));
    EXPECT_TRUE(status.has_value());
    return std::make_pair(status ? *status : ExitStatus{}, child->ReadLog());
  };
  auto [ok, text] = run(kAccessKey, {}, 1);
  EXPECT_TRUE(ok.Success()) << text;
  EXPECT_NE(text.find("ready"), std::string::npos) << text;
  // The hub's row: name, connections in the hub, connections here.
  EXPECT_TRUE(std::regex_search(text, std::regex(std::string(kHub) + R"(\s+2\s+2\s)"))) << text;
  EXPECT_NE(text.find("this node"), std::string::npos) << text;
  auto [json_ok, json_text] = run(kAccessKey, {"--format", "json"}, 2);
  EXPECT_TRUE(json_ok.Success()) << json_text;
  auto doc = json::Parse(json_text.substr(0, json_text.find('\n')));
  ASSERT_TRUE(doc.ok()) << json_text;
  EXPECT_EQ(json::Serialize(*doc->Find("hubs")->items().at(0).Find("connections")), "2");
  auto [refused, refused_text] = run("a-wrong-access-key-of-at-least-32-chars", {}, 3);
  EXPECT_TRUE(refused.exited && refused.code == 1) << refused.ToString() << refused_text;
  EXPECT_NE(refused_text.find("401"), std::string::npos) << refused_text;
}

TEST_F(AdminListener, BadAdminBindStopsStartUp) {
  SpawnOptions options;
  options.binary = Binary();
  options.args = {"serve", "--port", "0", "--data-dir", dir_ / "bad", "--admin-bind", "nowhere"};
  options.log_path = dir_ / "bad.log";
  std::string error;
  auto child = ChildProcess::Spawn(options, &error);
  ASSERT_TRUE(child) << error;
  auto status = child->WaitForExit(seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited && status->code == 2) << status->ToString();
  EXPECT_NE(child->ReadLog().find("--admin-bind must be HOST:PORT"), std::string::npos);
}

TEST_F(AdminListener, JsonLogLinesNameHubAndConnectionAndHoldNoSecrets) {
  Start({"--log-format", "json"});
  auto a = Connect("alice", kJson);
  auto b = Connect("bob", kJson);
  ASSERT_TRUE(ReadUntil(*a, "\"connected\""));
  ASSERT_TRUE(ReadUntil(*b, "\"connected\""));
  // Lines about connections: an ignored action (info) and a close for a bad frame (info).
  ASSERT_TRUE(a->SendText(R"({"type":"joinGroup","group":""})"));
  ASSERT_TRUE(a->SendText(
      R"({"type":"sendToGroup","group":"g","dataType":"text","data":"secret-payload-1"})"));
  ASSERT_TRUE(b->SendText("secret-payload-2 is not JSON"));
  auto closed = b->Read(kWait);
  while (closed && closed->op != WsOp::kClose) closed = b->Read(kWait);
  ASSERT_TRUE(closed.has_value());
  ASSERT_EQ(RestSend("secret-payload-3").status, 202);
  ASSERT_TRUE(ReadUntil(*a, "secret-payload-3"));
  a->SendClose(1000);
  server()->Stop(seconds(10));

  const std::string log = server()->ReadLog();
  int conn_lines = 0;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t nl = log.find('\n', pos);
    const std::string line = log.substr(pos, nl - pos);
    pos = nl == std::string::npos ? log.size() : nl + 1;
    // stdout's connection-string and admin lines are the process's output, not log lines.
    if (line.empty() || line.rfind("Endpoint=", 0) == 0 || line.rfind("Admin=", 0) == 0) continue;
    auto v = json::Parse(line);
    ASSERT_TRUE(v.ok() && v->is_object()) << "not a JSON object: " << line;
    for (const char* member : {"time", "level", "logger", "msg"}) {
      EXPECT_NE(v->Find(member), nullptr) << member << " missing: " << line;
    }
    const json::Value* logger = v->Find("logger");
    if (logger && logger->is_string() && logger->str() == "conn") {
      ++conn_lines;
      const json::Value* hub = v->Find("hub");
      const json::Value* id = v->Find("id");
      ASSERT_TRUE(hub && hub->is_string() && id && id->is_string()) << line;
      EXPECT_EQ(hub->str(), kHub) << line;
      EXPECT_FALSE(id->str().empty()) << line;
    }
    EXPECT_EQ(line.find("secret-payload"), std::string::npos) << line;
    for (const std::string& token : tokens_) {
      // The signature part alone is enough to forge nothing, but must not show either.
      EXPECT_EQ(line.find(token.substr(token.rfind('.') + 1)), std::string::npos) << line;
    }
  }
  EXPECT_GE(conn_lines, 2) << log;
}

}  // namespace
}  // namespace hubcast::testing
