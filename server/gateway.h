// Gateway: the process's network front. One port serves both /client/... (WebSocket) and
// /api/... (REST), like the cloud service, over plain TCP or TLS.
//
// The HTTP front (server/http_front.h) reads requests on the EventLoops and hands complete
// ones to a fixed pool of workers: /api/ goes to the REST API, /client/ to the handshake
// (handshake.cc), anything else is a JSON 404. An accepted upgrade writes the 101 on the
// connection's loop, and its transport becomes a ClientConnection on one of the loops
// (round-robin). The Gateway is also the DeliverySink: the appliers call Deliver for every
// applied entry, and the Gateway posts the encoded frames to the loops that own the
// recipients.
//
// Connection handles: every ClientConnection has a node-local integer handle that names its
// loop and subprotocol ([63..56] loop, [55..48] ClientProtocol, [47..0] serial). The view
// keeps it in the connection's record (ConnectionRecord::local_handle), so fan-out goes from
// recipients to loops without a lookup, and each loop finds the connection in its own table.
//
// Thread-safety: Deliver runs on the appliers (several hubs at once); handshakes on HTTP
// workers. Each loop's connection table and checkpoint batch are touched only on that loop;
// ClientConnection objects only on their loop. The table of opening connections is guarded
// by a mutex.
#pragma once

#include "base/worker_pool.h"
#include "replication/delivery_sink.h"
#include "replication/hub.h"
#include "rest/rest_api.h"
#include "rest/upstream_client.h"
#include "server/client_connection.h"
#include "server/event_loop.h"
#include "server/http_front.h"
#include "server/hub_settings.h"
#include "server/live_trace.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace hubcast::server {

struct ConnectOutcome;  // what a connect handler answered (gateway.cc)

struct GatewayOptions {
  std::string bind = "127.0.0.1";
  int port = 8080;
  int event_loops = 2;
  int http_threads = 16;  // workers for complete requests (REST calls, handshakes)
  // A keep-alive HTTP connection idle between requests for this long is closed.
  std::chrono::seconds http_idle_timeout{60};
  std::shared_ptr<TlsContext> tls;  // null: plain TCP
  // Tasks a loop's inbox holds before deliveries to it wait for room.
  size_t max_loop_inbox = EventLoop::kDefaultMaxInbox;
  size_t max_loop_inbox_bytes = EventLoop::kDefaultMaxInboxBytes;
  std::vector<std::string> access_keys;
  bool allow_anonymous = false;
  ConnectionLimits limits;
  // How long a reconnection token stays valid after it was issued (each recovery issues a
  // fresh one); the reliable hold window still bounds when a dropped session can resume.
  std::chrono::seconds reconnection_token_lifetime{7 * 24 * 3600};
  // When the previous run was last known alive (Unix ms; 0 = unknown): a held session's hold
  // window counts from then, so a restart after the window closes the sessions at once.
  int64_t last_alive_unix_ms = 0;
  // When this process started (Unix ms; 0 = unknown, then the restore's own time): the down
  // time charged to a held session ends here, so a slow start-up does not use up its window
  // (what is left of it counts from when the sessions are restored).
  int64_t started_unix_ms = 0;
  // Event handlers (WebHook-Request-Origin host and per-call timeout).
  std::string origin = "localhost";
  std::chrono::milliseconds upstream_timeout{10000};
  std::string upstream_ca;  // PEM CAs for https:// event handlers, besides the system's
  std::shared_ptr<const HubSettings> settings = std::make_shared<HubSettings>();
};

// A CloudEvents request to `handler` for `event` (a system event: azure.webpubsub.sys.*,
// else azure.webpubsub.user.*) about one connection; the caller adds id, type and body.
rest::UpstreamRequest NewUpstreamRequest(const EventHandlerSettings& handler,
                                         const std::string& hub, const std::string& event,
                                         bool system, const std::string& connection_id,
                                         const std::optional<std::string>& user_id,
                                         const std::string& subprotocol,
                                         const std::optional<std::string>& state);

class Gateway final : public replication::DeliverySink {
 public:
  explicit Gateway(GatewayOptions options);
  ~Gateway() override;
  // What construction met: not OK when an event loop could not be created (descriptors
  // exhausted). Such a Gateway is only destroyed (Start returns the same status).
  const Status& status() const { return status_; }

