#include "rest/rest_api.h"

#include "base/base64.h"
#include "base/json.h"
#include "base/log.h"
#include "base/names.h"
#include "base/strings.h"
#include "rest/jwt.h"
#include "rest/rest_bodies.h"
#include "storage/entry.h"
#include "storage/filter.h"
#include "storage/permissions.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcast::rest {
namespace {

const Logger& Log() {
  static const Logger log("rest");
  return log;
}

constexpr std::string_view kDefaultApiVersion = "2024-12-01";
constexpr int64_t kMaxPageSize = 200;
constexpr int64_t kMaxTop = 2147483647;
constexpr int64_t kMaxMembershipTtlSeconds = 315360000;  // ten years

// ISO 8601 UTC with milliseconds, e.g. 2026-11-27T21:31:01.123Z.
std::string FormatUtc(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}
constexpr int64_t kMaxMinutesToExpire = 2147483647;
constexpr int64_t kMaxMessageTtlSeconds = 300;

// ---------------------------------------------------------------------------------------------
// Small text helpers.

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

// Decodes %XX escapes once. A '%' not followed by two hex digits stays as it is (lenient, as
// ASP.NET is). plus_is_space applies to query strings only: in a path '+' is a plain '+'.
std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = HexDigitValue(s[i + 1]);
      const int lo = HexDigitValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

// Percent-encodes everything but RFC 3986 unreserved characters (for query values we emit).
std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0x0f]);
    }
  }
  return out;
}

// A whole decimal integer (optional sign), nothing else.
std::optional<int64_t> ParseInt(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The one error table of the REST surface (see rest_api.h).
struct HttpError {
  int status;
  const char* code;
};

HttpError ErrorFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
      return {400, "BadRequest"};
    case StatusCode::kUnauthorized:
      return {401, "Unauthorized"};
    case StatusCode::kNotFound:
      return {404, "NotFound"};
    case StatusCode::kTooLarge:
      return {413, "PayloadTooLarge"};
    case StatusCode::kUnsupportedMedia:
      return {415, "UnsupportedMediaType"};
    case StatusCode::kUnavailable:
      return {503, "ServiceUnavailable"};
    default:
      return {500, "InternalServerError"};  // kInternal and anything unexpected
  }
}

// ---------------------------------------------------------------------------------------------
// Routes. Patterns are the path segments after "/api"; "{}" captures a (decoded) segment,
// anything else is a literal compared case-insensitively, as ASP.NET routing does.

enum class Op {
  kHealth,
  kSendToAll,
  kSendToConnection,
  kSendToUser,
  kSendToGroup,
  kConnectionExists,
  kCloseConnection,
  kCloseAllConnections,
  kCloseGroupConnections,
  kCloseUserConnections,
  kGroupExists,
  kUserExists,
  kAddConnectionToGroup,
  kRemoveConnectionFromGroup,
  kRemoveConnectionFromAllGroups,
  kAddUserToGroup,
  kRemoveUserFromGroup,
  kRemoveUserFromAllGroups,
  kAddConnectionsToGroups,
  kRemoveConnectionsFromGroups,
  kGrantPermission,
  kRevokePermission,
  kCheckPermission,
  kGenerateClientToken,
  kListConnectionsInGroup,
  kListUserGroups,  // Hubcast extension
  kListGroups,      // Hubcast extension
};

struct MethodOp {
  std::string_view method;
  Op op;
};

struct Route {
  std::vector<std::string_view> pattern;
  std::vector<MethodOp> methods;
};

const std::vector<Route>& Routes() {
  static const std::vector<Route> routes = {
      {{"health"}, {{"GET", Op::kHealth}, {"HEAD", Op::kHealth}}},
      {{"hubs", "{}", ":send"}, {{"POST", Op::kSendToAll}}},
      {{"hubs", "{}", ":closeConnections"}, {{"POST", Op::kCloseAllConnections}}},
      {{"hubs", "{}", ":addToGroups"}, {{"POST", Op::kAddConnectionsToGroups}}},
      {{"hubs", "{}", ":removeFromGroups"}, {{"POST", Op::kRemoveConnectionsFromGroups}}},
      {{"hubs", "{}", ":generateToken"}, {{"POST", Op::kGenerateClientToken}}},
      {{"hubs", "{}", "connections", "{}"},
       {{"HEAD", Op::kConnectionExists}, {"DELETE", Op::kCloseConnection}}},
      {{"hubs", "{}", "connections", "{}", ":send"}, {{"POST", Op::kSendToConnection}}},
      {{"hubs", "{}", "connections", "{}", "groups"},
       {{"DELETE", Op::kRemoveConnectionFromAllGroups}}},
      {{"hubs", "{}", "users", "{}"}, {{"HEAD", Op::kUserExists}}},
      {{"hubs", "{}", "users", "{}", ":send"}, {{"POST", Op::kSendToUser}}},
      {{"hubs", "{}", "users", "{}", ":closeConnections"}, {{"POST", Op::kCloseUserConnections}}},
      {{"hubs", "{}", "users", "{}", "groups"},
       {{"GET", Op::kListUserGroups}, {"DELETE", Op::kRemoveUserFromAllGroups}}},
      {{"hubs", "{}", "groups"}, {{"GET", Op::kListGroups}}},
      {{"hubs", "{}", "users", "{}", "groups", "{}"},
       {{"PUT", Op::kAddUserToGroup}, {"DELETE", Op::kRemoveUserFromGroup}}},
      {{"hubs", "{}", "groups", "{}"}, {{"HEAD", Op::kGroupExists}}},
      {{"hubs", "{}", "groups", "{}", ":send"}, {{"POST", Op::kSendToGroup}}},
      {{"hubs", "{}", "groups", "{}", ":closeConnections"}, {{"POST", Op::kCloseGroupConnections}}},
      {{"hubs", "{}", "groups", "{}", "connections"}, {{"GET", Op::kListConnectionsInGroup}}},
      {{"hubs", "{}", "groups", "{}", "connections", "{}"},
       {{"PUT", Op::kAddConnectionToGroup}, {"DELETE", Op::kRemoveConnectionFromGroup}}},
      {{"hubs", "{}", "permissions", "{}", "connections", "{}"},
       {{"PUT", Op::kGrantPermission},
        {"DELETE", Op::kRevokePermission},
        {"HEAD", Op::kCheckPermission}}},
  };
  return routes;
}

