#include "server/admin.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/metrics.h"
#include "rest/jwt.h"
#include "server/server_metrics.h"

#include <Poco/URI.h>

#include <charconv>
#include <map>

namespace hubcast::server {
namespace {

// Every family /metrics exposes, with its type and help (README, "Metrics").
struct Family {
  const char* name;
  const char* type;
  const char* help;
};
constexpr Family kFamilies[] = {
    {"hubcast_connections", "gauge",
     "Client connections this node serves (held reliable sessions included), by hub and "
     "subprotocol."},
    {"hubcast_connections_opened_total", "counter", "Client connections opened on this node."},
    {"hubcast_messages_received_total", "counter",
     "Messages received: WebSocket data messages from clients and accepted REST sends."},
    {"hubcast_messages_delivered_total", "counter",
     "Messages handed to this node's client sockets (one per recipient)."},
    {"hubcast_deliveries_dropped_total", "counter",
     "Deliveries that reached no socket: slow_consumer (cut off for not reading), closed "
     "(the connection was gone), forbidden (a send the sender had no permission for)."},
    {"hubcast_bytes_received_total", "counter", "WebSocket bytes read from clients."},
    {"hubcast_bytes_sent_total", "counter", "WebSocket bytes written to clients."},
    {"hubcast_append_seconds", "histogram", "Time from an append to its durability in the log."},
    {"hubcast_apply_seconds", "histogram", "Time to apply one entry to the hub's view."},
    {"hubcast_replay_log_bytes", "gauge", "Bytes of each hub's replay log kept on this node."},
    {"hubcast_reliable_sessions_held", "gauge",
     "Reliable sessions waiting for their client to recover (no socket)."},
    {"hubcast_upstream_calls_total", "counter",
     "Event-handler calls by event and HTTP status (timeout, error: no answer)."},
    {"hubcast_upstream_call_seconds", "histogram", "Event-handler call latency, retries included."},
    {"hubcast_rest_requests_total", "counter", "REST API requests by operation and status."},
    {"hubcast_rest_request_seconds", "histogram", "REST API request latency by operation."},
    {"hubcast_hubs", "gauge", "Hubs this node serves."},
    {"hubcast_store_open", "gauge", "1 while the RocksDB store is open."},
    {"hubcast_rocksdb_bytes", "gauge", "RocksDB sizes by kind (live data, SST files, memtables)."},
    {"hubcast_rocksdb_pending_compaction_bytes", "gauge", "RocksDB estimated compaction debt."},
    {"hubcast_rocksdb_background_errors", "gauge", "RocksDB background errors since start."},
    {"hubcast_ready", "gauge", "1 when /readyz answers 200."},
    {"hubcast_nats_connected", "gauge", "Cluster: 1 while connected to NATS."},
    {"hubcast_nats_consumer_lag", "gauge",
     "Cluster: entries of a hub's log not yet handed to this node."},
    {"hubcast_cluster_nodes", "gauge", "Cluster: live nodes, this one included, by region."},
};

std::string Number(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "0";
}

void WriteSample(std::string& out, std::string_view name, std::string_view labels,
                 std::string_view value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(value).append("\n");
}

void Histogram(std::string& out, std::string_view name, std::string_view labels,
               const metrics::HistogramValue& h) {
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i <= metrics::kLatencyBuckets.size(); ++i) {
    cumulative += h.buckets[i];
    std::string le = i < metrics::kLatencyBuckets.size() ? Number(metrics::kLatencyBuckets[i])
                                                         : std::string("+Inf");
    WriteSample(out, std::string(name) + "_bucket", std::string(labels) + sep + "le=\"" + le + "\"",
                std::to_string(cumulative));
  }
  WriteSample(out, std::string(name) + "_sum", labels, Number(h.sum));
  WriteSample(out, std::string(name) + "_count", labels, std::to_string(h.count));
}

std::string QueryParam(const std::string& target, const std::string& name) {
  try {
    for (const auto& [k, v] : Poco::URI(target).getQueryParameters()) {
      if (k == name) return v;
    }
  } catch (const std::exception&) {
    // A target POCO cannot parse has no usable parameter.
  }
  return {};
}

rest::HttpResponse Text(int status, std::string content_type, std::string body) {
  rest::HttpResponse r;
  r.status = status;
  r.headers.Set("Content-Type", std::move(content_type));
  r.headers.Set("Cache-Control", "no-store");
  r.body = std::move(body);
  return r;
}

// Groups of a hub, counted up to a bound (the dashboard shows "10000+").
constexpr size_t kMaxCountedGroups = 10000;

}  // namespace

