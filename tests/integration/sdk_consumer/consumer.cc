// An app server built the way a user builds one: against the installed SDK package
// (find_package(Hubcast), target Hubcast::service_client), nothing from Hubcast's source tree.
// It calls every operation of hubcast::ServiceClient against the server named by
// HUBCAST_CONNECTION_STRING and checks each effect on real WebSocket clients (cpprestsdk's, on
// the json.webpubsub.azure.v1 subprotocol), then the errors: 404 (unknown connection), 400 (bad
// filter), 401 (wrong key) and an unreachable service.
//
// Prints "ok <Operation>" after each checked operation and "ALL OK" at the end; on the first
// failed check prints "FAIL: ..." and exits 1. Needs a fresh server (it relies on the hub's
// groups being only its own).
#include <cpprest/json.h>
#include <cpprest/ws_client.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <hubcast/service_client.h>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using hubcast::Message;
using hubcast::ServiceClient;
using std::chrono::seconds;
namespace ws = web::websockets::client;

constexpr char kHub[] = "consumer";

void Check(bool condition, const std::string& what) {
  if (!condition) throw std::runtime_error(what);
}

template <typename T>
T Ok(hubcast::ServiceResult<T> result, const std::string& what) {
  Check(result.ok(), what + ": " + result.error().ToString());
  return std::move(result).value();
}

void Ok(hubcast::ServiceResult<void> result, const std::string& what) {
  Check(result.ok(), what + ": " + result.error().ToString());
}

void Done(const std::string& operation) { std::cout << "ok " << operation << std::endl; }

// A WebSocket client on the JSON subprotocol that queues what it receives.
class TestClient {
 public:
  explicit TestClient(std::string name) : name_(std::move(name)) {}
  ~TestClient() {
    try {
      if (client_ && !Closed()) client_->close().wait();
    } catch (const std::exception&) {
      // Already gone.
    }
  }

  // Connects and reads the `connected` system message.
  void Connect(const std::string& url) {
    ws::websocket_client_config config;
    config.add_subprotocol("json.webpubsub.azure.v1");
    client_ = std::make_unique<ws::websocket_callback_client>(config);
    client_->set_message_handler([this](const ws::websocket_incoming_message& m) {
      std::string text = m.extract_string().get();
      std::lock_guard lock(mu_);
      inbox_.push_back(std::move(text));
      cv_.notify_all();
    });
    client_->set_close_handler(
        [this](ws::websocket_close_status, const std::string&, const std::error_code&) {
          std::lock_guard lock(mu_);
          closed_ = true;
          cv_.notify_all();
        });
    client_->connect(url).wait();
    web::json::value connected = Next();
    Check(connected.at("type").as_string() == "system" &&
              connected.at("event").as_string() == "connected",
          name_ + ": first message is not `connected`: " + connected.serialize());
    connection_id_ = connected.at("connectionId").as_string();
    if (connected.has_field("userId") && connected.at("userId").is_string()) {
      user_id_ = connected.at("userId").as_string();
    }
  }

  const std::string& id() const { return connection_id_; }
  const std::string& user() const { return user_id_; }

  // The next message, parsed; fails the run after 10 s.
  web::json::value Next() {
    std::unique_lock lock(mu_);
    const bool got = cv_.wait_for(lock, seconds(10), [this] { return !inbox_.empty(); });
    Check(got, name_ + ": no message within 10 s");
    std::string text = std::move(inbox_.front());
    inbox_.pop_front();
    return web::json::value::parse(text);
  }

  // The next message must be a message of `from` carrying `data_type` and `data` (compared
  // as JSON text).
  void Expect(const std::string& from, const std::string& data_type, const web::json::value& data,
              const std::string& what) {
    web::json::value m = Next();
    Check(m.at("type").as_string() == "message" && m.at("from").as_string() == from &&
              m.at("dataType").as_string() == data_type && m.at("data") == data,
          name_ + " (" + what + "): expected " + from + "/" + data_type + " " + data.serialize() +
              ", got " + m.serialize());
  }

