#include "server/gateway.h"

#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "rest/jwt.h"
#include "server/json_codec.h"
#include "storage/replay.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/WebSocket.h>
#include <Poco/StringTokenizer.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

namespace hubcast::server {

struct ConnectOutcome {
  int http_status = 0;  // 0: accepted; else the status to answer the handshake with
  std::string message;
  std::optional<std::string> user_id;
  std::optional<std::vector<std::string>> groups;
  std::optional<std::vector<std::string>> roles;
  std::optional<std::string> subprotocol;
  std::optional<std::string> state;
};

namespace {

using Poco::Net::HTTPResponse;
constexpr const char* kCannotRecover = "The connection cannot be recovered.";
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// An error answer to a handshake whose socket was detached from POCO; closes the socket.
void WriteHttpError(int fd, int status, const char* code, const std::string& message) {
  std::string body = "{\"code\":";
  json::AppendQuoted(body, code);
  body += ",\"message\":";
  json::AppendQuoted(body, message);
  body += "}";
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " +
      HTTPResponse::getReasonForStatus(static_cast<HTTPResponse::HTTPStatus>(status)) +
      "\r\nContent-Type: application/json; charset=utf-8\r\nx-ms-error-code: " + code +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  (void)WriteAll(fd, head + body);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
}

void SendError(HTTPServerResponse& resp, HTTPResponse::HTTPStatus status, const char* code,
               const std::string& message) {
  std::string body = "{\"code\":";
  json::AppendQuoted(body, code);
  body += ",\"message\":";
  json::AppendQuoted(body, message);
  body += "}";
  resp.setStatus(status);
  resp.set("x-ms-error-code", code);
  resp.setContentType("application/json; charset=utf-8");
  if (status == HTTPResponse::HTTP_UNAUTHORIZED) resp.set("WWW-Authenticate", "Bearer");
  resp.setContentLength(static_cast<std::streamsize>(body.size()));
  resp.send() << body;
}

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

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

ClientProtocol ProtocolKind(const std::string& subprotocol) {
  if (subprotocol == kJsonReliableProtocol) return ClientProtocol::kJsonReliable;
  if (subprotocol == kJsonProtocol) return ClientProtocol::kJson;
  return ClientProtocol::kRaw;  // none, or a custom one a connect handler chose
}

// Appends `"name":{"key":["v",...],...}`.
void AppendStringMap(std::string& out, const char* name,
                     const std::vector<std::pair<std::string, std::vector<std::string>>>& map) {
  out += '"';
  out += name;
  out += "\":{";
  bool first = true;
  for (const auto& [key, values] : map) {
    if (!first) out += ',';
    first = false;
    json::AppendQuoted(out, key);
    out += ":[";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i) out += ',';
      json::AppendQuoted(out, values[i]);
    }
    out += ']';
  }
  out += '}';
}

// Adds a value under key, keeping keys in first-seen order.
void AddTo(std::vector<std::pair<std::string, std::vector<std::string>>>& map,
           const std::string& key, const std::string& value) {
  for (auto& [k, values] : map) {
    if (k == key) {
      values.push_back(value);
      return;
    }
  }
  map.push_back({key, {value}});
}

std::optional<std::vector<std::string>> StringArray(const json::Value* v) {
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_array()) return std::vector<std::string>{"\x01invalid"};
  std::vector<std::string> out;
  for (const auto& item : v->items()) {
    if (!item.is_string()) return std::vector<std::string>{"\x01invalid"};
    out.push_back(item.str());
  }
  return out;
}

