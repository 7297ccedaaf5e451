// Tests of storage/hub_view.h (MemoryView via NewMemoryView) applying every storage::EntryKind.
#include "storage/hub_view.h"

#include "storage/entry.h"
#include "storage/filter.h"
#include "storage/permissions.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/entries.h"
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace hubcast::storage {
namespace {

using hubcast::testing::Close;
using hubcast::testing::Permit;

using Ids = std::set<std::string>;

constexpr const char* kJoinAny = "webpubsub.joinLeaveGroup";
constexpr const char* kSendAny = "webpubsub.sendToGroup";

Entry Open(const std::string& id, std::optional<std::string> user = std::nullopt,
           std::vector<std::string> groups = {}, std::vector<std::string> roles = {}) {
  Entry e;
  e.kind = EntryKind::kConnectionOpen;
  e.origin_connection = id;
  e.user_id = std::move(user);
  e.groups = std::move(groups);
  e.roles = std::move(roles);
  e.subprotocol = "json.webpubsub.azure.v1";
  e.node_id = "node-a";
  return e;
}

Entry Selecting(EntryKind kind, Scope scope, const std::string& target,
                std::vector<std::string> excluded = {}) {
  Entry e;
  e.kind = kind;
  e.scope = scope;
  e.target = target;
  e.excluded = std::move(excluded);
  return e;
}

Entry CloseConnections(Scope scope, const std::string& target,
                       std::vector<std::string> excluded = {}) {
  Entry e = Selecting(EntryKind::kCloseConnections, scope, target, std::move(excluded));
  e.reason = "closed by the server";
  return e;
}

Entry Membership(EntryKind kind, Scope scope, const std::string& target,
                 std::vector<std::string> groups) {
  Entry e = Selecting(kind, scope, target);
  e.groups = std::move(groups);
  return e;
}

Entry Add(Scope scope, const std::string& target, std::vector<std::string> groups) {
  return Membership(EntryKind::kAddToGroups, scope, target, std::move(groups));
}

Entry Remove(Scope scope, const std::string& target, std::vector<std::string> groups) {
  return Membership(EntryKind::kRemoveFromGroups, scope, target, std::move(groups));
}

Entry Send(Scope scope, const std::string& target, std::vector<std::string> excluded = {}) {
  Entry e = Selecting(EntryKind::kSend, scope, target, std::move(excluded));
  e.data_type = DataType::kText;
  e.data = "hello";
  return e;
}

Entry Grant(const std::string& connection, Permission p, std::optional<std::string> group) {
  return Permit(EntryKind::kGrant, connection, p, std::move(group));
}

Entry Revoke(const std::string& connection, Permission p, std::optional<std::string> group) {
  return Permit(EntryKind::kRevoke, connection, p, std::move(group));
}

// A client joinGroup/leaveGroup as the gateway builds it.
Entry ClientMembership(EntryKind kind, const std::string& origin, const std::string& group,
                       std::optional<uint64_t> ack_id) {
  Entry e = Membership(kind, Scope::kConnection, origin, {group});
  e.origin_connection = origin;
  e.ack_id = ack_id;
  e.required_permission = Permission::kJoinLeaveGroup;
  e.permission_target = group;
  return e;
}

Entry ClientJoin(const std::string& origin, const std::string& group,
                 std::optional<uint64_t> ack_id = std::nullopt) {
  return ClientMembership(EntryKind::kAddToGroups, origin, group, ack_id);
}

Entry ClientLeave(const std::string& origin, const std::string& group,
                  std::optional<uint64_t> ack_id = std::nullopt) {
  return ClientMembership(EntryKind::kRemoveFromGroups, origin, group, ack_id);
}

// A client sendToGroup as the gateway builds it.
Entry ClientSend(const std::string& origin, const std::string& group,
                 std::optional<uint64_t> ack_id = std::nullopt, bool no_echo = false) {
  Entry e = Send(Scope::kGroup, group);
  e.origin_connection = origin;
  e.ack_id = ack_id;
  e.no_echo = no_echo;
  e.from = MessageFrom::kGroup;
  e.required_permission = Permission::kSendToGroup;
  e.permission_target = group;
  return e;
}

std::shared_ptr<const Filter> ParseFilter(const std::string& text) {
  auto f = Filter::Parse(text);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status().message();
  return f.ok() ? *f : nullptr;
}

Ids RecipientIds(const ApplyResult& r) {
  Ids ids;
  for (const ConnectionRecord* c : r.recipients) ids.insert(c->id);
  EXPECT_EQ(ids.size(), r.recipients.size()) << "a connection was selected twice";
  return ids;
}

Ids ClosedIds(const ApplyResult& r) {
  Ids ids(r.closed.begin(), r.closed.end());
  EXPECT_EQ(ids.size(), r.closed.size()) << "a connection was closed twice";
  return ids;
}

std::vector<std::string> ListIds(const std::vector<ConnectionSummary>& list) {
  std::vector<std::string> ids;
  for (const auto& s : list) ids.push_back(s.connection_id);
  return ids;
}

class MemoryView : public ::testing::Test {
 protected:
  ApplyResult Apply(const Entry& e) { return view_->Apply(++position_, e); }

  // Applies and expects OK.
  ApplyResult ApplyOk(const Entry& e) {
    ApplyResult r = Apply(e);
    EXPECT_TRUE(r.status.ok()) << r.status.message();
    return r;
  }

  Ids Groups(const std::string& id) const {
    auto c = view_->GetConnection(id);
    EXPECT_TRUE(c.has_value()) << id;
    return c ? c->groups : Ids{};
  }

  bool InGroup(const std::string& id, const std::string& group) const {
    return Groups(id).count(group) != 0;
  }

  Ids Members(const std::string& group) const {
    auto list = view_->ListGroupConnections(group, "", 1000);
    auto ids = ListIds(list);
    return Ids(ids.begin(), ids.end());
  }

  Ids SendToAll() { return RecipientIds(ApplyOk(Send(Scope::kAll, ""))); }

  // c1 (alice, groups a b), c2 (alice, group a), c3 (bob, group b), c4 (anonymous, no group).
  void OpenFour() {
    ApplyOk(Open("c1", "alice", {"a", "b"}));
    ApplyOk(Open("c2", "alice", {"a"}));
    ApplyOk(Open("c3", "bob", {"b"}));
    ApplyOk(Open("c4"));
  }

  std::unique_ptr<HubView> view_ = NewMemoryView();
  uint64_t position_ = 0;
};

// ---------------------------------------------------------------------------------------------
// kConnectionOpen

TEST_F(MemoryView, OpenAddsConnectionWithItsIdentity) {
  Entry e = Open("c1", "alice", {}, {"custom.role"});
  e.reliable = true;
  ApplyResult r = ApplyOk(e);

  ASSERT_NE(r.opened, nullptr);
  EXPECT_EQ(r.opened->id, "c1");
  EXPECT_TRUE(r.recipients.empty());
  EXPECT_TRUE(r.closed.empty());

  EXPECT_TRUE(view_->ConnectionExists("c1"));
  EXPECT_TRUE(view_->UserExists("alice"));
  EXPECT_EQ(view_->connection_count(), 1u);
  auto c = view_->GetConnection("c1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->id, "c1");
  EXPECT_EQ(c->user_id, std::optional<std::string>("alice"));
  EXPECT_EQ(c->subprotocol, "json.webpubsub.azure.v1");
  EXPECT_TRUE(c->reliable);
  EXPECT_EQ(c->node_id, "node-a");
  EXPECT_EQ(c->created_position, 1u);
  EXPECT_TRUE(c->groups.empty());
  EXPECT_EQ(c->permissions.roles(), std::vector<std::string>({"custom.role"}));
}

// Memory per connection (issue #10): the texts every connection of a node repeats are held
// once, and an idle connection's record stays a few hundred bytes.
TEST_F(MemoryView, ConnectionsOfOneNodeShareTheirNodeAndSubprotocolText) {
  ApplyOk(Open("c1"));
  ApplyOk(Open("c2"));
  auto first = view_->GetConnection("c1"), second = view_->GetConnection("c2");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(&first->node_id.str(), &second->node_id.str());
  EXPECT_EQ(&first->subprotocol.str(), &second->subprotocol.str());
  EXPECT_EQ(second->node_id, "node-a");
  EXPECT_LE(sizeof(ConnectionRecord), 416u);  // 784 before #10
}

TEST_F(MemoryView, OpenRecordsItsPositionAsCreatedPosition) {
  ApplyOk(Open("c1"));
  ApplyOk(Send(Scope::kAll, ""));
  ApplyOk(Open("c2"));
  EXPECT_EQ(view_->GetConnection("c1")->created_position, 1u);
  EXPECT_EQ(view_->GetConnection("c2")->created_position, 3u);
}

TEST_F(MemoryView, OpenAnonymousConnectionHasNoUser) {
  ApplyOk(Open("c1"));
  auto c = view_->GetConnection("c1");
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->user_id.has_value());
  EXPECT_FALSE(view_->UserExists(""));
}

TEST_F(MemoryView, OpenIndexesSeveralConnectionsOfOneUser) {
  ApplyOk(Open("c1", "alice"));
  ApplyOk(Open("c2", "alice"));
  ApplyOk(Open("c3", "bob"));
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kUser, "alice"))), Ids({"c1", "c2"}));
  EXPECT_EQ(view_->connection_count(), 3u);
}

