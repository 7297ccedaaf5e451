// hubcast::ServiceClient: the C++ SDK for app servers. It drives a hub over the REST API of
// Hubcast (or of Azure Web PubSub) the way `@azure/web-pubsub`'s WebPubSubServiceClient does:
// sends to all / a group / a user / a connection, group and user membership, closes,
// existence checks, permissions, listings, and client access URLs signed locally with the
// access key. Installed as <hubcast/service_client.h> (library Hubcast::service_client,
// pkg-config `hubcast`); this header includes only the standard library.
//
// Errors: no exception leaves this API. Every operation's result is a ServiceResult<T>: a
// value, or a ServiceError carrying the HTTP status, the service's error code and message, and
// its raw error body (see ServiceError for the three families of errors).
//
// Asynchronous and blocking forms: each network operation `Foo` has `FooAsync`, which returns
// at once with a ServiceFuture (take the result with get(), or have it handed to a callback
// with Then()), and `Foo`, which waits for it. Requests run on cpprestsdk's shared thread pool.
// Waiting inside that pool (a blocking form or get() in a cpprestsdk handler or a Then
// callback) can starve it; use Then there.
//
// Thread-safety: a ServiceClient is an immutable handle; all methods are const and may be called
// concurrently from any number of threads. Copies share one HTTP connection pool. In-flight
// requests keep what they need alive, so a client may be destroyed while its futures are pending.
//
// Needs C++17; the example uses C++20's designated initializers:
//   auto service = hubcast::ServiceClient::FromConnectionString(connection_string, "chat");
//   if (!service) return Fail(service.error());  // bad connection string or hub
//   auto access = service->GetClientAccessUrl({.user_id = "alice"});  // for alice: access->url
//   auto sent = service->SendToAll(hubcast::Message::Text("hello"));  // or ...Async(m).Then(f)
//   if (!sent) std::cerr << sent.error().ToString() << "\n";  // "401 Unauthorized: ..."
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hubcast {

// Why an operation failed. Three families:
//   - The service answered with an error: http_status is that status (400, 401, 404, 413, 415,
//     500, 503, ...); code and message are the service's, from its JSON error body
//     ({"code","message"} or {"error":{"code","message"}}) or, for a body-less answer such as a
//     HEAD's, the x-ms-error-code header and the reason phrase; body is the raw error body.
//   - The call was refused before anything was sent: http_status 0, code "InvalidArgument"
//     (an empty or over-long name, a bad connection string, an expiry below one minute, ...).
//   - No usable answer came: http_status 0, code "Timeout", "TransportError" (refused
//     connection, reset, not HTTP) or "InvalidResponse" (a success whose body is not what the
//     API documents); message says what happened.
struct ServiceError {
  int http_status = 0;
  std::string code;
  std::string message;
  std::string body;

  // One line for logs: "404 NotFound: <message>" or "InvalidArgument: <message>".
  std::string ToString() const {
    std::string out = http_status > 0 ? std::to_string(http_status) + " " : std::string();
    out += code.empty() ? std::string("Error") : code;
    if (!message.empty()) out += ": " + message;
    return out;
  }
};

// A value or a ServiceError. value() / operator* / operator-> require ok(); error() on an ok
// result returns an empty ServiceError.
template <typename T>
class [[nodiscard]] ServiceResult {
 public:
  ServiceResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  ServiceResult(ServiceError error)                                         // NOLINT: implicit
      : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const ServiceError& error() const {
    static const ServiceError kNone;
    return ok() ? kNone : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, ServiceError> v_;
};

// Success without a value, or a ServiceError.
template <>
class [[nodiscard]] ServiceResult<void> {
 public:
  ServiceResult() = default;
  ServiceResult(ServiceError error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const ServiceError& error() const {
    static const ServiceError kNone;
    return error_ ? *error_ : kNone;
  }

 private:
  std::optional<ServiceError> error_;
};

namespace detail {
// The state a ServiceFuture shares with the request that will satisfy it.
template <typename T>
class FutureState {
 public:
  // Called once by the SDK: runs the callback if one is waiting, else keeps the result.
  void Set(ServiceResult<T> result) {
    std::function<void(ServiceResult<T>)> callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!callback_) {
        result_.emplace(std::move(result));
        cv_.notify_all();
        return;
      }
      callback = std::move(callback_);
    }
    Call(callback, std::move(result));
  }

  ServiceResult<T> Take() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return result_.has_value() || taken_; });
    if (taken_) return TakenTwice();
    taken_ = true;
    return std::move(*result_);
  }

  bool WaitFor(std::chrono::nanoseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return result_.has_value() || taken_; });
  }

  void Then(std::function<void(ServiceResult<T>)> callback) {
    std::unique_lock<std::mutex> lock(mu_);
    if (taken_) {
      lock.unlock();
      Call(callback, TakenTwice());
    } else if (result_) {
      taken_ = true;
      ServiceResult<T> result = std::move(*result_);
      lock.unlock();
      Call(callback, std::move(result));
    } else {
      taken_ = true;
      callback_ = std::move(callback);
    }
  }

 private:
  // A callback may not throw; if it does, the exception stops here rather than in the
  // SDK's thread pool.
  static void Call(const std::function<void(ServiceResult<T>)>& callback, ServiceResult<T> r) {
    try {
      callback(std::move(r));
    } catch (...) {
    }
  }

  static ServiceResult<T> TakenTwice() {
    return ServiceError{0, "InvalidArgument", "The result of this future was already taken.", ""};
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<ServiceResult<T>> result_;
  std::function<void(ServiceResult<T>)> callback_;
  bool taken_ = false;  // by get() or Then()
};
}  // namespace detail

