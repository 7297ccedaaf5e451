#include "replication/cluster.h"

#include "base/log.h"
#include "base/random.h"

#include <algorithm>

namespace hubcast::replication {
namespace {

constexpr const char* kHeartbeatSubject = "hubcast.nodes.heartbeat";

// FNV-1a: stable across processes and builds (std::hash is not), so every node computes the
// same owner.
uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

ClusterMembership::ClusterMembership(NatsConnection* connection, ClusterOptions options)
    : connection_(connection), options_(std::move(options)), incarnation_(RandomU64() | 1) {}

ClusterMembership::~ClusterMembership() { Stop(); }

Status ClusterMembership::Start() {
  Status s = connection_->Subscribe(kHeartbeatSubject, [this](std::string_view, std::string_view d) {
    OnHeartbeat(d);
  });
  if (!s.ok()) return s;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void ClusterMembership::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// Heartbeat: "node_id \t region \t incarnation".
void ClusterMembership::OnHeartbeat(std::string_view data) {
  size_t a = data.find('\t');
  size_t b = a == std::string_view::npos ? a : data.find('\t', a + 1);
  if (b == std::string_view::npos || a == 0 || a > 256) return;
  std::string id(data.substr(0, a));
  if (id == options_.node_id) return;
  uint64_t incarnation = std::strtoull(std::string(data.substr(b + 1)).c_str(), nullptr, 10);
  std::lock_guard lock(mu_);
  Seen& seen = nodes_[id];
  if (seen.dead || seen.incarnation != incarnation) {
    // A new node, a restarted one, or one that was silent (a partition healed).
    Logger("cluster").Info("node ", id, " (", std::string(data.substr(a + 1, b - a - 1)),
                           ") is alive");
  }
  seen.incarnation = incarnation;
  seen.dead = false;
  seen.region = std::string(data.substr(a + 1, b - a - 1));
  seen.last = std::chrono::steady_clock::now();
}

std::vector<std::string> ClusterMembership::LiveIds() const {
  std::vector<std::string> ids;
  if (connection_->connected()) ids.push_back(options_.node_id);
  for (const auto& [id, seen] : nodes_) {
    if (!seen.dead) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<NodeInfo> ClusterMembership::Nodes() const {
  std::lock_guard lock(mu_);
  std::vector<NodeInfo> out;
  auto now = std::chrono::steady_clock::now();
  if (connection_->connected()) out.push_back({options_.node_id, options_.region, incarnation_, {}});
  for (const auto& [id, seen] : nodes_) {
    if (seen.dead) continue;
    out.push_back({id, seen.region, seen.incarnation,
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - seen.last)});
  }
  return out;
}

std::string ClusterMembership::OwnerAmong(const std::vector<std::string>& nodes,
                                          const std::string& key) {
  std::string best;
  uint64_t best_score = 0;
  for (const auto& n : nodes) {
    uint64_t score = Fnv1a(n + "\n" + key);
    if (best.empty() || score > best_score || (score == best_score && n < best)) {
      best = n;
      best_score = score;
    }
  }
  return best;
}

bool ClusterMembership::IsOwner(const std::string& hub) const {
  if (!connection_->connected()) return false;
  std::lock_guard lock(mu_);
  return OwnerAmong(LiveIds(), hub) == options_.node_id;
}

void ClusterMembership::Run() {
  const std::string beat = options_.node_id + "\t" + options_.region + "\t" +
                           std::to_string(incarnation_);
  std::unique_lock lock(mu_);
  bool was_connected = false;
  while (!stopping_) {
    bool connected = connection_->connected();
    lock.unlock();
    connection_->Publish(kHeartbeatSubject, beat);
    lock.lock();
    auto now = std::chrono::steady_clock::now();
    if (connected && !was_connected) {
      // Back on the network: silence seen while this node was cut off proves nothing.
      for (auto& [id, seen] : nodes_) seen.last = now;
    }
    was_connected = connected;
    std::vector<std::pair<std::string, uint64_t>> died;
    for (auto& [id, seen] : nodes_) {
      if (connected && !seen.dead && now - seen.last > options_.node_timeout) {
        seen.dead = true;
        died.emplace_back(id, seen.incarnation);
      }
    }
    if (!died.empty()) {
      // Decided after marking every death of this round: the reporter is the smallest live id.
      std::vector<std::string> live = LiveIds();
      bool report = !live.empty() && live.front() == options_.node_id;
      lock.unlock();
      for (const auto& [id, incarnation] : died) {
        Logger("cluster").Warn("node ", id, " is silent for over ",
                               options_.node_timeout.count(), " ms: dead",
                               report ? "; this node reports it" : "");
        if (on_death_) on_death_(id, incarnation, report);
      }
      lock.lock();
    }
    cv_.wait_for(lock, options_.heartbeat_interval, [&] { return stopping_; });
  }
}

}  // namespace hubcast::replication