TEST_F(MemoryView, OpenJoinsInitialGroupsWithoutPermission) {
  ApplyOk(Open("c1", "alice", {"g1", "g2"}));
  EXPECT_EQ(Groups("c1"), Ids({"g1", "g2"}));
  EXPECT_TRUE(view_->GroupExists("g1"));
  EXPECT_TRUE(view_->GroupExists("g2"));
  EXPECT_FALSE(view_->GroupExists("g3"));
  EXPECT_EQ(Members("g1"), Ids({"c1"}));
}

TEST_F(MemoryView, OpenWithDuplicateInitialGroupsJoinsOnce) {
  ApplyOk(Open("c1", std::nullopt, {"g", "g"}));
  EXPECT_EQ(view_->ListGroupConnections("g", "", 10).size(), 1u);
}

TEST_F(MemoryView, OpenTurnsRolesIntoPermissions) {
  ApplyOk(Open("c1", "alice", {},
               {kJoinAny, "webpubsub.sendToGroup.g1", "webpubsub.sendToGroups.chat-*"}));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, "anything"), true);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, std::nullopt), true);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g1"), true);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "chat-1"), true);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "chat.1"), false);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g2"), false);
}

TEST_F(MemoryView, OpenWithoutRolesGrantsNoGroupPermission) {
  ApplyOk(Open("c1", "alice"));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, "g"), false);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), false);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, std::nullopt), false);
}

TEST_F(MemoryView, OpenWithDuplicateIdIsRejectedAndKeepsTheFirst) {
  ApplyOk(Open("c1", "alice", {"g1"}));
  ApplyResult r = Apply(Open("c1", "mallory", {"g2"}, {kSendAny}));
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.opened, nullptr);

  EXPECT_EQ(view_->connection_count(), 1u);
  auto c = view_->GetConnection("c1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->user_id, std::optional<std::string>("alice"));
  EXPECT_EQ(c->created_position, 1u);
  EXPECT_EQ(c->groups, Ids({"g1"}));
  EXPECT_FALSE(view_->UserExists("mallory"));
  EXPECT_FALSE(view_->GroupExists("g2"));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g1"), false);
}

// ---------------------------------------------------------------------------------------------
// kConnectionClose

TEST_F(MemoryView, CloseRemovesConnectionAndReportsIt) {
  ApplyOk(Open("c1", "alice", {"g"}));
  ApplyResult r = ApplyOk(Close("c1"));
  EXPECT_EQ(r.closed, std::vector<std::string>({"c1"}));
  EXPECT_FALSE(view_->ConnectionExists("c1"));
  EXPECT_FALSE(view_->GetConnection("c1").has_value());
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), std::nullopt);
  EXPECT_EQ(view_->connection_count(), 0u);
}

TEST_F(MemoryView, CloseOfLastMemberRemovesGroup) {
  ApplyOk(Open("c1", std::nullopt, {"g", "solo"}));
  ApplyOk(Open("c2", std::nullopt, {"g"}));
  ApplyOk(Close("c1"));
  EXPECT_FALSE(view_->GroupExists("solo"));
  EXPECT_TRUE(view_->GroupExists("g"));
  EXPECT_EQ(Members("g"), Ids({"c2"}));
  ApplyOk(Close("c2"));
  EXPECT_FALSE(view_->GroupExists("g"));
  EXPECT_TRUE(view_->ListGroupConnections("g", "", 10).empty());
}

TEST_F(MemoryView, CloseOfLastConnectionRemovesUser) {
  ApplyOk(Open("c1", "alice"));
  ApplyOk(Open("c2", "alice"));
  ApplyOk(Close("c1"));
  EXPECT_TRUE(view_->UserExists("alice"));
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kUser, "alice"))), Ids({"c2"}));
  ApplyOk(Close("c2"));
  EXPECT_FALSE(view_->UserExists("alice"));
  EXPECT_TRUE(ApplyOk(Send(Scope::kUser, "alice")).recipients.empty());
}

TEST_F(MemoryView, CloseOfUnknownConnectionClosesNothing) {
  ApplyOk(Open("c1"));
  ApplyResult r = Apply(Close("nope"));
  EXPECT_TRUE(r.closed.empty());
  EXPECT_TRUE(view_->ConnectionExists("c1"));
}

TEST_F(MemoryView, ClosedConnectionIsNoLongerARecipient) {
  OpenFour();
  ApplyOk(Close("c3"));
  EXPECT_EQ(SendToAll(), Ids({"c1", "c2", "c4"}));
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kGroup, "b"))), Ids({"c1"}));
}

TEST_F(MemoryView, ReopenAfterCloseStartsFresh) {
  ApplyOk(Open("c1", "alice", {"g"}));
  ApplyOk(Grant("c1", Permission::kSendToGroup, std::nullopt));
  ApplyOk(Close("c1"));
  ApplyOk(Open("c1", "bob"));
  auto c = view_->GetConnection("c1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->user_id, std::optional<std::string>("bob"));
  EXPECT_TRUE(c->groups.empty());
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), false);
  EXPECT_FALSE(view_->UserExists("alice"));
}

// ---------------------------------------------------------------------------------------------
// kCloseConnections

TEST_F(MemoryView, CloseConnectionsAllClosesEveryConnectionButExcluded) {
  OpenFour();
  ApplyResult r = ApplyOk(CloseConnections(Scope::kAll, "", {"c2", "unknown"}));
  EXPECT_EQ(ClosedIds(r), Ids({"c1", "c3", "c4"}));
  EXPECT_EQ(view_->connection_count(), 1u);
  EXPECT_TRUE(view_->ConnectionExists("c2"));
  EXPECT_FALSE(view_->UserExists("bob"));
  EXPECT_TRUE(view_->UserExists("alice"));
  EXPECT_FALSE(view_->GroupExists("b"));
  EXPECT_EQ(Members("a"), Ids({"c2"}));
}

