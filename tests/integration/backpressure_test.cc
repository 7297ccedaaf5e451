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
    server_ = HubcastServer::Start(dir_, kKey, ServerArgs(), &error);
    ASSERT_TRUE(server_) << error;
  }
  virtual std::vector<std::string> ServerArgs() const {
    return {"--max-pending-per-hub", "4", "--http-threads", "32", "--event-loops", "1"};
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

  struct Flood {
    std::set<std::string> accepted;  // ids answered 202
    int refused = 0;                 // 503 with Retry-After and a JSON error
    int other = 0;
  };
  // `threads` publishers each POST `per_thread` REST sends to group g; a body is its id
  // ("r<thread>-<i>") followed by `padding`.
  Flood RestFlood(int threads, int per_thread, const std::string& padding = "") {
    const std::string token = RestToken();
    std::mutex mu;
    Flood flood;
    std::atomic<int> refused{0}, other{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          std::string id = "r" + std::to_string(t) + "-" + std::to_string(i);
          HttpResponse r = RestSend(token, id + padding);
          if (r.status == 202) {
            std::lock_guard lock(mu);
            flood.accepted.insert(id);
          } else if (r.status == 503 && r.Header("Retry-After") == "1" &&
                     r.body.find("\"code\":\"ServiceUnavailable\"") != std::string::npos) {
            refused.fetch_add(1);
          } else {
            other.fetch_add(1);
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    flood.refused = refused.load();
    flood.other = other.load();
    return flood;
  }
  std::string RestToken() const {
    return MintJwt(kKey, "http://127.0.0.1:" + std::to_string(server_->port()) +
                             "/api/hubs/chat/groups/g/:send");
  }
  HttpResponse RestSend(const std::string& token, const std::string& body) const {
    return HttpRequest(
        server_->port(), "POST", "/api/hubs/chat/groups/g/:send?api-version=2024-01-01",
        {{"Authorization", "Bearer " + token}, {"Content-Type", "text/plain"}}, body);
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
  constexpr int kThreads = 24, kPerThread = 40;
  Flood flood = RestFlood(kThreads, kPerThread);
  const std::set<std::string>& accepted = flood.accepted;
  EXPECT_EQ(flood.other, 0);
  EXPECT_GT(flood.refused, 0) << "the flood never reached the bound of 4";
  EXPECT_EQ(accepted.size() + flood.refused, static_cast<size_t>(kThreads * kPerThread));
  std::multiset<std::string> delivered = Drain(receiver);
  EXPECT_EQ(std::set<std::string>(delivered.begin(), delivered.end()), accepted);
  EXPECT_EQ(delivered.size(), accepted.size()) << "a message was delivered twice";
}

// The node-wide bound on bytes queued for clients (--max-outbound-total-mib): clients that never
// read are dropped as slow consumers before they hold the server's memory, a fast reader next
// to them gets every message that was accepted, and publishers get 202 or 503, nothing else.
class OutboundBound : public Backpressure {
 protected:
  std::vector<std::string> ServerArgs() const override {
    // The per-client cap is raised out of the way so only the node-wide bound can act.
    return {"--max-outbound-total-mib",
            "48",
            "--max-outbound-mib",
            "1024",
            "--write-stall-seconds",
            "3600",
            "--idle-timeout-seconds",
            "3600",
            "--event-loops",
            "1"};
  }
};

TEST_F(OutboundBound, ClientsThatNeverReadAreDroppedAndTheFastOneGetsEveryAcceptedMessage) {
  constexpr int kSlow = 4, kThreads = 4, kPerThread = 200;
  const std::string padding(512 * 1024, 'x');  // 400 MiB of distinct payloads in all
  std::vector<std::unique_ptr<WsClient>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<WsClient>());
    ConnectMember(*slow.back());  // and never read again
  }
  WsClient fast;
  ConnectMember(fast);
  std::multiset<std::string> received;
  std::atomic<bool> sending{true};
  std::thread reader([&] {
    // Until the publishers are done and the client was quiet for 3 s.
    while (true) {
      auto m = fast.ReadText(seconds(3));
      if (!m) {
        if (!sending.load()) break;
        continue;
      }
      auto at = m->find("\"data\":\"");
      if (at == std::string::npos) continue;
      received.insert(m->substr(at + 8, m->find('.', at + 8) - at - 8));
    }
  });
  std::atomic<long> peak_rss_kb{0};
  std::thread sampler([&] {
    while (sending.load()) {
      ProcStatus st = ReadProcStatus(server_->process().pid());
      if (st.ok && st.vm_rss_kb > peak_rss_kb.load()) peak_rss_kb.store(st.vm_rss_kb);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Flood flood = RestFlood(kThreads, kPerThread, "." + padding);
  const std::set<std::string>& accepted = flood.accepted;
  sending.store(false);
  sampler.join();
  reader.join();
  std::cout << "[ figures ] peak server RSS " << peak_rss_kb.load() / 1024 << " MiB, accepted "
            << accepted.size() << ", refused (503) " << flood.refused << "\n";
  EXPECT_EQ(flood.other, 0);
  EXPECT_EQ(accepted.size() + flood.refused, static_cast<size_t>(kThreads * kPerThread));
  // Unbounded, the never-read queues hold most of the 400 MiB sent (516 MiB peak measured);
  // bounded, about 155 MiB (the store's memtables and caches are most of it).
  EXPECT_LT(peak_rss_kb.load(), 256 * 1024) << "the slow clients' queues were not bounded";
  EXPECT_EQ(std::set<std::string>(received.begin(), received.end()), accepted);
  EXPECT_EQ(received.size(), accepted.size()) << "a message was delivered twice";
  // Still healthy: a new member gets a new message.
  WsClient late;
  ConnectMember(late);
  EXPECT_EQ(RestSend(RestToken(), "end.").status, 202);
  std::multiset<std::string> tail = Drain(late);
  EXPECT_EQ(tail.count("end."), 1u);
}

}  // namespace
}  // namespace hubcast::testing