Admin::Admin(AdminOptions options, AdminSources sources)
    : options_(std::move(options)),
      sources_(sources),
      server_([this](const rest::HttpRequest& r) { return Handle(r); }),
      started_ms_(SystemClock::Get().NowUnixMs()) {}

Admin::~Admin() { Stop(); }

Result<int> Admin::Start() {
  auto port = server_.Start(options_.host, options_.port);
  if (!port.ok()) return port;
  sampler_ = std::thread([this] { RunSampler(); });
  return port;
}

void Admin::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  sampled_cv_.notify_all();
  server_.Stop();
  if (sampler_.joinable()) sampler_.join();
}

bool Admin::Ready(std::string* why) const {
  if (!serving_.load(std::memory_order_acquire)) {
    *why = "starting or stopping";
    return false;
  }
  if (!sources_.store) {
    *why = "no store";
    return false;
  }
  if (sources_.nats && !sources_.nats->connected()) {
    *why = "not connected to NATS";
    return false;
  }
  for (const auto& hub : sources_.registry->AllHubs()) {
    if (auto lag = hub->consumer_lag(); lag && *lag > kReadyLag) {
      *why = "hub " + hub->name().str() + " is catching up (" + std::to_string(*lag) +
             " entries behind)";
      return false;
    }
  }
  return true;
}

std::string Admin::MetricsText() const {
  metrics::Snapshot snap = metrics::Collect();
  // State gauges, read now.
  auto& series = snap.series;
  auto hubs = sources_.registry->AllHubs();
  series["hubcast_hubs"][""] = static_cast<int64_t>(hubs.size());
  for (const auto& hub : hubs) {
    const std::string label = metrics::Label("hub", hub->name().str());
    if (sources_.store) {
      series["hubcast_replay_log_bytes"][label] =
          static_cast<int64_t>(sources_.store->LogBytes(hub->name().str()));
    }
    if (auto lag = hub->consumer_lag()) {
      series["hubcast_nats_consumer_lag"][label] = static_cast<int64_t>(*lag);
    }
  }
  for (const char* reason : {"slow_consumer", "closed", "forbidden"}) {
    series["hubcast_deliveries_dropped_total"][metrics::Label("reason", reason)] += 0;
  }
  series["hubcast_reliable_sessions_held"][""] += 0;
  series["hubcast_bytes_received_total"][""] =
      static_cast<int64_t>(snap.counters[static_cast<size_t>(metrics::Counter::kBytesIn)]);
  series["hubcast_bytes_sent_total"][""] =
      static_cast<int64_t>(snap.counters[static_cast<size_t>(metrics::Counter::kBytesOut)]);
  series["hubcast_store_open"][""] = sources_.store ? 1 : 0;
  if (sources_.store) {
    for (const auto& [name, value] : sources_.store->EngineStats()) {
      const auto v = static_cast<int64_t>(value);
      if (name == "pending_compaction_bytes") {
        series["hubcast_rocksdb_pending_compaction_bytes"][""] = v;
      } else if (name == "background_errors") {
        series["hubcast_rocksdb_background_errors"][""] = v;
      } else {
        std::string kind = name.substr(0, name.size() - sizeof("_bytes") + 1);
        series["hubcast_rocksdb_bytes"][metrics::Label("kind", kind)] = v;
      }
    }
  }
  std::string why;
  series["hubcast_ready"][""] = Ready(&why) ? 1 : 0;
  if (sources_.nats) series["hubcast_nats_connected"][""] = sources_.nats->connected() ? 1 : 0;
  if (sources_.membership) {
    std::map<std::string, int64_t> by_region;
    for (const auto& n : sources_.membership->Nodes()) by_region[n.region]++;
    for (const auto& [region, n] : by_region) {
      series["hubcast_cluster_nodes"][metrics::Label("region", region)] = n;
    }
  }
  // Gauges of connections that left every label set at 0 are dropped, not shown as 0.
  if (auto it = series.find("hubcast_connections"); it != series.end()) {
    std::erase_if(it->second, [](const auto& kv) { return kv.second == 0; });
  }
  series["hubcast_append_seconds"];  // families without a sample still get HELP and TYPE
  std::string out;
  for (const Family& f : kFamilies) {
    out.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n");
    out.append("# TYPE ").append(f.name).append(" ").append(f.type).append("\n");
    if (std::string_view(f.type) == "histogram") {
      if (auto h = snap.histograms.find(f.name); h != snap.histograms.end()) {
        for (const auto& [labels, value] : h->second) Histogram(out, f.name, labels, value);
      }
      continue;
    }
    if (auto s = series.find(f.name); s != series.end()) {
      for (const auto& [labels, value] : s->second) {
        WriteSample(out, f.name, labels, std::to_string(value));
      }
    }
  }
  return out;
}