TEST_F(MemoryView, CloseConnectionsAllWithoutExcludedEmptiesTheHub) {
  OpenFour();
  EXPECT_EQ(ClosedIds(ApplyOk(CloseConnections(Scope::kAll, ""))), Ids({"c1", "c2", "c3", "c4"}));
  EXPECT_EQ(view_->connection_count(), 0u);
  EXPECT_FALSE(view_->GroupExists("a"));
  EXPECT_FALSE(view_->GroupExists("b"));
  EXPECT_FALSE(view_->UserExists("alice"));
}

TEST_F(MemoryView, CloseConnectionsGroupClosesOnlyMembersButExcluded) {
  OpenFour();
  ApplyResult r = ApplyOk(CloseConnections(Scope::kGroup, "b", {"c3"}));
  EXPECT_EQ(ClosedIds(r), Ids({"c1"}));
  EXPECT_EQ(Members("b"), Ids({"c3"}));
  EXPECT_EQ(Members("a"), Ids({"c2"}));
  EXPECT_TRUE(view_->ConnectionExists("c4"));
}

TEST_F(MemoryView, CloseConnectionsGroupClosesWholeGroupAndItVanishes) {
  OpenFour();
  EXPECT_EQ(ClosedIds(ApplyOk(CloseConnections(Scope::kGroup, "a"))), Ids({"c1", "c2"}));
  EXPECT_FALSE(view_->GroupExists("a"));
  EXPECT_FALSE(view_->UserExists("alice"));
  EXPECT_EQ(Members("b"), Ids({"c3"}));
}

TEST_F(MemoryView, CloseConnectionsUserClosesOnlyThatUserButExcluded) {
  OpenFour();
  ApplyResult r = ApplyOk(CloseConnections(Scope::kUser, "alice", {"c1"}));
  EXPECT_EQ(ClosedIds(r), Ids({"c2"}));
  EXPECT_TRUE(view_->UserExists("alice"));
  EXPECT_EQ(Members("a"), Ids({"c1"}));
  EXPECT_EQ(view_->connection_count(), 3u);
}

TEST_F(MemoryView, CloseConnectionsConnectionClosesOnlyIt) {
  OpenFour();
  EXPECT_EQ(ClosedIds(ApplyOk(CloseConnections(Scope::kConnection, "c3"))), Ids({"c3"}));
  EXPECT_FALSE(view_->UserExists("bob"));
  EXPECT_EQ(view_->connection_count(), 3u);
}

TEST_F(MemoryView, CloseConnectionsConnectionThatIsExcludedClosesNothing) {
  OpenFour();
  EXPECT_TRUE(ApplyOk(CloseConnections(Scope::kConnection, "c3", {"c3"})).closed.empty());
  EXPECT_TRUE(view_->ConnectionExists("c3"));
}

TEST_F(MemoryView, CloseConnectionsOfMissingTargetsClosesNothing) {
  OpenFour();
  EXPECT_TRUE(Apply(CloseConnections(Scope::kGroup, "nope")).closed.empty());
  EXPECT_TRUE(Apply(CloseConnections(Scope::kUser, "nope")).closed.empty());
  EXPECT_TRUE(Apply(CloseConnections(Scope::kConnection, "nope")).closed.empty());
  EXPECT_EQ(view_->connection_count(), 4u);
}

TEST_F(MemoryView, CloseConnectionsHonoursFilter) {
  OpenFour();
  Entry e = CloseConnections(Scope::kAll, "");
  e.filter = ParseFilter("userId eq 'alice' or userId eq null");
  EXPECT_EQ(ClosedIds(ApplyOk(e)), Ids({"c1", "c2", "c4"}));
  EXPECT_EQ(view_->connection_count(), 1u);
}

// ---------------------------------------------------------------------------------------------
// kAddToGroups / kRemoveFromGroups

TEST_F(MemoryView, AddConnectionToGroupsJoinsEachGroup) {
  ApplyOk(Open("c1"));
  ApplyOk(Open("c2"));
  ApplyResult r = ApplyOk(Add(Scope::kConnection, "c1", {"g1", "g2"}));
  EXPECT_TRUE(r.recipients.empty());
  EXPECT_EQ(Groups("c1"), Ids({"g1", "g2"}));
  EXPECT_TRUE(Groups("c2").empty());
  EXPECT_EQ(Members("g1"), Ids({"c1"}));
  EXPECT_TRUE(view_->GroupExists("g2"));
}

TEST_F(MemoryView, AddConnectionToGroupTwiceKeepsOneMembership) {
  ApplyOk(Open("c1"));
  ApplyOk(Add(Scope::kConnection, "c1", {"g"}));
  ApplyOk(Add(Scope::kConnection, "c1", {"g"}));
  EXPECT_EQ(view_->ListGroupConnections("g", "", 10).size(), 1u);
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kGroup, "g"))), Ids({"c1"}));
}

TEST_F(MemoryView, AddUnknownConnectionToGroupIsNotFound) {
  ApplyOk(Open("c1"));
  ApplyResult r = Apply(Add(Scope::kConnection, "nope", {"g"}));
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound);
  EXPECT_FALSE(view_->GroupExists("g"));
  EXPECT_FALSE(view_->ConnectionExists("nope"));
}

TEST_F(MemoryView, RemoveUnknownConnectionFromGroupIsNotFound) {
  ApplyOk(Open("c1", std::nullopt, {"g"}));
  EXPECT_EQ(Apply(Remove(Scope::kConnection, "nope", {"g"})).status.code(), StatusCode::kNotFound);
  EXPECT_EQ(Apply(Remove(Scope::kConnection, "nope", {})).status.code(), StatusCode::kNotFound);
  EXPECT_EQ(Members("g"), Ids({"c1"}));
}

TEST_F(MemoryView, RemoveConnectionFromGroupsLeavesOnlyThose) {
  ApplyOk(Open("c1", std::nullopt, {"g1", "g2", "g3"}));
  ApplyOk(Open("c2", std::nullopt, {"g1"}));
  ApplyOk(Remove(Scope::kConnection, "c1", {"g1", "g2"}));
  EXPECT_EQ(Groups("c1"), Ids({"g3"}));
  EXPECT_FALSE(view_->GroupExists("g2"));  // c1 was its last member
  EXPECT_EQ(Members("g1"), Ids({"c2"}));
}

TEST_F(MemoryView, RemoveConnectionFromGroupItIsNotInChangesNothing) {
  ApplyOk(Open("c1", std::nullopt, {"g1"}));
  ApplyOk(Open("c2", std::nullopt, {"g2"}));
  ApplyOk(Remove(Scope::kConnection, "c1", {"g2"}));
  EXPECT_EQ(Groups("c1"), Ids({"g1"}));
  EXPECT_EQ(Members("g2"), Ids({"c2"}));
}

TEST_F(MemoryView, RemoveConnectionWithEmptyGroupsLeavesAllGroups) {
  ApplyOk(Open("c1", std::nullopt, {"g1", "g2"}));
  ApplyOk(Open("c2", std::nullopt, {"g2"}));
  ApplyOk(Remove(Scope::kConnection, "c1", {}));
  EXPECT_TRUE(Groups("c1").empty());
  EXPECT_FALSE(view_->GroupExists("g1"));
  EXPECT_EQ(Members("g2"), Ids({"c2"}));
  EXPECT_TRUE(view_->ConnectionExists("c1"));
}

TEST_F(MemoryView, AddUserToGroupJoinsAllItsCurrentConnections) {
  OpenFour();
  ApplyOk(Add(Scope::kUser, "alice", {"x"}));
  EXPECT_EQ(Members("x"), Ids({"c1", "c2"}));
  // Only current connections: a later connection of alice does not join (Azure behaviour).
  ApplyOk(Open("c5", "alice"));
  EXPECT_FALSE(InGroup("c5", "x"));
}

