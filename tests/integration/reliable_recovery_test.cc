// Reliable recovery against a real `hubcast serve` (hardening, issue #9): a client dropped for
// reading too slowly recovers a backlog far larger than the slow-consumer limit, receiving
// every message once and in order while it keeps reading slowly; and reconnection tokens
// expire (accepted before, refused after, refused when tampered with).
#include "base/json.h"

#include <gtest/gtest.h>

#include "tests/integration/json_client.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

namespace hubcast::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class ReliableRecovery : public ServerFixture {
 protected:
  // A reliable client of hub "h" as user "u"; its `connected` message.
  std::optional<Connected> ConnectReliable(WsClient& client) {
    if (!client.Connect(port_, ClientTarget(port_, kAccessKey, "h", "u"), kReliableProtocol)) {
      ADD_FAILURE() << client.error();
      return std::nullopt;
    }
    std::string why;
    std::optional<Connected> connected = ReadConnected(client, &why);
    if (!connected) ADD_FAILURE() << why;
    return connected;
  }

  int SendToConnection(const std::string& id, const std::string& text) {
    const std::string path = "/api/hubs/h/connections/" + id + "/:send";
    const std::string base = "http://127.0.0.1:" + std::to_string(port_);
    return HttpRequest(port_, "POST", path,
                       {{"Authorization", Bearer(base, path)}, {"Content-Type", "text/plain"}},
                       text)
        .status;
  }

  // Polls the server's log for `text` until the deadline.
  bool WaitForLog(const std::string& text, seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (server()->ReadLog().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  }

  int port_ = 0;
};

TEST_F(ReliableRecovery, SlowReaderRecoversABacklogFarAboveTheSlowConsumerLimit) {
  // 24 MiB of messages against a 1 MiB slow-consumer limit (and the 64 MiB un-acked window).
  auto port = StartServer({"--max-outbound-mib", "1"});
  ASSERT_TRUE(port);
  port_ = *port;
  WsClient client;
  std::optional<Connected> connected = ConnectReliable(client);
  ASSERT_TRUE(connected);
  constexpr int kMessages = 384;
  const std::string padding(64 * 1024, 'p');
  auto text_of = [&](int i) { return "m" + std::to_string(i) + ":" + padding; };
  // The client reads nothing: once the kernel's buffers are full the server drops it.
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_EQ(SendToConnection(connected->connection_id, text_of(i)), 202) << "send " << i;
  }
  ASSERT_TRUE(WaitForLog("held for recovery", seconds(30)))
      << "the client was never dropped as too slow";
  client.Close();

  WsClient again;
  RecoveryOutcome recovered =
      TryRecover(again, port_, "h", connected->connection_id, connected->reconnection_token);
  ASSERT_TRUE(recovered.ok) << "HTTP " << recovered.http_status << ", close "
                            << recovered.close_code << ": " << recovered.detail;
  EXPECT_EQ(recovered.connected.connection_id, connected->connection_id);

  // Reads slowly (a pause after every message) and acknowledges now and then, as the official
  // client does: every message arrives once, in order, with its original sequence id.
  uint64_t expected = 1;
  std::string why;
  while (expected <= kMessages) {
    std::optional<json::Value> m = ReadJson(again, seconds(30), &why);
    ASSERT_TRUE(m) << "after " << expected - 1 << " of " << kMessages << " messages: " << why;
    if (StringField(*m, "type") != "message") continue;
    ASSERT_EQ(UintField(*m, "sequenceId"), expected);
    const std::string data = StringField(*m, "data");
    ASSERT_TRUE(data == text_of(static_cast<int>(expected - 1)))
        << "message " << expected << " holds " << data.substr(0, 16) << "...";
    if (expected % 32 == 0) {
      ASSERT_TRUE(again.SendText(R"({"type":"sequenceAck","sequenceId":)" +
                                 std::to_string(expected) + "}"));
    }
    ++expected;
    std::this_thread::sleep_for(milliseconds(15));
  }
  // Nothing is sent twice.
  while (std::optional<json::Value> m = ReadJson(again, seconds(1))) {
    EXPECT_NE(StringField(*m, "type"), "message") << "an extra message: " << json::Serialize(*m);
  }
  EXPECT_TRUE(server()->Running());
}