std::string Admin::StatusJson() const {
  using json::Value;
  metrics::Snapshot snap = metrics::Collect();
  std::string why;
  const bool ready = Ready(&why);
  Value node = Value::Object();
  node.Add("id", Value::String(options_.node_id));
  node.Add("region", Value::String(options_.region));
  node.Add("clustered", Value::Bool(sources_.nats != nullptr));
  if (sources_.nats) node.Add("natsConnected", Value::Bool(sources_.nats->connected()));
  node.Add("ready", Value::Bool(ready));
  if (!ready) node.Add("notReady", Value::String(why));
  node.Add("uptimeSeconds", Value::Int((SystemClock::Get().NowUnixMs() - started_ms_) / 1000));

  // Local connections by hub, from the gauge.
  std::map<std::string, int64_t> local;
  if (auto it = snap.series.find(metric::kConnections); it != snap.series.end()) {
    for (const auto& [labels, n] : it->second) {
      // labels: hub="...",subprotocol="..."; the hub value is the first quoted string.
      size_t a = labels.find('"'), b = labels.find("\",subprotocol=");
      if (a != std::string::npos && b != std::string::npos)
        local[labels.substr(a + 1, b - a - 1)] += n;
    }
  }
  std::map<std::string, HubSample> rates;
  {
    std::lock_guard lock(mu_);
    for (const auto& h : hubs_) rates[h.name] = h;
  }
  Value hubs = Value::Array();
  int64_t total_local = 0;
  for (const auto& hub : sources_.registry->AllHubs()) {
    const std::string& name = hub->name().str();
    const storage::HubView& view = hub->view();
    Value h = Value::Object();
    h.Add("name", Value::String(name));
    h.Add("connections", Value::Int(static_cast<int64_t>(view.connection_count())));
    h.Add("localConnections", Value::Int(local[name]));
    total_local += local[name];
    size_t groups = view.ListGroups("", kMaxCountedGroups + 1).size();
    h.Add("groups", Value::Int(static_cast<int64_t>(std::min(groups, kMaxCountedGroups))));
    h.Add("groupsCapped", Value::Bool(groups > kMaxCountedGroups));
    const std::string label = metrics::Label("hub", name);
    h.Add("received", Value::Int(snap.Get(metric::kMessagesReceived, label + ",source=\"client\"") +
                                 snap.Get(metric::kMessagesReceived, label + ",source=\"rest\"")));
    h.Add("delivered", Value::Int(snap.Get(metric::kMessagesDelivered, label)));
    h.Add("receivedPerSecond", Value::Number(Number(rates[name].received_rate)));
    h.Add("deliveredPerSecond", Value::Number(Number(rates[name].delivered_rate)));
    h.Add("appliedPosition", Value::Int(static_cast<int64_t>(hub->applied_position())));
    if (sources_.store) {
      h.Add("replayLogBytes", Value::Int(static_cast<int64_t>(sources_.store->LogBytes(name))));
    }
    if (auto lag = hub->consumer_lag()) h.Add("lag", Value::Int(static_cast<int64_t>(*lag)));
    hubs.items().push_back(std::move(h));
  }
  Value totals = Value::Object();
  totals.Add("localConnections", Value::Int(total_local));
  totals.Add("received", Value::Int(snap.Total(metric::kMessagesReceived)));
  totals.Add("delivered", Value::Int(snap.Total(metric::kMessagesDelivered)));
  Value dropped = Value::Object();
  if (auto it = snap.series.find(metric::kDropped); it != snap.series.end()) {
    for (const auto& [labels, n] : it->second) {
      std::string reason = labels.substr(sizeof("reason=\"") - 1);
      if (!reason.empty()) reason.pop_back();
      dropped.Add(reason, Value::Int(n));
    }
  }
  totals.Add("dropped", std::move(dropped));

  Value nodes = Value::Array();
  if (sources_.membership) {
    for (const auto& n : sources_.membership->Nodes()) {
      Value v = Value::Object();
      v.Add("id", Value::String(n.node_id));
      v.Add("region", Value::String(n.region));
      v.Add("self", Value::Bool(n.node_id == options_.node_id));
      v.Add("heartbeatAgeMs", Value::Int(n.silent_for.count()));
      if (n.lag) v.Add("lag", Value::Int(static_cast<int64_t>(*n.lag)));
      nodes.items().push_back(std::move(v));
    }
  } else {
    Value v = Value::Object();
    v.Add("id", Value::String(options_.node_id));
    v.Add("region", Value::String(options_.region));
    v.Add("self", Value::Bool(true));
    v.Add("heartbeatAgeMs", Value::Int(0));
    nodes.items().push_back(std::move(v));
  }

  Value upstream = Value::Object();
  Value calls = Value::Array();
  if (auto it = snap.series.find(metric::kUpstreamCalls); it != snap.series.end()) {
    for (const auto& [labels, n] : it->second) {
      Value c = Value::Object();
      c.Add("labels", Value::String(labels));
      c.Add("count", Value::Int(n));
      calls.items().push_back(std::move(c));
    }
  }
  upstream.Add("calls", std::move(calls));
  metric::UpstreamFailure failure = metric::LastUpstreamFailure();
  if (failure.unix_ms != 0) {
    Value f = Value::Object();
    f.Add("time", Value::Int(failure.unix_ms));
    f.Add("event", Value::String(failure.event));
    f.Add("hub", Value::String(failure.hub));
    f.Add("error", Value::String(failure.error));
    upstream.Add("lastFailure", std::move(f));
  }

  Value history = Value::Array();
  {
    std::lock_guard lock(mu_);
    for (const auto& s : history_) {
      Value p = Value::Object();
      p.Add("t", Value::Int(s.unix_ms));
      p.Add("received", Value::Number(Number(s.received_rate)));
      p.Add("delivered", Value::Number(Number(s.delivered_rate)));
      history.items().push_back(std::move(p));
    }
  }
  Value root = Value::Object();
  root.Add("node", std::move(node));
  root.Add("totals", std::move(totals));
  root.Add("hubs", std::move(hubs));
  root.Add("nodes", std::move(nodes));
  root.Add("upstream", std::move(upstream));
  root.Add("history", std::move(history));
  return json::Serialize(root);
}

