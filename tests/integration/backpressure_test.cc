// Bounded queues against a real `hubcast serve` with tiny admission bounds: a flood past them
// is refused (REST 503 with Retry-After and a JSON error; client actions an error ack), never
// queued without limit, and every command that was accepted is applied and delivered.
#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/ws_client.h"
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::testing {
namespace {

const std::string kKey = "backpressure-test-access-key-0123456789";
using std::chrono::seconds;

class Backpressure : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (std::filesystem::temp_directory_path() / "hubcast-bp-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    std::string error;
    server_ = HubcastServer::Start(
        dir_, kKey, {"--max-pending-per-hub", "4", "--http-threads", "32", "--event-loops", "1"},
        &error);
    ASSERT_TRUE(server_) << error;
  }
  void TearDown() override {
    if (server_) {
      server_->process().Stop();
      if (HasFailure()) server_->process().DumpLog(std::cerr);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A JSON client in group g (it may send to it); returns once it joined.
  void ConnectMember(WsClient& c) {
    JwtClaims claims;
    claims.audience = "http://127.0.0.1:" + std::to_string(server_->port()) + "/client/hubs/chat";
    claims.roles = {"webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"};
    claims.groups = {"g"};
    ASSERT_TRUE(c.Connect(server_->port(),
                          "/client/hubs/chat?access_token=" + MintJwt(kKey, claims),
                          "json.webpubsub.azure.v1"))
        << c.error();
    auto connected = c.ReadText(seconds(10));
    ASSERT_TRUE(connected && connected->find("connected") != std::string::npos);
  }

  // Every message the client receives until it has been quiet for a second: the `data`s.
  static std::multiset<std::string> Drain(WsClient& c) {
    std::multiset<std::string> data;
    while (auto m = c.ReadText(std::chrono::milliseconds(1500))) {
      auto at = m->find("\"data\":\"");
      if (m->find("\"type\":\"message\"") == std::string::npos || at == std::string::npos) continue;
      data.insert(m->substr(at + 8, m->find('"', at + 8) - at - 8));
    }
    return data;
  }

  std::string dir_;
  std::unique_ptr<HubcastServer> server_;
};

TEST_F(Backpressure, AFloodOfClientActionsGetsErrorAcksAndEveryAcceptedOneIsDelivered) {
  WsClient sender, receiver;
  ConnectMember(sender);
  ConnectMember(receiver);
  // 2,000 sends in one burst: the loop reads them faster than the log applies them.
  constexpr int kSends = 2000;
  for (int i = 0; i < kSends; ++i) {
    ASSERT_TRUE(sender.SendText(R"({"type":"sendToGroup","group":"g","noEcho":true,)"
                                R"("dataType":"text","data":"m)" +
                                std::to_string(i) + R"(","ackId":)" + std::to_string(i + 1) + "}"));
  }
  std::set<std::string> accepted;
  int refused = 0;
  for (int i = 0; i < kSends; ++i) {
    auto ack = sender.ReadText(seconds(10));
    ASSERT_TRUE(ack) << "acks received: " << i;
    ASSERT_NE(ack->find("\"type\":\"ack\""), std::string::npos) << *ack;
    size_t id_at = ack->find("\"ackId\":") + 8;
    int id = std::atoi(ack->c_str() + id_at);
    if (ack->find("\"success\":true") != std::string::npos) {
      accepted.insert("m" + std::to_string(id - 1));
    } else {
      // Azure's answer for a busy service (PROTOCOL.md, ack errors).
      EXPECT_NE(ack->find("\"name\":\"InternalServerError\""), std::string::npos) << *ack;
      ++refused;
    }
  }
  EXPECT_GT(refused, 0) << "the flood never reached the bound of 4";
  EXPECT_GT(accepted.size(), 0u);
  EXPECT_EQ(accepted.size() + refused, static_cast<size_t>(kSends));
  std::multiset<std::string> delivered = Drain(receiver);
  EXPECT_EQ(std::set<std::string>(delivered.begin(), delivered.end()), accepted);
  EXPECT_EQ(delivered.size(), accepted.size()) << "a message was delivered twice";
}

TEST_F(Backpressure, AFloodOfRestSendsGets503WithRetryAfterAndEveryAcceptedOneIsDelivered) {
  WsClient receiver;
  ConnectMember(receiver);
  const std::string path = "/api/hubs/chat/groups/g/:send";
  const std::string token =
      MintJwt(kKey, "http://127.0.0.1:" + std::to_string(server_->port()) + path);
  constexpr int kThreads = 24, kPerThread = 40;
  std::mutex mu;
  std::set<std::string> accepted;
  std::atomic<int> refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string data = "r" + std::to_string(t) + "-" + std::to_string(i);
        HttpResponse r = HttpRequest(
            server_->port(), "POST", path + "?api-version=2024-01-01",
            {{"Authorization", "Bearer " + token}, {"Content-Type", "text/plain"}}, data);
        if (r.status == 202) {
          std::lock_guard lock(mu);
          accepted.insert(data);
        } else if (r.status == 503 && r.Header("Retry-After") == "1" &&
                   r.body.find("\"code\":\"ServiceUnavailable\"") != std::string::npos) {
          refused.fetch_add(1);
        } else {
          other.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(refused.load(), 0) << "the flood never reached the bound of 4";
  EXPECT_EQ(accepted.size() + refused.load(), static_cast<size_t>(kThreads * kPerThread));
  std::multiset<std::string> delivered = Drain(receiver);
  EXPECT_EQ(std::set<std::string>(delivered.begin(), delivered.end()), accepted);
  EXPECT_EQ(delivered.size(), accepted.size()) << "a message was delivered twice";
}

}  // namespace
}  // namespace hubcast::testing
