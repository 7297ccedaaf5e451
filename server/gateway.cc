#include "server/gateway.h"

#include "base/log.h"
#include "server/server_metrics.h"

#include <algorithm>

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

bool Gateway::IsStatusTarget(std::string_view target) const {
  return status_route_ && target.substr(0, target.find('?')) == "/api/status";
}

void Gateway::Route(const std::shared_ptr<HttpExchange>& exchange) {
  const rest::HttpRequest& request = exchange->request();
  if (IsClientTarget(request.target)) {
    HandleClient(exchange);
  } else if (IsStatusTarget(request.target)) {
    exchange->Respond(status_route_(request));
  } else if (IsApiTarget(request.target)) {
    const int64_t start = metrics::NowNs();
    rest::HttpResponse response = rest_->Handle(request);
    metric::CountRest(request, response, start);
    exchange->Respond(std::move(response));
  } else {
    std::string path = request.target.substr(0, request.target.find('?'));
    exchange->Respond(
        rest::ErrorResponse(404, "NotFound", "No route for " + request.method + " " + path));
  }
}

bool Gateway::RouteOnLoop(const std::shared_ptr<HttpExchange>& exchange) {
  const rest::HttpRequest& request = exchange->request();
  if (!IsApiTarget(request.target) || IsStatusTarget(request.target)) return false;
  const int64_t start = metrics::NowNs();
  return rest_->HandleWithoutWaiting(request, exchange->loop(),
                                     [exchange, start](rest::HttpResponse response) {
                                       metric::CountRest(exchange->request(), response, start);
                                       exchange->Respond(std::move(response));
                                     });
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

Gateway::Gateway(GatewayOptions options)
    : options_(std::move(options)), recovery_(std::make_unique<WorkerPool>(2)) {
  settings_ = options_.settings ? options_.settings : std::make_shared<HubSettings>();
  rest::UpstreamOptions uo;
  uo.access_keys = options_.access_keys;
  uo.origin = options_.origin;
  uo.timeout = options_.upstream_timeout;
  uo.ca_file = options_.upstream_ca;
  upstream_ = metric::MeterUpstream(rest::NewUpstreamClient(std::move(uo)));
  for (int i = 0; i < std::clamp(options_.event_loops, 1, 255); ++i) {
    auto loop = EventLoop::Create(i, options_.max_loop_inbox, options_.max_loop_inbox_bytes);
    if (!loop.ok()) {
      status_ = loop.status();
      return;
    }
    auto state = std::make_unique<LoopState>();
    state->loop = std::move(loop).value();
    state->loop->SetTickHook([this, i] { FlushCheckpoints(i); });
    loops_.push_back(std::move(state));
  }
}

Gateway::~Gateway() {
  Stop();
  // Explicitly, before the members are destroyed in reverse order (the loops would go first).
  upstream_.reset();
  front_.reset();
}

void Gateway::Stop() {
  if (front_) front_->Stop();  // stops accepting and the workers before the loops go
  for (auto& l : loops_) l->loop->Stop();
  // Pending event-handler calls finish now, while the loops they post to (stopped: the posts
  // are dropped), the HTTP front their refusals answer through and the registry their
  // appends go to still exist.
  upstream_->Shutdown();
  recovery_->Stop();  // replays of moving sessions read the registry's store
}

void Gateway::SetRegistry(replication::HubRegistry* registry) {
  registry_ = registry;
  rest::RestOptions ro;
  ro.access_keys = options_.access_keys;
  ro.max_body_bytes = options_.limits.max_message_bytes;
  rest_ = std::make_unique<rest::RestApi>(registry_, std::move(ro));
}

Result<int> Gateway::Start() {
  if (!status_.ok()) return status_;
  for (auto& l : loops_) l->loop->Start();
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
  for (auto& l : loops_) loops.push_back(l->loop.get());
  front_ = std::make_unique<HttpFront>(
      std::move(fo), std::move(loops),
      [this](const std::shared_ptr<HttpExchange>& exchange) { Route(exchange); },
      [this](const std::shared_ptr<HttpExchange>& exchange) { return RouteOnLoop(exchange); });
  return front_->Start();
}

void Gateway::Shutdown(const std::string& reason) {
  if (front_) front_->Stop();
  for (auto& l : loops_) {
    l->loop->RunAndWait([&] {
      for (auto& [handle, c] : l->conns) {
        // 1001 "going away". A reliable session stays in the log, held for recovery against
        // the restarted node; any other connection ends here, so its close (and
        // `disconnected`) goes through the log.
        bool keep = c->codec().reliable();
        c->CloseByService(1001, reason, keep);
      }
    });
  }
  // A second round trip starts after the flush that followed the closes.
  for (auto& l : loops_) l->loop->RunAndWait([] {});
  for (auto& l : loops_) l->loop->Stop();
}

std::shared_ptr<ClientConnection> Gateway::NewConnection(std::shared_ptr<replication::Hub> hub,
                                                         ClientConnection::Init init) {
  size_t index = next_loop_++ % loops_.size();
  LoopState& state = *loops_[index];
  init.handle = (uint64_t{index} << 56) | (uint64_t{static_cast<uint8_t>(init.protocol)} << 48) |
                (next_serial_++ & ((uint64_t{1} << 48) - 1));
  auto conn = std::make_shared<ClientConnection>(this, state.loop.get(), std::move(hub),
                                                 std::move(init), options_.limits);
  // Registered before anything can be delivered to it: tasks run in posting order.
  state.loop->Post([&state, conn] {
    metric::CountConnection(conn->hub()->name().str(), HandleProtocol(conn->handle()), +1);
    state.conns.emplace(conn->handle(), conn);
    state.count.store(state.conns.size(), std::memory_order_relaxed);
  });
  return conn;
}

ClientConnection* Gateway::Lookup(uint64_t handle) {
  LoopState& state = *loops_[HandleLoop(handle)];
  auto it = state.conns.find(handle);
  return it == state.conns.end() ? nullptr : it->second.get();
}

void Gateway::Unregister(uint64_t handle) {
  LoopState& state = *loops_[HandleLoop(handle)];
  if (auto it = state.conns.find(handle); it != state.conns.end()) {
    metric::CountConnection(it->second->hub()->name().str(), HandleProtocol(handle), -1);
  }
  state.conns.erase(handle);
  state.count.store(state.conns.size(), std::memory_order_relaxed);
}

uint64_t Gateway::TakeOpening(const std::string& connection_id) {
  std::lock_guard lock(opening_mu_);
  auto it = opening_.find(connection_id);
  if (it == opening_.end()) return 0;
  uint64_t handle = it->second;
  opening_.erase(it);
  return handle;
}

size_t Gateway::connection_count() const {
  size_t n = 0;
  for (const auto& l : loops_) n += l->count.load(std::memory_order_relaxed);
  return n;
}

}  // namespace hubcast::server