  // Wires the registry (constructed with this Gateway as its sink) before Start.
  void SetRegistry(replication::HubRegistry* registry);
  // Starts the loops and the listener; returns the bound port (useful with port 0).
  Result<int> Start();
  // Stops accepting, tells every client (JSON: `disconnected`), closes them, stops the loops.
  void Shutdown(const std::string& reason);
  // After the registry applied the last entries: waits (bounded) for event-handler calls.
  bool DrainUpstream(std::chrono::milliseconds limit) { return upstream_->Drain(limit); }
  // Ends what could still call back into the registry or the loops: the event-handler calls
  // still pending (their callbacks run now, failing) and the replays of moving sessions.
  // Called after DrainUpstream and before the registry is destroyed; the destructor calls it
  // too (idempotent). Nothing of the Gateway is used afterwards but its destructor.
  void Stop();

  void Deliver(replication::Hub& hub, uint64_t position, const storage::Entry& entry,
               const storage::ApplyResult& result) override;

  // Loop thread of the connection: drops it from its loop's table (its logical connection
  // ended, or its close entry could not be appended).
  void Unregister(uint64_t handle);
  // Loop thread `loop`: batch a reliable connection's acknowledged sequenceId into the next
  // checkpoint entry of its hub (appended by that loop's tick hook).
  void QueueCheckpoint(int loop, const std::shared_ptr<replication::Hub>& hub,
                       const std::string& connection_id, uint64_t acked);
  size_t connection_count() const;

  static int HandleLoop(uint64_t handle) { return static_cast<int>(handle >> 56); }
  static ClientProtocol HandleProtocol(uint64_t handle) {
    return static_cast<ClientProtocol>((handle >> 48) & 0xff);
  }

  // HTTP worker entry point for every complete request (routes by path).
  void Route(const std::shared_ptr<HttpExchange>& exchange);
  // On the connection's loop, before Route: serves the REST writes that need no waiting
  // (rest::RestApi::HandleWithoutWaiting); false hands the exchange to Route on a worker.
  bool RouteOnLoop(const std::shared_ptr<HttpExchange>& exchange);
  // GET /api/status (the node's status for `hubcast status`), set before Start; without
  // one the path is the REST API's (404).
  using StatusRoute = std::function<rest::HttpResponse(const rest::HttpRequest&)>;
  void SetStatusRoute(StatusRoute route) { status_route_ = std::move(route); }
  rest::RestApi* rest() { return rest_.get(); }

  // Hub settings, replaced as a whole on SIGHUP (connections stay).
  std::shared_ptr<const HubSettings> settings() const;
  void SetSettings(std::shared_ptr<const HubSettings> settings);
  rest::UpstreamClient* upstream() { return upstream_.get(); }
  // Applied entries of watched hubs, for the dashboard's live trace.
  LiveTrace* trace() { return &trace_; }

  // An expiry and the HMAC of the connection id and that expiry with the primary key,
  // verifiable with any configured key (in constant time). Bound to the hub's log epoch: a
  // recreated log (other data dir or stream) refuses it; so does its expiry passing.
  std::string ReconnectionToken(const replication::Hub& hub,
                                const std::string& connection_id) const;
  bool VerifyReconnectionToken(const replication::Hub& hub, const std::string& connection_id,
                               const std::string& token) const;

