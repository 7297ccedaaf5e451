// Admin: what the admin listener (`--admin-bind`, server/admin_server.h) serves, apart from
// the client port:
//   GET /metrics            Prometheus text exposition (format 0.0.4) of base/metrics.h's
//                           counters plus the state gauges read at scrape (store, replay
//                           log, cluster). No key: keep the listener on loopback or behind
//                           the scraper's network policy.
//   GET /healthz            liveness: 200 while the process serves.
//   GET /readyz             readiness: 200 when the store is open, every hub is caught up
//                           with its log and, in a cluster, NATS is connected; else 503 and
//                           the reason.
//   GET /dashboard          the live dashboard (one page from the binary, no external file).
//   GET /dashboard/events   its Server-Sent Events: `status` once a second (the JSON of
//                           StatusJson) and, with ?hub=H, `trace` events of that hub
//                           (server/live_trace.h).
//   GET /status             StatusJson, once.
// The dashboard's events and /status need an access token signed with one of the access
// keys (the REST keys) whose audience path is /dashboard, as ?access_token= or
// `Authorization: Bearer`; the page signs one in the browser from a pasted connection string.
//
// A sampler thread reads the metrics once a second: message rates per hub and the history of
// the last kHistorySeconds for the dashboard's chart.
//
// Thread-safety: Start and Stop from the control thread; requests on the listener's threads.
#pragma once

#include "base/status.h"
#include "replication/cluster.h"
#include "replication/hub.h"
#include "rest/http_message.h"
#include "server/admin_server.h"
#include "server/live_trace.h"
#include "storage/store.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::server {

struct AdminOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::vector<std::string> access_keys;
  std::string node_id;
  std::string region;
};

// What the admin pages read; every pointer outlives the Admin. Cluster parts are null on a
// single node.
struct AdminSources {
  replication::HubRegistry* registry = nullptr;
  storage::Store* store = nullptr;
  LiveTrace* trace = nullptr;
  replication::NatsConnection* nats = nullptr;
  replication::ClusterMembership* membership = nullptr;
};

class Admin {
 public:
  static constexpr int kHistorySeconds = 300;
  // A hub whose consumer is further behind its log than this is not caught up (/readyz).
  static constexpr uint64_t kReadyLag = 1000;

  Admin(AdminOptions options, AdminSources sources);
  ~Admin();  // Stop()

  // Listens and starts the sampler; the bound port.
  Result<int> Start();
  void Stop();
  // After start-up finished (the hubs are loaded, the client port listens) and before
  // shutdown begins: what /readyz needs besides the store and NATS.
  void SetServing(bool serving) { serving_.store(serving, std::memory_order_release); }

  // The parts, for tests and for the client port's status route.
  std::string MetricsText() const;
  std::string StatusJson() const;
  bool Ready(std::string* why) const;
  AdminAnswer Handle(const rest::HttpRequest& request);
  // GET /api/status on the client port (`hubcast status`): StatusJson for a REST bearer
  // token (signed with an access key, audience the request URL), else 401.
  rest::HttpResponse HandleClientStatus(const rest::HttpRequest& request) const;

 private:
  struct HubSample {
    std::string name;
    int64_t received = 0, delivered = 0;
    double received_rate = 0, delivered_rate = 0;
  };
  struct Sample {
    int64_t unix_ms = 0;
    double received_rate = 0, delivered_rate = 0;
  };
  void RunSampler();
  // A valid token (query access_token or bearer) whose audience path is `path`.
  Status Authorize(const rest::HttpRequest& request, std::string_view path) const;
  void StreamEvents(AdminStream& stream, const std::string& hub);

  const AdminOptions options_;
  const AdminSources sources_;
  AdminServer server_;
  std::atomic<bool> serving_{false};
  const int64_t started_ms_;

  mutable std::mutex mu_;
  std::condition_variable sampled_cv_;
  bool stopping_ = false;
  uint64_t samples_ = 0;
  std::vector<HubSample> hubs_;  // the last sample, by hub
  std::deque<Sample> history_;
  std::thread sampler_;
};

// The dashboard page (server/dashboard_page.cc).
extern const char* const kDashboardPage;

}  // namespace hubcast::server