// Allocates nothing until a route matches (a publish tries up to twenty routes).
const Route* MatchRoute(const std::vector<std::string>& segments,
                        std::vector<std::string>* captures) {
  for (const Route& route : Routes()) {
    if (route.pattern.size() != segments.size()) continue;
    bool match = true;
    for (size_t i = 0; i < segments.size() && match; ++i) {
      match = route.pattern[i] == "{}" || EqualsIgnoreCase(route.pattern[i], segments[i]);
    }
    if (!match) continue;
    captures->clear();
    for (size_t i = 0; i < segments.size(); ++i) {
      if (route.pattern[i] == "{}") captures->push_back(segments[i]);
    }
    return &route;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type;
  // Answered later, by the completion of an append made on an event loop.
  bool pending = false;
};

// Which operations an event loop may serve (RestApi::HandleWithoutWaiting): everything but
// the reads, which wait for the view to catch up (a read barrier).
bool ServedWithoutWaiting(Op op) {
  switch (op) {
    case Op::kConnectionExists:
    case Op::kGroupExists:
    case Op::kUserExists:
    case Op::kCheckPermission:
    case Op::kListConnectionsInGroup:
    case Op::kListUserGroups:
    case Op::kListGroups:
      return false;
    default:
      return true;
  }
}

// Responses: always with Content-Length (0 when empty) so the connection can be kept alive;
// HEAD responses carry the headers only.
void FillReply(const std::string& method, const Reply& reply, HttpResponse& response) {
  response.status = reply.status;
  response.body = method == "HEAD" ? std::string() : reply.body;
  if (!reply.content_type.empty() && !response.body.empty()) {
    response.headers.Set("Content-Type", reply.content_type);
  }
}

void FillError(const std::string& method, const std::string& raw_path, const Status& status,
               HttpResponse& response) {
  const HttpError error = ErrorFor(status.code());
  if (error.status == 503) {
    Log().Warn(method, " ", raw_path, ": ", status.message());
  } else if (error.status >= 500) {
    Log().Error(method, " ", raw_path, ": ", status.message());
  } else {
    Log().Debug(method, " ", raw_path, " -> ", error.status, ": ", status.message());
  }
  response.headers.Set("x-ms-error-code", error.code);
  if (error.status == 401) response.headers.Set("WWW-Authenticate", "Bearer");
  // Busy or briefly unable to write (full queues, a full disk, a lost cluster link): the
  // official SDKs' retry policies honour Retry-After.
  if (error.status == 503) response.headers.Set("Retry-After", "1");
  FillReply(method, {error.status, ErrorJson(error.code, status.message()), "application/json"},
            response);
}

// Maps the apply status of a command to the reply.
Result<Reply> FromApply(const Status& applied, int success_status, bool not_found_is_success) {
  if (applied.ok() || (not_found_is_success && applied.code() == StatusCode::kNotFound)) {
    return Reply{success_status, "", ""};
  }
  switch (applied.code()) {
    case StatusCode::kNotFound:
    case StatusCode::kUnavailable:
      return applied;
    default:
      return Status::Internal("Command failed to apply: " + applied.message());
  }
}

// One request from routing to response. Lives on the handling thread's stack only; what an
// append's completion needs later is copied into it.
class Exchange {
 public:
  // The answer to a write served on an event loop, once its append completes.
  using Respond = std::function<void(HttpResponse)>;

  Exchange(replication::HubRegistry* hubs, const RestOptions& options, TokenCache* tokens,
           const Clock* clock, const HttpRequest& request, HttpResponse& response)
      : hubs_(hubs),
        options_(options),
        tokens_(tokens),
        clock_(clock),
        request_(request),
        response_(response) {}

  // On an event loop: writes append without waiting, their completion runs on `loop` and
  // answers through `respond`; a request that would wait is deferred (nothing done).
  void ServeOnLoop(Executor* loop, Respond respond) {
    loop_ = loop;
    respond_ = std::move(respond);
  }

  void Run();
  // After Run: the answer is in the response now (neither deferred nor pending).
  bool deferred() const { return deferred_; }
  bool pending() const { return pending_; }

 private:
  // Request parsing.
  bool SplitTarget();
  void ParseQuery();
  const std::string* First(std::string_view name) const;
  std::vector<std::string> All(std::string_view name) const;
  Status CheckUtf8() const;
  Status Authenticate() const;

  // Body handling.
  Result<std::string> ReadBody();

  // Responses.
  void Send(const Reply& reply);
  void SendError(const Status& status);

  Result<Reply> Dispatch(Op op);
  std::shared_ptr<replication::Hub> read_hub_;

  // Validation helpers: each returns the failure to answer, if any.
  // Writes: the hub, created by this authenticated call if it is new.
  // The hub named by the path (parsed only: nothing is created). A write gets its hub with
  // hubs_->Get once the whole request is valid, so a bad request creates no hub.
  Result<HubName> PathHub() const;
  // Reads: the hub's view once it applied everything acknowledged before the call (a read
  // barrier), or an empty view for a hub that does not exist: reads create nothing.
  Result<const storage::HubView*> ReadView();
  Status ValidateTarget(storage::Scope scope, const std::string& target) const;
  Result<std::vector<std::string>> Excluded() const;
  Result<std::shared_ptr<const storage::Filter>> QueryFilter() const;
  Result<storage::Permission> PathPermission(const std::string& text) const;
  Result<std::optional<std::string>> TargetName() const;
  std::string LinkBase() const;
  std::string MediaType() const;

  storage::Entry NewEntry(storage::EntryKind kind, storage::Scope scope, std::string target) const;
  // The hub a valid write goes to, created by this call if it is new. On a loop only a hub
  // already open (anything else is deferred to a thread that may wait).
  Result<std::shared_ptr<replication::Hub>> WriteHub(const HubName& name);
  // Appends `e` and maps its outcome: on a loop through the append's completion (the reply
  // is pending), elsewhere by waiting. `durable_only`: answered once durable (sends), not
  // once applied.
  Result<Reply> Commit(replication::Hub& hub, storage::Entry e, int success_status,
                       bool not_found_is_success, bool durable_only = false);

  // Operations.
  Result<Reply> SendMessage(storage::Scope scope, const std::string& target);
  Result<Reply> CloseConnections(storage::Scope scope, const std::string& target);
  Result<Reply> Exists(storage::Scope scope, const std::string& target);
  Result<Reply> ChangeMembership(storage::EntryKind kind, storage::Scope scope,
                                 const std::string& target, std::vector<std::string> groups);
  Result<Reply> ChangeMembershipByFilter(storage::EntryKind kind);
  Result<Reply> ChangePermission(storage::EntryKind kind, const std::string& permission,
                                 const std::string& connection_id);
  Result<Reply> CheckPermission(const std::string& permission, const std::string& connection_id);
  Result<Reply> GenerateClientToken();
  Result<Reply> ListConnectionsInGroup(const std::string& group);
  Result<Reply> ListUserGroups(const std::string& user);
  Result<Reply> ListGroups();
  // Paging parameters shared by the listings: maxpagesize, top and a continuation token that
  // is the base64url of the last item's key.
  struct Paging {
    int64_t page_size = 0;
    std::optional<int64_t> top;
    std::string after;
    int64_t limit() const { return top ? std::min(page_size, *top) : page_size; }
  };
  Result<Paging> ReadPaging(bool (*valid_key)(const std::string&));
  // `"nextLink":...` for a page of `count` items whose last key is `last`.
  void AppendNextLink(std::string& body, const Paging& paging, int64_t count,
                      const std::string& last);

  replication::HubRegistry* hubs_;
  const RestOptions& options_;
  TokenCache* tokens_;
  const Clock* clock_;
  const HttpRequest& request_;
  HttpResponse& response_;

  std::string raw_path_;  // as on the wire, without the query string
  std::string raw_query_;
  std::vector<std::string> segments_;                       // decoded, below "/api"
  std::vector<std::pair<std::string, std::string>> query_;  // decoded
  std::vector<std::string> captures_;                       // decoded route parameters

  Executor* loop_ = nullptr;  // set: served on an event loop
  Respond respond_;
  bool deferred_ = false;
  bool pending_ = false;
};

bool Exchange::SplitTarget() {
  std::string_view uri = request_.target;
  uri = uri.substr(0, uri.find('#'));
  const size_t q = uri.find('?');
  std::string_view path = uri.substr(0, q);
  if (q != std::string_view::npos) raw_query_ = std::string(uri.substr(q + 1));
  if (path.empty() || path.front() != '/') {
    // Absolute form (RFC 9112 3.2.2): keep only the path.
    const size_t scheme_end = path.find("://");
    if (scheme_end == std::string_view::npos) return false;
    const size_t slash = path.find('/', scheme_end + 3);
    if (slash == std::string_view::npos) return false;
    path = path.substr(slash);
  }
  raw_path_ = std::string(path);

  // Split first, then decode each segment once: an encoded '/' is part of a name, not a
  // separator (PROTOCOL.md 1.3).
  std::vector<std::string> parts;
  size_t start = 1;
  for (;;) {
    const size_t slash = path.find('/', start);
    parts.push_back(PercentDecode(path.substr(start, slash - start), /*plus_is_space=*/false));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() > 1 && parts.back().empty()) parts.pop_back();  // one trailing '/'
  if (parts.empty() || !EqualsIgnoreCase(parts.front(), "api")) return false;
  segments_.assign(parts.begin() + 1, parts.end());
  return true;
}

void Exchange::ParseQuery() {
  std::string_view rest = raw_query_;
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string name = PercentDecode(pair.substr(0, eq), /*plus_is_space=*/true);
    std::string value = eq == std::string_view::npos
                            ? std::string()
                            : PercentDecode(pair.substr(eq + 1), /*plus_is_space=*/true);
    query_.emplace_back(std::move(name), std::move(value));
  }
}

