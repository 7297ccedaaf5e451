#include "server/server_metrics.h"

#include "base/clock.h"
#include "base/names.h"

#include <atomic>
#include <mutex>

namespace hubcast::server::metric {
namespace {

std::string HubLabel(const std::string& hub) { return metrics::Label("hub", hub); }

std::mutex g_failure_mu;
UpstreamFailure g_failure;

// "azure.webpubsub.sys.connect" -> "connect"; user events -> "user" (their names are the
// clients' choice: not a label).
std::string EventLabel(const rest::UpstreamRequest& r) {
  constexpr std::string_view kSys = "azure.webpubsub.sys.";
  std::string_view t = r.ce_type;
  if (t.rfind(kSys, 0) == 0) return std::string(t.substr(kSys.size()));
  if (t.rfind("azure.webpubsub.gp.", 0) == 0) return "gp." + r.event_name;
  return "user";
}

class MeteredUpstream : public rest::UpstreamClient {
 public:
  explicit MeteredUpstream(std::unique_ptr<rest::UpstreamClient> inner)
      : inner_(std::move(inner)) {}

  void Call(rest::UpstreamRequest request,
            std::function<void(rest::UpstreamResponse)> done) override {
    std::string event = EventLabel(request);
    std::string hub = request.hub;
    int64_t start = metrics::NowNs();
    inner_->Call(std::move(request), [event = std::move(event), hub = std::move(hub), start,
                                      done = std::move(done)](rest::UpstreamResponse r) {
      std::string status = r.status != 0 ? std::to_string(r.status)
                           : r.timed_out ? "timeout"
                                         : "error";
      std::string ev = metrics::Label("event", event);
      metrics::Count(kUpstreamCalls, ev + "," + metrics::Label("status", status));
      metrics::Observe(kUpstreamSeconds, ev, metrics::SecondsSince(start));
      if (!r.ok()) {
        std::lock_guard lock(g_failure_mu);
        g_failure = {SystemClock::Get().NowUnixMs(), event, hub,
                     r.status != 0 ? "HTTP " + status : r.error};
      }
      if (done) done(std::move(r));
    });
  }
  void ResetValidations() override { inner_->ResetValidations(); }
  bool Drain(std::chrono::milliseconds limit) override { return inner_->Drain(limit); }
  void Shutdown() override { inner_->Shutdown(); }

 private:
  std::unique_ptr<rest::UpstreamClient> inner_;
};

}  // namespace

const char* ProtocolLabel(ClientProtocol p) {
  switch (p) {
    case ClientProtocol::kRaw:
      return "none";
    case ClientProtocol::kJson:
      return kJsonProtocol;
    case ClientProtocol::kJsonReliable:
      return kJsonReliableProtocol;
    case ClientProtocol::kProtobuf:
      return kProtobufProtocol;
    case ClientProtocol::kProtobufReliable:
      return kProtobufReliableProtocol;
  }
  return "unknown";
}

void CountConnection(const std::string& hub, ClientProtocol p, int delta) {
  metrics::Count(kConnections,
                 HubLabel(hub) + "," + metrics::Label("subprotocol", ProtocolLabel(p)), delta);
  if (delta > 0) metrics::Count(kConnectionsOpened, HubLabel(hub), delta);
}

void CountReceived(const std::string& hub) {
  metrics::Count(kMessagesReceived, HubLabel(hub) + ",source=\"client\"");
}

void CountDelivered(const std::string& hub, int64_t n) {
  if (n > 0) metrics::Count(kMessagesDelivered, HubLabel(hub), n);
}

void CountDropped(const char* reason, int64_t n) {
  if (n > 0) metrics::Count(kDropped, metrics::Label("reason", reason), n);
}

std::string RestOperation(const rest::HttpRequest& request) {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  std::string out = request.method + " ";
  std::string_view placeholder;  // what the next segment names, after a collection word
  int segments = 0;
  while (!path.empty() && segments < 10) {
    if (path.front() == '/') path.remove_prefix(1);
    size_t end = path.find('/');
    std::string_view seg = path.substr(0, end);
    path = end == std::string_view::npos ? std::string_view() : path.substr(end);
    ++segments;
    out += '/';
    if (!placeholder.empty() && !seg.empty() && seg.front() != ':') {
      out.append(placeholder);
      placeholder = {};
      continue;
    }
    placeholder = {};
    if (seg == "hubs") placeholder = "{hub}";
    if (seg == "groups") placeholder = "{group}";
    if (seg == "users") placeholder = "{user}";
    if (seg == "connections") placeholder = "{connection}";
    if (seg == "permissions") placeholder = "{permission}";
    if (!placeholder.empty() || seg == "api" || seg == "health" || seg.front() == ':') {
      out.append(seg.size() > 32 ? seg.substr(0, 32) : seg);
    } else {
      out += "{other}";  // unknown words would make unbounded label values
    }
  }
  return out;
}

void CountRest(const rest::HttpRequest& request, const rest::HttpResponse& response,
               int64_t start_ns) {
  std::string op = metrics::Label("operation", RestOperation(request));
  metrics::Count(kRestRequests,
                 op + "," + metrics::Label("status", std::to_string(response.status)));
  metrics::Observe(kRestSeconds, op, metrics::SecondsSince(start_ns));
  // A send the service accepted is a message it received (from the app server).
  std::string_view target = request.target;
  target = target.substr(0, target.find('?'));
  constexpr std::string_view kHubs = "/api/hubs/";
  if (response.status == 202 && target.rfind(kHubs, 0) == 0 && target.ends_with("/:send")) {
    std::string_view rest = target.substr(kHubs.size());
    if (auto hub = HubName::Parse(rest.substr(0, rest.find('/'))); hub.ok()) {
      metrics::Count(kMessagesReceived, HubLabel(hub->str()) + ",source=\"rest\"");
    }
  }
}

std::unique_ptr<rest::UpstreamClient> MeterUpstream(std::unique_ptr<rest::UpstreamClient> inner) {
  return std::make_unique<MeteredUpstream>(std::move(inner));
}

UpstreamFailure LastUpstreamFailure() {
  std::lock_guard lock(g_failure_mu);
  return g_failure;
}

}  // namespace hubcast::server::metric