  void ExpectText(const std::string& text, const std::string& what) {
    Expect("server", "text", web::json::value::string(text), what);
  }

  // The next message must be the `disconnected` system message with `reason`, then the
  // connection must close.
  void ExpectClosed(const std::string& reason, const std::string& what) {
    web::json::value m = Next();
    Check(m.at("type").as_string() == "system" && m.at("event").as_string() == "disconnected" &&
              m.at("message").as_string() == reason,
          name_ + " (" + what + "): expected disconnected '" + reason + "', got " + m.serialize());
    std::unique_lock lock(mu_);
    Check(cv_.wait_for(lock, seconds(10), [this] { return closed_; }),
          name_ + " (" + what + "): not closed within 10 s");
  }

  bool Closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::string name_;
  std::unique_ptr<ws::websocket_callback_client> client_;
  std::string connection_id_, user_id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> inbox_;
  bool closed_ = false;
};

std::unique_ptr<TestClient> Connect(const ServiceClient& service, const std::string& name,
                                    hubcast::ClientAccessOptions options) {
  auto access = Ok(service.GetClientAccessUrl(options), "GetClientAccessUrl(" + name + ")");
  auto client = std::make_unique<TestClient>(name);
  client->Connect(access.url);
  return client;
}

// Proves that nothing sent before reached `client`: a message to its connection alone must be
// the next thing it gets.
void ExpectNothingBefore(const ServiceClient& service, TestClient& client,
                         const std::string& what) {
  Ok(service.SendToConnection(client.id(), Message::Text("sentinel")), "SendToConnection");
  client.ExpectText("sentinel", what + ": nothing else first");
}

template <typename T>
std::vector<T> AllPages(
    const std::function<hubcast::ServiceResult<hubcast::Page<T>>(const hubcast::ListOptions&)>&
        list,
    hubcast::ListOptions options, int* pages) {
  std::vector<T> all;
  *pages = 0;
  while (true) {
    hubcast::Page<T> page = Ok(list(options), "listing page");
    ++*pages;
    all.insert(all.end(), page.items.begin(), page.items.end());
    if (page.next_page_token.empty()) return all;
    options.page_token = page.next_page_token;
    Check(*pages < 100, "listing does not end");
  }
}

std::vector<std::string> Groups(const ServiceClient& service, int page_size, int* pages) {
  hubcast::ListOptions options;
  options.max_page_size = page_size;
  return AllPages<std::string>([&](const hubcast::ListOptions& o) { return service.ListGroups(o); },
                               options, pages);
}

bool Exists(hubcast::ServiceResult<bool> result, const std::string& what) {
  return Ok(std::move(result), what);
}

void ExpectError(const hubcast::ServiceError& e, int status, const std::string& code,
                 const std::string& what) {
  Check(e.http_status == status && e.code == code && !e.message.empty(),
        what + ": expected " + std::to_string(status) + " " + code + ", got " + e.ToString());
}

