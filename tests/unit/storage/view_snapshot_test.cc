// Tests of storage/view_snapshot.h and of apply's determinism: one recorded stream applied on
// three fresh views - straight through, through a snapshot halfway, and through a RocksDB
// store reloaded twice (a node restarting) - gives byte-identical views.
#include "storage/view_snapshot.h"

#include "storage/entry.h"
#include "storage/entry_codec.h"
#include "storage/hub_view.h"
#include "storage/replay.h"
#include "storage/store.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/test_util.h"
#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace hubcast::storage {
namespace {

// A random but reproducible history of every entry kind a hub sees, with clocks that jitter
// backwards (nodes disagree by seconds), duplicate ackIds, node failures and moves.
std::vector<Entry> RecordedStream(uint32_t seed, int n) {
  std::mt19937 rng(seed);
  auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<uint32_t>(k)); };
  const std::vector<std::string> nodes = {"n1", "n2", "n3"};
  const std::vector<std::string> users = {"ann", "bob", "cid", "dee"};
  const std::vector<std::string> groups = {"g1", "g2", "g3"};
  std::vector<std::string> conns;
  std::vector<Entry> out;
  int64_t clock = 1'000'000;
  // Three long-lived clients on a node that never fails: they remember many ackIds.
  const std::vector<std::string> steady = {"s1", "s2", "s3"};
  for (const auto& id : steady) {
    Entry e;
    e.kind = EntryKind::kConnectionOpen;
    e.origin_connection = id;
    e.node_id = "steady";
    e.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"};
    out.push_back(std::move(e));
  }
  for (int i = 0; i < n; ++i) {
    clock += 50 + pick(500);
    Entry e;
    e.timestamp_ms = clock + pick(8000) - 6000;  // up to 6 s behind the leader's clock
    std::string conn = conns.empty() ? "none" : conns[static_cast<size_t>(pick(int(conns.size())))];
    switch (pick(16)) {
      case 0:
      case 1: {
        e.kind = EntryKind::kConnectionOpen;
        e.origin_connection = "c" + std::to_string(i);
        if (pick(3)) e.user_id = users[static_cast<size_t>(pick(4))];
        e.reliable = pick(2) == 0;
        e.subprotocol = e.reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
        e.node_id = nodes[static_cast<size_t>(pick(3))];
        if (pick(2)) e.groups = {groups[static_cast<size_t>(pick(3))]};
        e.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.g1"};
        conns.push_back(e.origin_connection);
        break;
      }
      case 2:
        e.kind = EntryKind::kConnectionClose;
        e.origin_connection = conn;
        e.expiring = pick(3) == 0;
        break;
      case 3:
      case 4: {
        e.kind = pick(2) ? EntryKind::kAddToGroups : EntryKind::kRemoveFromGroups;
        bool by_user = pick(3) == 0;
        e.scope = by_user ? Scope::kUser : Scope::kConnection;
        e.target = by_user ? users[static_cast<size_t>(pick(4))] : conn;
        e.groups = {groups[static_cast<size_t>(pick(3))]};
        if (by_user && e.kind == EntryKind::kAddToGroups && pick(2)) {
          e.membership_ttl_seconds = pick(4) == 0 ? -1 : 1 + pick(20);
        }
        if (by_user && e.kind == EntryKind::kRemoveFromGroups && pick(2)) e.expiring = true;
        break;
      }
      case 5:
      case 6: {  // a client action with an ackId, sometimes repeated
        bool from_steady = pick(3) != 0;
        if (from_steady) conn = steady[static_cast<size_t>(pick(3))];
        const std::string group = from_steady ? "steady" : groups[static_cast<size_t>(pick(3))];
        e.kind = pick(2) ? EntryKind::kSend : EntryKind::kAddToGroups;
        e.origin_connection = conn;
        e.ack_id = static_cast<uint64_t>(pick(400));
        e.scope = e.kind == EntryKind::kSend ? Scope::kGroup : Scope::kConnection;
        e.target = e.kind == EntryKind::kSend ? group : conn;
        if (e.kind == EntryKind::kAddToGroups) e.groups = {group};
        e.required_permission =
            e.kind == EntryKind::kSend ? Permission::kSendToGroup : Permission::kJoinLeaveGroup;
        e.permission_target = e.kind == EntryKind::kSend ? e.target : e.groups[0];
        e.data = "m" + std::to_string(i);
        break;
      }
      case 7:
      case 8:
      case 9:
        e.kind = EntryKind::kSend;
        e.scope = static_cast<Scope>(pick(4));
        e.target = e.scope == Scope::kGroup  ? groups[static_cast<size_t>(pick(3))]
                   : e.scope == Scope::kUser ? users[static_cast<size_t>(pick(4))]
                                             : conn;
        e.data = "s" + std::to_string(i);
        break;
      case 10:
        e.kind = pick(2) ? EntryKind::kGrant : EntryKind::kRevoke;
        e.target = conn;
        e.permission = Permission::kSendToGroup;
        e.permission_target = groups[static_cast<size_t>(pick(3))];
        break;
      case 11:
        e.kind = EntryKind::kCheckpoint;
        e.acks = {{conn, static_cast<uint64_t>(pick(50))}};
        break;
      case 12:
        e.kind = EntryKind::kNodeDown;
        e.target = nodes[static_cast<size_t>(pick(3))];
        e.node_id = nodes[static_cast<size_t>(pick(3))];
        e.hold_until_ms = clock + pick(5000);
        break;
      case 13:
        e.kind = EntryKind::kConnectionMoved;
        e.target = conn;
        e.node_id = nodes[static_cast<size_t>(pick(3))];
        break;
      case 14:
        e.kind = EntryKind::kConnectionState;
        e.target = conn;
        e.connection_state = "st" + std::to_string(pick(3));
        break;
      default:
        e.kind = EntryKind::kCloseConnections;
        e.scope = Scope::kGroup;
        e.target = groups[static_cast<size_t>(pick(3))];
        break;
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string Canonical(const HubView& view) { return EncodeViewState(view.ExportState()); }

class Determinism : public ::testing::TestWithParam<uint32_t> {};

TEST_P(Determinism, ThreeFreshViewsApplyingOneStreamAreIdenticalByteForByte) {
  const std::vector<Entry> stream = RecordedStream(GetParam(), 3000);
  const size_t half = stream.size() / 2;

  // 1: straight through.
  auto straight = NewMemoryView();
  for (size_t i = 0; i < stream.size(); ++i) straight->Apply(i + 1, stream[i]);

  // 2: a snapshot halfway, encoded and decoded, into a fresh view that goes on.
  auto first = NewMemoryView();
  for (size_t i = 0; i < half; ++i) first->Apply(i + 1, stream[i]);
  auto decoded = DecodeViewState(Canonical(*first));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  auto from_snapshot = NewMemoryView();
  from_snapshot->ImportState(std::move(decoded).value());
  for (size_t i = half; i < stream.size(); ++i) from_snapshot->Apply(i + 1, stream[i]);

  // 3: every run of 37 entries committed to RocksDB; the node restarts twice (its view is
  // reloaded from the store alone).
  hubcast::testing::TempDir dir;
  auto store = Store::Open(StoreOptions{dir.path() + "/db", false});
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto restarted = NewMemoryView();
  auto batch = (*store)->NewApplyBatch();
  const size_t restart1 = stream.size() / 3 / 37 * 37, restart2 = 2 * stream.size() / 3 / 37 * 37;
  for (size_t i = 0; i < stream.size(); ++i) {
    ApplyResult r = restarted->Apply(i + 1, stream[i]);
    // With the entry itself, as a node applying a replicated log keeps its replay log.
    batch->Add("chat", i + 1, stream[i], r, EncodeEntry(stream[i]));
    if ((i + 1) % 37 == 0 || i + 1 == stream.size()) {
      ASSERT_TRUE((*store)->Commit(std::move(batch)).ok());
      batch = (*store)->NewApplyBatch();
    }
    if (i + 1 == restart1 || i + 1 == restart2) {  // right after a commit
      std::vector<std::string> uncountable;
      auto loaded = LoadViewForStart(**store, "chat", &uncountable);
      ASSERT_TRUE(loaded.ok()) << loaded.status().message();
      EXPECT_TRUE(uncountable.empty());
      restarted = NewMemoryView();
      restarted->ImportState(std::move(loaded).value());
    }
  }
  std::vector<std::string> uncountable;
  auto reloaded = LoadViewForStart(**store, "chat", &uncountable);
  ASSERT_TRUE(reloaded.ok());
  auto from_store = NewMemoryView();
  from_store->ImportState(std::move(reloaded).value());

  const std::string expected = Canonical(*straight);
  EXPECT_GT(straight->connection_count(), 0u);
  size_t most_acks = 0;
  for (const auto& c : straight->ExportState().connections) {
    most_acks = std::max(most_acks, c.acks.size());
  }
  EXPECT_GE(most_acks, 3u) << "the stream should remember several ackIds per client";
  EXPECT_EQ(Canonical(*from_snapshot), expected);
  EXPECT_EQ(Canonical(*restarted), expected);
  EXPECT_EQ(Canonical(*from_store), expected);
}

INSTANTIATE_TEST_SUITE_P(Seeds, Determinism, ::testing::Values(1u, 7u, 42u, 2026u));

ViewState SampleState() {
  ViewState s;
  s.applied_position = 1234;
  s.last_timestamp_ms = -5;
  ConnectionState& c = s.connections.emplace_back();
  c.record.id = "c1";
  c.record.user_id = std::string("\0nul", 4);
  c.record.reliable = true;
  c.record.node_id = "n1";
  c.record.groups = {"a", "b"};
  c.record.seq = 9;
  c.record.held_until_ms = 77;
  c.record.checkpoints = {{3, 1, {"a"}}};
  c.acks = {{5, 10}, {2, 11}};
  s.user_groups = {{"u", "g", kNever}, {"u", "h", 1}};
  return s;
}

TEST(ViewSnapshot, EveryFieldRoundTrips) {
  ViewState s = SampleState();
  auto d = DecodeViewState(EncodeViewState(s));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->applied_position, 1234u);
  EXPECT_EQ(d->last_timestamp_ms, -5);
  ASSERT_EQ(d->connections.size(), 1u);
  const ConnectionRecord& r = d->connections[0].record;
  EXPECT_EQ(r.user_id, s.connections[0].record.user_id);
  EXPECT_EQ(r.groups, s.connections[0].record.groups);
  EXPECT_EQ(r.held_until_ms, 77);
  EXPECT_EQ(r.checkpoints, s.connections[0].record.checkpoints);
  EXPECT_EQ(d->connections[0].acks, s.connections[0].acks);
  EXPECT_EQ(d->user_groups, s.user_groups);
  EXPECT_EQ(EncodeViewState(*d), EncodeViewState(s));
}

TEST(ViewSnapshot, EveryTruncationAndANewerVersionAreRefused) {
  std::string bytes = EncodeViewState(SampleState());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeViewState(bytes.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodeViewState(bytes + "x").ok());
  std::string newer = bytes;
  newer[0] = static_cast<char>(kViewSnapshotFormatVersion + 1);
  auto refused = DecodeViewState(newer);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("newer"), std::string::npos);
  // Huge counts with nothing behind them are refused without allocating for them.
  std::string liar = bytes.substr(0, 1) + std::string("\x01\x01\xff\xff\xff\xff\x0f", 7);
  EXPECT_FALSE(DecodeViewState(liar).ok());
}

}  // namespace
}  // namespace hubcast::storage
