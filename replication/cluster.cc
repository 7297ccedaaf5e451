#include "replication/cluster.h"

#include "base/log.h"
#include "base/random.h"

#include <algorithm>

namespace hubcast::replication {
namespace {

constexpr const char* kHeartbeatSubject = "hubcast.nodes.heartbeat";

// FNV-1a: stable across processes and builds (std::hash is not), so every node computes the
// same owner.
// FNV-1a, then a 64-bit finalizer: FNV alone leaves the high bits of keys that differ only in
// their last bytes too alike for rendezvous hashing (one node of four owned half the hubs).
uint64_t Score(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

ClusterMembership::ClusterMembership(NatsConnection* connection, ClusterOptions options)
    : connection_(connection), options_(std::move(options)), incarnation_(RandomU64() | 1) {}

ClusterMembership::~ClusterMembership() { Stop(); }

Status ClusterMembership::Start() {
  Status s = connection_->Subscribe(
      kHeartbeatSubject, [this](std::string_view, std::string_view d) { OnHeartbeat(d); });
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

// Heartbeat: "node_id \t region \t incarnation [\t lag]". Nodes of older versions send no lag;
// they read the incarnation up to the tab and ignore the rest.
std::string ClusterMembership::Heartbeat() const {
  std::string beat =
      options_.node_id + "\t" + options_.region + "\t" + std::to_string(incarnation_);
  if (own_lag_) beat += "\t" + std::to_string(*own_lag_);
  return beat;
}

void ClusterMembership::OnHeartbeat(std::string_view data) {
  size_t a = data.find('\t');
  size_t b = a == std::string_view::npos ? a : data.find('\t', a + 1);
  if (b == std::string_view::npos || a == 0 || a > 256) return;
  std::string id(data.substr(0, a));
  if (id == options_.node_id) return;
  std::string_view rest = data.substr(b + 1);
  size_t c = rest.find('\t');
  uint64_t incarnation = std::strtoull(std::string(rest.substr(0, c)).c_str(), nullptr, 10);
  std::optional<uint64_t> lag;
  if (c != std::string_view::npos) {
    std::string text(rest.substr(c + 1));
    char* end = nullptr;
    uint64_t n = std::strtoull(text.c_str(), &end, 10);
    if (!text.empty() && end == text.c_str() + text.size()) lag = n;
  }
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
  seen.lag = lag;
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
  if (connection_->connected())
    out.push_back({options_.node_id, options_.region, incarnation_, {}, own_lag_});
  for (const auto& [id, seen] : nodes_) {
    if (seen.dead) continue;
    out.push_back({id, seen.region, seen.incarnation,
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - seen.last),
                   seen.lag});
  }
  return out;
}

std::string ClusterMembership::OwnerAmong(const std::vector<std::string>& nodes,
                                          const std::string& key) {
  std::string best;
  uint64_t best_score = 0;
  for (const auto& n : nodes) {
    uint64_t score = Score(n + "\n" + key);
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

bool ClusterMembership::IsDead(const std::string& node) const {
  if (node == options_.node_id || !connection_->connected()) return false;
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it != nodes_.end()) return it->second.dead;
  return listening_since_ &&
         std::chrono::steady_clock::now() - *listening_since_ > options_.node_timeout;
}

void ClusterMembership::Run() {
  std::unique_lock lock(mu_);
  bool was_connected = false;
  while (!stopping_) {
    bool connected = connection_->connected();
    lock.unlock();
    std::optional<uint64_t> lag;
    if (options_.lag) lag = options_.lag();
    lock.lock();
    own_lag_ = lag;
    const std::string beat = Heartbeat();
    lock.unlock();
    connection_->Publish(kHeartbeatSubject, beat);
    lock.lock();
    auto now = std::chrono::steady_clock::now();
    if (connected && !was_connected) {
      // Back on the network: silence seen while this node was cut off proves nothing.
      for (auto& [id, seen] : nodes_) seen.last = now;
      listening_since_ = now;
    }
    if (!connected) listening_since_.reset();
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
        Logger("cluster").Warn("node ", id, " is silent for over ", options_.node_timeout.count(),
                               " ms: dead", report ? "; this node reports it" : "");
        if (on_death_) on_death_(id, incarnation, report);
      }
      lock.lock();
    }
    cv_.wait_for(lock, options_.heartbeat_interval, [&] { return stopping_; });
  }
}

}  // namespace hubcast::replication