TEST_F(MemoryView, AddUnknownUserToGroupChangesNothing) {
  OpenFour();
  ApplyResult r = Apply(Add(Scope::kUser, "nobody", {"x"}));
  EXPECT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_FALSE(view_->GroupExists("x"));
}

TEST_F(MemoryView, RemoveUserFromGroupLeavesAllItsConnections) {
  OpenFour();
  ApplyOk(Remove(Scope::kUser, "alice", {"a", "b"}));
  EXPECT_TRUE(Groups("c1").empty());
  EXPECT_TRUE(Groups("c2").empty());
  EXPECT_FALSE(view_->GroupExists("a"));
  EXPECT_EQ(Members("b"), Ids({"c3"}));
}

TEST_F(MemoryView, RemoveUserWithEmptyGroupsLeavesAllGroups) {
  OpenFour();
  ApplyOk(Remove(Scope::kUser, "alice", {}));
  EXPECT_TRUE(Groups("c1").empty());
  EXPECT_TRUE(Groups("c2").empty());
  EXPECT_EQ(Groups("c3"), Ids({"b"}));
  EXPECT_TRUE(view_->UserExists("alice"));
}

TEST_F(MemoryView, AddAllToGroupsJoinsEveryConnectionButExcluded) {
  OpenFour();
  Entry e = Add(Scope::kAll, "", {"x", "y"});
  e.excluded = {"c4"};
  ApplyOk(e);
  EXPECT_EQ(Members("x"), Ids({"c1", "c2", "c3"}));
  EXPECT_EQ(Members("y"), Ids({"c1", "c2", "c3"}));
}

TEST_F(MemoryView, AddAllToGroupsWithFilterJoinsOnlyMatches) {
  OpenFour();
  Entry e = Add(Scope::kAll, "", {"x"});
  e.filter = ParseFilter("userId eq 'alice'");
  ApplyOk(e);
  EXPECT_EQ(Members("x"), Ids({"c1", "c2"}));

  Entry by_group = Add(Scope::kAll, "", {"z"});
  by_group.filter = ParseFilter("'b' in groups");
  ApplyOk(by_group);
  EXPECT_EQ(Members("z"), Ids({"c1", "c3"}));
}

TEST_F(MemoryView, RemoveAllFromGroupsWithFilterLeavesOnlyMatches) {
  OpenFour();
  Entry e = Remove(Scope::kAll, "", {"a", "b"});
  e.filter = ParseFilter("connectionId ne 'c1'");
  ApplyOk(e);
  EXPECT_EQ(Groups("c1"), Ids({"a", "b"}));
  EXPECT_TRUE(Groups("c2").empty());
  EXPECT_TRUE(Groups("c3").empty());
  EXPECT_EQ(Members("a"), Ids({"c1"}));
  EXPECT_EQ(Members("b"), Ids({"c1"}));
}

TEST_F(MemoryView, RemoveAllWithEmptyGroupsLeavesEveryGroup) {
  OpenFour();
  Entry e = Remove(Scope::kAll, "", {});
  e.excluded = {"c3"};
  ApplyOk(e);
  EXPECT_TRUE(Groups("c1").empty());
  EXPECT_TRUE(Groups("c2").empty());
  EXPECT_FALSE(view_->GroupExists("a"));
  EXPECT_EQ(Members("b"), Ids({"c3"}));
}

TEST_F(MemoryView, AddGroupMembersToAnotherGroup) {
  OpenFour();
  ApplyOk(Add(Scope::kGroup, "b", {"x"}));
  EXPECT_EQ(Members("x"), Ids({"c1", "c3"}));
}

TEST_F(MemoryView, FilterSeesGroupsAsChangedByEarlierEntries) {
  OpenFour();
  ApplyOk(Add(Scope::kConnection, "c4", {"late"}));
  Entry e = Send(Scope::kAll, "");
  e.filter = ParseFilter("'late' in groups");
  EXPECT_EQ(RecipientIds(ApplyOk(e)), Ids({"c4"}));
}

// ---------------------------------------------------------------------------------------------
// kGrant / kRevoke

TEST_F(MemoryView, GrantAllowsAndRevokeDeniesAGroup) {
  ApplyOk(Open("c1"));
  ApplyOk(Grant("c1", Permission::kSendToGroup, "g"));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), true);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "other"), false);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, "g"), false);
  ApplyOk(Revoke("c1", Permission::kSendToGroup, "g"));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), false);
}

TEST_F(MemoryView, GrantForAllGroupsAllowsEveryGroup) {
  ApplyOk(Open("c1"));
  ApplyOk(Grant("c1", Permission::kJoinLeaveGroup, std::nullopt));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, "x"), true);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, std::nullopt), true);
  ApplyOk(Revoke("c1", Permission::kJoinLeaveGroup, std::nullopt));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, "x"), false);
}

TEST_F(MemoryView, RevokeOfARoleGroupDeniesIt) {
  ApplyOk(Open("c1", std::nullopt, {}, {kSendAny}));
  ApplyOk(Revoke("c1", Permission::kSendToGroup, "g"));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), false);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "h"), true);
}

TEST_F(MemoryView, GrantAffectsOnlyItsConnection) {
  ApplyOk(Open("c1"));
  ApplyOk(Open("c2"));
  ApplyOk(Grant("c1", Permission::kSendToGroup, "g"));
  EXPECT_EQ(view_->CheckPermission("c2", Permission::kSendToGroup, "g"), false);
}

TEST_F(MemoryView, GrantToUnknownConnectionIsNotFound) {
  ApplyOk(Open("c1"));
  EXPECT_EQ(Apply(Grant("nope", Permission::kSendToGroup, "g")).status.code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(view_->ConnectionExists("nope"));
}

TEST_F(MemoryView, RevokeFromUnknownConnectionIsNotFound) {
  EXPECT_EQ(Apply(Revoke("nope", Permission::kJoinLeaveGroup, std::nullopt)).status.code(),
            StatusCode::kNotFound);
}

TEST_F(MemoryView, RevokeDoesNotRemoveMembership) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(ClientJoin("c1", "g"));
  ApplyOk(Revoke("c1", Permission::kJoinLeaveGroup, "g"));
  EXPECT_TRUE(InGroup("c1", "g"));
}

// ---------------------------------------------------------------------------------------------
// kSend recipients

TEST_F(MemoryView, SendToAllSelectsEveryConnection) {
  OpenFour();
  EXPECT_EQ(SendToAll(), Ids({"c1", "c2", "c3", "c4"}));
}

TEST_F(MemoryView, SendToAllSkipsExcluded) {
  OpenFour();
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kAll, "", {"c1", "c4", "unknown"}))),
            Ids({"c2", "c3"}));
}

TEST_F(MemoryView, SendToEmptyHubSelectsNobody) {
  EXPECT_TRUE(ApplyOk(Send(Scope::kAll, "")).recipients.empty());
}

TEST_F(MemoryView, SendToGroupSelectsOnlyMembers) {
  OpenFour();
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kGroup, "a"))), Ids({"c1", "c2"}));
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kGroup, "b"))), Ids({"c1", "c3"}));
}

TEST_F(MemoryView, SendToGroupSkipsExcluded) {
  OpenFour();
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kGroup, "b", {"c1"}))), Ids({"c3"}));
}

TEST_F(MemoryView, SendToMissingGroupSelectsNobody) {
  OpenFour();
  EXPECT_TRUE(ApplyOk(Send(Scope::kGroup, "nope")).recipients.empty());
}

TEST_F(MemoryView, SendToUserSelectsAllItsConnections) {
  OpenFour();
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kUser, "alice"))), Ids({"c1", "c2"}));
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kUser, "bob"))), Ids({"c3"}));
  EXPECT_TRUE(ApplyOk(Send(Scope::kUser, "nobody")).recipients.empty());
}