// The pending result of an asynchronous operation. Take it once, either way:
//   - get() waits for it (wait_for() waits a bounded time first);
//   - Then(callback) hands it to `callback` exactly once: at once, on the calling thread, if it
//     is already there, else on the SDK's thread that receives the answer (keep the callback
//     short and non-blocking: it runs on cpprestsdk's pool). The callback must not throw; an
//     exception it throws is caught and discarded.
// A second get() or Then() yields an InvalidArgument error instead of a result. The future may
// be dropped without taking the result; the request still completes.
template <typename T>
class [[nodiscard]] ServiceFuture {
 public:
  explicit ServiceFuture(std::shared_ptr<detail::FutureState<T>> state)
      : state_(std::move(state)) {}

  ServiceResult<T> get() { return state_->Take(); }
  template <typename Rep, typename Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    return state_->WaitFor(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  void Then(std::function<void(ServiceResult<T>)> callback) { state_->Then(std::move(callback)); }

 private:
  std::shared_ptr<detail::FutureState<T>> state_;
};

// How a message's bytes reach clients: JSON-subprotocol clients get dataType "json" (the JSON
// value), "text" or "binary" (base64); plain WebSocket clients get a text frame for json and
// text, a binary frame for binary.
enum class ContentType { kJson, kText, kBinary };

struct Message {
  ContentType content_type = ContentType::kJson;
  std::string data;  // the body as sent: JSON text, UTF-8 text or any bytes

