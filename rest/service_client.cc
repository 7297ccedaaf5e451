#include "rest/service_client.h"

#include "base/json.h"
#include "base/names.h"
#include "base/status.h"
#include "rest/jwt.h"

#include <cpprest/http_client.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <functional>
#include <system_error>

namespace hubcast {
namespace {

namespace http = web::http;

constexpr char kUserAgent[] = "hubcast-cpp-sdk/" HUBCAST_VERSION;
constexpr int64_t kRestTokenSeconds = 3600;  // what the JS SDK signs its bearer tokens for
constexpr int64_t kMaxExpirationMinutes = 2147483647;

ServiceError Invalid(std::string message) {
  return ServiceError{0, "InvalidArgument", std::move(message), ""};
}

ServiceError Invalid(const Status& status) { return Invalid(status.message()); }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Encode(std::string_view s) { return web::uri::encode_data_string(std::string(s)); }

int64_t NowUnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// Connection string (PROTOCOL.md 1.4, SDK-NOTES.md 1).

struct ParsedConnectionString {
  std::string scheme;     // http or https
  std::string authority;  // host[:port], port omitted when it is the scheme's default
  std::string path;       // "" or "/prefix" without a trailing '/'
  std::string key;
};

ServiceResult<ParsedConnectionString> ParseConnectionString(std::string_view text) {
  std::optional<std::string> endpoint, key, port;
  while (!text.empty()) {
    const size_t semi = text.find(';');
    const std::string_view part = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string name = Lower(TrimSpaces(part.substr(0, eq)));
    std::string value(TrimSpaces(part.substr(eq + 1)));
    if (name == "endpoint") endpoint = std::move(value);
    if (name == "accesskey") key = std::move(value);
    if (name == "port") port = std::move(value);
  }
  if (!endpoint || endpoint->empty()) return Invalid("The connection string has no Endpoint.");
  if (!key || key->empty()) return Invalid("The connection string has no AccessKey.");
  // A bare host gets https://, as in the SDKs; another scheme is refused below.
  if (endpoint->find("://") == std::string::npos) *endpoint = "https://" + *endpoint;

  ParsedConnectionString out;
  out.key = std::move(*key);
  try {
    web::uri uri(*endpoint);
    out.scheme = Lower(uri.scheme());
    if ((out.scheme != "http" && out.scheme != "https") || uri.host().empty() ||
        !uri.query().empty() || !uri.fragment().empty()) {
      return Invalid(
          "The connection string's Endpoint must be an http or https URL "
          "without a query, such as http://127.0.0.1:8080.");
    }
    int port_number = uri.port();
    if (port) {
      int value = 0;
      auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), value);
      if (ec != std::errc() || end != port->data() + port->size() || value < 1 || value > 65535) {
        return Invalid("The connection string's Port must be a number from 1 to 65535.");
      }
      port_number = value;
    }
    std::string host = uri.host();
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    const int default_port = out.scheme == "https" ? 443 : 80;
    out.authority = host;
    if (port_number > 0 && port_number != default_port) {
      out.authority += ":" + std::to_string(port_number);
    }
    out.path = uri.path();
    while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  } catch (const std::exception&) {
    return Invalid("The connection string's Endpoint is not a valid URL.");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Requests and answers.

struct Request {
  http::method method;
  std::string path;                                        // encoded, below /api/hubs/{hub}
  std::vector<std::pair<std::string, std::string>> query;  // decoded; encoded when sent
  std::string raw_query;                                   // appended as it is (page tokens)
  bool node_wide = false;  // path is below the endpoint's root, not below the hub
  std::optional<std::string> body;
  std::string content_type;
};

struct Reply {
  int status = 0;
  std::string body;
  std::string error_code;  // x-ms-error-code
  std::string reason;      // the reason phrase
};

// Either a reply or the error that prevented one.
struct Outcome {
  Reply reply;
  std::optional<ServiceError> error;
};

bool IsSuccess(int status) { return status >= 200 && status < 300; }

// The service's error, from its JSON body ({"code","message"}, or Azure's
// {"error":{"code","message"}}), else from x-ms-error-code and the reason phrase.
ServiceError ErrorFromReply(const Reply& reply) {
  ServiceError e{reply.status, "", "", reply.body};
  if (Result<json::Value> doc = json::Parse(reply.body); doc.ok() && doc->is_object()) {
    const json::Value* detail = &*doc;
    if (const json::Value* inner = doc->Find("error"); inner && inner->is_object()) detail = inner;
    if (const json::Value* c = detail->Find("code"); c && c->is_string()) e.code = c->str();
    if (const json::Value* m = detail->Find("message"); m && m->is_string()) e.message = m->str();
  } else if (!reply.body.empty() && json::IsValidUtf8(reply.body)) {
    e.message = reply.body;
  }
  if (e.code.empty()) e.code = reply.error_code;
  if (e.code.empty()) e.code = reply.reason.empty() ? "HttpError" : reply.reason;
  if (e.message.empty()) e.message = reply.reason;
  return e;
}

ServiceError InvalidResponse(const std::string& what) {
  return ServiceError{0, "InvalidResponse", "The service's answer was not understood: " + what, ""};
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct ServiceClient::Impl {
  std::string hub;
  std::string origin;       // scheme://authority
  std::string endpoint;     // origin + path
  std::string api_path;     // path + "/api/hubs/" + encoded hub
  std::string root_path;    // path (the endpoint's, may be empty)
  std::string ws_endpoint;  // ws(s)://authority/path
  std::string key;
  ServiceClientOptions options;
  std::shared_ptr<http::client::http_client> http;

  std::string Target(const Request& request) const {
    std::string target = (request.node_wide ? root_path : api_path) + request.path +
                         "?api-version=" + Encode(options.api_version);
    for (const auto& [name, value] : request.query) target += "&" + name + "=" + Encode(value);
    if (!request.raw_query.empty()) target += "&" + request.raw_query;
    return target;
  }

  // The answer to one request. The task never faults: every failure becomes an Outcome error.
  pplx::task<Outcome> Send(const Request& request) const {
    const std::string target = Target(request);
    pplx::task<http::http_response> sent;
    try {
      json::Value claims = json::Value::Object();
      const int64_t now = NowUnixSeconds();
      claims.Add("iat", json::Value::Int(now));
      claims.Add("exp", json::Value::Int(now + kRestTokenSeconds));
      // The official SDKs sign the full request URL, query included (PROTOCOL.md 2.2).
      claims.Add("aud", json::Value::String(origin + target));
      http::http_request message(request.method);
      message.set_request_uri(web::uri(target));
      message.headers().add("Authorization", "Bearer " + rest::SignToken(claims, key));
      message.headers().add("User-Agent", kUserAgent);
      if (request.method != http::methods::HEAD)
        message.headers().add("Accept", "application/json");
      if (request.body) {
        message.set_body(*request.body, request.content_type);
      } else if (request.method != http::methods::HEAD && request.method != http::methods::GET) {
        message.headers().set_content_length(0);
      }
      sent = http->request(message);
    } catch (const std::exception& e) {
      return pplx::task_from_result(Outcome{
          {}, ServiceError{0, "TransportError", std::string("Request failed: ") + e.what(), ""}});
    }
    const bool head = request.method == http::methods::HEAD;
    return sent
        .then([head](http::http_response response) {
          auto reply = std::make_shared<Reply>();
          reply->status = response.status_code();
          reply->reason = response.reason_phrase();
          const http::http_headers& h = response.headers();
          if (auto it = h.find("x-ms-error-code"); it != h.end()) reply->error_code = it->second;
          if (head) return pplx::task_from_result(std::move(*reply));
          return response.extract_vector().then([reply](std::vector<unsigned char> bytes) {
            reply->body.assign(bytes.begin(), bytes.end());
            return std::move(*reply);
          });
        })
        .then([](pplx::task<Reply> t) {
          Outcome o;
          try {
            o.reply = t.get();
          } catch (const http::http_exception& e) {
            const bool timeout = e.error_code() == std::errc::timed_out;
            o.error = ServiceError{0, timeout ? "Timeout" : "TransportError", e.what(), ""};
          } catch (const std::exception& e) {
            o.error = ServiceError{0, "TransportError", e.what(), ""};
          } catch (...) {
            o.error = ServiceError{0, "TransportError", "unknown failure", ""};
          }
          return o;
        });
  }
};

namespace {

using Impl = ServiceClient::Impl;

// A future that is already satisfied, for calls refused before sending.
template <typename T = void>
ServiceFuture<T> Fail(ServiceError error) {
  auto state = std::make_shared<detail::FutureState<T>>();
  state->Set(std::move(error));
  return ServiceFuture<T>(std::move(state));
}

// Sends `request` and turns the reply into a result with `map` (which runs on a cpprestsdk
// thread). The future is always satisfied, whatever happens.
template <typename T>
ServiceFuture<T> Run(std::shared_ptr<const Impl> impl, const Request& request,
                     std::function<ServiceResult<T>(const Reply&)> map) {
  auto state = std::make_shared<detail::FutureState<T>>();
  // `impl` rides along so that the HTTP client outlives its request.
  impl->Send(request).then([impl, state, map = std::move(map)](Outcome o) {
    if (o.error) {
      state->Set(std::move(*o.error));
      return;
    }
    std::optional<ServiceResult<T>> result;
    try {
      result.emplace(map(o.reply));
    } catch (const std::exception& e) {
      result.emplace(InvalidResponse(e.what()));
    }
    state->Set(std::move(*result));
  });
  return ServiceFuture<T>(std::move(state));
}

ServiceFuture<void> RunExpectingSuccess(std::shared_ptr<const Impl> impl, const Request& request) {
  return Run<void>(std::move(impl), request, [](const Reply& r) -> ServiceResult<void> {
    if (IsSuccess(r.status)) return {};
    return ErrorFromReply(r);
  });
}

// HEAD checks: 200 is true, 404 false, anything else an error (as in the JS SDK).
ServiceFuture<bool> RunExists(std::shared_ptr<const Impl> impl, const Request& request) {
  return Run<bool>(std::move(impl), request, [](const Reply& r) -> ServiceResult<bool> {
    if (r.status == 404) return false;
    if (IsSuccess(r.status)) return true;
    return ErrorFromReply(r);
  });
}

Request Make(http::method method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

Request SendRequest(std::string path, Message message, int ttl) {
  Request r = Make(http::methods::POST, std::move(path));
  if (ttl != 0) r.query.emplace_back("messageTtlSeconds", std::to_string(ttl));
  switch (message.content_type) {
    case ContentType::kJson:
      r.content_type = "application/json";
      break;
    case ContentType::kText:
      r.content_type = "text/plain";
      break;
    case ContentType::kBinary:
      r.content_type = "application/octet-stream";
      break;
  }
  r.body = std::move(message.data);
  return r;
}

void AddExcluded(Request& r, const std::vector<std::string>& excluded) {
  for (const std::string& id : excluded) r.query.emplace_back("excluded", id);
}

void AddFilter(Request& r, const std::string& filter) {
  if (!filter.empty()) r.query.emplace_back("filter", filter);
}

Request CloseRequest(std::string path, const CloseConnectionsOptions& options) {
  Request r = Make(http::methods::POST, std::move(path));
  AddExcluded(r, options.excluded);
  if (!options.reason.empty()) r.query.emplace_back("reason", options.reason);
  return r;
}

// Name checks before a name goes into a path, so that an empty or over-long one gets a clear
// error instead of reaching another route.
std::optional<ServiceError> CheckGroup(std::string_view group) {
  if (Status s = ValidateGroupName(group); !s.ok()) return Invalid(s);
  return std::nullopt;
}
std::optional<ServiceError> CheckUser(std::string_view user) {
  if (Status s = ValidateUserId(user); !s.ok()) return Invalid(s);
  return std::nullopt;
}
std::optional<ServiceError> CheckConnection(std::string_view id) {
  if (Status s = ValidateConnectionId(id); !s.ok()) return Invalid(s);
  return std::nullopt;
}
std::optional<ServiceError> CheckGroups(const std::vector<std::string>& groups) {
  if (groups.empty()) return Invalid("At least one group is required.");
  for (const std::string& g : groups) {
    if (auto e = CheckGroup(g)) return e;
  }
  return std::nullopt;
}

const char* PermissionName(Permission p) {
  return p == Permission::kSendToGroup ? "sendToGroup" : "joinLeaveGroup";
}

ServiceResult<Request> PermissionRequest(http::method method, std::string_view connection_id,
                                         Permission p,
                                         const std::optional<std::string>& target_group) {
  if (auto e = CheckConnection(connection_id)) return *e;
  if (target_group) {
    if (auto e = CheckGroup(*target_group)) return *e;
  }
  Request r = Make(std::move(method), std::string("/permissions/") + PermissionName(p) +
                                          "/connections/" + Encode(connection_id));
  if (target_group) r.query.emplace_back("targetName", *target_group);
  return r;
}

json::Value StringArray(const std::vector<std::string>& items) {
  std::vector<json::Value> out;
  for (const std::string& s : items) out.push_back(json::Value::String(s));
  return json::Value::Array(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Listings.

// The query of a nextLink without its api-version: what the next request needs (maxpagesize,
// the remaining top, continuationToken), kept opaque for the caller.
std::string NextPageToken(const json::Value& doc) {
  const json::Value* link = doc.Find("nextLink");
  if (link == nullptr || link->is_null()) return std::string();
  if (!link->is_string()) throw std::runtime_error("nextLink is not a string");
  const size_t q = link->str().find('?');
  if (q == std::string::npos) throw std::runtime_error("nextLink has no query");
  std::string_view rest = std::string_view(link->str()).substr(q + 1);
  std::string token;
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view param = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (param.empty() || Lower(param).rfind("api-version=", 0) == 0) continue;
    if (!token.empty()) token += '&';
    token += param;
  }
  return token;
}

bool ValidPageToken(std::string_view token) {
  return std::all_of(token.begin(), token.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("-._~%=&+").find(c) != std::string_view::npos;
  });
}

std::optional<ServiceError> ApplyListOptions(Request& r, const ListOptions& options) {
  if (!options.page_token.empty()) {
    if (!ValidPageToken(options.page_token)) {
      return Invalid("page_token is not a token this SDK returned.");
    }
    r.raw_query = options.page_token;
    return std::nullopt;
  }
  if (options.max_page_size != 0) {
    r.query.emplace_back("maxpagesize", std::to_string(options.max_page_size));
  }
  if (options.top) r.query.emplace_back("top", std::to_string(*options.top));
  return std::nullopt;
}

// Parses {"value":[...],"nextLink":...} with `item` for each element; throws on a shape that
// is not the documented one (Run turns that into InvalidResponse).
template <typename T>
ServiceResult<Page<T>> ParsePage(const Reply& r, const std::function<T(const json::Value&)>& item) {
  if (r.status != 200) return ErrorFromReply(r);
  Result<json::Value> doc = json::Parse(r.body);
  if (!doc.ok() || !doc->is_object()) throw std::runtime_error("the body is not a JSON object");
  const json::Value* value = doc->Find("value");
  if (value == nullptr || !value->is_array()) throw std::runtime_error("no 'value' array");
  Page<T> page;
  for (const json::Value& v : value->items()) {
    if (!v.is_object()) throw std::runtime_error("an item is not an object");
    page.items.push_back(item(v));
  }
  page.next_page_token = NextPageToken(*doc);
  return page;
}

std::string RequiredString(const json::Value& object, const char* name) {
  const json::Value* v = object.Find(name);
  if (v == nullptr || !v->is_string()) throw std::runtime_error(std::string("no '") + name + "'");
  return v->str();
}

std::optional<std::string> OptionalString(const json::Value& object, const char* name) {
  const json::Value* v = object.Find(name);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) throw std::runtime_error(std::string("'") + name + "' is not a string");
  return v->str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ServiceResult<ServiceClient> ServiceClient::FromConnectionString(std::string_view connection_string,
                                                                 std::string_view hub,
                                                                 ServiceClientOptions options) {
  ServiceResult<ParsedConnectionString> parsed = ParseConnectionString(connection_string);
  if (!parsed.ok()) return parsed.error();
  if (Result<HubName> name = HubName::Parse(hub); !name.ok()) return Invalid(name.status());
  if (options.api_version.empty()) return Invalid("api_version must not be empty.");
  if (options.timeout.count() <= 0) return Invalid("timeout must be positive.");

  auto impl = std::make_shared<Impl>();
  impl->hub = std::string(hub);
  impl->origin = parsed->scheme + "://" + parsed->authority;
  impl->endpoint = impl->origin + parsed->path;
  impl->api_path = parsed->path + "/api/hubs/" + Encode(hub);
  impl->root_path = parsed->path;
  impl->ws_endpoint =
      (parsed->scheme == "https" ? "wss://" : "ws://") + parsed->authority + parsed->path;
  impl->key = std::move(parsed->key);
  impl->options = std::move(options);
  try {
    http::client::http_client_config config;
    config.set_timeout(impl->options.timeout);
    config.set_max_redirects(0);
    impl->http = std::make_shared<http::client::http_client>(web::uri(impl->origin), config);
  } catch (const std::exception& e) {
    return Invalid(std::string("Cannot use the endpoint: ") + e.what());
  }
  return ServiceClient(std::move(impl));
}

const std::string& ServiceClient::hub() const { return impl_->hub; }
const std::string& ServiceClient::endpoint() const { return impl_->endpoint; }

ServiceResult<ClientAccess> ServiceClient::GetClientAccessUrl(
    const ClientAccessOptions& options) const {
  if (options.user_id && options.user_id->empty()) {
    return Invalid("user_id must not be empty (leave it unset for no user).");
  }
  if (options.user_id) {
    if (auto e = CheckUser(*options.user_id)) return *e;
  }
  for (const std::string& role : options.roles) {
    if (role.empty()) return Invalid("A role must not be empty.");
  }
  for (const std::string& group : options.groups) {
    if (auto e = CheckGroup(group)) return *e;
  }
  if (options.expiration_minutes < 1 || options.expiration_minutes > kMaxExpirationMinutes) {
    return Invalid("expiration_minutes must be from 1 to 2147483647.");
  }
  std::string client_path = "/client/hubs/";
  if (options.protocol == ClientProtocol::kMqtt) client_path = "/clients/mqtt/hubs/";
  if (options.protocol == ClientProtocol::kSocketIo) client_path = "/clients/socketio/hubs/";
  client_path += impl_->hub;  // as the JS SDK does: the hub goes in unencoded

  // The claims of the JS SDK's getClientAccessToken (SDK-NOTES.md 4).
  json::Value claims = json::Value::Object();
  if (!options.roles.empty()) claims.Add("role", StringArray(options.roles));
  if (!options.groups.empty()) claims.Add("webpubsub.group", StringArray(options.groups));
  const int64_t now = NowUnixSeconds();
  claims.Add("iat", json::Value::Int(now));
  claims.Add("exp", json::Value::Int(now + options.expiration_minutes * 60));
  claims.Add("aud", json::Value::String(impl_->endpoint + client_path));
  if (options.user_id) claims.Add("sub", json::Value::String(*options.user_id));

  ClientAccess access;
  access.token = rest::SignToken(claims, impl_->key);
  access.base_url = impl_->ws_endpoint + client_path;
  access.url = access.base_url + "?access_token=" + access.token;
  return access;
}

// ---- Sends.

ServiceFuture<void> ServiceClient::SendToAllAsync(Message message,
                                                  const SendToAllOptions& options) const {
  Request r = SendRequest("/:send", std::move(message), options.message_ttl_seconds);
  AddExcluded(r, options.excluded);
  AddFilter(r, options.filter);
  return RunExpectingSuccess(impl_, r);
}

ServiceFuture<void> ServiceClient::SendToGroupAsync(std::string_view group, Message message,
                                                    const SendToAllOptions& options) const {
  if (auto e = CheckGroup(group)) return Fail(*e);
  Request r = SendRequest("/groups/" + Encode(group) + "/:send", std::move(message),
                          options.message_ttl_seconds);
  AddExcluded(r, options.excluded);
  AddFilter(r, options.filter);
  return RunExpectingSuccess(impl_, r);
}

ServiceFuture<void> ServiceClient::SendToUserAsync(std::string_view user_id, Message message,
                                                   const SendToUserOptions& options) const {
  if (auto e = CheckUser(user_id)) return Fail(*e);
  Request r = SendRequest("/users/" + Encode(user_id) + "/:send", std::move(message),
                          options.message_ttl_seconds);
  AddFilter(r, options.filter);
  return RunExpectingSuccess(impl_, r);
}

ServiceFuture<void> ServiceClient::SendToConnectionAsync(
    std::string_view connection_id, Message message, const SendToConnectionOptions& options) const {
  if (auto e = CheckConnection(connection_id)) return Fail(*e);
  return RunExpectingSuccess(impl_, SendRequest("/connections/" + Encode(connection_id) + "/:send",
                                                std::move(message), options.message_ttl_seconds));
}

// ---- Existence.

ServiceFuture<bool> ServiceClient::ConnectionExistsAsync(std::string_view connection_id) const {
  if (auto e = CheckConnection(connection_id)) return Fail<bool>(*e);
  return RunExists(impl_, Make(http::methods::HEAD, "/connections/" + Encode(connection_id)));
}

ServiceFuture<bool> ServiceClient::UserExistsAsync(std::string_view user_id) const {
  if (auto e = CheckUser(user_id)) return Fail<bool>(*e);
  return RunExists(impl_, Make(http::methods::HEAD, "/users/" + Encode(user_id)));
}

ServiceFuture<bool> ServiceClient::GroupExistsAsync(std::string_view group) const {
  if (auto e = CheckGroup(group)) return Fail<bool>(*e);
  return RunExists(impl_, Make(http::methods::HEAD, "/groups/" + Encode(group)));
}

// ---- Closes.

ServiceFuture<void> ServiceClient::CloseConnectionAsync(std::string_view connection_id,
                                                        std::string_view reason) const {
  if (auto e = CheckConnection(connection_id)) return Fail(*e);
  Request r = Make(http::methods::DEL, "/connections/" + Encode(connection_id));
  if (!reason.empty()) r.query.emplace_back("reason", std::string(reason));
  return RunExpectingSuccess(impl_, r);
}

ServiceFuture<void> ServiceClient::CloseAllConnectionsAsync(
    const CloseConnectionsOptions& options) const {
  return RunExpectingSuccess(impl_, CloseRequest("/:closeConnections", options));
}

ServiceFuture<void> ServiceClient::CloseGroupConnectionsAsync(
    std::string_view group, const CloseConnectionsOptions& options) const {
  if (auto e = CheckGroup(group)) return Fail(*e);
  return RunExpectingSuccess(
      impl_, CloseRequest("/groups/" + Encode(group) + "/:closeConnections", options));
}

ServiceFuture<void> ServiceClient::CloseUserConnectionsAsync(
    std::string_view user_id, const CloseConnectionsOptions& options) const {
  if (auto e = CheckUser(user_id)) return Fail(*e);
  return RunExpectingSuccess(
      impl_, CloseRequest("/users/" + Encode(user_id) + "/:closeConnections", options));
}

// ---- Membership.

ServiceFuture<void> ServiceClient::AddConnectionToGroupAsync(std::string_view group,
                                                             std::string_view connection_id) const {
  if (auto e = CheckGroup(group)) return Fail(*e);
  if (auto e = CheckConnection(connection_id)) return Fail(*e);
  return RunExpectingSuccess(
      impl_, Make(http::methods::PUT,
                  "/groups/" + Encode(group) + "/connections/" + Encode(connection_id)));
}

ServiceFuture<void> ServiceClient::RemoveConnectionFromGroupAsync(
    std::string_view group, std::string_view connection_id) const {
  if (auto e = CheckGroup(group)) return Fail(*e);
  if (auto e = CheckConnection(connection_id)) return Fail(*e);
  return RunExpectingSuccess(
      impl_, Make(http::methods::DEL,
                  "/groups/" + Encode(group) + "/connections/" + Encode(connection_id)));
}

ServiceFuture<void> ServiceClient::RemoveConnectionFromAllGroupsAsync(
    std::string_view connection_id) const {
  if (auto e = CheckConnection(connection_id)) return Fail(*e);
  return RunExpectingSuccess(
      impl_, Make(http::methods::DEL, "/connections/" + Encode(connection_id) + "/groups"));
}

ServiceFuture<void> ServiceClient::AddUserToGroupAsync(std::string_view group,
                                                       std::string_view user_id,
                                                       const AddUserToGroupOptions& options) const {
  if (auto e = CheckGroup(group)) return Fail(*e);
  if (auto e = CheckUser(user_id)) return Fail(*e);
  Request r = Make(http::methods::PUT, "/users/" + Encode(user_id) + "/groups/" + Encode(group));
  if (options.membership_ttl_seconds) {
    r.query.emplace_back("ttl", std::to_string(*options.membership_ttl_seconds));
  }
  return RunExpectingSuccess(impl_, r);
}

ServiceFuture<void> ServiceClient::RemoveUserFromGroupAsync(std::string_view group,
                                                            std::string_view user_id) const {
  if (auto e = CheckGroup(group)) return Fail(*e);
  if (auto e = CheckUser(user_id)) return Fail(*e);
  return RunExpectingSuccess(
      impl_, Make(http::methods::DEL, "/users/" + Encode(user_id) + "/groups/" + Encode(group)));
}

ServiceFuture<void> ServiceClient::RemoveUserFromAllGroupsAsync(std::string_view user_id) const {
  if (auto e = CheckUser(user_id)) return Fail(*e);
  return RunExpectingSuccess(impl_,
                             Make(http::methods::DEL, "/users/" + Encode(user_id) + "/groups"));
}

namespace {

Request GroupsByFilterRequest(const char* operation, const std::vector<std::string>& groups,
                              std::string_view filter) {
  json::Value body = json::Value::Object();
  body.Add("groups", StringArray(groups));
  body.Add("filter", json::Value::String(std::string(filter)));
  Request r = Make(http::methods::POST, operation);
  r.body = json::Serialize(body);
  r.content_type = "application/json";
  return r;
}

}  // namespace

ServiceFuture<void> ServiceClient::AddConnectionsToGroupsAsync(
    const std::vector<std::string>& groups, std::string_view filter) const {
  if (auto e = CheckGroups(groups)) return Fail(*e);
  return RunExpectingSuccess(impl_, GroupsByFilterRequest("/:addToGroups", groups, filter));
}

ServiceFuture<void> ServiceClient::RemoveConnectionsFromGroupsAsync(
    const std::vector<std::string>& groups, std::string_view filter) const {
  if (auto e = CheckGroups(groups)) return Fail(*e);
  return RunExpectingSuccess(impl_, GroupsByFilterRequest("/:removeFromGroups", groups, filter));
}

// ---- Permissions.

ServiceFuture<void> ServiceClient::GrantPermissionAsync(
    std::string_view connection_id, Permission permission,
    std::optional<std::string> target_group) const {
  auto r = PermissionRequest(http::methods::PUT, connection_id, permission, target_group);
  if (!r.ok()) return Fail(r.error());
  return RunExpectingSuccess(impl_, *r);
}

ServiceFuture<void> ServiceClient::RevokePermissionAsync(
    std::string_view connection_id, Permission permission,
    std::optional<std::string> target_group) const {
  auto r = PermissionRequest(http::methods::DEL, connection_id, permission, target_group);
  if (!r.ok()) return Fail(r.error());
  return RunExpectingSuccess(impl_, *r);
}

ServiceFuture<bool> ServiceClient::HasPermissionAsync(
    std::string_view connection_id, Permission permission,
    std::optional<std::string> target_group) const {
  auto r = PermissionRequest(http::methods::HEAD, connection_id, permission, target_group);
  if (!r.ok()) return Fail<bool>(r.error());
  return RunExists(impl_, *r);
}

// ---- Listings.

ServiceFuture<Page<GroupMember>> ServiceClient::ListConnectionsInGroupAsync(
    std::string_view group, const ListOptions& options) const {
  if (auto e = CheckGroup(group)) return Fail<Page<GroupMember>>(*e);
  Request r = Make(http::methods::GET, "/groups/" + Encode(group) + "/connections");
  if (auto e = ApplyListOptions(r, options)) return Fail<Page<GroupMember>>(*e);
  return Run<Page<GroupMember>>(impl_, r, [](const Reply& reply) {
    return ParsePage<GroupMember>(reply, [](const json::Value& v) {
      return GroupMember{RequiredString(v, "connectionId"), OptionalString(v, "userId")};
    });
  });
}

ServiceFuture<Page<UserGroup>> ServiceClient::ListUserGroupsAsync(
    std::string_view user_id, const ListOptions& options) const {
  if (auto e = CheckUser(user_id)) return Fail<Page<UserGroup>>(*e);
  Request r = Make(http::methods::GET, "/users/" + Encode(user_id) + "/groups");
  if (auto e = ApplyListOptions(r, options)) return Fail<Page<UserGroup>>(*e);
  return Run<Page<UserGroup>>(impl_, r, [](const Reply& reply) {
    return ParsePage<UserGroup>(reply, [](const json::Value& v) {
      // "expiresAt": absent (through a connection), null (remembered forever) or a time.
      UserGroup g;
      g.group = RequiredString(v, "name");
      g.remembered = v.Find("expiresAt") != nullptr;
      g.expires_at = OptionalString(v, "expiresAt");
      return g;
    });
  });
}

ServiceFuture<Page<std::string>> ServiceClient::ListGroupsAsync(const ListOptions& options) const {
  Request r = Make(http::methods::GET, "/groups");
  if (auto e = ApplyListOptions(r, options)) return Fail<Page<std::string>>(*e);
  return Run<Page<std::string>>(impl_, r, [](const Reply& reply) {
    return ParsePage<std::string>(reply,
                                  [](const json::Value& v) { return RequiredString(v, "name"); });
  });
}

ServiceFuture<std::string> ServiceClient::GetServiceStatusAsync() const {
  Request r = Make(http::methods::GET, "/api/status");
  r.node_wide = true;
  return Run<std::string>(impl_, r, [](const Reply& reply) -> ServiceResult<std::string> {
    if (reply.status != 200) return ErrorFromReply(reply);
    return reply.body;
  });
}

}  // namespace hubcast
