#include "base/json.h"
#include "base/log.h"
#include "base/random.h"
#include "base/strings.h"
#include "rest/jwt.h"
#include "server/gateway.h"
#include "server/gateway_internal.h"
#include "server/json_codec.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

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
    const rest::HttpRequest& req, const std::vector<std::pair<std::string, std::string>>& query,
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
  for (const auto& [k, v] : req.headers) AddTo(header_map, k, v);
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
    if (!u->str().empty()) {
      if (Status s = ValidateUserId(u->str()); !s.ok()) return fail(s.message());
    }
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

void Gateway::HandleClient(const std::shared_ptr<HttpExchange>& exchange) {
  Logger log("handshake");
  const rest::HttpRequest& req = exchange->request();
  auto refuse = [&](int status, const char* code, const std::string& message) {
    RefuseHandshake(exchange, status, code, message);
  };
  try {
    Poco::URI uri(req.target);
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
      refuse(404, "NotFound", "No route for " + path);
      return;
    }
    auto hub_name = HubName::Parse(hub_text);
    if (!hub_name.ok()) {
      refuse(400, "BadRequest", hub_name.status().message());
      return;
    }
    if (req.method != "GET") {
      RefuseHandshake(exchange, 405, "MethodNotAllowed",
                      "The client endpoint only accepts GET with a WebSocket upgrade.",
                      {{"Allow", "GET"}});
      return;
    }
    const std::string accept = AcceptUpgrade(exchange);
    if (accept.empty()) return;  // refused

    // Subprotocol: the first supported one the client offered; none offered means raw.
    std::string protocol;
    std::vector<std::string> offered;
    for (const auto& [name, value] : req.headers) {
      if (!EqualsIgnoreCase(name, "Sec-WebSocket-Protocol")) continue;
      for (std::string_view item : Split(value, ',')) {
        const std::string p(Trim(item));
        if (p.empty()) continue;
        offered.push_back(p);
        if (protocol.empty() && Negotiate({p})) protocol = p;
      }
    }
    std::shared_ptr<const HubSettings> settings = this->settings();
    const EventHandlerSettings* connect_handler =
        settings->ForSystemEvent(hub_name->str(), SystemEvent::kConnect);
    // With a connect handler, the handler may pick a subprotocol the service does not know.
    if (!offered.empty() && protocol.empty() && !connect_handler) {
      refuse(400, "BadRequest", "None of the offered subprotocols is supported.");
      return;
    }

    auto conn_param = param("awps_connection_id");
    auto token_param = param("awps_reconnection_token");
    if (conn_param && token_param) {
      // A hub that does not exist has nothing to recover: nothing is created.
      Recover(exchange, registry_->Open(*hub_name), protocol, accept, *conn_param, *token_param);
      return;
    }

    // Authentication: the access token from the query wins over the header.
    std::string token = param("access_token").value_or("");
    if (token.empty()) {
      std::string auth = req.headers.Get("Authorization");
      if (auth.size() > 7 && EqualsIgnoreCase(auth.substr(0, 7), "Bearer ")) {
        token = std::string(Trim(auth.substr(7)));
      }
    }
    rest::TokenClaims claims;
    if (token.empty()) {
      if (!options_.allow_anonymous && !settings->AllowAnonymous(hub_name->str())) {
        refuse(401, "Unauthorized",
               "An access token is required (access_token or Authorization: Bearer).");
        return;
      }
    } else {
      auto verified =
          rest::VerifyToken(token, options_.access_keys, SystemClock::Get().NowUnixMs() / 1000);
      if (!verified.ok()) {
        refuse(401, "Unauthorized", verified.status().message());
        return;
      }
      claims = std::move(*verified);
      bool aud_ok = false;
      for (const auto& aud : claims.audiences) {
        if (rest::AudiencePathMatches(aud, kPrefix + hub_text)) aud_ok = true;
      }
      if (!aud_ok) {
        refuse(401, "Unauthorized", "The token's audience is not this hub's client endpoint.");
        return;
      }
      // An empty `sub` is left as it was; any other must be a valid user id.
      if (claims.subject && !claims.subject->empty()) {
        if (Status s = ValidateUserId(*claims.subject); !s.ok()) {
          refuse(400, "BadRequest", "The token's sub claim: " + s.message());
          return;
        }
      }
    }
    std::vector<std::string> groups;
    for (const auto& g : claims.groups) {
      if (Status s = ValidateGroupName(g); !s.ok()) {
        refuse(400, "BadRequest", "The token's webpubsub.group claim: " + s.message());
        return;
      }
      groups.push_back(g);
    }

    // webpubsub_mode needs a valid group whatever protocol the handshake ends with.
    std::optional<std::string> raw_group;
    if (EqualsIgnoreCase(param("webpubsub_mode").value_or(""), "sendToGroup")) {
      std::string g = param("group").value_or("");
      if (Status s = ValidateGroupName(g); !s.ok()) {
        refuse(400, "BadRequest", "webpubsub_mode=sendToGroup needs a valid group: " + s.message());
        return;
      }
      raw_group = g;
    }
    auto hs = std::make_shared<Handshake>();
    hs->hub_name = hub_name->str();
    hs->init.id = RandomHex(16);
    hs->init.user_id = claims.subject;
    hs->init.raw_publish_group = raw_group.value_or("");
    hs->init.raw_no_echo = EqualsIgnoreCase(param("noEcho").value_or(""), "true");
    if (auto keepalive = settings->KeepaliveSeconds(hub_name->str())) {
      hs->init.keepalive = std::chrono::seconds(*keepalive);
    }
    hs->roles = claims.roles;
    hs->groups = std::move(groups);
    hs->protocol = protocol;
    hs->accept = accept;
    hs->exchange = exchange;
    std::optional<rest::UpstreamRequest> connect;
    if (connect_handler) {
      connect = BuildConnectRequest(*connect_handler, hub_name->str(), hs->init.id, req, query,
                                    claims, offered);
    }
    // A slow connect handler holds only this exchange: the worker goes back to the pool.
    if (!connect) {
      FinishHandshake(hs, ConnectOutcome{});
      return;
    }
    upstream_->Call(std::move(*connect), [this, hs, offered](rest::UpstreamResponse r) {
      FinishHandshake(hs, ParseConnectResponse(r, offered));
    });
  } catch (const Poco::SyntaxException& e) {
    refuse(400, "BadRequest", "Invalid request target: " + e.message());
  } catch (const std::exception& e) {
    // An exchange answers once: after a 101 or an error this changes nothing.
    log.Error("client handshake failed: ", e.what());
    refuse(500, "InternalServerError", "The handshake failed.");
  }
}

