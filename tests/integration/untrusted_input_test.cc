// Untrusted requests against a real `hubcast serve` (hardening, issue #9):
//   - a request that fails authentication (no token, a bad one, one for another hub, a connect
//     handler that refuses), names an invalid hub, is otherwise invalid, or recovers a session
//     that does not exist creates no hub: the data dir's hub list stays empty, while one
//     authenticated write does create its hub (so the check can see one);
//   - names with bytes that cannot be represented (control characters, NUL among them, and
//     invalid UTF-8) are refused at every edge: the token's `sub`, REST path segments and query
//     parameters (400), client messages (ack BadRequest); every other byte is kept.
#include "base/json.h"
#include "storage/store.h"

#include <gtest/gtest.h>

#include "tests/integration/json_client.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/ws_client.h"
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::testing {
namespace {

using std::chrono::seconds;

// The byte as a percent escape ("%0A").
std::string Escaped(unsigned b) {
  char buf[4];
  std::snprintf(buf, sizeof buf, "%%%02X", b);
  return buf;
}

// A byte of a name that arrives whole (decoded from a percent escape or a JSON \u escape):
// control characters are refused, and bytes 0x80-0xFF are not UTF-8 on their own.
bool NameByteAccepted(unsigned b) { return b >= 0x20 && b != 0x7f && b < 0x80; }

class UntrustedInput : public ServerFixture {
 protected:
  std::string Base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // A REST call signed for `path`; `query` (with its '?') is not part of the signature.
  HttpResponse Rest(const std::string& method, const std::string& path,
                    const std::string& query = "", const std::string& body = "") {
    return HttpRequest(port_, method, path + query,
                       {{"Authorization", Bearer(Base(), path)}, {"Content-Type", "text/plain"}},
                       body);
  }

  // The hubs in the stopped server's data dir.
  std::vector<std::string> StoredHubs() {
    EXPECT_TRUE(server()->Stop(seconds(15)).Success());
    storage::StoreOptions options;
    options.path = (dir_ / "hubcast-1" / "db").string();
    auto store = storage::Store::Open(options);
    EXPECT_TRUE(store.ok()) << store.status().message();
    if (!store.ok()) return {"<unreadable>"};
    auto hubs = (*store)->Hubs();
    EXPECT_TRUE(hubs.ok()) << hubs.status().message();
    return hubs.ok() ? *hubs : std::vector<std::string>{"<unreadable>"};
  }

  int port_ = 0;
};

TEST_F(UntrustedInput, RequestsThatFailAuthenticationOrNameAnInvalidHubCreateNoHub) {
  // Hub "refused" has a connect handler that cannot be reached: it refuses every client.
  auto port = StartServer({"--event-handler", "refused=http://127.0.0.1:1/{event};system=connect"});
  ASSERT_TRUE(port);
  port_ = *port;
  int fresh = 0;
  auto hub = [&] { return "fresh" + std::to_string(++fresh); };
  auto handshake_status = [&](const std::string& target) {
    WsClient client;
    EXPECT_FALSE(client.Connect(port_, target, kJsonProtocol)) << target;
    return client.http_status();
  };
  for (int round = 0; round < 20; ++round) {
    // Handshakes: no token, a token signed with another key, a token for another hub, a
    // token whose `sub` is not a valid user id, an invalid hub name.
    EXPECT_EQ(handshake_status("/client/hubs/" + hub()), 401);
    EXPECT_EQ(handshake_status("/client?hub=" + hub()), 401);
    EXPECT_EQ(handshake_status(ClientTarget(port_, "some-other-key-0123456789", hub(), "u")), 401);
    {
      std::string target = ClientTarget(port_, kAccessKey, hub(), "u");
      EXPECT_EQ(handshake_status("/client/hubs/" + hub() + target.substr(target.find('?'))), 401);
    }
    EXPECT_EQ(handshake_status(ClientTarget(port_, kAccessKey, hub(), std::string("a\0b", 3))),
              400);
    EXPECT_EQ(handshake_status("/client/hubs/1" + hub()), 400);
    // Recovery of sessions that do not exist: accepted, then closed with 1008.
    {
      WsClient client;
      RecoveryOutcome r = TryRecover(client, port_, hub(), "nosuchconnection", "123.abc");
      EXPECT_FALSE(r.ok);
      EXPECT_EQ(r.close_code, 1008) << "HTTP " << r.http_status << " " << r.detail;
    }
    // REST: no token, a token for another path, an invalid hub; authenticated reads and token
    // minting never create a hub either; the health route, a negotiate-style route.
    const std::string send = "/api/hubs/" + hub() + "/:send";
    EXPECT_EQ(HttpRequest(port_, "POST", send, {{"Content-Type", "text/plain"}}, "x").status, 401);
    EXPECT_EQ(HttpRequest(port_, "POST", send,
                          {{"Authorization", Bearer(Base(), "/api/hubs/other/:send")},
                           {"Content-Type", "text/plain"}},
                          "x")
                  .status,
              401);
    EXPECT_EQ(Rest("POST", "/api/hubs/9" + hub() + "/:send", "", "x").status, 400);
    // Authenticated writes that are invalid otherwise change nothing either.
    EXPECT_EQ(Rest("POST", "/api/hubs/" + hub() + "/groups/%20/:send", "", "x").status, 400);
    EXPECT_EQ(Rest("PUT", "/api/hubs/" + hub() + "/users/u/groups/%00").status, 400);
    EXPECT_EQ(Rest("POST", "/api/hubs/" + hub() + "/:send", "?messageTtlSeconds=-1", "x").status,
              400);
    EXPECT_EQ(Rest("HEAD", "/api/hubs/" + hub() + "/groups/g").status, 404);
    EXPECT_EQ(Rest("GET", "/api/hubs/" + hub() + "/users/u/groups").status, 200);
    EXPECT_EQ(Rest("POST", "/api/hubs/" + hub() + "/:generateToken", "?userId=u").status, 200);
    EXPECT_EQ(HttpRequest(port_, "GET", "/api/health").status, 200);
    EXPECT_EQ(HttpRequest(port_, "GET", "/client/negotiate?hub=" + hub()).status, 404);
    EXPECT_EQ(HttpRequest(port_, "POST", "/api/hubs/" + hub() + "/:negotiate").status, 404);
  }
  // A client the connect handler refuses (here: cannot be reached) creates nothing either.
  EXPECT_EQ(handshake_status(ClientTarget(port_, kAccessKey, "refused", "u")), 500);

  // One authenticated write creates its hub: the check below would see a hub.
  EXPECT_EQ(Rest("POST", "/api/hubs/created/:send", "", "x").status, 202);
  EXPECT_EQ(StoredHubs(), std::vector<std::string>{"created"}) << fresh << " fresh hub names";
}

TEST_F(UntrustedInput, NamesWithBytesThatCannotBeRepresentedAreRefusedAtEveryEdge) {
  auto port = StartServer();
  ASSERT_TRUE(port);
  port_ = *port;
  for (unsigned b = 0; b < 256; ++b) {
    const std::string name = "a" + Escaped(b) + "b";
    const int expected = NameByteAccepted(b) || b == '/' ? 202 : 400;
    // REST path segments: user, group, connection id.
    EXPECT_EQ(Rest("POST", "/api/hubs/h/users/" + name + "/:send", "", "x").status, expected)
        << "user with byte " << b;
    EXPECT_EQ(Rest("POST", "/api/hubs/h/groups/" + name + "/:send", "", "x").status, expected)
        << "group with byte " << b;
    EXPECT_EQ(Rest("POST", "/api/hubs/h/connections/" + name + "/:send", "", "x").status, expected)
        << "connection id with byte " << b;
    // Query parameters: an excluded connection id, a token's user id and group.
    const int in_query = NameByteAccepted(b) ? 202 : 400;
    EXPECT_EQ(Rest("POST", "/api/hubs/h/:send", "?excluded=" + name, "x").status, in_query)
        << "excluded with byte " << b;
    EXPECT_EQ(Rest("POST", "/api/hubs/h/:generateToken", "?userId=" + name + "&group=g").status,
              in_query == 202 ? 200 : 400)
        << "userId with byte " << b;
    EXPECT_EQ(Rest("POST", "/api/hubs/h/:generateToken", "?group=" + name).status,
              in_query == 202 ? 200 : 400)
        << "group with byte " << b;
  }
  // The token's sub: refused with 400 (bytes 0x80-0xFF alone make the token's JSON invalid).
  for (unsigned b = 0; b < 0x80; ++b) {
    WsClient client;
    std::string user = "a";
    user.push_back(static_cast<char>(b));
    bool connected =
        client.Connect(port_, ClientTarget(port_, kAccessKey, "h", user + "b"), kJsonProtocol);
    EXPECT_EQ(connected, NameByteAccepted(b)) << "sub with byte " << b << ": " << client.error();
    if (!connected) {
      EXPECT_EQ(client.http_status(), 400) << "sub with byte " << b;
    }
  }
  // Client messages: group names and event names (JSON escapes; a frame is UTF-8 text).
  WsClient client;
  ASSERT_TRUE(client.Connect(port_, ClientTarget(port_, kAccessKey, "h", "u"), kJsonProtocol))
      << client.error();
  std::string why;
  ASSERT_TRUE(ReadConnected(client, &why)) << why;
  uint64_t ack = 0;
  for (unsigned b = 0; b < 0x80; ++b) {
    char escape[8];
    std::snprintf(escape, sizeof escape, "\\u%04x", b);
    const std::string name = std::string("a") + escape + "b";
    for (const std::string& frame :
         {R"({"type":"joinGroup","group":")" + name + R"(","ackId":)",
          R"({"type":"sendToGroup","group":")" + name + R"(","noEcho":true,"data":"x","ackId":)",
          R"({"type":"event","event":")" + name + R"(","data":"x","ackId":)"}) {
      ASSERT_TRUE(client.SendText(frame + std::to_string(++ack) + "}"));
      std::optional<json::Value> m = ReadJson(client, seconds(10), &why);
      ASSERT_TRUE(m) << frame << ": " << why;
      ASSERT_EQ(StringField(*m, "type"), "ack") << json::Serialize(*m);
      const json::Value* error = m->Find("error");
      const std::string error_name = error ? StringField(*error, "name") : "";
      if (NameByteAccepted(b)) {
        // Accepted names get past validation (an event then finds no event handler).
        EXPECT_NE(error_name, "BadRequest") << frame << " -> " << json::Serialize(*m);
      } else {
        EXPECT_EQ(error_name, "BadRequest") << frame << " -> " << json::Serialize(*m);
      }
    }
  }
}

}  // namespace
}  // namespace hubcast::testing
