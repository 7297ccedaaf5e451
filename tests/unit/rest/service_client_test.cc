// The parts of the service SDK that need no server: connection strings, locally signed client
// access URLs, and the calls refused before anything is sent. Every network operation is
// tested against a real server by tests/integration/sdk_package_test.cc.
#include "rest/service_client.h"

#include "rest/jwt.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hubcast {
namespace {

constexpr char kKey[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
const std::string kConnectionString =
    std::string("Endpoint=http://127.0.0.1:8080;AccessKey=") + kKey + ";Version=1.0;";

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ServiceClient Client(const std::string& cs = kConnectionString, const std::string& hub = "chat") {
  auto client = ServiceClient::FromConnectionString(cs, hub);
  EXPECT_TRUE(client.ok()) << client.error().ToString();
  return std::move(client).value();
}

std::string EndpointOf(const std::string& cs) {
  auto client = ServiceClient::FromConnectionString(cs, "chat");
  return client.ok() ? client->endpoint() : "error: " + client.error().message;
}

void ExpectInvalid(const ServiceError& e) {
  EXPECT_EQ(e.http_status, 0);
  EXPECT_EQ(e.code, "InvalidArgument");
  EXPECT_FALSE(e.message.empty());
}

// A call refused before sending is answered at once, without waiting on the network.
template <typename T>
ServiceError RefusedAtOnce(ServiceFuture<T> future) {
  EXPECT_TRUE(future.wait_for(std::chrono::seconds(0)));
  ServiceResult<T> result = future.get();
  EXPECT_FALSE(result.ok());
  return result.error();
}

TEST(ServiceClientConnectionString, ReadsEndpointAndPortLikeTheSdks) {
  EXPECT_EQ(EndpointOf(kConnectionString), "http://127.0.0.1:8080");
  EXPECT_EQ(EndpointOf("Endpoint=http://localhost;Port=9090;AccessKey=k"), "http://localhost:9090");
  EXPECT_EQ(EndpointOf("endpoint=http://localhost:8080/;ACCESSKEY=k"), "http://localhost:8080");
  EXPECT_EQ(EndpointOf("Endpoint=example.org;AccessKey=k"), "https://example.org");
  EXPECT_EQ(EndpointOf("Endpoint=https://example.org:443;AccessKey=k"), "https://example.org");
  EXPECT_EQ(EndpointOf("Endpoint=http://proxy:81/pubsub/;AccessKey=k"), "http://proxy:81/pubsub");
  EXPECT_EQ(EndpointOf(" Endpoint = http://h:1 ; AccessKey = k ; Version=1.0"), "http://h:1");
}

TEST(ServiceClientConnectionString, RejectsWhatNoSdkCouldUse) {
  for (const char* cs :
       {"", "AccessKey=k", "Endpoint=http://h", "Endpoint=http://h;AccessKey=",
        "Endpoint=ftp://h;AccessKey=k", "Endpoint=http://h?x=1;AccessKey=k",
        "Endpoint=http://h;Port=0;AccessKey=k", "Endpoint=http://h;Port=70000;AccessKey=k",
        "Endpoint=http://h;Port=8o;AccessKey=k", "Endpoint=http://;AccessKey=k"}) {
    auto client = ServiceClient::FromConnectionString(cs, "chat");
    ASSERT_FALSE(client.ok()) << cs;
    ExpectInvalid(client.error());
  }
}

TEST(ServiceClientConnectionString, RejectsInvalidHubNames) {
  for (const char* hub : {"", "1chat", "chat room", "a/b"}) {
    auto client = ServiceClient::FromConnectionString(kConnectionString, hub);
    ASSERT_FALSE(client.ok()) << hub;
    ExpectInvalid(client.error());
  }
  EXPECT_TRUE(ServiceClient::FromConnectionString(kConnectionString, "Chat_1.x").ok());
}

TEST(ServiceClientAccessUrl, SignsTheClaimsOfTheJsSdk) {
  ServiceClient client = Client();
  ClientAccessOptions options;
  options.user_id = "alice";
  options.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.g1"};
  options.groups = {"g1", "g 2"};
  options.expiration_minutes = 5;
  auto access = client.GetClientAccessUrl(options);
  ASSERT_TRUE(access.ok()) << access.error().ToString();

  EXPECT_EQ(access->base_url, "ws://127.0.0.1:8080/client/hubs/chat");
  EXPECT_EQ(access->url, access->base_url + "?access_token=" + access->token);
  auto claims = rest::VerifyToken(access->token, {kKey}, Now());
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->subject, "alice");
  EXPECT_EQ(claims->roles, options.roles);
  EXPECT_EQ(claims->groups, options.groups);
  EXPECT_EQ(claims->audiences, std::vector<std::string>{"http://127.0.0.1:8080/client/hubs/chat"});
  ASSERT_TRUE(claims->expires_at && claims->issued_at);
  EXPECT_EQ(*claims->expires_at - *claims->issued_at, 5 * 60);
  EXPECT_FALSE(rest::VerifyToken(access->token, {"another-key"}, Now()).ok());
}

TEST(ServiceClientAccessUrl, AnonymousTokenHasNoSubjectAndLivesAnHour) {
  auto access = Client().GetClientAccessUrl();
  ASSERT_TRUE(access.ok());
  auto claims = rest::VerifyToken(access->token, {kKey}, Now());
  ASSERT_TRUE(claims.ok());
  EXPECT_FALSE(claims->subject.has_value());
  EXPECT_TRUE(claims->roles.empty());
  EXPECT_EQ(*claims->expires_at - *claims->issued_at, 3600);
}

TEST(ServiceClientAccessUrl, SchemeAndPathFollowEndpointAndProtocol) {
  ServiceClient secure = Client(std::string("Endpoint=https://pubsub.example;AccessKey=") + kKey);
  ClientAccessOptions options;
  options.protocol = ClientProtocol::kMqtt;
  auto mqtt = secure.GetClientAccessUrl(options);
  ASSERT_TRUE(mqtt.ok());
  EXPECT_EQ(mqtt->base_url, "wss://pubsub.example/clients/mqtt/hubs/chat");
  options.protocol = ClientProtocol::kSocketIo;
  auto socketio = secure.GetClientAccessUrl(options);
  ASSERT_TRUE(socketio.ok());
  EXPECT_EQ(socketio->base_url, "wss://pubsub.example/clients/socketio/hubs/chat");
  auto claims = rest::VerifyToken(socketio->token, {kKey}, Now());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->audiences,
            std::vector<std::string>{"https://pubsub.example/clients/socketio/hubs/chat"});
}

