// Tests of storage/hub_view.h for client SDK 1.1 group state (presence): kGroupState and
// kGroupStateSubscription entries, the snapshot a subscriber gets, the updates when members set,
// clear, leave or close, and the rules (members only set; members or joiners subscribe).
#include "storage/entry.h"
#include "storage/hub_view.h"
#include "storage/permissions.h"
#include "storage/record_codec.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/entries.h"
#include <set>
#include <string>

namespace hubcast::storage {
namespace {

using hubcast::testing::Close;
using hubcast::testing::Open;

Entry SetState(const std::string& conn, const std::string& group, std::optional<std::string> state,
               int64_t at, std::optional<uint64_t> ack = std::nullopt) {
  Entry e;
  e.kind = EntryKind::kGroupState;
  e.timestamp_ms = at;
  e.origin_connection = conn;
  e.target = group;
  e.group_state = std::move(state);
  e.ack_id = ack;
  return e;
}

Entry Subscribe(const std::string& conn, const std::string& group, bool subscribe = true) {
  Entry e;
  e.kind = EntryKind::kGroupStateSubscription;
  e.origin_connection = conn;
  e.target = group;
  e.subscribe = subscribe;
  return e;
}

Entry Leave(const std::string& conn, const std::string& group) {
  Entry e;
  e.kind = EntryKind::kRemoveFromGroups;
  e.scope = Scope::kConnection;
  e.target = conn;
  e.groups = {group};
  return e;
}

std::set<std::string> Recipients(const ApplyResult::GroupStateDelivery& d) {
  std::set<std::string> ids;
  for (const ConnectionRecord* c : d.recipients) ids.insert(c->id);
  return ids;
}

class GroupStateTest : public ::testing::Test {
 protected:
  ApplyResult Apply(const Entry& e) { return view_->Apply(++pos_, e); }