// Query parameter names are case-insensitive (ASP.NET binds them so); a repeated
// single-valued parameter takes its first value.
const std::string* Exchange::First(std::string_view name) const {
  for (const auto& [key, value] : query_) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

std::vector<std::string> Exchange::All(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : query_) {
    if (EqualsIgnoreCase(key, name)) out.push_back(value);
  }
  return out;
}

// Names and parameter values end up in JSON frames and bodies; bytes that are not UTF-8
// would come back altered, so they are refused at the door.
Status Exchange::CheckUtf8() const {
  for (const std::string& s : segments_) {
    if (!json::IsValidUtf8(s)) {
      return Status::InvalidArgument("The request path is not valid UTF-8 once decoded.");
    }
  }
  for (const auto& [key, value] : query_) {
    if (!json::IsValidUtf8(key) || !json::IsValidUtf8(value)) {
      return Status::InvalidArgument("The query string is not valid UTF-8 once decoded.");
    }
  }
  return Status::Ok();
}

Status Exchange::Authenticate() const {
  const std::string value = request_.headers.Get("Authorization");
  const std::string_view header = Trim(value);
  constexpr std::string_view kBearer = "bearer ";
  if (header.size() <= kBearer.size() ||
      !EqualsIgnoreCase(header.substr(0, kBearer.size()), kBearer)) {
    return Status::Unauthorized("A bearer token is required: Authorization: Bearer <jwt>.");
  }
  const std::string_view token = Trim(header.substr(kBearer.size()));
  Result<std::shared_ptr<const TokenClaims>> claims =
      tokens_->Verify(token, clock_->NowUnixMs() / 1000);
  if (!claims.ok()) {
    return claims.status().code() == StatusCode::kUnauthorized
               ? claims.status()
               : Status::Unauthorized("Invalid access token.");
  }
  for (const std::string& audience : (*claims)->audiences) {
    if (AudiencePathMatches(audience, raw_path_)) return Status::Ok();
  }
  return Status::Unauthorized("The access token's audience does not match the request URL.");
}

