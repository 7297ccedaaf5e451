// A reliable session that moves between the nodes of a cluster: two `hubcast serve --nats`
// processes on one JetStream nats-server. The client's recovery handshake on the other node is
// answered by that node's HTTP front (the 101, then the socket waits for the move to be
// applied), the missed messages are replayed from its own replay log with their numbers, and
// the session goes on there; the old node lets its socket go.
//
// Real processes on loopback, each stopped by pid; logs printed when a test fails. Skipped
// when no nats-server is installed.

#include "base/json.h"

#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr char kKey[] = "hubcast-cluster-move-test-access-key-0123456789";
constexpr char kReliable[] = "json.reliable.webpubsub.azure.v1";

class ClusterMove : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(FindNatsServer().c_str(), X_OK) != 0) GTEST_SKIP() << "no nats-server";
    std::string dir = (fs::temp_directory_path() / "hubcast-cluster-move-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    work_ = dir;
    reporter_ = std::make_unique<FailureReporter>(work_);
    std::string error;
    nats_ = NatsServer::Start(work_.string(), &error);
    ASSERT_TRUE(nats_) << error;
    reporter_->Add("nats", nats_->process().log_path());
    for (const char* name : {"a", "b"}) {
      auto node = HubcastServer::Start(
          work_.string(), kKey,
          {"--nats", nats_->url(), "--stream-replicas", "1", "--node-id", name}, &error, name);
      ASSERT_TRUE(node) << error;
      reporter_->Add(name, node->process().log_path());
      nodes_.push_back(std::move(node));
    }
  }
  void TearDown() override {
    nodes_.clear();  // stopped by pid, before the reporter prints their logs
    nats_.reset();
    reporter_.reset();
  }

  std::string Target(int port, const std::string& query) {
    JwtClaims claims;
    claims.audience = "http://127.0.0.1:" + std::to_string(port) + "/client/hubs/chat";
    claims.subject = "u1";
    return "/client/hubs/chat?access_token=" + MintJwt(kKey, claims) + query;
  }

  // A REST send to one connection through `port`'s node; the status.
  int SendTo(int port, const std::string& id, const std::string& text) {
    const std::string path = "/api/hubs/chat/connections/" + id + "/:send";
    const std::string audience = "http://127.0.0.1:" + std::to_string(port) + path;
    return HttpRequest(port, "POST", path,
                       {{"Authorization", "Bearer " + MintJwt(kKey, audience)},
                        {"Content-Type", "text/plain"}},
                       text)
        .status;
  }

  // The next data message: (sequenceId, data), or nullopt with `why`.
  static std::optional<std::pair<uint64_t, std::string>> ReadMessage(WsClient& c,
                                                                     std::string* why) {
    for (;;) {
      std::optional<WsMessage> m = c.Read(seconds(10));
      if (!m) {
        *why = c.error();
        return std::nullopt;
      }
      if (m->op != WsOp::kText) {
        *why = "close " + std::to_string(m->close_code) + " " + m->close_reason;
        return std::nullopt;
      }
      auto v = json::Parse(m->payload);
      if (!v.ok()) {
        *why = "not JSON: " + m->payload;
        return std::nullopt;
      }
      const json::Value* type = v->Find("type");
      if (!type || !type->is_string() || type->str() != "message") continue;
      const json::Value* seq = v->Find("sequenceId");
      const json::Value* data = v->Find("data");
      if (!seq || !seq->as_uint64() || !data || !data->is_string()) {
        *why = "no sequenceId or data: " + m->payload;
        return std::nullopt;
      }
      return std::make_pair(*seq->as_uint64(), data->str());
    }
  }

  fs::path work_;
  std::unique_ptr<FailureReporter> reporter_;
  std::unique_ptr<NatsServer> nats_;
  std::vector<std::unique_ptr<HubcastServer>> nodes_;
};

TEST_F(ClusterMove, ReliableSessionRecoversOnAnotherNodeWithItsMissedMessages) {
  const int a = nodes_[0]->port(), b = nodes_[1]->port();
  WsClient first;
  ASSERT_TRUE(first.Connect(a, Target(a, ""), kReliable)) << first.error();
  std::optional<WsMessage> hello = first.Read(seconds(10));
  ASSERT_TRUE(hello && hello->op == WsOp::kText) << first.error();
  auto connected = json::Parse(hello->payload);
  ASSERT_TRUE(connected.ok()) << hello->payload;
  const json::Value* id_field = connected->Find("connectionId");
  const json::Value* token_field = connected->Find("reconnectionToken");
  ASSERT_TRUE(id_field && id_field->is_string() && token_field && token_field->is_string())
      << hello->payload;
  const std::string id = id_field->str(), token = token_field->str();

  ASSERT_EQ(SendTo(a, id, "m1"), 202);
  std::string why;
  auto m1 = ReadMessage(first, &why);
  ASSERT_TRUE(m1) << why;
  EXPECT_EQ(m1->first, 1u);
  ASSERT_TRUE(first.SendText(R"({"type":"sequenceAck","sequenceId":1})"));
  // Sent while the client is away, through the other node: numbered on node a.
  first.Close();
  ASSERT_EQ(SendTo(b, id, "m2"), 202);
  ASSERT_EQ(SendTo(b, id, "m3"), 202);

  // The client comes back on node b: the session moves there.
  WsClient moved;
  ASSERT_TRUE(moved.Connect(
      b, Target(b, "&awps_connection_id=" + id + "&awps_reconnection_token=" + token), kReliable))
      << moved.error();
  std::vector<std::pair<uint64_t, std::string>> got;
  while (got.empty() || got.back().first < 3) {
    auto m = ReadMessage(moved, &why);
    ASSERT_TRUE(m) << why << " after " << got.size() << " messages";
    got.push_back(*m);
  }
  // m1 may come again (its ack may not have been checkpointed before the move), never out of
  // order, and m2 and m3 with the numbers node a gave them.
  ASSERT_GE(got.size(), 2u);
  EXPECT_EQ(got[got.size() - 2], std::make_pair(uint64_t{2}, std::string("m2")));
  EXPECT_EQ(got.back(), std::make_pair(uint64_t{3}, std::string("m3")));
  // It goes on on node b, through either node.
  ASSERT_EQ(SendTo(a, id, "m4"), 202);
  auto m4 = ReadMessage(moved, &why);
  ASSERT_TRUE(m4) << why;
  EXPECT_EQ(*m4, std::make_pair(uint64_t{4}, std::string("m4")));
}

}  // namespace
}  // namespace hubcast::testing