// The blocking `connect` event (PROTOCOL.md 5.3): its request, then what the answer means.
// The handshake waits for it without holding any thread (Gateway::FinishHandshake).
rest::UpstreamRequest BuildConnectRequest(
    const EventHandlerSettings& handler, const std::string& hub, const std::string& connection_id,
    const HTTPServerRequest& req, const std::vector<std::pair<std::string, std::string>>& query,
    const rest::TokenClaims& claims, const std::vector<std::string>& offered) {
  std::vector<std::pair<std::string, std::vector<std::string>>> claim_map = claims.all;
  // Microsoft's samples read .NET-style claim names, which the cloud sends besides sub/role.
  if (claims.subject) {
    AddTo(claim_map, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
          *claims.subject);
  }
  for (const auto& r : claims.roles) {
    AddTo(claim_map, "http://schemas.microsoft.com/ws/2008/06/identity/claims/role", r);
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> query_map, header_map;
  for (const auto& [k, v] : query) AddTo(query_map, k, v);
  for (const auto& [k, v] : req) AddTo(header_map, k, v);
  std::string body = "{";
  AppendStringMap(body, "claims", claim_map);
  body += ',';
  AppendStringMap(body, "query", query_map);
  body += ',';
  AppendStringMap(body, "headers", header_map);
  body += ",\"subprotocols\":[";
  for (size_t i = 0; i < offered.size(); ++i) {
    if (i) body += ',';
    json::AppendQuoted(body, offered[i]);
  }
  body += "],\"clientCertificates\":[]}";

  rest::UpstreamRequest request = NewUpstreamRequest(handler, hub, "connect", true, connection_id,
                                                     claims.subject, "", std::nullopt);
  request.event_id = "0";
  request.content_type = "application/json; charset=utf-8";
  request.body = std::move(body);
  return request;
}

ConnectOutcome ParseConnectResponse(const rest::UpstreamResponse& r,
                                    const std::vector<std::string>& offered) {
  ConnectOutcome out;
  if (!r.ok()) {
    // 4xx goes back to the client as is (401 stays 401); 5xx, timeouts and network errors
    // are the service's 500.
    out.http_status = r.status >= 400 && r.status < 500 ? r.status : 500;
    out.message = r.status == 0 ? "The connect event handler failed: " + r.error
                                : "The connect event handler answered " + std::to_string(r.status);
    return out;
  }
  out.state = r.connection_state;
  if (out.state && out.state->empty()) out.state.reset();
  std::string_view text = r.body;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  if (r.status == 204 || text.empty() || text == "null") return out;
  auto doc = json::Parse(r.body);
  auto fail = [&](const std::string& why) {
    ConnectOutcome f;
    f.http_status = 500;
    f.message = "The connect event handler's answer is invalid: " + why;
    return f;
  };
  if (!doc.ok()) return fail(doc.status().message());
  if (!doc->is_object()) return fail("not a JSON object");
  if (const json::Value* u = doc->Find("userId"); u && !u->is_null()) {
    if (!u->is_string()) return fail("userId is not a string");
    out.user_id = u->str();
  }
  out.groups = StringArray(doc->Find("groups"));
  out.roles = StringArray(doc->Find("roles"));
  for (const auto* list : {&out.groups, &out.roles}) {
    if (*list && !(*list)->empty() && (*list)->front() == "\x01invalid") {
      return fail("groups and roles must be arrays of strings");
    }
  }
  if (out.groups) {
    for (const auto& g : *out.groups) {
      if (!ValidateGroupName(g).ok()) return fail("invalid group name");
    }
    // An empty array changes nothing (the emulator replaces token groups only when non-empty).
    if (out.groups->empty()) out.groups.reset();
  }
  if (const json::Value* s = doc->Find("subprotocol"); s && !s->is_null()) {
    if (!s->is_string()) return fail("subprotocol is not a string");
    if (std::find(offered.begin(), offered.end(), s->str()) == offered.end()) {
      return fail("subprotocol '" + s->str() + "' was not offered by the client");
    }
    out.subprotocol = s->str();
  }
  return out;
}

}  // namespace

