// Hostile input against the real server (hardening, issue #9): WebSocket close codes that RFC
// 6455 forbids a peer to send are answered with a 1002 close instead of being echoed, an
// upgrade whose Sec-WebSocket-Key is not the base64 of 16 bytes is refused with 400, and a
// filter nested 10000 deep is a 400 rather than a stack or memory problem.
//
// One hubcast process per test on a free port and its own data dir, stopped by pid; its log is
// printed when a test fails. Clients are raw sockets (ws_client.h), independent of the
// server's WebSocket code.

#include "base/json.h"

#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

#ifndef HUBCAST_BINARY_PATH
#define HUBCAST_BINARY_PATH "hubcast"
#endif

constexpr char kAccessKey[] = "hubcast-hardening-test-access-key-0123456789";
constexpr char kClientPath[] = "/client/hubs/h";
constexpr char kJson[] = "json.webpubsub.azure.v1";

// Codes RFC 6455 7.4 does not let a peer send: below 1000, reserved (1004), local-only
// (1005, 1006, 1015), unassigned (1016-2999) and out of range (5000+).
constexpr uint16_t kForbiddenCloseCodes[] = {0,    1,    999,  1004, 1005, 1006,
                                             1015, 1016, 2000, 2999, 5000, 65535};

class Hardening : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/hubcast-hardening-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    const char* binary = std::getenv("HUBCAST_BINARY");
    SpawnOptions options;
    options.binary = binary != nullptr && *binary != '\0' ? binary : HUBCAST_BINARY_PATH;
    options.args = {"serve",       "--port",
                    "0",           "--ports-file",
                    dir_ / "port", "--data-dir",
                    dir_ / "data", "--access-key",
                    kAccessKey,    "--event-loops",
                    "2",           "--http-threads",
                    "4",           "--allow-anonymous",
                    "true"};
    options.log_path = dir_ / "hubcast.log";
    std::string error;
    server_ = ChildProcess::Spawn(options, &error);
    ASSERT_NE(server_, nullptr) << error;
    std::optional<int> port = WaitForPortFile(dir_ / "port", seconds(30), server_.get());
    ASSERT_TRUE(port.has_value()) << "hubcast did not start: " << server_->ReadLog();
    port_ = *port;
  }

  void TearDown() override {
    if (server_) server_->Stop(seconds(10));
    std::error_code ec;
    if (HasFailure()) {
      if (server_) server_->DumpLog(std::cerr);
      std::cerr << "work directory kept: " << dir_ << std::endl;
    } else {
      fs::remove_all(dir_, ec);
    }
  }

  // Connects a client (JSON subprotocol, or raw when `subprotocol` is empty) and reads the
  // `connected` message a JSON client gets first.
  void Connect(WsClient& client, const std::string& subprotocol) {
    ASSERT_TRUE(client.Connect(port_, kClientPath, subprotocol)) << client.error();
    if (!subprotocol.empty()) {
      std::optional<std::string> connected = client.ReadText(seconds(10));
      ASSERT_TRUE(connected.has_value()) << client.error();
      EXPECT_NE(connected->find("\"connected\""), std::string::npos) << *connected;
    }
  }

  // The close frame the server answers with, skipping the text messages before it (a JSON
  // client is told why in a `disconnected` message first). nullopt if none arrives.
  std::optional<WsMessage> ReadClose(WsClient& client) {
    for (int i = 0; i < 4; ++i) {
      std::optional<WsMessage> m = client.Read(seconds(10));
      if (!m) {
        ADD_FAILURE() << "no close frame: " << client.error();
        return std::nullopt;
      }
      if (m->op == WsOp::kClose) return m;
    }
    ADD_FAILURE() << "no close frame after 4 messages";
    return std::nullopt;
  }

  HttpResponse Upgrade(const std::optional<std::string>& key) {
    std::vector<std::pair<std::string, std::string>> headers = {{"Upgrade", "websocket"},
                                                                {"Sec-WebSocket-Version", "13"}};
    if (key) headers.emplace_back("Sec-WebSocket-Key", *key);
    return HttpRequest(port_, "GET", kClientPath, headers);
  }

  fs::path dir_;
  std::unique_ptr<ChildProcess> server_;
  int port_ = 0;
};

