// ClusterMembership: which nodes are alive, which one does each hub's time-driven work, and
// who reports a dead node (ARCHITECTURE.md, "Cluster and regions").
//
//   1. Every node publishes a heartbeat on core NATS every `heartbeat_interval` (its id,
//      region, incarnation: a random number per process start, and its lag: the log entries
//      it has yet to apply over all its hubs, which `hubcast status` shows for every node).
//   2. A node is alive while its heartbeats come; one silent for `node_timeout` is dead.
//   3. For each death (node and incarnation) the callback runs once on every node; `report` is
//      true on exactly one of them while the live nodes agree: the live node with the smallest
//      id. It appends the `node down` entries (whose de-duplication ids make a second report
//      harmless when views briefly disagree).
//   4. Each hub has one owner among the live nodes (rendezvous hashing of node id and hub):
//      it alone runs the hub's sweeps and snapshots.
// A node that is not connected to NATS owns nothing and reports nothing.
//
// Thread-safety: all methods may be called from any thread; the callback runs on the
// membership thread.
#pragma once

#include "base/status.h"
#include "replication/nats_connection.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::replication {

struct ClusterOptions {
  std::string node_id;
  std::string region;
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds node_timeout{10000};
  // This node's lag for its heartbeats; called on the membership thread. Unset: not reported.
  std::function<uint64_t()> lag;
};

struct NodeInfo {
  std::string node_id;
  std::string region;
  uint64_t incarnation = 0;
  std::chrono::milliseconds silent_for{0};
  std::optional<uint64_t> lag;  // from its last heartbeat (nodes of older versions send none)
};

class ClusterMembership {
 public:
  using DeathCallback =
      std::function<void(const std::string& node, uint64_t incarnation, bool report)>;

  ClusterMembership(NatsConnection* connection, ClusterOptions options);
  ~ClusterMembership();

  // Subscribes and starts heartbeating. `on_death` is set before.
  void OnNodeDeath(DeathCallback on_death) { on_death_ = std::move(on_death); }
  Status Start();
  void Stop();

  // The live nodes, this one first when it is connected, then by id.
  std::vector<NodeInfo> Nodes() const;
  // Whether this node does `hub`'s time-driven work now.
  bool IsOwner(const std::string& hub) const;
  // Whether `node` is known dead: silent past the node timeout, or never heard from although
  // this node has listened (connected) for a whole node timeout. Never this node.
  bool IsDead(const std::string& node) const;
  uint64_t incarnation() const { return incarnation_; }
  const std::string& node_id() const { return options_.node_id; }

  // The owner of `key` among `nodes` (rendezvous hashing); exposed for tests.
  static std::string OwnerAmong(const std::vector<std::string>& nodes, const std::string& key);

 private:
  struct Seen {
    std::string region;
    uint64_t incarnation = 0;
    std::chrono::steady_clock::time_point last;
    std::optional<uint64_t> lag;
    bool dead = false;
  };
  void OnHeartbeat(std::string_view data);
  std::string Heartbeat() const;
  void Run();
  // When this node's current stretch of being connected began (mu_); unset while cut off.
  std::optional<std::chrono::steady_clock::time_point> listening_since_;
  std::vector<std::string> LiveIds() const;  // under mu_

  NatsConnection* const connection_;
  const ClusterOptions options_;
  const uint64_t incarnation_;
  DeathCallback on_death_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, Seen> nodes_;  // every other node ever seen
  std::optional<uint64_t> own_lag_;    // as last sent (mu_)
  std::thread thread_;
};

}  // namespace hubcast::replication