  std::unique_ptr<HubView> view_ = NewMemoryView();
  uint64_t pos_ = 0;
};

TEST_F(GroupStateTest, SubscriberGetsASnapshotThenUpdatesAsMembersComeAndGo) {
  Apply(Open("a", "alice", {"room"}));
  Apply(Open("b", "bob", {"room"}));
  Apply(Open("w", "watcher", {"room"}));
  ASSERT_TRUE(Apply(SetState("a", "room", R"({"mood":"busy"})", 100)).status.ok());

  ApplyResult sub = Apply(Subscribe("w", "room"));
  ASSERT_TRUE(sub.status.ok());
  ASSERT_EQ(sub.group_states.size(), 1u);
  const auto& snapshot = sub.group_states[0];
  EXPECT_TRUE(snapshot.snapshot);
  EXPECT_EQ(snapshot.group, "room");
  EXPECT_EQ(Recipients(snapshot), std::set<std::string>{"w"});
  ASSERT_EQ(snapshot.items.size(), 1u);  // b set nothing: not an item
  EXPECT_EQ(snapshot.items[0].connection_id, "a");
  EXPECT_EQ(snapshot.items[0].user_id, std::optional<std::string>("alice"));
  EXPECT_EQ(snapshot.items[0].state, std::optional<std::string>(R"({"mood":"busy"})"));
  EXPECT_EQ(snapshot.items[0].updated_at_ms, 100);

  // b announces itself: an update to the subscriber.
  ApplyResult set = Apply(SetState("b", "room", "{}", 200));
  ASSERT_EQ(set.group_states.size(), 1u);
  EXPECT_FALSE(set.group_states[0].snapshot);
  EXPECT_EQ(Recipients(set.group_states[0]), std::set<std::string>{"w"});
  EXPECT_EQ(set.group_states[0].items[0].connection_id, "b");
  EXPECT_EQ(set.group_states[0].items[0].state, std::optional<std::string>("{}"));

  // a leaves the group, b closes: their items go (state absent), stamped with the entry's time.
  Entry leave = Leave("a", "room");
  leave.timestamp_ms = 300;
  ApplyResult left = Apply(leave);
  ASSERT_EQ(left.group_states.size(), 1u);
  EXPECT_EQ(left.group_states[0].items[0].connection_id, "a");
  EXPECT_EQ(left.group_states[0].items[0].state, std::nullopt);
  EXPECT_EQ(left.group_states[0].items[0].updated_at_ms, 300);
  ApplyResult closed = Apply(Close("b"));
  ASSERT_EQ(closed.group_states.size(), 1u);
  EXPECT_EQ(closed.group_states[0].items[0].connection_id, "b");
  EXPECT_EQ(closed.group_states[0].items[0].state, std::nullopt);
  EXPECT_TRUE(view_->GroupState("room").empty());

  // Clearing: an update with no state; clearing again changes nothing and tells nobody.
  Apply(Open("c", std::nullopt, {"room"}));
  Apply(SetState("c", "room", R"({"x":"1"})", 400));
  ApplyResult cleared = Apply(SetState("c", "room", std::nullopt, 500));
  ASSERT_EQ(cleared.group_states.size(), 1u);
  EXPECT_EQ(cleared.group_states[0].items[0].state, std::nullopt);
  EXPECT_EQ(cleared.group_states[0].items[0].user_id, std::nullopt);
  EXPECT_TRUE(Apply(SetState("c", "room", std::nullopt, 600)).group_states.empty());

  // Unsubscribed: no more updates.
  Apply(Subscribe("w", "room", false));
  EXPECT_TRUE(Apply(SetState("c", "room", "{}", 700)).group_states.empty());
}

TEST_F(GroupStateTest, OnlyMembersSetState) {
  Apply(Open("a", "alice"));
  ApplyResult r = Apply(SetState("a", "room", "{}", 1, 9));
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound);
  EXPECT_FALSE(view_->HasAck("a", 9)) << "a refused action keeps its ackId free for a retry";
}

TEST_F(GroupStateTest, MembersAndConnectionsAllowedToJoinMaySubscribe) {
  Apply(Open("stranger", "s"));
  Apply(Open("joiner", "j", {}, false, {"webpubsub.joinLeaveGroup.room"}));
  Apply(Open("member", "m", {"room"}));
  EXPECT_EQ(Apply(Subscribe("stranger", "room")).status.code(), StatusCode::kForbidden);
  EXPECT_TRUE(Apply(Subscribe("joiner", "room")).status.ok());
  EXPECT_TRUE(Apply(Subscribe("member", "room")).status.ok());
  // Unsubscribing needs nothing.
  EXPECT_TRUE(Apply(Subscribe("stranger", "room", false)).status.ok());
}

TEST_F(GroupStateTest, RepeatedAckIdIsADuplicate) {
  Apply(Open("a", "alice", {"room"}));
  EXPECT_TRUE(Apply(SetState("a", "room", "{}", 1, 3)).status.ok());
  EXPECT_EQ(Apply(SetState("a", "room", R"({"k":"v"})", 2, 3)).status.code(),
            StatusCode::kDuplicate);
  EXPECT_EQ(view_->GroupState("room")[0].state, std::optional<std::string>("{}"));
}

TEST_F(GroupStateTest, AClosingSubscriberIsNotToldOfItsOwnDeparture) {
  Apply(Open("a", "alice", {"room"}));
  Apply(Open("w", "watcher", {"room"}));
  Apply(Subscribe("a", "room"));
  Apply(Subscribe("w", "room"));
  Apply(SetState("a", "room", "{}", 1));
  ApplyResult r = Apply(Close("a"));
  ASSERT_EQ(r.group_states.size(), 1u);
  EXPECT_EQ(Recipients(r.group_states[0]), std::set<std::string>{"w"});
}

TEST_F(GroupStateTest, StateAndSubscriptionsSurviveARestoreThroughTheRecordCodec) {
  Apply(Open("a", "alice", {"room"}));
  Apply(Open("w", "watcher", {"room"}));
  Apply(SetState("a", "room", R"({"k":"v"})", 42));
  Apply(Subscribe("w", "room"));
  ViewState state = view_->ExportState();
  for (ConnectionState& cs : state.connections) {
    auto decoded = DecodeConnectionRecord(EncodeConnectionRecord(cs.record));
    ASSERT_TRUE(decoded.ok());
    cs.record = std::move(decoded).value();
  }
  auto restored = NewMemoryView();
  restored->ImportState(std::move(state));
  auto items = restored->GroupState("room");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].updated_at_ms, 42);
  // The restored subscriber is still told.
  Entry clear = SetState("a", "room", std::nullopt, 50);
  ApplyResult r = restored->Apply(100, clear);
  ASSERT_EQ(r.group_states.size(), 1u);
  EXPECT_EQ(Recipients(r.group_states[0]), std::set<std::string>{"w"});
}

}  // namespace
}  // namespace hubcast::storage
