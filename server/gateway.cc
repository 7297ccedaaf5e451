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

// Until the front moves off POCO: a POCO request as the transport-neutral type.
class RestHandler : public Poco::Net::HTTPRequestHandler {
 public:
  RestHandler(rest::RestApi* api, size_t max_body) : api_(api), max_body_(max_body) {}
  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    rest::HttpRequest request;
    request.method = req.getMethod();
    request.target = req.getURI();
    for (const auto& [name, value] : req) request.headers.Add(name, value);
    request.host = req.getHost().empty() ? req.serverAddress().toString() : req.getHost();
    std::istream& in = req.stream();
    char buffer[16 * 1024];
    while (in.good() && request.body.size() <= max_body_) {
      in.read(buffer, sizeof buffer);
      request.body.append(buffer, static_cast<size_t>(in.gcount()));
    }
    if (request.body.size() > max_body_) resp.setKeepAlive(false);
    rest::HttpResponse response = api_->Handle(request);
    resp.setStatusAndReason(static_cast<HTTPResponse::HTTPStatus>(response.status));
    for (const auto& [name, value] : response.headers) resp.set(name, value);
    resp.setContentLength64(static_cast<Poco::Int64>(response.body.size()));
    resp.send() << response.body << std::flush;
  }

 private:
  rest::RestApi* api_;
  size_t max_body_;
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
    if (starts("/api/") || uri == "/api") {
      return new RestHandler(gw_->rest(), gw_->max_message_bytes());
    }
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

Gateway::Gateway(GatewayOptions options) : options_(std::move(options)) {
  settings_ = options_.settings ? options_.settings : std::make_shared<HubSettings>();
  rest::UpstreamOptions uo;
  uo.access_keys = options_.access_keys;
  uo.origin = options_.origin;
  uo.timeout = options_.upstream_timeout;
  upstream_ = rest::NewUpstreamClient(std::move(uo));
  for (int i = 0; i < std::max(1, options_.event_loops); ++i) {
    loops_.push_back(std::make_unique<EventLoop>(i));
    loops_.back()->SetTickHook([this, i] { FlushCheckpoints(i); });
  }
  checkpoints_.resize(loops_.size());
}

Gateway::~Gateway() {
  if (http_) http_->stopAll(true);
  http_.reset();
  for (auto& l : loops_) l->Stop();
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