TEST(ServiceClientAccessUrl, RefusesOptionsNoServiceWouldAccept) {
  ServiceClient client = Client();
  ClientAccessOptions empty_user;
  empty_user.user_id = "";
  ClientAccessOptions empty_role;
  empty_role.roles = {""};
  ClientAccessOptions blank_group;
  blank_group.groups = {"  "};
  ClientAccessOptions zero_minutes;
  zero_minutes.expiration_minutes = 0;
  for (const ClientAccessOptions& options : {empty_user, empty_role, blank_group, zero_minutes}) {
    auto access = client.GetClientAccessUrl(options);
    ASSERT_FALSE(access.ok());
    ExpectInvalid(access.error());
  }
}

TEST(ServiceClientLocalErrors, BadNamesAreRefusedBeforeSending) {
  // Port 1 on loopback: were anything sent, the answer would be a TransportError instead.
  ServiceClient client = Client(std::string("Endpoint=http://127.0.0.1:1;AccessKey=") + kKey);
  const std::string long_id(1025, 'x');
  ExpectInvalid(RefusedAtOnce(client.SendToGroupAsync("", Message::Text("x"))));
  ExpectInvalid(RefusedAtOnce(client.SendToUserAsync("", Message::Text("x"))));
  ExpectInvalid(RefusedAtOnce(client.SendToConnectionAsync(long_id, Message::Text("x"))));
  ExpectInvalid(RefusedAtOnce(client.ConnectionExistsAsync("")));
  ExpectInvalid(RefusedAtOnce(client.GroupExistsAsync(" ")));
  ExpectInvalid(RefusedAtOnce(client.AddConnectionToGroupAsync("g", "")));
  ExpectInvalid(RefusedAtOnce(client.AddUserToGroupAsync("", "u")));
  ExpectInvalid(RefusedAtOnce(client.AddConnectionsToGroupsAsync({}, "")));
  ExpectInvalid(RefusedAtOnce(client.RemoveConnectionsFromGroupsAsync({"g", ""}, "")));
  ExpectInvalid(RefusedAtOnce(client.GrantPermissionAsync("c", Permission::kSendToGroup, "")));
  ExpectInvalid(RefusedAtOnce(client.CloseUserConnectionsAsync("")));
  ListOptions bad_token;
  bad_token.page_token = "continuationToken=a b";
  ExpectInvalid(RefusedAtOnce(client.ListGroupsAsync(bad_token)));
  ExpectInvalid(RefusedAtOnce(client.ListConnectionsInGroupAsync("")));
}

