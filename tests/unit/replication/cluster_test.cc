// Tests of the cluster pieces that need no NATS server: hub owners (rendezvous hashing), the
// hub <-> stream name mapping, and the hub owner's dead-node sweep, which makes good a
// node-down report that failed or never came (the reporter died, the log was electing).
#include "replication/cluster.h"

#include "base/names.h"
#include "replication/delivery_sink.h"
#include "replication/hub.h"
#include "replication/nats_log.h"
#include "storage/entry.h"
#include "storage/hub_view.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::replication {
namespace {

TEST(HubOwners, EveryOrderOfTheSameNodesGivesTheSameOwner) {
  std::vector<std::string> nodes = {"a", "b", "c", "d"};
  std::vector<std::string> reversed(nodes.rbegin(), nodes.rend());
  for (int i = 0; i < 200; ++i) {
    std::string hub = "hub" + std::to_string(i);
    EXPECT_EQ(ClusterMembership::OwnerAmong(nodes, hub),
              ClusterMembership::OwnerAmong(reversed, hub));
  }
}

TEST(HubOwners, HubsSpreadOverNodesAndOnlyTheLostNodesHubsMove) {
  std::vector<std::string> four = {"a", "b", "c", "d"}, three = {"a", "b", "c"};
  std::map<std::string, int> per_node;
  int moved = 0;
  const int hubs = 2000;
  for (int i = 0; i < hubs; ++i) {
    std::string hub = "hub" + std::to_string(i);
    std::string before = ClusterMembership::OwnerAmong(four, hub);
    std::string after = ClusterMembership::OwnerAmong(three, hub);
    ++per_node[before];
    if (before != "d") {
      EXPECT_EQ(before, after) << hub << " moved although its owner stayed";
    } else {
      ++moved;
    }
  }
  ASSERT_EQ(per_node.size(), 4u);
  for (const auto& [node, count] : per_node) {
    EXPECT_GT(count, hubs / 4 / 2) << node << " owns too few hubs";
    EXPECT_LT(count, hubs / 4 * 2) << node << " owns too many hubs";
  }
  EXPECT_EQ(moved, per_node["d"]);
  EXPECT_EQ(ClusterMembership::OwnerAmong({}, "hub"), "");
}

TEST(NatsStreamNames, EveryHubNameRoundTripsAndDistinctHubsGetDistinctStreams) {
  std::set<std::string> streams;
  for (std::string hub : {"chat", "Chat", "a_b", "a.b", "a[b]", "a`b", "x-2e", "_", "h1"}) {
    std::string stream = StreamOfHub(hub);
    EXPECT_TRUE(streams.insert(stream).second) << hub << " shares a stream";
    // Stream names and subject tokens allow no '.', '*', '>' or whitespace.
    EXPECT_EQ(stream.find_first_of(".*> \t"), std::string::npos) << stream;
    auto back = HubOfStream(stream);
    ASSERT_TRUE(back.has_value()) << stream;
    EXPECT_EQ(*back, hub);
  }
  EXPECT_FALSE(HubOfStream("HUBCAST-SNAPSHOTS").has_value());
  EXPECT_FALSE(HubOfStream("OTHER_chat").has_value());
  EXPECT_FALSE(HubOfStream(StreamOfHub("a") + "-z").has_value());
}

class NullSink : public DeliverySink {
 public:
  void Deliver(Hub&, uint64_t, const storage::Entry&, const storage::ApplyResult&) override {}
};

storage::Entry OpenOn(const std::string& id, const std::string& node, bool reliable) {
  storage::Entry e;
  e.kind = storage::EntryKind::kConnectionOpen;
  e.origin_connection = id;
  e.node_id = node;
  e.reliable = reliable;
  e.subprotocol = reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  return e;
}

TEST(DeadNodeSweep, TheOwnerReportsADeadNodeThatStillServesConnectionsAndNoOtherNode) {
  NullSink sink;
  HubRegistryOptions o;
  o.node_id = "n1";
  o.retention_interval_ms = 20;
  o.node_down_hold_ms = 600000;
  o.is_dead = [](const std::string& node) { return node == "n2"; };
  HubRegistry registry(o, &sink);
  auto name = HubName::Parse("chat");
  ASSERT_TRUE(name.ok());
  auto hub = registry.Get(*name);
  ASSERT_TRUE(hub.ok()) << hub.status().message();
  for (auto e : {OpenOn("held", "n2", true), OpenOn("plain", "n2", false),
                 OpenOn("mine", "n1", true), OpenOn("other", "n3", true)}) {
    ASSERT_TRUE((*hub)->AppendAndWaitDurable(e).ok());
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::optional<storage::ConnectionRecord> held;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE((*hub)->Barrier().ok());
    held = (*hub)->view().GetConnection("held");
    if (held && held->node_id.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->node_id, "") << "the dead node's reliable session is not held";
  EXPECT_GT(held->held_until_ms, 0);
  EXPECT_FALSE((*hub)->view().GetConnection("plain").has_value())
      << "the dead node's plain connection did not end";
  auto mine = (*hub)->view().GetConnection("mine");
  auto other = (*hub)->view().GetConnection("other");
  ASSERT_TRUE(mine && other);
  EXPECT_EQ(mine->node_id, "n1");
  EXPECT_EQ(other->node_id, "n3");
  EXPECT_EQ((*hub)->view().ConnectionNodes(), (std::vector<std::string>{"n1", "n3"}));
}

TEST(DeadNodeSweep, OnlyTheHubOwnerSweeps) {
  NullSink sink;
  HubRegistryOptions o;
  o.node_id = "n1";
  o.retention_interval_ms = 20;
  o.is_owner = [](const HubName&) { return false; };
  o.is_dead = [](const std::string& node) { return node == "n2"; };
  HubRegistry registry(o, &sink);
  auto name = HubName::Parse("chat");
  ASSERT_TRUE(name.ok());
  auto hub = registry.Get(*name);
  ASSERT_TRUE(hub.ok());
  ASSERT_TRUE((*hub)->AppendAndWaitDurable(OpenOn("held", "n2", true)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // 15 retention rounds
  ASSERT_TRUE((*hub)->Barrier().ok());
  auto held = (*hub)->view().GetConnection("held");
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->node_id, "n2");
  EXPECT_EQ((*hub)->view().applied_position(), 1u) << "a node that does not own the hub appended";
}

}  // namespace
}  // namespace hubcast::replication