void Admin::RunSampler() {
  std::map<std::string, std::pair<int64_t, int64_t>> last;  // hub -> (received, delivered)
  int64_t last_ns = metrics::NowNs();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    sampled_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    metrics::Snapshot snap = metrics::Collect();
    const int64_t now_ns = metrics::NowNs();
    const double seconds = std::max(1e-3, static_cast<double>(now_ns - last_ns) / 1e9);
    last_ns = now_ns;
    std::map<std::string, std::pair<int64_t, int64_t>> now;
    auto hub_of = [](const std::string& labels) {
      size_t a = labels.find('"'), b = labels.find('"', a + 1);
      std::string raw = labels.substr(a + 1, b - a - 1);
      return raw;  // hub names never need escaping (letters, digits, _`,.[])
    };
    if (auto it = snap.series.find(metric::kMessagesReceived); it != snap.series.end()) {
      for (const auto& [labels, n] : it->second) now[hub_of(labels)].first += n;
    }
    if (auto it = snap.series.find(metric::kMessagesDelivered); it != snap.series.end()) {
      for (const auto& [labels, n] : it->second) now[hub_of(labels)].second += n;
    }
    std::vector<HubSample> hubs;
    Sample total;
    total.unix_ms = SystemClock::Get().NowUnixMs();
    for (const auto& [hub, counts] : now) {
      auto before = last.count(hub) ? last[hub] : counts;  // a new hub starts at its count
      HubSample h;
      h.name = hub;
      h.received = counts.first;
      h.delivered = counts.second;
      h.received_rate = static_cast<double>(counts.first - before.first) / seconds;
      h.delivered_rate = static_cast<double>(counts.second - before.second) / seconds;
      total.received_rate += h.received_rate;
      total.delivered_rate += h.delivered_rate;
      hubs.push_back(std::move(h));
    }
    last = std::move(now);
    lock.lock();
    hubs_ = std::move(hubs);
    history_.push_back(total);
    while (history_.size() > static_cast<size_t>(kHistorySeconds)) history_.pop_front();
    ++samples_;
    sampled_cv_.notify_all();
  }
}