// ---------------------------------------------------------------------------------------------
// Body: the front has read it whole, within the same limit (server/http_parser.h); checked
// here again so the API keeps its own contract whatever calls it.

Result<std::string> Exchange::ReadBody() {
  if (request_.body.size() > options_.max_body_bytes) {
    return Status::TooLarge("The request body is larger than " +
                            std::to_string(options_.max_body_bytes) + " bytes.");
  }
  return request_.body;
}

// ---------------------------------------------------------------------------------------------
void Exchange::Send(const Reply& reply) { FillReply(request_.method, reply, response_); }

void Exchange::SendError(const Status& status) {
  FillError(request_.method, raw_path_, status, response_);
}

void Exchange::Run() {
  if (!SplitTarget()) {
    SendError(Status::NotFound("No such API path."));
    return;
  }
  const Route* route = MatchRoute(segments_, &captures_);
  if (!route) {
    SendError(Status::NotFound("No such API path."));
    return;
  }
  const std::string& method = request_.method;
  const MethodOp* match = nullptr;
  std::string allow;
  for (const MethodOp& m : route->methods) {
    if (m.method == method) match = &m;
    if (!allow.empty()) allow += ", ";
    allow += m.method;
  }
  if (!match) {
    response_.headers.Set("Allow", allow);
    response_.headers.Set("x-ms-error-code", "MethodNotAllowed");
    Send({405,
          ErrorJson("MethodNotAllowed",
                    "Method " + method + " is not allowed here; allowed: " + allow + "."),
          "application/json"});
    return;
  }
  if (match->op == Op::kHealth) {
    Send({200, "", ""});
    return;
  }
  if (loop_ && !ServedWithoutWaiting(match->op)) {
    deferred_ = true;
    return;
  }
  if (Status auth = Authenticate(); !auth.ok()) {
    SendError(auth);
    return;
  }
  ParseQuery();
  if (Status utf8 = CheckUtf8(); !utf8.ok()) {
    SendError(utf8);
    return;
  }
  Result<Reply> reply = Dispatch(match->op);
  if (deferred_) return;
  if (!reply.ok()) {
    SendError(reply.status());
  } else if (reply->pending) {
    pending_ = true;
  } else {
    Send(*reply);
  }
}

Result<Reply> Exchange::Dispatch(Op op) {
  using storage::EntryKind;
  using storage::Scope;
  const auto& c = captures_;  // c[0] is always the hub
  switch (op) {
    case Op::kHealth:
      return Reply{200, "", ""};
    case Op::kSendToAll:
      return SendMessage(Scope::kAll, "");
    case Op::kSendToConnection:
      return SendMessage(Scope::kConnection, c[1]);
    case Op::kSendToUser:
      return SendMessage(Scope::kUser, c[1]);
    case Op::kSendToGroup:
      return SendMessage(Scope::kGroup, c[1]);
    case Op::kConnectionExists:
      return Exists(Scope::kConnection, c[1]);
    case Op::kGroupExists:
      return Exists(Scope::kGroup, c[1]);
    case Op::kUserExists:
      return Exists(Scope::kUser, c[1]);
    case Op::kCloseConnection:
      return CloseConnections(Scope::kConnection, c[1]);
    case Op::kCloseAllConnections:
      return CloseConnections(Scope::kAll, "");
    case Op::kCloseGroupConnections:
      return CloseConnections(Scope::kGroup, c[1]);
    case Op::kCloseUserConnections:
      return CloseConnections(Scope::kUser, c[1]);
    case Op::kAddConnectionToGroup:  // groups/{group}/connections/{connectionId}
      return ChangeMembership(EntryKind::kAddToGroups, Scope::kConnection, c[2], {c[1]});
    case Op::kRemoveConnectionFromGroup:
      return ChangeMembership(EntryKind::kRemoveFromGroups, Scope::kConnection, c[2], {c[1]});
    case Op::kRemoveConnectionFromAllGroups:
      return ChangeMembership(EntryKind::kRemoveFromGroups, Scope::kConnection, c[1], {});
    case Op::kAddUserToGroup:  // users/{userId}/groups/{group}
      return ChangeMembership(EntryKind::kAddToGroups, Scope::kUser, c[1], {c[2]});
    case Op::kRemoveUserFromGroup:
      return ChangeMembership(EntryKind::kRemoveFromGroups, Scope::kUser, c[1], {c[2]});
    case Op::kRemoveUserFromAllGroups:
      return ChangeMembership(EntryKind::kRemoveFromGroups, Scope::kUser, c[1], {});
    case Op::kAddConnectionsToGroups:
      return ChangeMembershipByFilter(EntryKind::kAddToGroups);
    case Op::kRemoveConnectionsFromGroups:
      return ChangeMembershipByFilter(EntryKind::kRemoveFromGroups);
    case Op::kGrantPermission:
      return ChangePermission(EntryKind::kGrant, c[1], c[2]);
    case Op::kRevokePermission:
      return ChangePermission(EntryKind::kRevoke, c[1], c[2]);
    case Op::kCheckPermission:
      return CheckPermission(c[1], c[2]);
    case Op::kGenerateClientToken:
      return GenerateClientToken();
    case Op::kListConnectionsInGroup:
      return ListConnectionsInGroup(c[1]);
    case Op::kListUserGroups:
      return ListUserGroups(c[1]);
    case Op::kListGroups:
      return ListGroups();
  }
  return Status::Internal("Unhandled operation.");
}