TEST_F(MemoryView, SendToUserSkipsExcluded) {
  OpenFour();
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kUser, "alice", {"c2"}))), Ids({"c1"}));
}

TEST_F(MemoryView, SendToConnectionSelectsOnlyIt) {
  OpenFour();
  ApplyResult r = ApplyOk(Send(Scope::kConnection, "c3"));
  ASSERT_EQ(r.recipients.size(), 1u);
  EXPECT_EQ(r.recipients[0]->id, "c3");
  EXPECT_EQ(r.recipients[0]->user_id, std::optional<std::string>("bob"));
  EXPECT_EQ(r.recipients[0]->subprotocol, "json.webpubsub.azure.v1");
  EXPECT_EQ(r.recipients[0]->groups, Ids({"b"}));
}

TEST_F(MemoryView, SendToExcludedConnectionSelectsNobody) {
  OpenFour();
  EXPECT_TRUE(ApplyOk(Send(Scope::kConnection, "c3", {"c3"})).recipients.empty());
}

TEST_F(MemoryView, SendToUnknownConnectionSucceedsWithNoRecipient) {
  OpenFour();
  ApplyResult r = Apply(Send(Scope::kConnection, "nope"));
  EXPECT_TRUE(r.status.ok()) << r.status.message();  // REST sendToConnection is 202 anyway
  EXPECT_TRUE(r.recipients.empty());
}

TEST_F(MemoryView, SendWithFilterSelectsOnlyMatches) {
  OpenFour();
  Entry all = Send(Scope::kAll, "");
  all.filter = ParseFilter("userId eq null");
  EXPECT_EQ(RecipientIds(ApplyOk(all)), Ids({"c4"}));

  Entry group = Send(Scope::kGroup, "b");
  group.filter = ParseFilter("userId ne 'alice'");
  EXPECT_EQ(RecipientIds(ApplyOk(group)), Ids({"c3"}));

  Entry user = Send(Scope::kUser, "alice");
  user.filter = ParseFilter("'b' in groups");
  EXPECT_EQ(RecipientIds(ApplyOk(user)), Ids({"c1"}));

  Entry conn = Send(Scope::kConnection, "c1");
  conn.filter = ParseFilter("protocol eq 'mqtt'");
  EXPECT_TRUE(ApplyOk(conn).recipients.empty());
}

TEST_F(MemoryView, SendWithFilterAndExcludedAppliesBoth) {
  OpenFour();
  Entry e = Send(Scope::kAll, "", {"c1"});
  e.filter = ParseFilter("userId eq 'alice' or userId eq 'bob'");
  EXPECT_EQ(RecipientIds(ApplyOk(e)), Ids({"c2", "c3"}));
}

TEST_F(MemoryView, SendWithoutNoEchoIncludesOrigin) {
  ApplyOk(Open("c1", "alice", {"g"}, {kSendAny}));
  ApplyOk(Open("c2", "bob", {"g"}));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g"))), Ids({"c1", "c2"}));
}

TEST_F(MemoryView, SendWithNoEchoExcludesOnlyOrigin) {
  ApplyOk(Open("c1", "alice", {"g"}, {kSendAny}));
  ApplyOk(Open("c2", "alice", {"g"}));
  ApplyOk(Open("c3", "bob", {"g"}));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g", 1, /*no_echo=*/true))), Ids({"c2", "c3"}));
}

TEST_F(MemoryView, ClientMayPublishToGroupItIsNotIn) {
  ApplyOk(Open("c1", "alice", {}, {kSendAny}));
  ApplyOk(Open("c2", "bob", {"g"}));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g"))), Ids({"c2"}));
}

// ---------------------------------------------------------------------------------------------
// Client actions: ackId dedupe and permissions

TEST_F(MemoryView, ClientJoinWithRepeatedAckIdIsDuplicateAndNotReExecuted) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(ClientJoin("c1", "g", 1));
  EXPECT_TRUE(InGroup("c1", "g"));
  ApplyOk(Remove(Scope::kConnection, "c1", {"g"}));  // REST removes it meanwhile

  ApplyResult r = Apply(ClientJoin("c1", "g", 1));
  EXPECT_EQ(r.status.code(), StatusCode::kDuplicate);
  EXPECT_FALSE(InGroup("c1", "g"));
  EXPECT_FALSE(view_->GroupExists("g"));
}

TEST_F(MemoryView, ClientLeaveWithRepeatedAckIdIsDuplicateAndNotReExecuted) {
  ApplyOk(Open("c1", std::nullopt, {"g"}, {kJoinAny}));
  ApplyOk(ClientLeave("c1", "g", 5));
  EXPECT_FALSE(InGroup("c1", "g"));
  ApplyOk(Add(Scope::kConnection, "c1", {"g"}));
  EXPECT_EQ(Apply(ClientLeave("c1", "g", 5)).status.code(), StatusCode::kDuplicate);
  EXPECT_TRUE(InGroup("c1", "g"));
}

TEST_F(MemoryView, ClientSendWithRepeatedAckIdIsDuplicateWithNoRecipients) {
  ApplyOk(Open("c1", std::nullopt, {"g"}, {kSendAny}));
  ApplyOk(Open("c2", std::nullopt, {"g"}));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g", 7))), Ids({"c1", "c2"}));
  ApplyResult again = Apply(ClientSend("c1", "g", 7));
  EXPECT_EQ(again.status.code(), StatusCode::kDuplicate);
  EXPECT_TRUE(again.recipients.empty());
}

TEST_F(MemoryView, AckIdIsSharedAcrossActionKinds) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny, kSendAny}));
  ApplyOk(ClientJoin("c1", "g", 3));
  ApplyResult send = Apply(ClientSend("c1", "g", 3));
  EXPECT_EQ(send.status.code(), StatusCode::kDuplicate);
  EXPECT_TRUE(send.recipients.empty());
}

TEST_F(MemoryView, ClientAckEntryDedupesAckIds) {
  ApplyOk(Open("c1"));
  Entry e;
  e.kind = EntryKind::kClientAck;
  e.origin_connection = "c1";
  e.ack_id = 42;
  EXPECT_TRUE(Apply(e).status.ok());
  EXPECT_EQ(Apply(e).status.code(), StatusCode::kDuplicate);
  e.ack_id = 43;
  EXPECT_TRUE(Apply(e).status.ok());
}

TEST_F(MemoryView, ManyRecentAckIdsAreAllRemembered) {
  ApplyOk(Open("c1"));
  Entry e;
  e.kind = EntryKind::kClientAck;
  e.origin_connection = "c1";
  for (uint64_t id = 1; id <= 1000; ++id) {
    e.ack_id = id;
    ASSERT_TRUE(Apply(e).status.ok()) << id;
  }
  for (uint64_t id = 1; id <= 1000; ++id) {
    e.ack_id = id;
    ASSERT_EQ(Apply(e).status.code(), StatusCode::kDuplicate) << id;
  }
}

TEST_F(MemoryView, ClientAckEntryFromGoneConnectionIsNotFound) {
  Entry e;
  e.kind = EntryKind::kClientAck;
  e.origin_connection = "gone";
  e.ack_id = 1;
  EXPECT_EQ(Apply(e).status.code(), StatusCode::kNotFound);
}

TEST_F(MemoryView, AckIdsAreRememberedPerConnection) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(Open("c2", std::nullopt, {}, {kJoinAny}));
  ApplyOk(ClientJoin("c1", "g", 1));
  ApplyOk(ClientJoin("c2", "g", 1));
  EXPECT_EQ(Members("g"), Ids({"c1", "c2"}));
}