TEST_F(Hardening, ForbiddenCloseCodesAreAnsweredWithProtocolError) {
  for (uint16_t code : kForbiddenCloseCodes) {
    for (const std::string& subprotocol : {std::string(kJson), std::string()}) {
      SCOPED_TRACE("close code " + std::to_string(code) + " on " +
                   (subprotocol.empty() ? "a raw client" : subprotocol));
      WsClient client;
      Connect(client, subprotocol);
      ASSERT_TRUE(client.SendClose(code, "bye"));
      std::optional<WsMessage> close = ReadClose(client);
      ASSERT_TRUE(close.has_value());
      EXPECT_EQ(close->close_code, 1002) << close->close_reason;
      EXPECT_NE(close->close_reason.find(std::to_string(code)), std::string::npos)
          << close->close_reason;
    }
  }
}

TEST_F(Hardening, AllowedCloseCodesAreStillEchoed) {
  for (uint16_t code : {1000, 1001, 1003, 1008, 1014, 3000, 4999}) {
    SCOPED_TRACE("close code " + std::to_string(code));
    WsClient client;
    Connect(client, kJson);
    ASSERT_TRUE(client.SendClose(code));
    std::optional<WsMessage> close = ReadClose(client);
    ASSERT_TRUE(close.has_value());
    EXPECT_EQ(close->close_code, code);
  }
}

TEST_F(Hardening, CloseReasonThatIsNotUtf8IsInvalidPayload) {
  WsClient client;
  Connect(client, kJson);
  ASSERT_TRUE(client.SendClose(1000, "bad \xC3"));
  std::optional<WsMessage> close = ReadClose(client);
  ASSERT_TRUE(close.has_value());
  EXPECT_EQ(close->close_code, 1007);
}

TEST_F(Hardening, MalformedSecWebSocketKeyIs400) {
  const std::vector<std::optional<std::string>> keys = {
      std::nullopt,                    // missing
      "",                              // empty
      "x",                             // not base64 of anything useful
      "dGhlIHNhbXBsZSBub25jZQ",        // 16 bytes without the padding
      "dGhlIHNhbXBsZSBub25jZR==",      // stray bits in the last character
      "c2FtcGxlIG5vbmNl",              // base64 of 12 bytes
      "dGhlIHNhbXBsZSBub25jZSB0d28=",  // base64 of 20 bytes
      "dGhlIHNhbXBsZSBub25j$Q==",      // not base64
  };
  for (const std::optional<std::string>& key : keys) {
    SCOPED_TRACE(key ? "key '" + *key + "'" : std::string("no key"));
    HttpResponse r = Upgrade(key);
    EXPECT_EQ(r.status, 400) << r.error << r.body;
    EXPECT_EQ(r.Header("x-ms-error-code"), "BadRequest") << r.body;
    EXPECT_NE(r.body.find("Sec-WebSocket-Key"), std::string::npos) << r.body;
  }
  // The RFC's own example key still upgrades.
  WsClient client;
  Connect(client, kJson);
}

TEST_F(Hardening, FilterNestedTenThousandDeepIs400) {
  const std::string target = "/api/hubs/h/:addToGroups";
  const std::string deep = std::string(10000, '(') + "true" + std::string(10000, ')');
  const std::string token =
      MintJwt(kAccessKey, "http://127.0.0.1:" + std::to_string(port_) + target);
  HttpResponse r =
      HttpRequest(port_, "POST", target,
                  {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}},
                  R"({"groups":["g"],"filter":")" + deep + R"("})");
  EXPECT_EQ(r.status, 400) << r.error << r.body;
  Result<json::Value> body = json::Parse(r.body);
  ASSERT_TRUE(body.ok()) << r.body;
  ASSERT_NE(body->Find("message"), nullptr) << r.body;
  EXPECT_EQ(body->Find("message")->str(),
            "Invalid filter: Invalid filter at position 64: expressions are nested deeper than 64 "
            "levels.");
  // The server is still there and serving.
  EXPECT_EQ(HttpRequest(port_, "GET", "/api/health").status, 200);
}

}  // namespace
}  // namespace hubcast::testing