// ---------------------------------------------------------------------------------------------
// Validation.

Result<HubName> Exchange::PathHub() const { return HubName::Parse(captures_.at(0)); }

Result<const storage::HubView*> Exchange::ReadView() {
  Result<HubName> name = PathHub();
  if (!name.ok()) return name.status();
  std::shared_ptr<replication::Hub> hub = hubs_->Find(*name);
  if (!hub) {
    static const std::unique_ptr<storage::HubView> kEmpty = storage::NewMemoryView();
    return kEmpty.get();
  }
  if (Status s = hub->Barrier(); !s.ok()) return s;
  read_hub_ = std::move(hub);  // keeps the view alive for the rest of the exchange
  return &read_hub_->view();
}

Status Exchange::ValidateTarget(storage::Scope scope, const std::string& target) const {
  switch (scope) {
    case storage::Scope::kAll:
      return Status::Ok();
    case storage::Scope::kGroup:
      return ValidateGroupName(target);
    case storage::Scope::kUser:
      return ValidateUserId(target);
    case storage::Scope::kConnection:
      return ValidateConnectionId(target);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Exchange::Excluded() const {
  std::vector<std::string> excluded = All("excluded");
  for (const std::string& id : excluded) {
    if (Status s = ValidateConnectionId(id); !s.ok()) {
      return Status::InvalidArgument("Invalid 'excluded' value: " + s.message());
    }
  }
  return excluded;
}

Result<std::shared_ptr<const storage::Filter>> Exchange::QueryFilter() const {
  const std::string* text = First("filter");
  if (!text || IsBlank(*text)) return std::shared_ptr<const storage::Filter>();
  Result<std::shared_ptr<const storage::Filter>> filter = storage::Filter::Parse(*text);
  if (!filter.ok()) return Status::InvalidArgument("Invalid filter: " + filter.status().message());
  return filter;
}

Result<storage::Permission> Exchange::PathPermission(const std::string& text) const {
  std::optional<storage::Permission> p = storage::ParsePermission(text);
  if (!p) {
    return Status::InvalidArgument("Unknown permission '" + text +
                                   "': expected sendToGroup or joinLeaveGroup.");
  }
  return *p;
}

Result<std::optional<std::string>> Exchange::TargetName() const {
  const std::string* target = First("targetName");
  if (!target) return std::optional<std::string>();
  if (Status s = ValidateGroupName(*target); !s.ok()) {
    return Status::InvalidArgument("Invalid 'targetName': " + s.message());
  }
  return std::optional<std::string>(*target);
}

// "http(s)://host" as the client addressed us, for links and token audiences.
std::string Exchange::LinkBase() const {
  return (request_.secure ? "https://" : "http://") + request_.host;
}

// The media type of the body, lower-cased, without parameters such as "; charset=utf-8".
std::string Exchange::MediaType() const {
  const std::string content_type = request_.headers.Get("Content-Type");
  const std::string_view type = std::string_view(content_type).substr(0, content_type.find(';'));
  return ToLower(Trim(type));
}

storage::Entry Exchange::NewEntry(storage::EntryKind kind, storage::Scope scope,
                                  std::string target) const {
  storage::Entry e;
  e.kind = kind;
  e.timestamp_ms = clock_->NowUnixMs();
  e.scope = scope;
  e.target = std::move(target);
  return e;
}

Result<std::shared_ptr<replication::Hub>> Exchange::WriteHub(const HubName& name) {
  if (!loop_) return hubs_->Get(name);
  if (std::shared_ptr<replication::Hub> hub = hubs_->FindOpenNow(name)) return hub;
  deferred_ = true;
  return Status::Unavailable("Deferred to a worker.");
}

Result<Reply> Exchange::Commit(replication::Hub& hub, storage::Entry e, int success_status,
                               bool not_found_is_success, bool durable_only) {
  if (!loop_) {
    if (durable_only) {
      Result<uint64_t> position = hub.AppendAndWaitDurable(std::move(e));
      return FromApply(position.status(), success_status, not_found_is_success);
    }
    return FromApply(hub.AppendAndWait(std::move(e)), success_status, not_found_is_success);
  }
  // The completion outlives this exchange: it keeps copies of what the answer needs.
  auto answer = [respond = respond_, method = request_.method, path = raw_path_, success_status,
                 not_found_is_success](const Status& outcome) {
    HttpResponse response;
    Result<Reply> reply = FromApply(outcome, success_status, not_found_is_success);
    if (reply.ok()) {
      FillReply(method, *reply, response);
    } else {
      FillError(method, path, reply.status(), response);
    }
    respond(std::move(response));
  };
  replication::AppendCallbacks callbacks;
  callbacks.executor = loop_;
  if (durable_only) {
    callbacks.durable = [answer](Result<uint64_t> position) { answer(position.status()); };
  } else {
    // Refused (nothing appended): `applied` never runs, so the refusal answers.
    callbacks.durable = [answer](Result<uint64_t> position) {
      if (!position.ok()) answer(position.status());
    };
    callbacks.applied = [answer](uint64_t, const Status& applied) { answer(applied); };
  }
  hub.Append(std::move(e), std::move(callbacks));
  Reply reply;
  reply.pending = true;
  return reply;
}

// ---------------------------------------------------------------------------------------------
// Operations.

Result<Reply> Exchange::SendMessage(storage::Scope scope, const std::string& target) {
  using storage::Scope;
  auto name = PathHub();
  if (!name.ok()) return name.status();
  if (Status s = ValidateTarget(scope, target); !s.ok()) return s;
  std::vector<std::string> excluded;
  if (scope == Scope::kAll || scope == Scope::kGroup) {
    auto ex = Excluded();
    if (!ex.ok()) return ex.status();
    excluded = std::move(*ex);
  }
  std::shared_ptr<const storage::Filter> filter;
  if (scope != Scope::kConnection) {
    auto f = QueryFilter();
    if (!f.ok()) return f.status();
    filter = std::move(*f);
  }
  int ttl = 0;
  if (const std::string* text = First("messageTtlSeconds")) {
    std::optional<int64_t> v = ParseInt(*text);
    if (!v || *v < 0 || *v > kMaxMessageTtlSeconds) {
      return Status::InvalidArgument("'messageTtlSeconds' must be an integer from 0 to 300.");
    }
    ttl = static_cast<int>(*v);
  }

  const std::string media = MediaType();
  storage::DataType type;
  if (media == "application/json") {
    type = storage::DataType::kJson;
  } else if (media == "text/plain") {
    type = storage::DataType::kText;
  } else if (media.empty() || media == "application/octet-stream") {
    type = storage::DataType::kBinary;
  } else {
    return Status::UnsupportedMedia(
        "Content-Type must be application/json, text/plain or application/octet-stream.");
  }

  Result<std::string> body = ReadBody();
  if (!body.ok()) return body.status();
  if (Status s = ValidateSendBody(type, *body); !s.ok()) return s;

  storage::Entry e = NewEntry(storage::EntryKind::kSend, scope, target);
  e.excluded = std::move(excluded);
  e.filter = std::move(filter);
  // A message to a group is a group message for its members (the client SDK's
  // `group-message`), without fromUserId; everything else comes from the server.
  e.from = scope == storage::Scope::kGroup ? storage::MessageFrom::kGroup
                                           : storage::MessageFrom::kServer;
  e.data_type = type;
  e.data = std::move(*body);
  e.message_ttl_seconds = ttl;
  auto hub = WriteHub(*name);
  if (!hub.ok()) return hub.status();
  return Commit(**hub, std::move(e), 202, false, /*durable_only=*/true);
}

Result<Reply> Exchange::CloseConnections(storage::Scope scope, const std::string& target) {
  auto name = PathHub();
  if (!name.ok()) return name.status();
  if (Status s = ValidateTarget(scope, target); !s.ok()) return s;
  storage::Entry e = NewEntry(storage::EntryKind::kCloseConnections, scope, target);
  if (scope != storage::Scope::kConnection) {
    auto ex = Excluded();
    if (!ex.ok()) return ex.status();
    e.excluded = std::move(*ex);
  }
  if (const std::string* reason = First("reason")) e.reason = *reason;
  auto hub = WriteHub(*name);
  if (!hub.ok()) return hub.status();
  return Commit(**hub, std::move(e), 204, true);
}

Result<Reply> Exchange::Exists(storage::Scope scope, const std::string& target) {
  if (Status s = ValidateTarget(scope, target); !s.ok()) return s;
  auto read = ReadView();
  if (!read.ok()) return read.status();
  const storage::HubView& view = **read;
  bool exists = false;
  switch (scope) {
    case storage::Scope::kConnection:
      exists = view.ConnectionExists(target);
      break;
    case storage::Scope::kGroup:
      exists = view.GroupExists(target);
      break;
    case storage::Scope::kUser:
      exists = view.UserExists(target);
      break;
    case storage::Scope::kAll:
      break;
  }
  return Reply{exists ? 200 : 404, "", ""};
}

Result<Reply> Exchange::ChangeMembership(storage::EntryKind kind, storage::Scope scope,
                                         const std::string& target,
                                         std::vector<std::string> groups) {
  auto name = PathHub();
  if (!name.ok()) return name.status();
  for (const std::string& g : groups) {
    if (Status s = ValidateGroupName(g); !s.ok()) return s;
  }
  if (Status s = ValidateTarget(scope, target); !s.ok()) return s;
  storage::Entry e = NewEntry(kind, scope, target);
  e.groups = std::move(groups);
  const bool add = kind == storage::EntryKind::kAddToGroups;
  if (add && scope == storage::Scope::kUser) {
    // Hubcast extension: remember the membership for the user's later connections.
    if (const std::string* text = First("ttl")) {
      std::optional<int64_t> ttl = ParseInt(*text);
      if (!ttl || (*ttl < 1 && *ttl != -1) || *ttl > kMaxMembershipTtlSeconds) {
        return Status::InvalidArgument(
            "'ttl' must be -1 (until removed) or a number of seconds from 1 to 315360000.");
      }
      e.membership_ttl_seconds = *ttl;
    }
  }
  // Adding an unknown connection is the one 404 (SDKs rely on it); adding a user without
  // connections and every removal succeed.
  const bool not_found_is_success = !(add && scope == storage::Scope::kConnection);
  auto hub = WriteHub(*name);
  if (!hub.ok()) return hub.status();
  return Commit(**hub, std::move(e), add ? 200 : 204, not_found_is_success);
}

Result<Reply> Exchange::ChangeMembershipByFilter(storage::EntryKind kind) {
  auto name = PathHub();
  if (!name.ok()) return name.status();
  const std::string media = MediaType();
  if (media != "application/json") {
    return Status::UnsupportedMedia("Content-Type must be application/json.");
  }
  Result<std::string> body = ReadBody();
  if (!body.ok()) return body.status();
  Result<MembershipBody> decoded = DecodeMembershipBody(*body);
  if (!decoded.ok()) return decoded.status();

  std::shared_ptr<const storage::Filter> filter;
  if (decoded->filter && !IsBlank(*decoded->filter)) {
    auto parsed = storage::Filter::Parse(*decoded->filter);
    if (!parsed.ok()) {
      return Status::InvalidArgument("Invalid filter: " + parsed.status().message());
    }
    filter = std::move(*parsed);
  }

  storage::Entry e = NewEntry(kind, storage::Scope::kAll, "");
  e.groups = std::move(decoded->groups);
  e.filter = std::move(filter);
  auto hub = WriteHub(*name);
  if (!hub.ok()) return hub.status();
  return Commit(**hub, std::move(e), 200, false);
}

Result<Reply> Exchange::ChangePermission(storage::EntryKind kind, const std::string& permission,
                                         const std::string& connection_id) {
  auto name = PathHub();
  if (!name.ok()) return name.status();
  auto p = PathPermission(permission);
  if (!p.ok()) return p.status();
  if (Status s = ValidateConnectionId(connection_id); !s.ok()) return s;
  auto target = TargetName();
  if (!target.ok()) return target.status();
  storage::Entry e = NewEntry(kind, storage::Scope::kConnection, connection_id);
  e.permission = *p;
  e.permission_target = std::move(*target);
  const bool grant = kind == storage::EntryKind::kGrant;
  auto hub = WriteHub(*name);
  if (!hub.ok()) return hub.status();
  return Commit(**hub, std::move(e), grant ? 200 : 204, !grant);
}

Result<Reply> Exchange::CheckPermission(const std::string& permission,
                                        const std::string& connection_id) {
  auto p = PathPermission(permission);
  if (!p.ok()) return p.status();
  if (Status s = ValidateConnectionId(connection_id); !s.ok()) return s;
  auto target = TargetName();
  if (!target.ok()) return target.status();
  auto read = ReadView();
  if (!read.ok()) return read.status();
  std::optional<bool> allowed = (*read)->CheckPermission(connection_id, *p, *target);
  return Reply{allowed.value_or(false) ? 200 : 404, "", ""};
}

Result<Reply> Exchange::GenerateClientToken() {
  // Signing a token touches no hub state: the hub is neither read nor created.
  if (Result<HubName> name = PathHub(); !name.ok()) return name.status();

  std::optional<std::string> user;
  if (const std::string* u = First("userId")) {
    if (Status s = ValidateUserId(*u); !s.ok()) return s;
    user = *u;
  }
  std::vector<std::string> roles = All("role");
  std::vector<std::string> groups = All("group");
  for (const std::string& g : groups) {
    if (Status s = ValidateGroupName(g); !s.ok()) return s;
  }
  int64_t minutes = 60;
  if (const std::string* text = First("minutesToExpire")) {
    std::optional<int64_t> v = ParseInt(*text);
    if (!v || *v < 1 || *v > kMaxMinutesToExpire) {
      return Status::InvalidArgument("'minutesToExpire' must be an integer of at least 1.");
    }
    minutes = *v;
  }
  const std::string client_path = "/client/hubs/";
  if (const std::string* type = First("clientType")) {
    const std::string t = ToLower(*type);
    // A token for an endpoint Hubcast does not serve would fail only when the client connects.
    if (t == "mqtt" || t == "socketio") {
      return Status::InvalidArgument(
          "clientType '" + *type +
          "' is not supported: Hubcast serves WebSocket clients on /client/hubs/{hub} only "
          "(no MQTT or Socket.IO endpoint). Use clientType=Default.");
    }
    if (t != "default") {
      return Status::InvalidArgument("'clientType' must be Default, MQTT or SocketIO.");
    }
  }
  if (options_.access_keys.empty() || options_.access_keys.front().empty()) {
    return Status::Internal("No access key is configured to sign client tokens.");
  }

  const int64_t now = clock_->NowUnixMs() / 1000;
  json::Value payload = json::Value::Object();
  // The hub as the caller spelled it, like the SDKs do; audiences compare case-insensitively.
  payload.Add("aud", json::Value::String(LinkBase() + client_path + captures_.at(0)));
  payload.Add("iat", json::Value::Int(now));
  payload.Add("exp", json::Value::Int(now + minutes * 60));
  if (user) payload.Add("sub", json::Value::String(*user));
  auto strings = [](const std::vector<std::string>& items) {
    std::vector<json::Value> out;
    for (const std::string& s : items) out.push_back(json::Value::String(s));
    return json::Value::Array(std::move(out));
  };
  if (!roles.empty()) payload.Add("role", strings(roles));
  if (!groups.empty()) payload.Add("webpubsub.group", strings(groups));

  std::string body = "{\"token\":";
  json::AppendQuoted(body, SignToken(payload, options_.access_keys.front()));
  body += '}';
  return Reply{200, std::move(body), "application/json"};
}

// Continuation tokens are the base64url of the last key (connection id, group name) of the
// previous page; the view lists strictly after it, so items added or removed between pages
// cause neither repeats nor a failure.
Result<Exchange::Paging> Exchange::ReadPaging(bool (*valid_key)(const std::string&)) {
  Paging p;
  p.page_size = kMaxPageSize;
  if (const std::string* text = First("maxpagesize")) {
    std::optional<int64_t> v = ParseInt(*text);
    if (!v || *v < 1 || *v > kMaxPageSize) {
      return Status::InvalidArgument("'maxpagesize' must be an integer from 1 to 200.");
    }
    p.page_size = *v;
  }
  if (const std::string* text = First("top")) {
    p.top = ParseInt(*text);
    if (!p.top || *p.top < 1 || *p.top > kMaxTop) {
      return Status::InvalidArgument("'top' must be an integer from 1 to 2147483647.");
    }
  }
  if (const std::string* text = First("continuationToken")) {
    std::optional<std::string> key = Base64UrlDecode(*text);
    if (!key || !valid_key(*key) || !json::IsValidUtf8(*key)) {
      return Status::InvalidArgument("Invalid 'continuationToken'.");
    }
    p.after = std::move(*key);
  }
  return p;
}

void Exchange::AppendNextLink(std::string& body, const Paging& paging, int64_t count,
                              const std::string& last) {
  body += "],\"nextLink\":";
  const bool more = count > 0 && count == paging.limit() && (!paging.top || *paging.top > count);
  if (!more) {
    body += "null}";
    return;
  }
  const std::string* api_version = First("api-version");
  std::string link =
      LinkBase() + raw_path_ + "?api-version=" +
      PercentEncode(api_version && !api_version->empty() ? *api_version : kDefaultApiVersion) +
      "&maxpagesize=" + std::to_string(paging.page_size);
  if (paging.top) link += "&top=" + std::to_string(*paging.top - count);
  link += "&continuationToken=" + Base64UrlEncode(last);
  json::AppendQuoted(body, link);
  body += '}';
}

Result<Reply> Exchange::ListConnectionsInGroup(const std::string& group) {
  if (Status s = ValidateGroupName(group); !s.ok()) return s;
  auto paging = ReadPaging([](const std::string& k) { return ValidateConnectionId(k).ok(); });
  if (!paging.ok()) return paging.status();
  auto read = ReadView();
  if (!read.ok()) return read.status();
  const std::vector<storage::ConnectionSummary> page =
      (*read)->ListGroupConnections(group, paging->after, static_cast<size_t>(paging->limit()));

  std::string body = "{\"value\":[";
  for (size_t i = 0; i < page.size(); ++i) {
    if (i) body += ',';
    body += "{\"connectionId\":";
    json::AppendQuoted(body, page[i].connection_id);
    body += ",\"userId\":";
    if (page[i].user_id) {
      json::AppendQuoted(body, *page[i].user_id);
    } else {
      body += "null";
    }
    body += '}';
  }
  AppendNextLink(body, *paging, static_cast<int64_t>(page.size()),
                 page.empty() ? "" : page.back().connection_id);
  return Reply{200, std::move(body), "application/json"};
}

// Hubcast extension: a user's groups, remembered (with "expiresAt", null when the membership
// never expires) or through a current connection (no "expiresAt").
Result<Reply> Exchange::ListUserGroups(const std::string& user) {
  if (Status s = ValidateUserId(user); !s.ok()) return s;
  auto paging = ReadPaging([](const std::string& k) { return ValidateGroupName(k).ok(); });
  if (!paging.ok()) return paging.status();
  auto read = ReadView();
  if (!read.ok()) return read.status();
  const std::vector<storage::UserGroup> page = (*read)->ListUserGroups(
      user, paging->after, static_cast<size_t>(paging->limit()), clock_->NowUnixMs());
  std::string body = "{\"value\":[";
  for (size_t i = 0; i < page.size(); ++i) {
    if (i) body += ',';
    body += "{\"name\":";
    json::AppendQuoted(body, page[i].group);
    if (page[i].expires_at_ms) {
      body += ",\"expiresAt\":";
      if (*page[i].expires_at_ms == storage::kNever) {
        body += "null";
      } else {
        json::AppendQuoted(body, FormatUtc(*page[i].expires_at_ms));
      }
    }
    body += '}';
  }
  AppendNextLink(body, *paging, static_cast<int64_t>(page.size()),
                 page.empty() ? "" : page.back().group);
  return Reply{200, std::move(body), "application/json"};
}

// Hubcast extension: the hub's groups (those with at least one connection, as GroupExists).
Result<Reply> Exchange::ListGroups() {
  auto paging = ReadPaging([](const std::string& k) { return ValidateGroupName(k).ok(); });
  if (!paging.ok()) return paging.status();
  auto read = ReadView();
  if (!read.ok()) return read.status();
  const std::vector<std::string> page =
      (*read)->ListGroups(paging->after, static_cast<size_t>(paging->limit()));
  std::string body = "{\"value\":[";
  for (size_t i = 0; i < page.size(); ++i) {
    if (i) body += ',';
    body += "{\"name\":";
    json::AppendQuoted(body, page[i]);
    body += '}';
  }
  AppendNextLink(body, *paging, static_cast<int64_t>(page.size()), page.empty() ? "" : page.back());
  return Reply{200, std::move(body), "application/json"};
}

}  // namespace

RestApi::RestApi(replication::HubRegistry* hubs, RestOptions options, const Clock* clock)
    : hubs_(hubs),
      options_(std::move(options)),
      clock_(clock),
      tokens_(std::make_unique<TokenCache>(options_.access_keys)) {}

namespace {

HttpResponse UnexpectedFailure(const HttpRequest& request, const std::string& failure) {
  Log().Error(request.method, " ", request.target.substr(0, request.target.find('?')),
              " failed: ", failure);
  HttpResponse response =
      ErrorResponse(500, "InternalServerError", "The request failed unexpectedly.");
  if (request.method == "HEAD") response.body.clear();
  return response;
}

}  // namespace

HttpResponse RestApi::Handle(const HttpRequest& request) const {
  try {
    HttpResponse response;
    Exchange(hubs_, options_, tokens_.get(), clock_, request, response).Run();
    return response;
  } catch (const std::exception& e) {
    return UnexpectedFailure(request, e.what());
  } catch (...) {
    return UnexpectedFailure(request, "unknown exception");
  }
}

bool RestApi::HandleWithoutWaiting(const HttpRequest& request, Executor* loop,
                                   std::function<void(HttpResponse)> respond) const {
  try {
    HttpResponse response;
    Exchange exchange(hubs_, options_, tokens_.get(), clock_, request, response);
    exchange.ServeOnLoop(loop, respond);
    exchange.Run();
    if (exchange.deferred()) return false;
    if (!exchange.pending()) respond(std::move(response));
    return true;
  } catch (const std::exception& e) {
    respond(UnexpectedFailure(request, e.what()));
  } catch (...) {
    respond(UnexpectedFailure(request, "unknown exception"));
  }
  return true;
}

}  // namespace hubcast::rest