TEST_F(MemoryView, ClientActionsWithoutAckIdAreNeverDeduplicated) {
  ApplyOk(Open("c1", std::nullopt, {"g"}, {kSendAny}));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g"))), Ids({"c1"}));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g"))), Ids({"c1"}));
}

TEST_F(MemoryView, AckIdsAreForgottenWhenTheConnectionCloses) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(ClientJoin("c1", "g", 1));
  ApplyOk(Close("c1"));
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(ClientJoin("c1", "g", 1));
  EXPECT_TRUE(InGroup("c1", "g"));
}

TEST_F(MemoryView, ClientActionFromGoneConnectionIsNotFound) {
  ApplyOk(Open("c2", std::nullopt, {"g"}));
  ApplyResult send = Apply(ClientSend("gone", "g", 1));
  EXPECT_EQ(send.status.code(), StatusCode::kNotFound);
  EXPECT_TRUE(send.recipients.empty());
}

TEST_F(MemoryView, ClientJoinWithoutPermissionIsForbidden) {
  ApplyOk(Open("c1"));
  ApplyResult r = Apply(ClientJoin("c1", "g", 1));
  EXPECT_EQ(r.status.code(), StatusCode::kForbidden);
  EXPECT_FALSE(InGroup("c1", "g"));
  EXPECT_FALSE(view_->GroupExists("g"));
}

TEST_F(MemoryView, ClientLeaveWithoutPermissionIsForbiddenAndKeepsMembership) {
  ApplyOk(Open("c1", std::nullopt, {"g"}));  // initial groups need no permission
  EXPECT_EQ(Apply(ClientLeave("c1", "g")).status.code(), StatusCode::kForbidden);
  EXPECT_TRUE(InGroup("c1", "g"));
}

TEST_F(MemoryView, ClientSendWithoutPermissionIsForbiddenWithNoRecipients) {
  ApplyOk(Open("c1", std::nullopt, {"g"}, {kJoinAny}));  // membership grants no publish right
  ApplyOk(Open("c2", std::nullopt, {"g"}));
  ApplyResult r = Apply(ClientSend("c1", "g", 1));
  EXPECT_EQ(r.status.code(), StatusCode::kForbidden);
  EXPECT_TRUE(r.recipients.empty());
}

TEST_F(MemoryView, ForbiddenAckIdMayBeRetriedOncePermitted) {
  ApplyOk(Open("c1"));
  EXPECT_EQ(Apply(ClientJoin("c1", "g", 9)).status.code(), StatusCode::kForbidden);
  ApplyOk(Grant("c1", Permission::kJoinLeaveGroup, "g"));
  ApplyOk(ClientJoin("c1", "g", 9));
  EXPECT_TRUE(InGroup("c1", "g"));
}

TEST_F(MemoryView, DuplicateIsReportedBeforeForbidden) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(ClientJoin("c1", "g", 1));
  ApplyOk(Revoke("c1", Permission::kJoinLeaveGroup, std::nullopt));
  EXPECT_EQ(Apply(ClientJoin("c1", "g", 1)).status.code(), StatusCode::kDuplicate);
}

TEST_F(MemoryView, LiteralRoleAllowsExactlyItsGroup) {
  ApplyOk(Open("c1", std::nullopt, {},
               {"webpubsub.joinLeaveGroup.room.1", "webpubsub.sendToGroup.room.1"}));
  ApplyOk(Open("c2", std::nullopt, {"room.2"}));
  ApplyOk(ClientJoin("c1", "room.1"));
  EXPECT_TRUE(InGroup("c1", "room.1"));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "room.1"))), Ids({"c1"}));

  EXPECT_EQ(Apply(ClientJoin("c1", "room.2")).status.code(), StatusCode::kForbidden);
  EXPECT_EQ(Apply(ClientSend("c1", "room.2")).status.code(), StatusCode::kForbidden);
  EXPECT_EQ(Apply(ClientJoin("c1", "room")).status.code(), StatusCode::kForbidden);
}

TEST_F(MemoryView, WildcardRoleAllowsMatchingGroups) {
  ApplyOk(Open("c1", std::nullopt, {},
               {"webpubsub.joinLeaveGroups.chat-*", "webpubsub.sendToGroups.news.**"}));
  ApplyOk(ClientJoin("c1", "chat-1"));
  ApplyOk(ClientJoin("c1", "chat-"));
  EXPECT_EQ(Groups("c1"), Ids({"chat-1", "chat-"}));
  EXPECT_EQ(Apply(ClientJoin("c1", "chat.1")).status.code(), StatusCode::kForbidden);
  EXPECT_EQ(Apply(ClientJoin("c1", "other")).status.code(), StatusCode::kForbidden);

  EXPECT_TRUE(Apply(ClientSend("c1", "news.eu.fr")).status.ok());
  EXPECT_EQ(Apply(ClientSend("c1", "chat-1")).status.code(), StatusCode::kForbidden);
}

TEST_F(MemoryView, RuntimeGrantAllowsAndRevokeForbidsClientActions) {
  ApplyOk(Open("c1", std::nullopt, {"g"}));
  EXPECT_EQ(Apply(ClientSend("c1", "g")).status.code(), StatusCode::kForbidden);
  ApplyOk(Grant("c1", Permission::kSendToGroup, "g"));
  EXPECT_EQ(RecipientIds(ApplyOk(ClientSend("c1", "g"))), Ids({"c1"}));
  EXPECT_EQ(Apply(ClientSend("c1", "h")).status.code(), StatusCode::kForbidden);
  ApplyOk(Revoke("c1", Permission::kSendToGroup, "g"));
  EXPECT_EQ(Apply(ClientSend("c1", "g")).status.code(), StatusCode::kForbidden);
}

TEST_F(MemoryView, RuntimeRevokeOverridesAnyGroupRole) {
  ApplyOk(Open("c1", std::nullopt, {}, {kJoinAny}));
  ApplyOk(Revoke("c1", Permission::kJoinLeaveGroup, "secret"));
  EXPECT_EQ(Apply(ClientJoin("c1", "secret")).status.code(), StatusCode::kForbidden);
  ApplyOk(ClientJoin("c1", "public"));
  ApplyOk(Grant("c1", Permission::kJoinLeaveGroup, "secret"));
  ApplyOk(ClientJoin("c1", "secret"));
  EXPECT_EQ(Groups("c1"), Ids({"public", "secret"}));
}

TEST_F(MemoryView, RuntimeRevokeOfAllGroupsOverridesWildcardRole) {
  ApplyOk(Open("c1", std::nullopt, {}, {"webpubsub.sendToGroups.*"}));
  EXPECT_TRUE(Apply(ClientSend("c1", "g")).status.ok());
  ApplyOk(Revoke("c1", Permission::kSendToGroup, std::nullopt));
  EXPECT_EQ(Apply(ClientSend("c1", "g")).status.code(), StatusCode::kForbidden);
  ApplyOk(Grant("c1", Permission::kSendToGroup, std::nullopt));
  EXPECT_TRUE(Apply(ClientSend("c1", "g")).status.ok());
}

TEST_F(MemoryView, RestEntriesNeedNoPermission) {
  ApplyOk(Open("c1"));
  Entry add = Add(Scope::kConnection, "c1", {"g"});
  add.required_permission = std::nullopt;
  ApplyOk(add);
  EXPECT_TRUE(InGroup("c1", "g"));
  EXPECT_EQ(RecipientIds(ApplyOk(Send(Scope::kGroup, "g"))), Ids({"c1"}));
}

// ---------------------------------------------------------------------------------------------
// applied_position

TEST_F(MemoryView, AppliedPositionStartsAtZero) { EXPECT_EQ(view_->applied_position(), 0u); }