// The expiry written in a token ("<unix seconds>.<mac>"), or 0.
int64_t TokenExpiry(const std::string& token) {
  size_t dot = token.find('.');
  return dot == std::string::npos ? 0 : std::atoll(token.substr(0, dot).c_str());
}

int64_t UnixNow() {
  return std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(ReliableRecovery, ReconnectionTokenIsAcceptedBeforeItsExpiryAndRefusedAfter) {
  // Tokens live 10 s; the session is held for 120 s, so only the token's expiry can refuse it.
  auto port = StartServer({"--reconnection-token-seconds", "10", "--reliable-hold", "120"});
  ASSERT_TRUE(port);
  port_ = *port;
  WsClient client;
  std::optional<Connected> connected = ConnectReliable(client);
  ASSERT_TRUE(connected);
  const int64_t expiry = TokenExpiry(connected->reconnection_token);
  ASSERT_GE(expiry, UnixNow()) << "token without an expiry: " << connected->reconnection_token;
  ASSERT_LE(expiry, UnixNow() + 11) << connected->reconnection_token;

  // Before its expiry: the session resumes, with a fresh token.
  client.Close();
  WsClient second;
  RecoveryOutcome before =
      TryRecover(second, port_, "h", connected->connection_id, connected->reconnection_token);
  ASSERT_TRUE(before.ok) << "refused before its expiry (" << expiry - UnixNow() << " s left): HTTP "
                         << before.http_status << ", close " << before.close_code << ": "
                         << before.detail;
  const std::string fresh = before.connected.reconnection_token;
  second.Close();

  // After the fresh token's expiry (the session is still held): refused like an unknown token.
  while (UnixNow() <= TokenExpiry(fresh)) std::this_thread::sleep_for(milliseconds(200));
  WsClient third;
  RecoveryOutcome after = TryRecover(third, port_, "h", connected->connection_id, fresh);
  EXPECT_FALSE(after.ok) << "an expired token was accepted";
  EXPECT_EQ(after.http_status, 101);
  EXPECT_EQ(after.close_code, 1008) << after.detail;
}

TEST_F(ReliableRecovery, TamperedOrOldFormatReconnectionTokensAreRefused) {
  auto port = StartServer();
  ASSERT_TRUE(port);
  port_ = *port;
  WsClient client;
  std::optional<Connected> connected = ConnectReliable(client);
  ASSERT_TRUE(connected);
  const std::string token = connected->reconnection_token;
  const size_t dot = token.find('.');
  ASSERT_NE(dot, std::string::npos) << token;
  client.Close();

  std::string flipped_mac = token;
  flipped_mac.back() = flipped_mac.back() == '0' ? '1' : '0';
  const std::string later_expiry = std::to_string(TokenExpiry(token) + 1000) + token.substr(dot);
  const std::string padded_expiry = "0" + token;
  const std::string mac_only = token.substr(dot + 1);  // the previous version's format
  for (const std::string& bad :
       {flipped_mac, later_expiry, padded_expiry, mac_only, std::string("."), token + "0"}) {
    WsClient attempt;
    RecoveryOutcome r = TryRecover(attempt, port_, "h", connected->connection_id, bad);
    EXPECT_FALSE(r.ok) << "accepted: " << bad;
    EXPECT_EQ(r.close_code, 1008) << bad << ": HTTP " << r.http_status << " " << r.detail;
  }
  // The token as issued still works: the refusals changed nothing.
  WsClient good;
  RecoveryOutcome r = TryRecover(good, port_, "h", connected->connection_id, token);
  EXPECT_TRUE(r.ok) << "close " << r.close_code << ": " << r.detail;
}

}  // namespace
}  // namespace hubcast::testing