void Gateway::FinishHandshake(const std::shared_ptr<Handshake>& hs, const ConnectOutcome& outcome) {
  try {
    if (outcome.http_status != 0) {
      int status = outcome.http_status;
      RefuseHandshake(hs->exchange, status,
                      status == 401   ? "Unauthorized"
                      : status == 403 ? "Forbidden"
                      : status < 500  ? "BadRequest"
                                      : "InternalServerError",
                      outcome.message);
      return;
    }
    // Only an accepted client creates a hub: neither a stranger's request nor one the connect
    // handler refused leaves anything behind (no hub, no log, no view).
    auto hub_name = HubName::Parse(hs->hub_name);
    auto hub = hub_name.ok() ? registry_->Get(*hub_name) : hub_name.status();
    if (!hub.ok()) {
      RefuseHandshake(hs->exchange, 503, "ServiceUnavailable", hub.status().message());
      return;
    }
    hs->hub = *hub;
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
    init.protocol = CodecByName(protocol).protocol();
    if (init.protocol != ClientProtocol::kRaw) init.raw_publish_group.clear();

    // The connection is in the log before the client sees the 101: whoever sees the upgrade
    // can address the connection at once. Frames for it wait in its queue until it attaches.
    std::string id = init.id;
    auto conn = NewConnection(hs->hub, std::move(init));
    {
      std::lock_guard lock(opening_mu_);
      opening_[id] = conn->handle();
    }
    storage::Entry e;
    e.kind = storage::EntryKind::kConnectionOpen;
    e.timestamp_ms = SystemClock::Get().NowUnixMs();
    e.origin_connection = id;
    e.user_id = conn->user_id();
    e.roles = std::move(roles);
    e.groups = std::move(groups);
    e.connection_state = conn->state();
    e.subprotocol = protocol;
    e.reliable = conn->codec().reliable();
    e.node_id = registry_->node_id();
    replication::AppendCallbacks cb;
    cb.executor = conn->loop();
    cb.durable = [this, conn, hs, id, protocol](Result<uint64_t> r) {
      if (!r.ok()) {
        TakeOpening(id);
        Unregister(conn->handle());
        RefuseHandshake(hs->exchange, 503, "ServiceUnavailable", r.status().message());
        return;
      }
      // The 101 leaves on the HTTP connection's loop; then its transport comes to this one.
      EventLoop* loop = conn->loop();
      hs->exchange->Upgrade(
          SwitchingProtocols(hs->accept, protocol),
          [conn, loop](std::unique_ptr<Transport> transport, std::string early_bytes) {
            if (!transport) {
              loop->Post(
                  [conn] { conn->CloseByService(1011, "The WebSocket handshake failed.", false); });
              return;
            }
            auto box = std::make_shared<std::unique_ptr<Transport>>(std::move(transport));
            loop->Post([conn, box, early = std::move(early_bytes)] {
              conn->Attach(std::move(*box), early);
            });
          });
    };
    hs->hub->Append(std::move(e), std::move(cb));
  } catch (const std::exception& ex) {
    Logger("handshake")
        .With("hub", hs->hub_name)
        .With("id", hs->init.id)
        .Error("finishing the handshake failed: ", ex.what());
    RefuseHandshake(hs->exchange, 500, "InternalServerError", "The handshake failed.");
  }
}

}  // namespace hubcast::server