Status Admin::Authorize(const rest::HttpRequest& request, std::string_view path) const {
  std::string token = QueryParam(request.target, "access_token");
  if (token.empty()) {
    std::string auth = request.headers.Get("Authorization");
    if (StartsWithIgnoreCase(auth, "Bearer ")) token = std::string(Trim(auth.substr(7)));
  }
  if (token.empty()) {
    return Status::Unauthorized("An access token signed with an access key is required.");
  }
  auto claims =
      rest::VerifyToken(token, options_.access_keys, SystemClock::Get().NowUnixMs() / 1000);
  if (!claims.ok()) return claims.status();
  for (const std::string& audience : claims->audiences) {
    if (rest::AudiencePathMatches(audience, path)) return Status::Ok();
  }
  return Status::Unauthorized("The access token's audience does not match " + std::string(path) +
                              ".");
}

rest::HttpResponse Admin::HandleClientStatus(const rest::HttpRequest& request) const {
  if (request.method != "GET") {
    rest::HttpResponse r = rest::ErrorResponse(405, "MethodNotAllowed", "Only GET.");
    r.headers.Set("Allow", "GET");
    return r;
  }
  if (Status s = Authorize(request, "/api/status"); !s.ok()) {
    return rest::ErrorResponse(401, "Unauthorized", s.message());
  }
  return Text(200, "application/json", StatusJson());
}

void Admin::StreamEvents(AdminStream& stream, const std::string& hub) {
  std::shared_ptr<LiveTrace::Watcher> watcher;
  if (!hub.empty() && sources_.trace) watcher = sources_.trace->Watch(hub);
  // Tells the page at once that the stream is up (and which hub it traces).
  std::string hello = "event: hello\ndata: {\"hub\":";
  json::AppendQuoted(hello, hub);
  hello += "}\n\n";
  if (!stream.Write(hello)) return;
  uint64_t seen = 0;
  auto send_status = [&] { return stream.Write("event: status\ndata: " + StatusJson() + "\n\n"); };
  if (!send_status()) return;
  while (!stream.stopping()) {
    bool fresh = false;
    {
      std::unique_lock lock(mu_);
      if (seen == 0) seen = samples_;
      if (!watcher) {
        sampled_cv_.wait_for(lock, std::chrono::seconds(2),
                             [&] { return stopping_ || samples_ != seen; });
      }
      if (stopping_) return;
      fresh = samples_ != seen;
      seen = samples_;
    }
    if (fresh && !send_status()) return;
    if (!fresh && !watcher && !stream.Write(": idle\n\n")) return;  // notices a gone client
    if (watcher) {
      // Trace events as they come, for up to a quarter second before the next status check.
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
      while (std::chrono::steady_clock::now() < until) {
        auto ev = watcher->Next(std::chrono::milliseconds(100));
        if (!ev) continue;
        if (!stream.Write("event: trace\ndata: " + *ev + "\n\n")) return;
      }
    }
  }
}

AdminAnswer Admin::Handle(const rest::HttpRequest& request) {
  AdminAnswer answer;
  const std::string path = request.target.substr(0, request.target.find('?'));
  if (request.method != "GET" && request.method != "HEAD") {
    answer.response = rest::ErrorResponse(405, "MethodNotAllowed", "Only GET and HEAD.");
    answer.response.headers.Set("Allow", "GET, HEAD");
    return answer;
  }
  if (path == "/metrics") {
    answer.response = Text(200, "text/plain; version=0.0.4; charset=utf-8", MetricsText());
  } else if (path == "/healthz") {
    answer.response = Text(200, "text/plain; charset=utf-8", "ok\n");
  } else if (path == "/readyz") {
    std::string why;
    answer.response = Ready(&why)
                          ? Text(200, "text/plain; charset=utf-8", "ready\n")
                          : Text(503, "text/plain; charset=utf-8", "not ready: " + why + "\n");
  } else if (path == "/dashboard" || path == "/dashboard/") {
    answer.response = Text(200, "text/html; charset=utf-8", kDashboardPage);
    answer.response.headers.Set("Content-Security-Policy",
                                "default-src 'self'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; img-src 'self' data:");
  } else if (path == "/dashboard/events" || path == "/status") {
    if (Status s = Authorize(request, "/dashboard"); !s.ok()) {
      answer.response = rest::ErrorResponse(401, "Unauthorized", s.message());
      return answer;
    }
    if (path == "/status") {
      answer.response = Text(200, "application/json", StatusJson());
      return answer;
    }
    answer.response = Text(200, "text/event-stream", "");
    std::string hub = QueryParam(request.target, "hub");
    if (auto name = HubName::Parse(hub); name.ok()) hub = name->str();
    answer.stream = [this, hub](AdminStream& stream) { StreamEvents(stream, hub); };
  } else {
    answer.response = rest::ErrorResponse(404, "NotFound", "No admin route " + path);
  }
  return answer;
}

}  // namespace hubcast::server