TEST(ServiceResultTest, CarriesAValueOrAnError) {
  ServiceResult<int> good(7);
  EXPECT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  EXPECT_EQ(good.error().http_status, 0);
  ServiceResult<int> bad(ServiceError{404, "NotFound", "No such connection.", "{}"});
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error().ToString(), "404 NotFound: No such connection.");
  ServiceResult<void> done;
  EXPECT_TRUE(done.ok());
  ServiceResult<void> refused(ServiceError{0, "InvalidArgument", "empty group", ""});
  EXPECT_EQ(refused.error().ToString(), "InvalidArgument: empty group");
}

TEST(ServiceFutureTest, GetWaitsForTheResultAndTakesItOnce) {
  auto state = std::make_shared<detail::FutureState<int>>();
  ServiceFuture<int> future(state);
  EXPECT_FALSE(future.wait_for(std::chrono::milliseconds(1)));
  std::thread setter([state] { state->Set(42); });
  ServiceResult<int> result = future.get();
  setter.join();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 42);
  ServiceResult<int> again = future.get();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, "InvalidArgument");
}

TEST(ServiceFutureTest, ThenRunsOnceWhetherTheResultCameBeforeOrAfter) {
  std::vector<std::string> seen;
  auto early = std::make_shared<detail::FutureState<void>>();
  early->Set(ServiceError{404, "NotFound", "early", ""});
  ServiceFuture<void>(early).Then(
      [&](ServiceResult<void> r) { seen.push_back("early " + r.error().message); });
  ASSERT_EQ(seen, std::vector<std::string>{"early early"});  // at once, on this thread

  auto late = std::make_shared<detail::FutureState<void>>();
  ServiceFuture<void> future(late);
  future.Then([&](ServiceResult<void> r) { seen.push_back(r.ok() ? "late ok" : "late error"); });
  EXPECT_EQ(seen.size(), 1u);
  late->Set({});
  EXPECT_EQ(seen, (std::vector<std::string>{"early early", "late ok"}));
  ServiceResult<void> taken = future.get();  // already handed to the callback
  EXPECT_FALSE(taken.ok());
}

TEST(ServiceFutureTest, AThrowingCallbackDoesNotEscape) {
  auto state = std::make_shared<detail::FutureState<bool>>();
  ServiceFuture<bool>(state).Then([](ServiceResult<bool>) { throw std::runtime_error("app bug"); });
  state->Set(true);  // must not throw into the SDK's thread
  SUCCEED();
}

}  // namespace
}  // namespace hubcast