 private:
  // Per event loop: the loop and the state only its thread touches.
  struct LoopState {
    std::unique_ptr<EventLoop> loop;
    std::unordered_map<uint64_t, std::shared_ptr<ClientConnection>> conns;
    // Pending checkpoint entries by hub.
    std::unordered_map<replication::Hub*,
                       std::pair<std::shared_ptr<replication::Hub>, storage::Entry>>
        checkpoints;
    std::atomic<size_t> count{0};
  };
  // A new connection on the next loop (round-robin), registered in that loop's table.
  std::shared_ptr<ClientConnection> NewConnection(std::shared_ptr<replication::Hub> hub,
                                                  ClientConnection::Init init);
  // Loop thread of `handle`: its connection, or nullptr once it ended.
  ClientConnection* Lookup(uint64_t handle);
  EventLoop* LoopOf(uint64_t handle) { return loops_[HandleLoop(handle)]->loop.get(); }
  // The handle of a connection whose open entry is being appended (0: not ours).
  uint64_t TakeOpening(const std::string& connection_id);
  // A reliable session moving to this node: its new connection, and the recovering socket
  // (with what to send it if the move fails).
  struct Moving {
    uint64_t handle = 0;
    std::unique_ptr<Transport> transport;  // upgraded (its 101 left)
    std::string early_bytes;               // frames the client sent right behind the upgrade
    std::string reject_frame;
  };
  // HTTP loop, after the recovery's 101: appends the move (kConnectionMoved) of `rec` here.
  void MoveHere(const std::shared_ptr<replication::Hub>& hub, const storage::ConnectionRecord& rec,
                Moving moving);
  std::optional<Moving> TakeMoving(const std::string& connection_id);
  // Lets go of the sockets the log gave to another node or held (ApplyResult::released).
  void ReleaseSockets(const storage::ApplyResult& result);
  // The move was applied at `position`: replay what the client missed, then attach.
  void ResumeMoved(std::shared_ptr<replication::Hub> hub, uint64_t position,
                   storage::ConnectionRecord record, Moving moving);
  // A handshake between authentication and the 101, which may wait for a connect handler.
  struct Handshake {
    std::shared_ptr<replication::Hub> hub;
    std::string hub_name;
    ClientConnection::Init init;
    std::vector<std::string> roles;
    std::vector<std::string> groups;
    std::string protocol;  // chosen before the connect handler (it may choose another)
    std::string accept;    // Sec-WebSocket-Accept
    std::shared_ptr<HttpExchange> exchange;  // answered with the 101 or an error
  };
  // Worker thread: a /client request (the handshake up to the connect event).
  void HandleClient(const std::shared_ptr<HttpExchange>& exchange);
  bool IsStatusTarget(std::string_view target) const;
  void FinishHandshake(const std::shared_ptr<Handshake>& hs, const ConnectOutcome& outcome);
  // Start-up: this node's connections that were open when the process stopped.
  void RestoreSessions();
  void FlushCheckpoints(int loop);
  // Deliver's parts: the entry's own effect; group state snapshots and updates (client SDK
  // 1.1); azure.webpubsub.gp.joined / gp.left for this node's connections whose memberships
  // the entry changed, when a handler of the hub asks for them.
  void DeliverEntry(replication::Hub& hub, uint64_t position, const storage::Entry& entry,
                    const storage::ApplyResult& result);
  void DeliverGroupState(const storage::ApplyResult& result);
  void FireGroupEvents(replication::Hub& hub, uint64_t position,
                       const storage::ApplyResult& result);
  // Fires a non-blocking system event (connected, disconnected, joined, left) if a handler
  // wants it.
  void FireSystemEvent(SystemEvent event, const std::string& hub,
                       const storage::ConnectionRecord& connection, std::string event_id,
                       std::string body);
  // Worker thread: a recovery handshake of a reliable session (`accept`: the checked key's
  // Sec-WebSocket-Accept). `hub` is kNotFound when it does not exist (then recovery fails like
  // any other), kUnavailable when its log cannot be reached now (503: the client tries again).
  void Recover(const std::shared_ptr<HttpExchange>& exchange,
               const Result<std::shared_ptr<replication::Hub>>& hub, const std::string& protocol,
               const std::string& accept, const std::string& connection_id,
               const std::string& token);

  GatewayOptions options_;
  Status status_ = Status::Ok();
  replication::HubRegistry* registry_ = nullptr;
  std::unique_ptr<rest::RestApi> rest_;
  std::unique_ptr<rest::UpstreamClient> upstream_;
  mutable std::mutex settings_mu_;
  std::shared_ptr<const HubSettings> settings_;
  std::vector<std::unique_ptr<LoopState>> loops_;
  std::atomic<size_t> next_loop_{0};
  std::atomic<uint64_t> next_serial_{1};
  std::unique_ptr<HttpFront> front_;
  LiveTrace trace_;
  StatusRoute status_route_;

  // Connections whose open entry is being appended: id -> handle, taken when it is applied.
  std::mutex opening_mu_;
  std::unordered_map<std::string, uint64_t> opening_;
  std::unordered_map<std::string, Moving> moving_;
  // Replays for sessions that move here (they read the store).
  std::unique_ptr<WorkerPool> recovery_;
};

}  // namespace hubcast::server