int Main() {
  const char* cs = std::getenv("HUBCAST_CONNECTION_STRING");
  Check(cs != nullptr, "HUBCAST_CONNECTION_STRING is not set");
  const ServiceClient service =
      Ok(ServiceClient::FromConnectionString(cs, kHub), "FromConnectionString");

  // ---- Client access URLs, checked by the server accepting them.
  hubcast::ClientAccessOptions alice_options;
  alice_options.user_id = "alice";
  alice_options.roles = {"webpubsub.joinLeaveGroup"};
  auto a = Connect(service, "A", alice_options);
  Check(a->user() == "alice", "A's userId is " + a->user());
  hubcast::ClientAccessOptions bob_options;
  bob_options.user_id = "bob";
  bob_options.groups = {"gb"};
  auto b = Connect(service, "B", bob_options);
  auto c = Connect(service, "C", {});
  Check(c->user().empty(), "C should be anonymous");
  hubcast::ClientAccessOptions carol_options;
  carol_options.user_id = "carol";
  auto d = Connect(service, "D", carol_options);
  Check(Exists(service.GroupExists("gb"), "GroupExists(gb)"), "token groups: B is not in gb");
  Done("GetClientAccessUrl");

  // ---- Existence.
  Check(Exists(service.ConnectionExists(a->id()), "ConnectionExists"), "A does not exist");
  Check(!Exists(service.ConnectionExists("no-such-connection"), "ConnectionExists"),
        "an unknown connection exists");
  Done("ConnectionExists");
  Check(Exists(service.UserExists("alice"), "UserExists"), "alice does not exist");
  Check(!Exists(service.UserExists("nobody"), "UserExists"), "nobody exists");
  Done("UserExists");

  // ---- Sends, with every content type, excluded, filter and TTL.
  Ok(service.SendToAll(Message::Text("to all")), "SendToAll");
  for (TestClient* t : {a.get(), b.get(), c.get(), d.get()}) t->ExpectText("to all", "SendToAll");
  hubcast::SendToAllOptions all_but_b;
  all_but_b.excluded = {b->id()};
  Ok(service.SendToAll(Message::Json(R"({"n":1})"), all_but_b), "SendToAll excluded");
  const web::json::value n1 = web::json::value::parse(R"({"n":1})");
  for (TestClient* t : {a.get(), c.get(), d.get()}) t->Expect("server", "json", n1, "excluded");
  ExpectNothingBefore(service, *b, "SendToAll excluded");
  hubcast::SendToAllOptions only_alice;
  only_alice.filter = "userId eq 'alice'";
  only_alice.message_ttl_seconds = 60;
  Ok(service.SendToAll(Message::Binary(std::string("\x00\x01\x02", 3)), only_alice),
     "SendToAll filter");
  a->Expect("server", "binary", web::json::value::string("AAEC"), "filter");
  for (TestClient* t : {b.get(), c.get(), d.get()}) ExpectNothingBefore(service, *t, "filter");
  Done("SendToAll");
  Done("SendToConnection");

  hubcast::SendToUserOptions to_bob;
  to_bob.filter = "connectionId ne 'x'";
  Ok(service.SendToUser("bob", Message::Text("to bob"), to_bob), "SendToUser");
  b->ExpectText("to bob", "SendToUser");
  ExpectNothingBefore(service, *a, "SendToUser");
  Done("SendToUser");

  // ---- Group membership of connections, group sends, group listing.
  Ok(service.AddConnectionToGroup("g1", a->id()), "AddConnectionToGroup");
  Ok(service.AddConnectionToGroup("g1", c->id()), "AddConnectionToGroup");
  Check(Exists(service.GroupExists("g1"), "GroupExists"), "g1 does not exist");
  Check(!Exists(service.GroupExists("g-none"), "GroupExists"), "g-none exists");
  Done("AddConnectionToGroup");
  Done("GroupExists");
  hubcast::SendToAllOptions group_but_c;
  group_but_c.excluded = {c->id()};
  Ok(service.SendToGroup("g1", Message::Text("to g1"), group_but_c), "SendToGroup");
  web::json::value m = a->Next();
  Check(m.at("from").as_string() == "group" && m.at("group").as_string() == "g1" &&
            m.at("data").as_string() == "to g1",
        "SendToGroup: A got " + m.serialize());
  ExpectNothingBefore(service, *c, "SendToGroup excluded");
  Done("SendToGroup");

  hubcast::Page<hubcast::GroupMember> members =
      Ok(service.ListConnectionsInGroup("g1"), "ListConnectionsInGroup");
  std::set<std::string> ids;
  for (const auto& member : members.items) ids.insert(member.connection_id);
  Check(ids == std::set<std::string>{a->id(), c->id()} && members.next_page_token.empty(),
        "ListConnectionsInGroup: wrong members");
  for (const auto& member : members.items) {
    Check(member.user_id == (member.connection_id == a->id() ? std::optional<std::string>("alice")
                                                             : std::nullopt),
          "ListConnectionsInGroup: wrong user of " + member.connection_id);
  }
  hubcast::ListOptions one_each;
  one_each.max_page_size = 1;
  int pages = 0;
  auto paged = AllPages<hubcast::GroupMember>(
      [&](const hubcast::ListOptions& o) { return service.ListConnectionsInGroup("g1", o); },
      one_each, &pages);
  Check(paged.size() == 2 && pages >= 2, "ListConnectionsInGroup: paging");
  Done("ListConnectionsInGroup");

  Ok(service.RemoveConnectionFromGroup("g1", c->id()), "RemoveConnectionFromGroup");
  Ok(service.RemoveConnectionFromGroup("g1", "no-such-connection"), "RemoveConnectionFromGroup");
  members = Ok(service.ListConnectionsInGroup("g1"), "ListConnectionsInGroup");
  Check(members.items.size() == 1 && members.items[0].connection_id == a->id(),
        "RemoveConnectionFromGroup: C still in g1");
  Done("RemoveConnectionFromGroup");

  // ---- Users in groups, remembered memberships, user and hub group listings.
  Ok(service.AddUserToGroup("g2", "bob"), "AddUserToGroup");
  Ok(service.SendToGroup("g2", Message::Text("to g2")), "SendToGroup g2");
  m = b->Next();
  Check(m.at("group").as_string() == "g2", "AddUserToGroup: B got " + m.serialize());
  hubcast::AddUserToGroupOptions forever, hour;
  forever.membership_ttl_seconds = -1;
  hour.membership_ttl_seconds = 3600;
  Ok(service.AddUserToGroup("g3", "dave", forever), "AddUserToGroup ttl -1");
  Ok(service.AddUserToGroup("g4", "dave", hour), "AddUserToGroup ttl 3600");
  Done("AddUserToGroup");

  hubcast::Page<hubcast::UserGroup> bob_groups =
      Ok(service.ListUserGroups("bob"), "ListUserGroups");
  std::set<std::string> names;
  for (const auto& g : bob_groups.items) {
    names.insert(g.group);
    Check(!g.remembered && !g.expires_at, "ListUserGroups: bob's " + g.group + " is remembered");
  }
  Check(names == std::set<std::string>{"g2", "gb"}, "ListUserGroups: bob's groups");
  hubcast::Page<hubcast::UserGroup> dave_groups =
      Ok(service.ListUserGroups("dave"), "ListUserGroups");
  Check(dave_groups.items.size() == 2 && dave_groups.items[0].group == "g3" &&
            dave_groups.items[0].remembered && !dave_groups.items[0].expires_at &&
            dave_groups.items[1].group == "g4" && dave_groups.items[1].remembered &&
            dave_groups.items[1].expires_at && dave_groups.items[1].expires_at->size() >= 20,
        "ListUserGroups: dave's remembered groups");
  Done("ListUserGroups");

  std::vector<std::string> groups = Groups(service, 1, &pages);
  Check(groups == std::vector<std::string>{"g1", "g2", "gb"} && pages >= 3,
        "ListGroups: paging one group a page");
  hubcast::ListOptions top_two;
  top_two.max_page_size = 1;
  top_two.top = 2;
  groups = AllPages<std::string>(
      [&](const hubcast::ListOptions& o) { return service.ListGroups(o); }, top_two, &pages);
  Check(groups == std::vector<std::string>{"g1", "g2"}, "ListGroups: top 2");
  Done("ListGroups");

  Ok(service.RemoveUserFromGroup("g2", "bob"), "RemoveUserFromGroup");
  Check(!Exists(service.GroupExists("g2"), "GroupExists"), "RemoveUserFromGroup: g2 remains");
  Done("RemoveUserFromGroup");
  Ok(service.AddUserToGroup("g7", "bob"), "AddUserToGroup");
  Ok(service.RemoveUserFromAllGroups("bob"), "RemoveUserFromAllGroups");
  Check(!Exists(service.GroupExists("g7"), "GroupExists") &&
            !Exists(service.GroupExists("gb"), "GroupExists"),
        "RemoveUserFromAllGroups: bob still in a group");
  Done("RemoveUserFromAllGroups");

  // ---- Membership by filter.
  Ok(service.AddConnectionsToGroups({"g5", "g6"}, "userId eq 'alice'"), "AddConnectionsToGroups");
  members = Ok(service.ListConnectionsInGroup("g6"), "ListConnectionsInGroup");
  Check(members.items.size() == 1 && members.items[0].connection_id == a->id(),
        "AddConnectionsToGroups: g6 members");
  Done("AddConnectionsToGroups");
  Ok(service.RemoveConnectionsFromGroups({"g5"}, "userId eq 'alice'"),
     "RemoveConnectionsFromGroups");
  Check(!Exists(service.GroupExists("g5"), "GroupExists") &&
            Exists(service.GroupExists("g6"), "GroupExists"),
        "RemoveConnectionsFromGroups: wrong groups left");
  Done("RemoveConnectionsFromGroups");
  Ok(service.RemoveConnectionFromAllGroups(a->id()), "RemoveConnectionFromAllGroups");
  Check(!Exists(service.GroupExists("g6"), "GroupExists") &&
            !Exists(service.GroupExists("g1"), "GroupExists"),
        "RemoveConnectionFromAllGroups: A still in a group");
  Done("RemoveConnectionFromAllGroups");

  // ---- Permissions.
  using hubcast::Permission;
  Check(!Exists(service.HasPermission(c->id(), Permission::kSendToGroup, "g8"), "HasPermission"),
        "C may send to g8 before a grant");
  Ok(service.GrantPermission(c->id(), Permission::kSendToGroup, "g8"), "GrantPermission");
  Check(Exists(service.HasPermission(c->id(), Permission::kSendToGroup, "g8"), "HasPermission"),
        "GrantPermission: C may not send to g8");
  Ok(service.GrantPermission(c->id(), Permission::kJoinLeaveGroup), "GrantPermission any");
  Check(Exists(service.HasPermission(c->id(), Permission::kJoinLeaveGroup, "anything"),
               "HasPermission"),
        "GrantPermission without a group: C may not join 'anything'");
  Done("GrantPermission");
  Done("HasPermission");
  Ok(service.RevokePermission(c->id(), Permission::kSendToGroup, "g8"), "RevokePermission");
  Check(!Exists(service.HasPermission(c->id(), Permission::kSendToGroup, "g8"), "HasPermission"),
        "RevokePermission: C may still send to g8");
  Done("RevokePermission");

  // ---- The asynchronous forms, several in flight at once.
  auto sent = service.SendToConnectionAsync(d->id(), Message::Text("async"));
  auto exists = service.UserExistsAsync("carol");
  auto listed = service.ListGroupsAsync();
  Ok(sent.get(), "SendToConnectionAsync");
  Check(Exists(exists.get(), "UserExistsAsync"), "UserExistsAsync: carol missing");
  Check(Ok(listed.get(), "ListGroupsAsync").items.empty(), "ListGroupsAsync: groups left");
  d->ExpectText("async", "SendToConnectionAsync");
  std::promise<bool> handed;  // Then: the result goes to a callback, nobody waits in the SDK
  service.ConnectionExistsAsync(d->id()).Then(
      [&handed](hubcast::ServiceResult<bool> r) { handed.set_value(r.ok() && *r); });
  std::future<bool> handed_result = handed.get_future();
  Check(handed_result.wait_for(seconds(10)) == std::future_status::ready && handed_result.get(),
        "ConnectionExistsAsync(...).Then: no or wrong result");
  Done("Async");

  // ---- Closes.
  Ok(service.CloseConnection(c->id(), "bye C"), "CloseConnection");
  c->ExpectClosed("bye C", "CloseConnection");
  Check(!Exists(service.ConnectionExists(c->id()), "ConnectionExists"), "C still exists");
  Done("CloseConnection");

  hubcast::CloseConnectionsOptions bye_bob;
  bye_bob.reason = "bye bob";
  Ok(service.CloseUserConnections("bob", bye_bob), "CloseUserConnections");
  b->ExpectClosed("bye bob", "CloseUserConnections");
  Done("CloseUserConnections");

  Ok(service.AddConnectionToGroup("g9", d->id()), "AddConnectionToGroup");
  hubcast::CloseConnectionsOptions bye_group;
  bye_group.reason = "bye g9";
  Ok(service.CloseGroupConnections("g9", bye_group), "CloseGroupConnections");
  d->ExpectClosed("bye g9", "CloseGroupConnections");
  Done("CloseGroupConnections");

  auto e = Connect(service, "E", alice_options);
  hubcast::CloseConnectionsOptions all_but_e;
  all_but_e.excluded = {e->id()};
  all_but_e.reason = "bye all";
  Ok(service.CloseAllConnections(all_but_e), "CloseAllConnections");
  a->ExpectClosed("bye all", "CloseAllConnections");
  Check(Exists(service.ConnectionExists(e->id()), "ConnectionExists"), "excluded E was closed");
  Ok(service.CloseAllConnections(), "CloseAllConnections");
  e->ExpectClosed("", "CloseAllConnections");
  Done("CloseAllConnections");

  // ---- Errors carry the HTTP status and the service's code and message.
  auto not_found = service.AddConnectionToGroup("g", "no-such-connection");
  Check(!not_found.ok(), "AddConnectionToGroup of an unknown connection succeeded");
  ExpectError(not_found.error(), 404, "NotFound", "unknown connection");
  Check(not_found.error().body.find(not_found.error().message) != std::string::npos,
        "404: the message is not the service's body: " + not_found.error().body);
  Done("Error404");

  hubcast::SendToAllOptions bad_filter;
  bad_filter.filter = "userId eq";
  auto bad = service.SendToAll(Message::Text("x"), bad_filter);
  Check(!bad.ok(), "a bad filter was accepted");
  ExpectError(bad.error(), 400, "BadRequest", "bad filter");
  Check(bad.error().message.find("filter") != std::string::npos,
        "400: message does not mention the filter: " + bad.error().message);
  Done("Error400");

  std::string wrong_key(cs);
  const size_t key_at = wrong_key.find("AccessKey=") + 10;
  wrong_key.insert(key_at, "wrong");
  const ServiceClient intruder =
      Ok(ServiceClient::FromConnectionString(wrong_key, kHub), "FromConnectionString");
  auto denied = intruder.SendToAll(Message::Text("x"));
  Check(!denied.ok(), "a wrong key was accepted");
  ExpectError(denied.error(), 401, "Unauthorized", "wrong key");
  auto denied_head = intruder.UserExists("alice");  // HEAD: no body, code from the header
  Check(!denied_head.ok(), "a wrong key was accepted on HEAD");
  ExpectError(denied_head.error(), 401, "Unauthorized", "wrong key, HEAD");
  Done("Error401");

  hubcast::ServiceClientOptions quick;
  quick.timeout = seconds(5);
  const ServiceClient nowhere = Ok(
      ServiceClient::FromConnectionString("Endpoint=http://127.0.0.1:1;AccessKey=k", kHub, quick),
      "FromConnectionString");
  auto unreachable = nowhere.SendToAll(Message::Text("x"));
  Check(!unreachable.ok() && unreachable.error().http_status == 0 &&
            unreachable.error().code == "TransportError",
        "unreachable service: " + unreachable.error().ToString());
  Done("ErrorTransport");

  std::cout << "ALL OK" << std::endl;
  return 0;
}

}  // namespace

int main() {
  try {
    return Main();
  } catch (const std::exception& e) {
    std::cout << "FAIL: " << e.what() << std::endl;
    return 1;
  }
}