  // JSON text, sent as it is (the service rejects invalid JSON with 400). Note that the string
  // hello is Json("\"hello\""), as the JS SDK's sendToAll("hello") sends it.
  static Message Json(std::string json_text) { return {ContentType::kJson, std::move(json_text)}; }
  static Message Text(std::string utf8_text) { return {ContentType::kText, std::move(utf8_text)}; }
  static Message Binary(std::string bytes) { return {ContentType::kBinary, std::move(bytes)}; }
};

// For SendToAll and SendToGroup.
struct SendToAllOptions {
  std::vector<std::string> excluded;  // connection ids that do not get the message
  std::string filter;                 // OData filter on userId, connectionId, groups; "" = none
  int message_ttl_seconds = 0;        // 0 (never expires) to 300
};

struct SendToUserOptions {
  std::string filter;
  int message_ttl_seconds = 0;
};

struct SendToConnectionOptions {
  int message_ttl_seconds = 0;
};

// For CloseAllConnections, CloseGroupConnections and CloseUserConnections.
struct CloseConnectionsOptions {
  std::vector<std::string> excluded;  // connection ids left open
  std::string reason;                 // sent to JSON clients in their `disconnected` message
};

struct AddUserToGroupOptions {
  // Hubcast extension (README, "Beyond Azure"): also remember the membership for the user's
  // later connections, for this many seconds (-1: until removed). Unset: current connections
  // only, as in Azure.
  std::optional<int64_t> membership_ttl_seconds;
};

enum class Permission { kJoinLeaveGroup, kSendToGroup };

// Client endpoint kinds: /client/hubs/{hub}, /clients/mqtt/hubs/{hub},
// /clients/socketio/hubs/{hub}.
enum class ClientProtocol { kDefault, kMqtt, kSocketIo };

struct ClientAccessOptions {
  std::optional<std::string> user_id;  // the token's `sub`; unset: an anonymous-user token
  std::vector<std::string> roles;   // e.g. "webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.g1"
  std::vector<std::string> groups;  // joined on connect
  int64_t expiration_minutes = 60;  // at least 1
  ClientProtocol protocol = ClientProtocol::kDefault;
};

// What a client connects with, as the JS SDK's getClientAccessToken returns it.
struct ClientAccess {
  std::string token;     // HS256 JWT signed with the access key
  std::string base_url;  // ws(s)://host[:port]/client/hubs/{hub}
  std::string url;       // base_url + "?access_token=" + token
};

// Listings are paged. A page holds at most max_page_size items (1-200; 0 leaves it to the
// service, which uses 200); `top` caps the items of the whole listing. To read the next page,
// pass Page::next_page_token back as ListOptions::page_token: it carries the page size and the
// remaining `top` of the listing it continues, so the other fields are ignored then.
struct ListOptions {
  int max_page_size = 0;
  std::optional<int64_t> top;
  std::string page_token;
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;  // "" on the last page
};

struct GroupMember {
  std::string connection_id;
  std::optional<std::string> user_id;  // unset for an anonymous connection
};

// Hubcast extension: a group of a user. Either one of the user's connections is in it
// (remembered == false), or the membership is remembered (AddUserToGroupOptions), until
// expires_at (ISO 8601 UTC, e.g. "2026-11-27T21:31:01.123Z") or, when expires_at is unset,
// until removed.
struct UserGroup {
  std::string group;
  bool remembered = false;
  std::optional<std::string> expires_at;
};

struct ServiceClientOptions {
  std::string api_version = "2024-12-01";  // sent as ?api-version= on every request
  // Limit on each network wait of a request (connect, each read and write), not on the whole.
  std::chrono::milliseconds timeout{30000};
};

class ServiceClient {
 public:
  // Parses a connection string as the official SDKs do
  // (`Endpoint=http://host:port;AccessKey=...;Version=1.0;`): `;`-separated, keys
  // case-insensitive, `Port=` overrides the endpoint's port, an endpoint without http(s)://
  // gets https://. Errors (InvalidArgument): a missing Endpoint or AccessKey, an endpoint that
  // is not an http(s) URL, a bad Port, or an invalid hub name
  // (^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$).
  static ServiceResult<ServiceClient> FromConnectionString(std::string_view connection_string,
                                                           std::string_view hub,
                                                           ServiceClientOptions options = {});

  const std::string& hub() const;
  // scheme://host[:port][/path], without a trailing '/'.
  const std::string& endpoint() const;

  // A client URL and token, signed locally (no request is made). Errors (InvalidArgument): an
  // empty user id, role or group, a group name the service would refuse, or
  // expiration_minutes < 1.
  ServiceResult<ClientAccess> GetClientAccessUrl(const ClientAccessOptions& options = {}) const;