TEST_F(MemoryView, AppliedPositionFollowsEveryApplyIncludingFailedOnes) {
  ApplyOk(Open("c1"));
  EXPECT_EQ(view_->applied_position(), 1u);
  Apply(Add(Scope::kConnection, "nope", {"g"}));  // NotFound: still in the log
  EXPECT_EQ(view_->applied_position(), 2u);
  Apply(Open("c1"));  // duplicate id
  EXPECT_EQ(view_->applied_position(), 3u);
  view_->Apply(10, Send(Scope::kAll, ""));
  EXPECT_EQ(view_->applied_position(), 10u);
}

// ---------------------------------------------------------------------------------------------
// Queries

TEST_F(MemoryView, ListGroupConnectionsOrdersByConnectionId) {
  ApplyOk(Open("c3", "carol", {"g"}));
  ApplyOk(Open("c1", "alice", {"g"}));
  ApplyOk(Open("c2", std::nullopt, {"g"}));
  ApplyOk(Open("c0", "zed", {"other"}));
  auto list = view_->ListGroupConnections("g", "", 100);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(ListIds(list), std::vector<std::string>({"c1", "c2", "c3"}));
  EXPECT_EQ(list[0].user_id, std::optional<std::string>("alice"));
  EXPECT_EQ(list[1].user_id, std::nullopt);
  EXPECT_EQ(list[2].user_id, std::optional<std::string>("carol"));
}

TEST_F(MemoryView, ListGroupConnectionsPagesWithAfterIdAndLimit) {
  for (const char* id : {"e", "b", "d", "a", "c"}) ApplyOk(Open(id, std::nullopt, {"g"}));
  EXPECT_EQ(ListIds(view_->ListGroupConnections("g", "", 2)), std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(ListIds(view_->ListGroupConnections("g", "b", 2)),
            std::vector<std::string>({"c", "d"}));
  EXPECT_EQ(ListIds(view_->ListGroupConnections("g", "d", 2)), std::vector<std::string>({"e"}));
  EXPECT_TRUE(view_->ListGroupConnections("g", "e", 2).empty());
  // after_id need not be a member: the page starts at the next larger id.
  EXPECT_EQ(ListIds(view_->ListGroupConnections("g", "bb", 10)),
            std::vector<std::string>({"c", "d", "e"}));
  EXPECT_TRUE(view_->ListGroupConnections("g", "", 0).empty());
}

TEST_F(MemoryView, ListGroupConnectionsPagingVisitsEveryMemberOnce) {
  std::vector<std::string> expected;
  for (int i = 0; i < 57; ++i) {
    char id[8];
    std::snprintf(id, sizeof id, "c%03d", i);
    expected.push_back(id);
  }
  for (auto it = expected.rbegin(); it != expected.rend(); ++it) {
    ApplyOk(Open(*it, std::nullopt, {"g"}));
  }
  std::vector<std::string> seen;
  std::string after;
  for (;;) {
    auto page = view_->ListGroupConnections("g", after, 10);
    if (page.empty()) break;
    EXPECT_LE(page.size(), 10u);
    for (const auto& s : page) seen.push_back(s.connection_id);
    after = page.back().connection_id;
  }
  EXPECT_EQ(seen, expected);
}

TEST_F(MemoryView, ListGroupConnectionsOfMissingGroupIsEmpty) {
  ApplyOk(Open("c1", std::nullopt, {"g"}));
  EXPECT_TRUE(view_->ListGroupConnections("nope", "", 10).empty());
}

TEST_F(MemoryView, CheckPermissionOfUnknownConnectionIsNullopt) {
  EXPECT_EQ(view_->CheckPermission("nope", Permission::kSendToGroup, "g"), std::nullopt);
  EXPECT_EQ(view_->CheckPermission("nope", Permission::kJoinLeaveGroup, std::nullopt),
            std::nullopt);
}

TEST_F(MemoryView, CheckPermissionWithoutGroupNeedsAnAnyGroupPermission) {
  ApplyOk(Open("c1", std::nullopt, {}, {"webpubsub.sendToGroup.g", kJoinAny}));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, "g"), true);
  // No group = "all groups": a literal role for one group is not enough (permissions.h).
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, std::nullopt), false);
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kJoinLeaveGroup, std::nullopt), true);
  ApplyOk(Grant("c1", Permission::kSendToGroup, std::nullopt));
  EXPECT_EQ(view_->CheckPermission("c1", Permission::kSendToGroup, std::nullopt), true);
}

TEST_F(MemoryView, GetConnectionOfUnknownIsNullopt) {
  EXPECT_FALSE(view_->GetConnection("nope").has_value());
  EXPECT_FALSE(view_->ConnectionExists("nope"));
  EXPECT_FALSE(view_->GroupExists("nope"));
  EXPECT_FALSE(view_->UserExists("nope"));
  EXPECT_EQ(view_->connection_count(), 0u);
}

TEST_F(MemoryView, GetConnectionReturnsASnapshot) {
  ApplyOk(Open("c1", "alice", {"g1"}));
  auto before = view_->GetConnection("c1");
  ApplyOk(Add(Scope::kConnection, "c1", {"g2"}));
  ASSERT_TRUE(before.has_value());
  EXPECT_EQ(before->groups, Ids({"g1"}));
  EXPECT_EQ(Groups("c1"), Ids({"g1", "g2"}));
}

TEST_F(MemoryView, TwoViewsApplyingTheSameEntriesAgree) {
  std::vector<Entry> log = {
      Open("c1", "alice", {"a"}, {kJoinAny, kSendAny}),
      Open("c2", "bob", {"a", "b"}),
      ClientJoin("c1", "b", 1),
      Add(Scope::kUser, "bob", {"c"}),
      Revoke("c1", Permission::kSendToGroup, "a"),
      ClientSend("c1", "a", 2),
      CloseConnections(Scope::kGroup, "c"),
      Send(Scope::kAll, ""),
  };
  auto other = NewMemoryView();
  for (size_t i = 0; i < log.size(); ++i) {
    ApplyResult mine = view_->Apply(i + 1, log[i]);
    ApplyResult theirs = other->Apply(i + 1, log[i]);
    EXPECT_EQ(mine.status.code(), theirs.status.code()) << "entry " << i + 1;
    EXPECT_EQ(RecipientIds(mine), RecipientIds(theirs)) << "entry " << i + 1;
    EXPECT_EQ(ClosedIds(mine), ClosedIds(theirs)) << "entry " << i + 1;
  }
  EXPECT_EQ(view_->connection_count(), 1u);
  EXPECT_EQ(other->connection_count(), 1u);
  EXPECT_EQ(view_->GetConnection("c1")->groups, other->GetConnection("c1")->groups);
}

// ---------------------------------------------------------------------------------------------
// Cluster: kNodeDown, kConnectionMoved, held sessions, apply time

Entry OpenOn(const std::string& id, const std::string& node, bool reliable) {
  Entry e = Open(id, std::nullopt, {"g"});
  e.node_id = node;
  e.reliable = reliable;
  e.subprotocol = reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  return e;
}

Entry NodeDown(const std::string& dead, const std::string& reporter, int64_t hold_until) {
  Entry e;
  e.kind = EntryKind::kNodeDown;
  e.target = dead;
  e.node_id = reporter;
  e.hold_until_ms = hold_until;
  return e;
}

Entry Moved(const std::string& id, const std::string& node) {
  Entry e;
  e.kind = EntryKind::kConnectionMoved;
  e.target = id;
  e.node_id = node;
  return e;
}

Entry ExpiringClose(const std::string& id, int64_t at) {
  Entry e = Close(id);
  e.expiring = true;
  e.timestamp_ms = at;
  return e;
}

