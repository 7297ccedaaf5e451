// A connection the service closes while its 101 is on the way: the open entry is applied (so
// the app can address the connection) before the handshake hears it is durable, as a
// replicated log may do. The socket that arrives afterwards must hear the close and go, not
// become a live connection the log no longer has. In-process: the real gateway over a log
// whose acknowledgement of the open entry the test holds back.
#include "base/clock.h"

#include <gtest/gtest.h>

#include "tests/integration/in_process_gateway.h"
#include "tests/integration/jwt_util.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace hubcast {
namespace {

using testing::JwtClaims;
using testing::MintJwt;
using testing::WsClient;
using testing::WsMessage;
using testing::WsOp;

const std::string kKey = "late-upgrade-test-access-key-0123456789abcdef";

// Holds back the `durable` of the first kConnectionOpen; the real log goes on, so the entry
// is applied (and delivered) meanwhile.
class HeldOpenLogs : public testing::InterceptedLogs {
 public:
  HeldOpenLogs()
      : InterceptedLogs([this](replication::HubLog& inner, storage::EntryPtr e,
                               replication::DurableFn d, replication::AppliedFn a,
                               const std::string& request_id) {
          if (e->kind != storage::EntryKind::kConnectionOpen) {
            inner.Append(std::move(e), std::move(d), std::move(a), request_id);
            return;
          }
          std::string id = e->origin_connection;
          inner.Append(
              std::move(e),
              [this, id, d = std::move(d)](Result<uint64_t> r) {
                std::lock_guard lock(mu_);
                held_ = [d, r] { d(r); };
                connection_id_ = id;
                cv_.notify_all();
              },
              std::move(a), request_id);
        }) {}

  // The id of the connection whose acknowledgement is held, once there is one.
  std::optional<std::string> WaitForHeld(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return static_cast<bool>(held_); })) {
      return std::nullopt;
    }
    return connection_id_;
  }
  void Release() {
    std::function<void()> held;
    {
      std::lock_guard lock(mu_);
      held = std::move(held_);
      held_ = nullptr;
    }
    if (held) held();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> held_;
  std::string connection_id_;
};

class LateUpgrade : public ::testing::Test {
 protected:
  void SetUp() override {
    server::GatewayOptions go;
    go.event_loops = 2;
    go.http_threads = 2;
    go.access_keys = {kKey};
    Status started = node_.Start(go, &logs_);
    ASSERT_TRUE(started.ok()) << started.message();
    port_ = node_.port();
  }
  void TearDown() override {
    logs_.Release();  // a test that failed early may still hold the handshake
    node_.Stop();
    if (client_thread_.joinable()) client_thread_.join();
    logs_.Stop();
  }

  // A client's handshake whose open entry is applied and then closed by the app (as the REST
  // API does: through the log) before the 101 leaves. Returns once the 101 arrived.
  void ConnectClosedBeforeUpgrade(const std::string& subprotocol, const std::string& reason) {
    JwtClaims claims;
    claims.audience = "http://127.0.0.1:" + std::to_string(port_) + "/client/hubs/chat";
    std::string target = "/client/hubs/chat?access_token=" + MintJwt(kKey, claims);
    client_thread_ = std::thread([this, target, subprotocol] {
      upgraded_ = client_.Connect(port_, target, subprotocol, std::chrono::seconds(20));
    });
    std::optional<std::string> id = logs_.WaitForHeld(std::chrono::seconds(10));
    ASSERT_TRUE(id) << "the handshake never appended its open entry";
    auto hub = node_.registry().Find(*HubName::Parse("chat"));
    ASSERT_TRUE(hub);
    storage::Entry e;
    e.kind = storage::EntryKind::kCloseConnections;
    e.timestamp_ms = SystemClock::Get().NowUnixMs();
    e.scope = storage::Scope::kConnection;
    e.target = *id;
    e.reason = reason;
    // Returns once the close was applied and delivered: posted to the connection's loop.
    ASSERT_TRUE(hub->AppendAndWait(std::move(e)).ok());
    logs_.Release();  // now the 101 leaves
    client_thread_.join();
    ASSERT_TRUE(upgraded_) << client_.error();
  }

  HeldOpenLogs logs_;
  testing::InProcessGateway node_;
  int port_ = 0;
  WsClient client_;  // its handshake runs on client_thread_
  bool upgraded_ = false;
  std::thread client_thread_;
};

TEST_F(LateUpgrade, ConnectionClosedByTheAppBeforeItsUpgradeLeftHearsWhyAndIsDropped) {
  ConnectClosedBeforeUpgrade("json.webpubsub.azure.v1", "closed by the app");
  if (HasFatalFailure()) return;

  // What an attached client would have heard: `disconnected` with the reason, then the close
  // frame (1000: the app closed it). Never `connected`: the connection is gone.
  std::optional<WsMessage> m = client_.Read(std::chrono::seconds(10));
  ASSERT_TRUE(m) << "no message: " << client_.error();
  ASSERT_EQ(m->op, WsOp::kText) << "close " << m->close_code;
  EXPECT_NE(m->payload.find("\"disconnected\""), std::string::npos) << m->payload;
  EXPECT_NE(m->payload.find("closed by the app"), std::string::npos) << m->payload;
  m = client_.Read(std::chrono::seconds(10));
  ASSERT_TRUE(m) << "no close frame: " << client_.error();
  ASSERT_EQ(m->op, WsOp::kClose) << m->payload;
  EXPECT_EQ(m->close_code, 1000);
  EXPECT_EQ(m->close_reason, "closed by the app");
  // And the server lets go of the socket.
  EXPECT_FALSE(client_.Read(std::chrono::seconds(10)));
  EXPECT_EQ(client_.error(), "eof");
}

TEST_F(LateUpgrade, ReliableConnectionClosedBeforeItsUpgradeLeftIsToldNotToRecover) {
  ConnectClosedBeforeUpgrade("json.reliable.webpubsub.azure.v1", "closed by the app");
  if (HasFatalFailure()) return;

  std::optional<WsMessage> m;
  do {
    m = client_.Read(std::chrono::seconds(10));
  } while (m && m->op == WsOp::kText);
  ASSERT_TRUE(m) << "no close frame: " << client_.error();
  ASSERT_EQ(m->op, WsOp::kClose);
  EXPECT_EQ(m->close_code, 1008);  // the session is gone: recovering would fail anyway
  EXPECT_FALSE(client_.Read(std::chrono::seconds(10)));
  EXPECT_EQ(client_.error(), "eof");
}

}  // namespace
}  // namespace hubcast