  // ---- Sends (202 from the service; a send to nobody succeeds too).
  [[nodiscard]] ServiceFuture<void> SendToAllAsync(Message message,
                                                   const SendToAllOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<void> SendToGroupAsync(std::string_view group, Message message,
                                                     const SendToAllOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<void> SendToUserAsync(std::string_view user_id, Message message,
                                                    const SendToUserOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<void> SendToConnectionAsync(
      std::string_view connection_id, Message message,
      const SendToConnectionOptions& options = {}) const;

  // ---- Existence: true (200) or false (404). A connection exists while it is open, a user
  // while one of its connections is, a group while it has a member.
  [[nodiscard]] ServiceFuture<bool> ConnectionExistsAsync(std::string_view connection_id) const;
  [[nodiscard]] ServiceFuture<bool> UserExistsAsync(std::string_view user_id) const;
  [[nodiscard]] ServiceFuture<bool> GroupExistsAsync(std::string_view group) const;

  // ---- Closes. JSON clients get a `disconnected` message with the reason first.
  [[nodiscard]] ServiceFuture<void> CloseConnectionAsync(std::string_view connection_id,
                                                         std::string_view reason = {}) const;
  [[nodiscard]] ServiceFuture<void> CloseAllConnectionsAsync(
      const CloseConnectionsOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<void> CloseGroupConnectionsAsync(
      std::string_view group, const CloseConnectionsOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<void> CloseUserConnectionsAsync(
      std::string_view user_id, const CloseConnectionsOptions& options = {}) const;

  // ---- Membership. Adding an unknown connection fails with 404; every removal of something
  // absent succeeds.
  [[nodiscard]] ServiceFuture<void> AddConnectionToGroupAsync(std::string_view group,
                                                              std::string_view connection_id) const;
  [[nodiscard]] ServiceFuture<void> RemoveConnectionFromGroupAsync(
      std::string_view group, std::string_view connection_id) const;
  [[nodiscard]] ServiceFuture<void> RemoveConnectionFromAllGroupsAsync(
      std::string_view connection_id) const;
  [[nodiscard]] ServiceFuture<void> AddUserToGroupAsync(
      std::string_view group, std::string_view user_id,
      const AddUserToGroupOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<void> RemoveUserFromGroupAsync(std::string_view group,
                                                             std::string_view user_id) const;
  [[nodiscard]] ServiceFuture<void> RemoveUserFromAllGroupsAsync(std::string_view user_id) const;
  // Every connection matching `filter` (OData; "" = every connection of the hub) joins / leaves
  // every group in `groups` (at least one).
  [[nodiscard]] ServiceFuture<void> AddConnectionsToGroupsAsync(
      const std::vector<std::string>& groups, std::string_view filter) const;
  [[nodiscard]] ServiceFuture<void> RemoveConnectionsFromGroupsAsync(
      const std::vector<std::string>& groups, std::string_view filter) const;

  // ---- Permissions. target_group: the group the permission is about; unset: every group.
  [[nodiscard]] ServiceFuture<void> GrantPermissionAsync(
      std::string_view connection_id, Permission permission,
      std::optional<std::string> target_group = std::nullopt) const;
  [[nodiscard]] ServiceFuture<void> RevokePermissionAsync(
      std::string_view connection_id, Permission permission,
      std::optional<std::string> target_group = std::nullopt) const;
  [[nodiscard]] ServiceFuture<bool> HasPermissionAsync(
      std::string_view connection_id, Permission permission,
      std::optional<std::string> target_group = std::nullopt) const;

  // ---- Listings (ordered by connection id / group name). ListUserGroups and ListGroups are
  // Hubcast extensions; ListGroups lists the groups that have at least one connection.
  [[nodiscard]] ServiceFuture<Page<GroupMember>> ListConnectionsInGroupAsync(
      std::string_view group, const ListOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<Page<UserGroup>> ListUserGroupsAsync(
      std::string_view user_id, const ListOptions& options = {}) const;
  [[nodiscard]] ServiceFuture<Page<std::string>> ListGroupsAsync(
      const ListOptions& options = {}) const;
  // Hubcast extension: the serving node's status as JSON text (GET /api/status: the node, its
  // hubs with connection counts and message rates, the cluster's nodes and regions; README,
  // "Operating it"). Not hub-scoped. Azure has no such route (404).
  [[nodiscard]] ServiceFuture<std::string> GetServiceStatusAsync() const;

  // ---- Blocking forms: the same operations, waiting for the answer.
  ServiceResult<void> SendToAll(Message message, const SendToAllOptions& options = {}) const {
    return SendToAllAsync(std::move(message), options).get();
  }
  ServiceResult<void> SendToGroup(std::string_view group, Message message,
                                  const SendToAllOptions& options = {}) const {
    return SendToGroupAsync(group, std::move(message), options).get();
  }
  ServiceResult<void> SendToUser(std::string_view user_id, Message message,
                                 const SendToUserOptions& options = {}) const {
    return SendToUserAsync(user_id, std::move(message), options).get();
  }
  ServiceResult<void> SendToConnection(std::string_view connection_id, Message message,
                                       const SendToConnectionOptions& options = {}) const {
    return SendToConnectionAsync(connection_id, std::move(message), options).get();
  }
  ServiceResult<bool> ConnectionExists(std::string_view connection_id) const {
    return ConnectionExistsAsync(connection_id).get();
  }
  ServiceResult<bool> UserExists(std::string_view user_id) const {
    return UserExistsAsync(user_id).get();
  }
  ServiceResult<bool> GroupExists(std::string_view group) const {
    return GroupExistsAsync(group).get();
  }
  ServiceResult<void> CloseConnection(std::string_view connection_id,
                                      std::string_view reason = {}) const {
    return CloseConnectionAsync(connection_id, reason).get();
  }
  ServiceResult<void> CloseAllConnections(const CloseConnectionsOptions& options = {}) const {
    return CloseAllConnectionsAsync(options).get();
  }
  ServiceResult<void> CloseGroupConnections(std::string_view group,
                                            const CloseConnectionsOptions& options = {}) const {
    return CloseGroupConnectionsAsync(group, options).get();
  }
  ServiceResult<void> CloseUserConnections(std::string_view user_id,
                                           const CloseConnectionsOptions& options = {}) const {
    return CloseUserConnectionsAsync(user_id, options).get();
  }
  ServiceResult<void> AddConnectionToGroup(std::string_view group,
                                           std::string_view connection_id) const {
    return AddConnectionToGroupAsync(group, connection_id).get();
  }
  ServiceResult<void> RemoveConnectionFromGroup(std::string_view group,
                                                std::string_view connection_id) const {
    return RemoveConnectionFromGroupAsync(group, connection_id).get();
  }
  ServiceResult<void> RemoveConnectionFromAllGroups(std::string_view connection_id) const {
    return RemoveConnectionFromAllGroupsAsync(connection_id).get();
  }
  ServiceResult<void> AddUserToGroup(std::string_view group, std::string_view user_id,
                                     const AddUserToGroupOptions& options = {}) const {
    return AddUserToGroupAsync(group, user_id, options).get();
  }
  ServiceResult<void> RemoveUserFromGroup(std::string_view group, std::string_view user_id) const {
    return RemoveUserFromGroupAsync(group, user_id).get();
  }
  ServiceResult<void> RemoveUserFromAllGroups(std::string_view user_id) const {
    return RemoveUserFromAllGroupsAsync(user_id).get();
  }
  ServiceResult<void> AddConnectionsToGroups(const std::vector<std::string>& groups,
                                             std::string_view filter) const {
    return AddConnectionsToGroupsAsync(groups, filter).get();
  }
  ServiceResult<void> RemoveConnectionsFromGroups(const std::vector<std::string>& groups,
                                                  std::string_view filter) const {
    return RemoveConnectionsFromGroupsAsync(groups, filter).get();
  }
  ServiceResult<void> GrantPermission(
      std::string_view connection_id, Permission permission,
      std::optional<std::string> target_group = std::nullopt) const {
    return GrantPermissionAsync(connection_id, permission, std::move(target_group)).get();
  }
  ServiceResult<void> RevokePermission(
      std::string_view connection_id, Permission permission,
      std::optional<std::string> target_group = std::nullopt) const {
    return RevokePermissionAsync(connection_id, permission, std::move(target_group)).get();
  }
  ServiceResult<bool> HasPermission(std::string_view connection_id, Permission permission,
                                    std::optional<std::string> target_group = std::nullopt) const {
    return HasPermissionAsync(connection_id, permission, std::move(target_group)).get();
  }
  ServiceResult<Page<GroupMember>> ListConnectionsInGroup(std::string_view group,
                                                          const ListOptions& options = {}) const {
    return ListConnectionsInGroupAsync(group, options).get();
  }
  ServiceResult<Page<UserGroup>> ListUserGroups(std::string_view user_id,
                                                const ListOptions& options = {}) const {
    return ListUserGroupsAsync(user_id, options).get();
  }
  ServiceResult<Page<std::string>> ListGroups(const ListOptions& options = {}) const {
    return ListGroupsAsync(options).get();
  }
  ServiceResult<std::string> GetServiceStatus() const { return GetServiceStatusAsync().get(); }

  struct Impl;  // defined in service_client.cc

 private:
  explicit ServiceClient(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace hubcast