TEST_F(MemoryView, NodeDownEndsItsPlainConnectionsAndHoldsItsReliableOnes) {
  ApplyOk(OpenOn("plain", "dead", false));
  ApplyOk(OpenOn("sticky", "dead", true));
  ApplyOk(OpenOn("other", "alive", true));
  view_->SetLocalHandle("sticky", 77);
  ApplyResult r = ApplyOk(NodeDown("dead", "alive", 5000));
  EXPECT_EQ(ClosedIds(r), Ids({"plain"}));
  ASSERT_EQ(r.closed_records.size(), 1u);
  EXPECT_EQ(r.closed_records[0].node_id, "dead");  // whose `disconnected` the reporter fires
  ASSERT_EQ(r.released.size(), 1u);
  EXPECT_EQ(r.released[0].connection_id, "sticky");
  EXPECT_EQ(r.released[0].local_handle, 77u);
  auto held = view_->GetConnection("sticky");
  ASSERT_TRUE(held);
  EXPECT_EQ(held->node_id, "");
  EXPECT_EQ(held->held_until_ms, 5000);
  EXPECT_EQ(held->local_handle, 0u);
  EXPECT_EQ(Members("g"), Ids({"sticky", "other"}));  // a held session keeps its groups
  EXPECT_EQ(view_->GetConnection("other")->node_id, "alive");
  // A node-down entry without a hold ends reliable connections too.
  ApplyOk(OpenOn("r2", "gone", true));
  EXPECT_EQ(ClosedIds(ApplyOk(NodeDown("gone", "alive", 0))), Ids({"r2"}));
}

TEST_F(MemoryView, AMovedConnectionBelongsToItsNewNodeAndIsNoLongerHeld) {
  ApplyOk(OpenOn("c", "a", true));
  view_->SetLocalHandle("c", 5);
  ApplyOk(NodeDown("a", "b", 9000));
  ApplyResult r = ApplyOk(Moved("c", "b"));
  ASSERT_NE(r.moved, nullptr);
  EXPECT_EQ(r.moved->node_id, "b");
  EXPECT_EQ(r.moved->held_until_ms, 0);
  ASSERT_EQ(r.released.size(), 1u);
  EXPECT_EQ(r.released[0].local_handle, 0u);  // released by the node-down already
  // A move away from a live node releases that node's socket.
  view_->SetLocalHandle("c", 9);
  ApplyResult again = ApplyOk(Moved("c", "c-node"));
  ASSERT_EQ(again.released.size(), 1u);
  EXPECT_EQ(again.released[0].local_handle, 9u);
  EXPECT_EQ(view_->GetConnection("c")->local_handle, 0u);
}

TEST_F(MemoryView, OnlyAReliableExistingConnectionMoves) {
  ApplyOk(OpenOn("plain", "a", false));
  EXPECT_EQ(Apply(Moved("plain", "b")).status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Apply(Moved("nope", "b")).status.code(), StatusCode::kNotFound);
  EXPECT_EQ(view_->GetConnection("plain")->node_id, "a");
}

TEST_F(MemoryView, AnExpiringCloseEndsOnlyAHeldSessionWhoseHoldRanOut) {
  ApplyOk(OpenOn("c", "a", true));
  ApplyOk(NodeDown("a", "b", 5000));
  EXPECT_EQ(view_->ExpiredHeld(4999, 10), std::vector<std::string>());
  EXPECT_EQ(view_->ExpiredHeld(5000, 10), std::vector<std::string>({"c"}));
  // Too early: no effect.
  EXPECT_EQ(Apply(ExpiringClose("c", 4000)).status.code(), StatusCode::kNotFound);
  EXPECT_TRUE(view_->ConnectionExists("c"));
  // Resumed meanwhile (moved): no effect either.
  ApplyOk(Moved("c", "b"));
  EXPECT_EQ(Apply(ExpiringClose("c", 6000)).status.code(), StatusCode::kNotFound);
  EXPECT_TRUE(view_->ConnectionExists("c"));
  EXPECT_TRUE(view_->ExpiredHeld(99999, 10).empty());
  // Held again, and expired: it ends.
  ApplyOk(NodeDown("b", "a", 7000));
  EXPECT_EQ(ClosedIds(ApplyOk(ExpiringClose("c", 7000))), Ids({"c"}));
}

TEST_F(MemoryView, ApplyTimeNeverGoesBackAcrossEntries) {
  // A membership remembered for 10 s by an entry at t=100,000 ...
  Entry remember = Add(Scope::kUser, "alice", {"g"});
  remember.membership_ttl_seconds = 10;
  remember.timestamp_ms = 100'000;
  ApplyOk(remember);
  // ... is not applied to a connection opened by an entry stamped 200 s earlier by a node
  // whose clock is behind: the open counts as at t=100,000, when the membership is valid.
  Entry open = Open("c1", "alice");
  open.timestamp_ms = -100'000;
  ApplyResult r = ApplyOk(open);
  EXPECT_EQ(r.timestamp_ms, 100'000);
  EXPECT_TRUE(InGroup("c1", "g"));
  // A later entry moves the clock on; its expiry logic sees its own time.
  Entry late = Open("c2", "alice");
  late.timestamp_ms = 111'000;
  ApplyOk(late);
  EXPECT_FALSE(InGroup("c2", "g"));
  EXPECT_EQ(view_->ExportState().last_timestamp_ms, 111'000);
}

TEST_F(MemoryView, ExportedStateImportsIntoAnIdenticalView) {
  OpenFour();
  ApplyOk(Grant("c1", Permission::kJoinLeaveGroup, std::nullopt));
  ApplyOk(ClientJoin("c1", "x", 5));
  ApplyOk(Grant("c2", Permission::kSendToGroup, "a"));
  Entry remember = Add(Scope::kUser, "bob", {"r"});
  remember.membership_ttl_seconds = -1;
  ApplyOk(remember);
  ViewState state = view_->ExportState();
  auto copy = NewMemoryView();
  copy->ImportState(state);
  ViewState again = copy->ExportState();
  EXPECT_EQ(again.applied_position, state.applied_position);
  ASSERT_EQ(again.connections.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(again.connections[i].record.id, state.connections[i].record.id);
    EXPECT_EQ(again.connections[i].record.groups, state.connections[i].record.groups);
    EXPECT_EQ(again.connections[i].acks, state.connections[i].acks);
  }
  EXPECT_EQ(again.user_groups, state.user_groups);
  EXPECT_TRUE(copy->HasAck("c1", 5));
  EXPECT_EQ(copy->CheckPermission("c2", Permission::kSendToGroup, "a"), std::optional<bool>(true));
  EXPECT_EQ(RecipientIds(copy->Apply(position_ + 1, Send(Scope::kGroup, "b"))), Ids({"c1", "c3"}));
}

// ---------------------------------------------------------------------------------------------
// entry.h

TEST(MemoryViewEntry, DataTypeNamesMatchTheWire) {
  EXPECT_STREQ(DataTypeName(DataType::kJson), "json");
  EXPECT_STREQ(DataTypeName(DataType::kText), "text");
  EXPECT_STREQ(DataTypeName(DataType::kBinary), "binary");
  EXPECT_STREQ(DataTypeName(DataType::kProtobuf), "protobuf");
}

TEST(MemoryViewEntry, DefaultEntryIsATextSendToAll) {
  Entry e;
  EXPECT_EQ(e.kind, EntryKind::kSend);
  EXPECT_EQ(e.scope, Scope::kAll);
  EXPECT_EQ(e.data_type, DataType::kText);
  EXPECT_EQ(e.from, MessageFrom::kServer);
  EXPECT_FALSE(e.no_echo);
  EXPECT_FALSE(e.ack_id.has_value());
  EXPECT_FALSE(e.required_permission.has_value());
  EXPECT_EQ(e.filter, nullptr);
}

}  // namespace
}  // namespace hubcast::storage
