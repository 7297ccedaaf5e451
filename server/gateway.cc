#include "server/gateway.h"

#include "base/log.h"
#include "server/gateway_internal.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <algorithm>

namespace hubcast::server {

namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

class ClientHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit ClientHandler(Gateway* gw) : gw_(gw) {}
  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    gw_->HandleClient(req, resp);
  }

 private:
  Gateway* gw_;
};

class RestHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit RestHandler(rest::RestApi* api) : api_(api) {}
  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    api_->Handle(req, resp);
  }

 private:
  rest::RestApi* api_;
};

class NotFoundHandler : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    SendError(resp, HTTPResponse::HTTP_NOT_FOUND, "NotFound",
              "No route for " + req.getMethod() + " " + Poco::URI(req.getURI()).getPath());
  }
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(Gateway* gw) : gw_(gw) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest& req) override {
    const std::string& uri = req.getURI();
    auto starts = [&](const char* p) { return uri.rfind(p, 0) == 0; };
    if (starts("/client/") || uri == "/client" || starts("/client?")) {
      return new ClientHandler(gw_);
    }
    if (starts("/api/") || uri == "/api") return new RestHandler(gw_->rest());
    return new NotFoundHandler();
  }

 private:
  Gateway* gw_;
};

}  // namespace

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
  upstream_ = rest::NewUpstreamClient(std::move(uo));
  for (int i = 0; i < std::clamp(options_.event_loops, 1, 255); ++i) {
    auto state = std::make_unique<LoopState>();
    state->loop = std::make_unique<EventLoop>(i, options_.max_loop_inbox);
    state->loop->SetTickHook([this, i] { FlushCheckpoints(i); });
    loops_.push_back(std::move(state));
  }
}

Gateway::~Gateway() {
  if (http_) http_->stopAll(true);
  http_.reset();
  for (auto& l : loops_) l->loop->Stop();
}

void Gateway::SetRegistry(replication::HubRegistry* registry) {
  registry_ = registry;
  rest::RestOptions ro;
  ro.access_keys = options_.access_keys;
  ro.max_body_bytes = options_.limits.max_message_bytes;
  rest_ = std::make_unique<rest::RestApi>(registry_, std::move(ro));
}

Result<int> Gateway::Start() {
  for (auto& l : loops_) l->loop->Start();
  RestoreSessions();
  try {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress(options_.bind, static_cast<uint16_t>(options_.port)),
                /*reuseAddress=*/true);
    // A deep backlog: thousands of clients reconnect at once after a restart.
    socket.listen(4096);
    int port = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(options_.http_threads);
    params->setMaxQueued(20000);
    params->setKeepAlive(true);
    params->setTimeout(Poco::Timespan(60, 0));
    // POCO binds a worker to a keep-alive connection for as long as it lives: a short idle
    // timeout and a cap on requests per connection hand workers back, so clients that keep
    // connections open (every SDK's HTTP agent does) cannot starve handshakes and REST calls.
    params->setKeepAliveTimeout(Poco::Timespan(5, 0));
    params->setMaxKeepAliveRequests(100);
    // Fixed size (min = max): the process's thread count does not change with load.
    http_pool_ = std::make_unique<Poco::ThreadPool>(options_.http_threads, options_.http_threads);
    http_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), *http_pool_, socket, params);
    http_->start();
    return port;
  } catch (const Poco::Exception& e) {
    return Status::Unavailable("cannot listen on " + options_.bind + ":" +
                               std::to_string(options_.port) + ": " + e.displayText());
  }
}

void Gateway::Shutdown(const std::string& reason) {
  if (http_) http_->stopAll(true);
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
