// A reliable connection's checkpoint that the log refuses (a full queue or disk) is appended
// again at the next tick, even when the client acknowledges nothing more: left out, a later
// recovery would replay from an older checkpoint, which the replay log may have trimmed.
// In-process: the real gateway over a log that refuses the first checkpoint appends.
#include <gtest/gtest.h>

#include "tests/integration/in_process_gateway.h"
#include "tests/integration/jwt_util.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace hubcast {
namespace {

using testing::JwtClaims;
using testing::MintJwt;
using testing::WsClient;
using Clock = std::chrono::steady_clock;

const std::string kKey = "refused-checkpoint-test-access-key-0123456789";

// Refuses the first `refuse` checkpoint appends (kUnavailable, as a full disk would), records
// the acknowledgements of every checkpoint append, and passes everything else on.
class RefusingLogs : public testing::InterceptedLogs {
 public:
  explicit RefusingLogs(int refuse)
      : InterceptedLogs([this](replication::HubLog& inner, storage::EntryPtr e,
                               replication::DurableFn d, replication::AppliedFn a,
                               const std::string& id) {
          if (e->kind == storage::EntryKind::kCheckpoint) {
            bool refused;
            {
              std::lock_guard lock(mu_);
              checkpoints_.push_back(e->acks);
              refused = static_cast<int>(checkpoints_.size()) <= refuse_;
            }
            if (refused) return d(Status::Unavailable("no space left on the data disk"));
          }
          inner.Append(std::move(e), std::move(d), std::move(a), id);
        }),
        refuse_(refuse) {}

  std::vector<std::vector<std::pair<std::string, uint64_t>>> checkpoints() const {
    std::lock_guard lock(mu_);
    return checkpoints_;
  }

 private:
  const int refuse_;
  mutable std::mutex mu_;
  std::vector<std::vector<std::pair<std::string, uint64_t>>> checkpoints_;
};

TEST(RefusedCheckpoint, IsAppendedAgainWithoutAFurtherAck) {
  RefusingLogs logs(/*refuse=*/2);
  testing::InProcessGateway node;
  server::GatewayOptions go;
  go.event_loops = 1;
  go.http_threads = 2;
  go.access_keys = {kKey};
  go.limits.checkpoint_interval = std::chrono::seconds(1);
  ASSERT_TRUE(node.Start(go, &logs).ok());
  const int port = node.port();

  JwtClaims claims;
  claims.audience = "http://127.0.0.1:" + std::to_string(port) + "/client/hubs/chat";
  claims.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"};
  WsClient client;
  ASSERT_TRUE(client.Connect(port, "/client/hubs/chat?access_token=" + MintJwt(kKey, claims),
                             "json.reliable.webpubsub.azure.v1"))
      << client.error();
  auto connected = client.ReadText(std::chrono::seconds(5));
  ASSERT_TRUE(connected && connected->find("\"connected\"") != std::string::npos);
  const std::string key = "\"connectionId\":\"";
  const size_t at = connected->find(key) + key.size();
  const std::string id = connected->substr(at, connected->find('"', at) - at);

  // One message to itself (through a group), acknowledged once.
  ASSERT_TRUE(client.SendText(R"({"type":"joinGroup","group":"g","ackId":1})"));
  ASSERT_TRUE(client.SendText(R"({"type":"sendToGroup","group":"g","data":"hi","ackId":2})"));
  bool numbered = false;
  for (int i = 0; i < 5 && !numbered; ++i) {
    auto m = client.ReadText(std::chrono::seconds(5));
    ASSERT_TRUE(m.has_value()) << client.error();
    numbered = m->find("\"sequenceId\":1,") != std::string::npos;
  }
  ASSERT_TRUE(numbered) << "no message numbered 1";
  ASSERT_TRUE(client.SendText(R"({"type":"sequenceAck","sequenceId":1})"));

  // Two refusals, then the same checkpoint once more (each tick is 1 s).
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (logs.checkpoints().size() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto checkpoints = logs.checkpoints();
  ASSERT_GE(checkpoints.size(), 3u) << "the refused checkpoint was not appended again";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(checkpoints[i], (std::vector<std::pair<std::string, uint64_t>>{{id, 1}}))
        << "checkpoint append " << i;
  }
  node.Stop();
  logs.Stop();
}

}  // namespace
}  // namespace hubcast
