// The admin listener's parts that need no socket: REST operation names (bounded label values),
// the live trace's events and payload cuts, and --admin-bind parsing.
#include "base/json.h"
#include "server/config.h"
#include "server/live_trace.h"
#include "server/server_metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace hubcast::server {
namespace {

std::string Op(const std::string& method, const std::string& target) {
  rest::HttpRequest r;
  r.method = method;
  r.target = target;
  return metric::RestOperation(r);
}

TEST(RestOperation, NamesTheRouteWithoutItsNames) {
  EXPECT_EQ(Op("POST", "/api/hubs/chat/:send?api-version=2024-12-01"),
            "POST /api/hubs/{hub}/:send");
  EXPECT_EQ(Op("PUT", "/api/hubs/chat/groups/g%201/connections/abc"),
            "PUT /api/hubs/{hub}/groups/{group}/connections/{connection}");
  EXPECT_EQ(Op("HEAD", "/api/hubs/chat/users/alice"), "HEAD /api/hubs/{hub}/users/{user}");
  EXPECT_EQ(Op("PUT", "/api/hubs/h/permissions/sendToGroup/connections/c?targetName=g"),
            "PUT /api/hubs/{hub}/permissions/{permission}/connections/{connection}");
  EXPECT_EQ(Op("GET", "/api/health"), "GET /api/health");
}

TEST(RestOperation, UnknownWordsDoNotBecomeLabelValues) {
  EXPECT_EQ(Op("GET", "/api/whatever-the-caller-wants/xyz"), "GET /api/{other}/{other}");
}

storage::Entry Send(std::string data, storage::DataType type = storage::DataType::kText) {
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.scope = storage::Scope::kGroup;
  e.target = "room";
  e.origin_connection = "c1";
  e.data_type = type;
  e.data = std::move(data);
  e.timestamp_ms = 1000;
  return e;
}

TEST(LiveTrace, MessageEventCutsPayloadOnACharacterBoundary) {
  // 127 ASCII bytes then a 3-byte character that straddles the cut.
  std::string data = std::string(127, 'a') + "\xE2\x82\xAC" + "tail";
  storage::ApplyResult r;
  auto events = TraceEvents(7, Send(data), r);
  ASSERT_EQ(events.size(), 1u);
  auto v = json::Parse(events[0]);
  ASSERT_TRUE(v.ok()) << events[0];
  EXPECT_EQ(v->Find("type")->str(), "message");
  EXPECT_EQ(v->Find("payload")->str(), std::string(127, 'a'));
  EXPECT_EQ(v->Find("cut")->is_bool(), true);
  EXPECT_EQ(json::Serialize(*v->Find("cut")), "true");
  EXPECT_EQ(json::Serialize(*v->Find("bytes")), std::to_string(data.size()));
  EXPECT_EQ(v->Find("target")->str(), "room");
}

TEST(LiveTrace, BinaryPayloadIsBase64AndShortOnesAreWhole) {
  storage::ApplyResult r;
  auto v = json::Parse(
      TraceEvents(1, Send(std::string("\x00\x01\xff", 3), storage::DataType::kBinary), r)[0]);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->Find("payloadBase64")->str(), "AAH/");
  EXPECT_EQ(json::Serialize(*v->Find("cut")), "false");
}

TEST(LiveTrace, WatcherOfAnotherHubSeesNothingAndSlowWatcherLosesTheOldest) {
  LiveTrace trace;
  storage::ApplyResult r;
  auto mine = trace.Watch("chat");
  auto other = trace.Watch("elsewhere");
  for (size_t i = 0; i < LiveTrace::kMaxQueued + 5; ++i) trace.Record("chat", i + 1, Send("m"), r);
  EXPECT_FALSE(other->Next(std::chrono::milliseconds(0)).has_value());
  auto first = mine->Next(std::chrono::milliseconds(0));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, "{\"type\":\"lost\",\"events\":5}");
  auto next = json::Parse(*mine->Next(std::chrono::milliseconds(0)));
  EXPECT_EQ(json::Serialize(*next->Find("position")), "6");
}

TEST(AdminBind, HostPortForms) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:9090"), std::make_pair(std::string("127.0.0.1"), 9090));
  EXPECT_EQ(ParseHostPort("[::1]:0"), std::make_pair(std::string("::1"), 0));
  EXPECT_EQ(ParseHostPort("0.0.0.0:65535"), std::make_pair(std::string("0.0.0.0"), 65535));
  for (const char* bad : {"9090", ":9090", "host:", "host:65536", "::1:90", "h:9x", "[]:1"}) {
    EXPECT_FALSE(ParseHostPort(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace hubcast::server