rest::UpstreamRequest NewUpstreamRequest(const EventHandlerSettings& handler,
                                         const std::string& hub, const std::string& event,
                                         bool system, const std::string& connection_id,
                                         const std::optional<std::string>& user_id,
                                         const std::string& subprotocol,
                                         const std::optional<std::string>& state) {
  rest::UpstreamRequest r;
  r.url = handler.Resolve(hub, event);
  r.validation_url = handler.Resolve(hub, "validate");
  r.ce_type = (system ? "azure.webpubsub.sys." : "azure.webpubsub.user.") + event;
  r.event_name = event;
  r.hub = hub;
  r.connection_id = connection_id;
  r.user_id = user_id;
  r.subprotocol = subprotocol;
  r.connection_state = state;
  return r;
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

void Gateway::FireSystemEvent(SystemEvent event, const std::string& hub,
                              const storage::ConnectionRecord& c, std::string event_id,
                              std::string body) {
  const EventHandlerSettings* handler = settings()->ForSystemEvent(hub, event);
  if (!handler) return;
  const char* name = event == SystemEvent::kConnected ? "connected" : "disconnected";
  rest::UpstreamRequest request =
      NewUpstreamRequest(*handler, hub, name, true, c.id, c.user_id, c.subprotocol, c.state);
  request.event_id = std::move(event_id);
  request.content_type = "application/json; charset=utf-8";
  request.body = std::move(body);
  request.retryable = true;
  upstream_->Call(std::move(request), [name, id = c.id](rest::UpstreamResponse r) {
    // Notifications: the app's answer changes nothing; failures are only logged.
    if (!r.ok()) {
      Logger("upstream")
          .With("id", id)
          .Warn(name, " event failed: ", r.status ? std::to_string(r.status) : r.error);
    }
  });
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

std::string Gateway::ReconnectionToken(const replication::Hub& hub, const std::string& id) const {
  return rest::HmacSha256Hex(
      options_.access_keys.front(),
      "reconnect:" + hub.name().str() + "/" + std::to_string(hub.epoch()) + "/" + id);
}

bool Gateway::VerifyReconnectionToken(const replication::Hub& hub, const std::string& id,
                                      const std::string& token) const {
  std::string message =
      "reconnect:" + hub.name().str() + "/" + std::to_string(hub.epoch()) + "/" + id;
  for (const auto& key : options_.access_keys) {
    std::string expected = rest::HmacSha256Hex(key, message);
    if (expected.size() != token.size()) continue;
    unsigned char diff = 0;
    for (size_t i = 0; i < token.size(); ++i) diff |= expected[i] ^ token[i];
    if (diff == 0) return true;
  }
  return false;
}

void Gateway::QueueCheckpoint(int loop, const std::shared_ptr<replication::Hub>& hub,
                              const std::string& connection_id, uint64_t acked) {
  auto& slot = checkpoints_[loop][hub.get()];
  if (!slot.first) {
    slot.first = hub;
    slot.second.kind = storage::EntryKind::kCheckpoint;
  }
  slot.second.acks.emplace_back(connection_id, acked);
}

void Gateway::FlushCheckpoints(int loop) {
  auto pending = std::move(checkpoints_[loop]);
  checkpoints_[loop].clear();
  for (auto& [key, slot] : pending) {
    slot.second.timestamp_ms = SystemClock::Get().NowUnixMs();
    // A lost checkpoint only means a longer replay after a restart; nothing to retry.
    (void)slot.first->Append(std::move(slot.second));
  }
}

void Gateway::RestoreSessions() {
  Logger log("restore");
  auto steady_now = std::chrono::steady_clock::now();
  int64_t now_ms = SystemClock::Get().NowUnixMs();
  int64_t since_ms = options_.last_alive_unix_ms > 0
                         ? std::max<int64_t>(0, now_ms - options_.last_alive_unix_ms)
                         : 0;
  auto until = steady_now + options_.limits.reliable_hold - std::chrono::milliseconds(since_ms);
  size_t held = 0, ended = 0;
  for (const auto& hub : registry_->AllHubs()) {
    storage::Store* store = hub->store();
    for (const auto& rec : hub->view().AllConnections()) {
      if (rec.node_id != registry_->node_id()) continue;
      ClientConnection::Init init;
      init.id = rec.id;
      init.user_id = rec.user_id;
      init.protocol = ProtocolKind(rec.subprotocol);
      init.subprotocol = rec.subprotocol;
      init.state = rec.state;
      EventLoop* loop = loops_[next_loop_++ % loops_.size()].get();
      auto conn = std::make_shared<ClientConnection>(this, loop, hub, init, options_.limits);
      {
        std::lock_guard lock(conns_mu_);
        conns_[rec.id] = conn;
      }
      std::vector<std::pair<uint64_t, std::shared_ptr<const std::string>>> unacked;
      std::string why = "The service restarted.";
      bool can_hold = rec.reliable && store && !rec.checkpoints.empty() && until > steady_now;
      if (can_hold) {
        auto replay = storage::ReplayConnection(
            *store, hub->name().str(), rec, rec.checkpoints.front(), hub->applied_position(),
            rec.acked, [&](uint64_t seq, uint64_t, const storage::Entry& e) {
              unacked.emplace_back(seq, std::make_shared<const std::string>(EncodeMessageBody(e)));
            });
        if (!replay.ok()) {
          can_hold = false;
          why = "The connection's messages left the replay log: " + replay.status().message();
        }
      }
      if (can_hold) {
        ++held;
        loop->RunAndWait([&] { conn->RestoreHeld(std::move(unacked), rec.acked, until); });
      } else {
        ++ended;
        loop->RunAndWait([&] { conn->EndRestored(why); });
      }
    }
  }
  if (held + ended > 0) {
    log.Info("after the restart: ", held, " reliable sessions held for recovery, ", ended,
             " connections closed");
  }
}

void Gateway::HandleClient(HTTPServerRequest& req, HTTPServerResponse& resp) {
  Logger log("handshake");
  try {
    Poco::URI uri(req.getURI());
    std::string path = uri.getPath();
    std::vector<std::pair<std::string, std::string>> query = uri.getQueryParameters();
    auto param = [&](const char* name) -> std::optional<std::string> {
      for (auto& [k, v] : query) {
        if (k == name) return v;
      }
      return std::nullopt;
    };

    std::string hub_text;
    static const std::string kPrefix = "/client/hubs/";
    if (path.rfind(kPrefix, 0) == 0) {
      hub_text = path.substr(kPrefix.size());
      if (!hub_text.empty() && hub_text.back() == '/') hub_text.pop_back();
    } else if (path == "/client" || path == "/client/") {
      hub_text = param("hub").value_or("");
    } else {
      SendError(resp, HTTPResponse::HTTP_NOT_FOUND, "NotFound", "No route for " + path);
      return;
    }
    auto hub_name = HubName::Parse(hub_text);
    if (!hub_name.ok()) {
      SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest", hub_name.status().message());
      return;
    }
    if (req.getMethod() != "GET") {
      resp.set("Allow", "GET");
      SendError(resp, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "MethodNotAllowed",
                "The client endpoint only accepts GET with a WebSocket upgrade.");
      return;
    }
    if (!EqualsIgnoreCase(req.get("Upgrade", ""), "websocket")) {
      SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest",
                "The client endpoint expects a WebSocket upgrade request.");
      return;
    }

    // Subprotocol: the first supported one the client offered; none offered means raw.
    std::string protocol;
    std::vector<std::string> offered;
    if (req.has("Sec-WebSocket-Protocol")) {
      Poco::StringTokenizer tok(
          req.get("Sec-WebSocket-Protocol"), ",",
          Poco::StringTokenizer::TOK_TRIM | Poco::StringTokenizer::TOK_IGNORE_EMPTY);
      for (const auto& p : tok) {
        offered.push_back(p);
        if (protocol.empty() && (p == kJsonProtocol || p == kJsonReliableProtocol)) protocol = p;
      }
    }
    std::shared_ptr<const HubSettings> settings = this->settings();
    const EventHandlerSettings* connect_handler =
        settings->ForSystemEvent(hub_name->str(), SystemEvent::kConnect);
    // With a connect handler, the handler may pick a subprotocol the service does not know.
    if (!offered.empty() && protocol.empty() && !connect_handler) {
      SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest",
                "None of the offered subprotocols is supported.");
      return;
    }

    auto hub = registry_->Get(*hub_name);
    auto conn_param = param("awps_connection_id");
    auto token_param = param("awps_reconnection_token");
    if (conn_param && token_param) {
      Recover(req, resp, hub, protocol, *conn_param, *token_param);
      return;
    }

    // Authentication: the access token from the query wins over the header.
    std::string token = param("access_token").value_or("");
    if (token.empty()) {
      std::string auth = req.get("Authorization", "");
      if (auth.size() > 7 && EqualsIgnoreCase(auth.substr(0, 7), "Bearer ")) {
        token = Trim(auth.substr(7));
      }
    }
    rest::TokenClaims claims;
    if (token.empty()) {
      if (!options_.allow_anonymous && !settings->AllowAnonymous(hub_name->str())) {
        SendError(resp, HTTPResponse::HTTP_UNAUTHORIZED, "Unauthorized",
                  "An access token is required (access_token or Authorization: Bearer).");
        return;
      }
    } else {
      auto verified =
          rest::VerifyToken(token, options_.access_keys, SystemClock::Get().NowUnixMs() / 1000);
      if (!verified.ok()) {
        SendError(resp, HTTPResponse::HTTP_UNAUTHORIZED, "Unauthorized",
                  verified.status().message());
        return;
      }
      claims = std::move(*verified);
      bool aud_ok = false;
      for (const auto& aud : claims.audiences) {
        if (rest::AudiencePathMatches(aud, kPrefix + hub_text)) aud_ok = true;
      }
      if (!aud_ok) {
        SendError(resp, HTTPResponse::HTTP_UNAUTHORIZED, "Unauthorized",
                  "The token's audience is not this hub's client endpoint.");
        return;
      }
    }
    std::vector<std::string> groups;
    for (const auto& g : claims.groups) {
      if (Status s = ValidateGroupName(g); !s.ok()) {
        SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest",
                  "The token's webpubsub.group claim: " + s.message());
        return;
      }
      groups.push_back(g);
    }

    // webpubsub_mode needs a valid group whatever protocol the handshake ends with.
    std::optional<std::string> raw_group;
    if (EqualsIgnoreCase(param("webpubsub_mode").value_or(""), "sendToGroup")) {
      std::string g = param("group").value_or("");
      if (Status s = ValidateGroupName(g); !s.ok()) {
        SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest",
                  "webpubsub_mode=sendToGroup needs a valid group: " + s.message());
        return;
      }
      raw_group = g;
    }
    std::string key = req.get("Sec-WebSocket-Key", "");
    if (!WsKeyIsValid(key) || req.get("Sec-WebSocket-Version", "") != "13") {
      resp.set("Sec-WebSocket-Version", "13");
      SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest",
                "A WebSocket upgrade needs Sec-WebSocket-Key (base64 of 16 bytes) and "
                "Sec-WebSocket-Version: 13.");
      return;
    }

    auto hs = std::make_shared<Handshake>();
    hs->hub = hub;
    hs->hub_name = hub_name->str();
    hs->init.id = RandomHex(16);
    hs->init.user_id = claims.subject;
    hs->init.raw_publish_group = raw_group;
    hs->init.raw_no_echo = EqualsIgnoreCase(param("noEcho").value_or(""), "true");
    if (auto keepalive = settings->KeepaliveSeconds(hub_name->str())) {
      hs->init.keepalive = std::chrono::seconds(*keepalive);
    }
    hs->roles = claims.roles;
    hs->groups = std::move(groups);
    hs->protocol = protocol;
    hs->accept = WsAcceptKey(key);
    std::optional<rest::UpstreamRequest> connect;
    if (connect_handler) {
      connect = BuildConnectRequest(*connect_handler, hub_name->str(), hs->init.id, req, query,
                                    claims, offered);
    }
    // From here the handshake is ours, not POCO's: the worker goes back to the pool at once,
    // and a slow connect handler holds only this socket.
    {
      Poco::Net::StreamSocket detached =
          static_cast<Poco::Net::HTTPServerRequestImpl&>(req).detachSocket();
      hs->fd = ::dup(detached.impl()->sockfd());
    }
    if (hs->fd < 0) return;
    if (!connect) {
      FinishHandshake(hs, ConnectOutcome{});
      return;
    }
    upstream_->Call(std::move(*connect), [this, hs, offered](rest::UpstreamResponse r) {
      FinishHandshake(hs, ParseConnectResponse(r, offered));
    });
  } catch (const Poco::Net::WebSocketException& e) {
    if (!resp.sent()) {
      SendError(resp, HTTPResponse::HTTP_BAD_REQUEST, "BadRequest",
                "Invalid WebSocket handshake: " + e.message());
    }
  } catch (const std::exception& e) {
    log.Error("client handshake failed: ", e.what());
    if (!resp.sent()) {
      SendError(resp, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "InternalServerError",
                "The handshake failed.");
    }
  }
}

