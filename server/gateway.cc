#include "server/gateway.h"

#include "base/log.h"

namespace hubcast::server {

namespace {

bool IsClientTarget(std::string_view target) {
  return target.rfind("/client/", 0) == 0 || target == "/client" ||
         target.rfind("/client?", 0) == 0;
}

bool IsApiTarget(std::string_view target) {
  return target.rfind("/api/", 0) == 0 || target == "/api" || target.rfind("/api?", 0) == 0;
}

}  // namespace

void Gateway::Route(const std::shared_ptr<HttpExchange>& exchange) {
  const rest::HttpRequest& request = exchange->request();
  if (IsClientTarget(request.target)) {
    HandleClient(exchange);
  } else if (IsApiTarget(request.target)) {
    exchange->Respond(rest_->Handle(request));
  } else {
    std::string path = request.target.substr(0, request.target.find('?'));
    exchange->Respond(
        rest::ErrorResponse(404, "NotFound", "No route for " + request.method + " " + path));
  }
}

std::shared_ptr<const HubSettings> Gateway::settings() const {
  std::lock_guard lock(settings_mu_);
  return settings_;
}

void Gateway::SetSettings(std::shared_ptr<const HubSettings> settings) {
  {
    std::lock_guard lock(settings_mu_);
    settings_ = std::move(settings);
  }
  // Handler URLs may have changed: validate again before using them.
  upstream_->ResetValidations();
}

Gateway::Gateway(GatewayOptions options) : options_(std::move(options)) {
  settings_ = options_.settings ? options_.settings : std::make_shared<HubSettings>();
  rest::UpstreamOptions uo;
  uo.access_keys = options_.access_keys;
  uo.origin = options_.origin;
  uo.timeout = options_.upstream_timeout;
  uo.ca_file = options_.upstream_ca;
  upstream_ = rest::NewUpstreamClient(std::move(uo));
  for (int i = 0; i < std::max(1, options_.event_loops); ++i) {
    loops_.push_back(std::make_unique<EventLoop>(i));
    loops_.back()->SetTickHook([this, i] { FlushCheckpoints(i); });
  }
  checkpoints_.resize(loops_.size());
}

Gateway::~Gateway() {
  front_.reset();  // stops accepting and the workers before the loops go
  for (auto& l : loops_) l->Stop();
  // Pending event-handler calls finish now, while the loops they post to (stopped: the posts
  // are dropped) and every member their callbacks touch still exist.
  upstream_.reset();
}

void Gateway::SetRegistry(replication::HubRegistry* registry) {
  registry_ = registry;
  rest::RestOptions ro;
  ro.access_keys = options_.access_keys;
  ro.max_body_bytes = options_.limits.max_message_bytes;
  rest_ = std::make_unique<rest::RestApi>(registry_, std::move(ro));
}

Result<int> Gateway::Start() {
  for (auto& l : loops_) l->Start();
  RestoreSessions();
  HttpFrontOptions fo;
  fo.bind = options_.bind;
  fo.port = options_.port;
  // The REST body limit is the message limit: a body is a message.
  fo.limits.max_body_bytes = options_.limits.max_message_bytes;
  fo.idle_timeout = options_.http_idle_timeout;
  fo.workers = options_.http_threads;
  fo.tls = options_.tls;
  std::vector<EventLoop*> loops;
  for (auto& l : loops_) loops.push_back(l.get());
  front_ = std::make_unique<HttpFront>(
      std::move(fo), std::move(loops),
      [this](const std::shared_ptr<HttpExchange>& exchange) { Route(exchange); });
  return front_->Start();
}

void Gateway::Shutdown(const std::string& reason) {
  if (front_) front_->Stop();
  std::vector<std::shared_ptr<ClientConnection>> all;
  {
    std::lock_guard lock(conns_mu_);
    for (auto& [id, c] : conns_) all.push_back(c);
  }
  for (auto& c : all) {
    // 1001 "going away". A reliable session stays in the log, held for recovery against the
    // restarted node; any other connection ends here, so its close (and `disconnected`) goes
    // through the log.
    bool keep = c->protocol() == ClientProtocol::kJsonReliable;
    c->loop()->Post([c, reason, keep] { c->CloseByService(1001, reason, keep); });
  }
  // Two round trips through every loop: the first runs the closes, the second starts after
  // the flush that followed them.
  for (int i = 0; i < 2; ++i) {
    for (auto& l : loops_) l->RunAndWait([] {});
  }
  for (auto& l : loops_) l->Stop();
}

std::shared_ptr<ClientConnection> Gateway::Find(const std::string& id) const {
  std::lock_guard lock(conns_mu_);
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second;
}

void Gateway::Forget(const std::string& id) {
  std::lock_guard lock(conns_mu_);
  conns_.erase(id);
}

size_t Gateway::connection_count() const {
  std::lock_guard lock(conns_mu_);
  return conns_.size();
}

}  // namespace hubcast::server