void Gateway::FinishHandshake(const std::shared_ptr<Handshake>& hs, const ConnectOutcome& outcome) {
  int fd = hs->fd;
  try {
    if (outcome.http_status != 0) {
      int status = outcome.http_status;
      WriteHttpError(fd, status,
                     status == 401   ? "Unauthorized"
                     : status == 403 ? "Forbidden"
                     : status < 500  ? "BadRequest"
                                     : "InternalServerError",
                     outcome.message);
      return;
    }
    ClientConnection::Init init = hs->init;
    std::vector<std::string> roles = hs->roles;
    std::vector<std::string> groups = hs->groups;
    std::string protocol = hs->protocol;
    if (outcome.user_id) init.user_id = outcome.user_id->empty() ? std::nullopt : outcome.user_id;
    if (outcome.groups) groups = *outcome.groups;
    if (outcome.roles) roles = *outcome.roles;
    init.state = outcome.state;
    if (outcome.subprotocol) protocol = *outcome.subprotocol;
    init.subprotocol = protocol;
    init.protocol = ProtocolKind(protocol);
    if (init.protocol != ClientProtocol::kRaw) init.raw_publish_group.reset();

    // The connection is in the log before the client sees the 101: whoever sees the upgrade
    // can address the connection at once. Frames for it wait in its queue until it attaches.
    EventLoop* loop = loops_[next_loop_++ % loops_.size()].get();
    auto conn = std::make_shared<ClientConnection>(this, loop, hs->hub, init, options_.limits);
    {
      std::lock_guard lock(conns_mu_);
      conns_[init.id] = conn;
    }
    storage::Entry e;
    e.kind = storage::EntryKind::kConnectionOpen;
    e.timestamp_ms = SystemClock::Get().NowUnixMs();
    e.origin_connection = init.id;
    e.user_id = init.user_id;
    e.roles = std::move(roles);
    e.groups = std::move(groups);
    e.connection_state = init.state;
    e.subprotocol = protocol;
    e.reliable = init.protocol == ClientProtocol::kJsonReliable;
    e.node_id = registry_->node_id();
    if (auto appended = hs->hub->Append(std::move(e)); !appended.ok()) {
      Forget(init.id);
      WriteHttpError(fd, 503, "ServiceUnavailable", appended.status().message());
      return;
    }
    std::string upgrade =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        hs->accept + "\r\n";
    if (!protocol.empty()) upgrade += "Sec-WebSocket-Protocol: " + protocol + "\r\n";
    upgrade += "\r\n";
    // The socket is still blocking here and the response is small.
    if (!WriteAll(fd, upgrade)) {
      ::close(fd);
      loop->Post([conn] { conn->CloseByService(1011, "The WebSocket handshake failed.", false); });
      return;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    loop->Post([conn, fd] { conn->Attach(fd); });
  } catch (const std::exception& ex) {
    Logger("handshake").Error("finishing the handshake failed: ", ex.what());
    ::close(fd);
  }
}

void Gateway::Recover(HTTPServerRequest& req, HTTPServerResponse& resp,
                      const std::shared_ptr<replication::Hub>& hub, const std::string& protocol,
                      const std::string& connection_id, const std::string& token) {
  // Recovery failure is "accept, then close 1008" (PROTOCOL.md 3.6): an HTTP error would
  // leave the official client retrying for 30 s.
  if (!protocol.empty()) resp.set("Sec-WebSocket-Protocol", protocol);
  Poco::Net::WebSocket ws(req, resp);
  int fd = ::dup(ws.impl()->sockfd());
  if (fd < 0) return;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  // The frame is built on this thread; the loop only writes it (or attaches the socket).
  std::string reject_frame;
  if (!protocol.empty())
    reject_frame = WsFrame(WsOpcode::kText, EncodeDisconnected(kCannotRecover));
  reject_frame += WsCloseFrame(1008, kCannotRecover);
  auto reject = [](int fd, const std::string& frame) {
    (void)!::write(fd, frame.data(), frame.size());
    ::close(fd);
  };
  std::shared_ptr<ClientConnection> conn;
  if (protocol == kJsonReliableProtocol && VerifyReconnectionToken(*hub, connection_id, token)) {
    conn = Find(connection_id);
  }
  if (!conn || conn->hub() != hub) {
    reject(fd, reject_frame);
    return;
  }
  conn->loop()->Post([conn, fd, reject, reject_frame = std::move(reject_frame)] {
    if (!conn->Recover(fd)) reject(fd, reject_frame);
  });
}

void Gateway::Deliver(const HubName& hub, uint64_t position, const storage::Entry& e,
                      const storage::ApplyResult& r) {
  auto origin = e.origin_connection.empty() ? nullptr : Find(e.origin_connection);
  switch (e.kind) {
    case storage::EntryKind::kConnectionOpen: {
      if (!origin) return;
      if (!r.status.ok()) {
        origin->loop()->Post([origin] {
          origin->CloseByService(1011, "The connection could not be registered.", true);
        });
        Forget(origin->id());
        return;
      }
      if (origin->protocol() != ClientProtocol::kRaw) {
        std::optional<std::string> token;
        if (origin->protocol() == ClientProtocol::kJsonReliable) {
          token = ReconnectionToken(*origin->hub(), origin->id());
        }
        std::string text = EncodeConnected(e.user_id, origin->id(), token);
        origin->loop()->Post(
            [origin, text = std::move(text)]() mutable { origin->SendControl(std::move(text)); });
      }
      // After the `connected` message (PROTOCOL.md 5.4); the position is a stable event id.
      if (r.opened) {
        FireSystemEvent(SystemEvent::kConnected, hub.str(), *r.opened, std::to_string(position),
                        "{}");
      }
      return;
    }
    case storage::EntryKind::kConnectionClose:
    case storage::EntryKind::kCloseConnections: {
      // `disconnected` fires once per logical connection: here, when its close is applied,
      // on the node that held it.
      for (const auto& rec : r.closed_records) {
        if (rec.node_id != registry_->node_id()) continue;
        std::string body = "{\"reason\":";
        json::AppendQuoted(body, e.reason);
        body += '}';
        FireSystemEvent(SystemEvent::kDisconnected, hub.str(), rec, std::to_string(position),
                        std::move(body));
      }
      std::vector<std::shared_ptr<ClientConnection>> closed;
      {
        std::lock_guard lock(conns_mu_);
        for (const auto& id : r.closed) {
          auto it = conns_.find(id);
          if (it == conns_.end()) continue;
          closed.push_back(it->second);
          conns_.erase(it);
        }
        if (e.kind == storage::EntryKind::kConnectionClose) conns_.erase(e.origin_connection);
      }
      for (auto& c : closed) {
        if (e.kind == storage::EntryKind::kConnectionClose) {
          c->loop()->Post([c] { c->MarkLogClosed(); });
          continue;
        }
        // A reliable client must not try to recover a connection the app closed.
        uint16_t code = c->protocol() == ClientProtocol::kJsonReliable ? 1008 : 1000;
        c->loop()->Post([c, code, reason = e.reason] { c->CloseByService(code, reason, true); });
      }
      return;
    }
    case storage::EntryKind::kSend: {
      if (!r.recipients.empty()) {
        auto m = std::make_shared<EncodedMessage>();
        if (e.message_ttl_seconds > 0) {
          m->expire_unix_ms = e.timestamp_ms + int64_t{e.message_ttl_seconds} * 1000;
        }
        using Target = std::pair<std::shared_ptr<ClientConnection>, uint64_t>;
        std::vector<std::vector<Target>> per_loop(loops_.size());
        {
          std::lock_guard lock(conns_mu_);
          for (size_t i = 0; i < r.recipients.size(); ++i) {
            auto it = conns_.find(r.recipients[i]->id);
            if (it == conns_.end()) continue;
            auto& c = it->second;
            switch (c->protocol()) {
              case ClientProtocol::kRaw:
                if (!m->raw_frame) {
                  bool binary = e.data_type == storage::DataType::kBinary ||
                                e.data_type == storage::DataType::kProtobuf;
                  m->raw_frame = std::make_shared<const std::string>(
                      WsFrame(binary ? WsOpcode::kBinary : WsOpcode::kText, e.data));
                }
                break;
              case ClientProtocol::kJson:
              case ClientProtocol::kJsonReliable:
                if (!m->reliable_body) {
                  m->reliable_body = std::make_shared<const std::string>(EncodeMessageBody(e));
                }
                if (c->protocol() == ClientProtocol::kJson && !m->json_frame) {
                  std::string text = "{" + *m->reliable_body;
                  m->json_frame =
                      std::make_shared<const std::string>(WsFrame(WsOpcode::kText, text));
                }
                break;
            }
            per_loop[c->loop()->index()].emplace_back(c, r.sequence_ids[i]);
          }
        }
        for (size_t i = 0; i < per_loop.size(); ++i) {
          if (per_loop[i].empty()) continue;
          loops_[i]->Post([m, list = std::move(per_loop[i])] {
            for (const auto& [c, seq] : list) c->DeliverMessage(*m, seq);
          });
        }
      }
      break;
    }
    default:
      break;
  }
  if (origin && e.ack_id) {
    std::string ack = EncodeAck(*e.ack_id, r.status);
    origin->loop()->Post(
        [origin, ack = std::move(ack)]() mutable { origin->SendControl(std::move(ack)); });
  }
}

}  // namespace hubcast::server
