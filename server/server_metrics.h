// The server layer's counting sites, kept here so that each site in the gateway is one line:
// the metric names and labels (README, "Metrics"), the REST operation of a request, and a
// decorator that meters every event-handler call. Counts go to base/metrics.h (per thread,
// summed at scrape).
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include "base/metrics.h"
#include "rest/http_message.h"
#include "rest/upstream_client.h"
#include "server/codec.h"

#include <cstdint>
#include <memory>
#include <string>

namespace hubcast::server::metric {

// Family names (the README's table lists each with its labels).
inline constexpr const char* kConnections = "hubcast_connections";
inline constexpr const char* kConnectionsOpened = "hubcast_connections_opened_total";
inline constexpr const char* kMessagesReceived = "hubcast_messages_received_total";
inline constexpr const char* kMessagesDelivered = "hubcast_messages_delivered_total";
inline constexpr const char* kDropped = "hubcast_deliveries_dropped_total";
inline constexpr const char* kReliableHeld = "hubcast_reliable_sessions_held";
inline constexpr const char* kUpstreamCalls = "hubcast_upstream_calls_total";
inline constexpr const char* kUpstreamSeconds = "hubcast_upstream_call_seconds";
inline constexpr const char* kRestRequests = "hubcast_rest_requests_total";
inline constexpr const char* kRestSeconds = "hubcast_rest_request_seconds";

// "json.webpubsub.azure.v1", ..., or "none" for raw WebSocket clients.
const char* ProtocolLabel(ClientProtocol p);

// A connection of `hub` with subprotocol `p` was registered on this node (+1) or left it (-1).
void CountConnection(const std::string& hub, ClientProtocol p, int delta);
// A WebSocket data message from a client of `hub`.
void CountReceived(const std::string& hub);
// `n` messages of `hub` handed to local sockets' queues.
void CountDelivered(const std::string& hub, int64_t n);
// Deliveries that did not reach a socket: "slow_consumer", "closed" or "forbidden".
void CountDropped(const char* reason, int64_t n = 1);

// The route template of a REST request: "POST /api/hubs/{hub}/groups/{group}/:send",
// "GET /api/health", ... (hub, group, user and connection names replaced, query dropped).
std::string RestOperation(const rest::HttpRequest& request);
// One answered REST request (its operation, status and latency; a 202 :send counts as a
// received message of its hub).
void CountRest(const rest::HttpRequest& request, const rest::HttpResponse& response,
               int64_t start_ns);

// Meters every call of `inner`: hubcast_upstream_calls_total{event,status} and the latency
// histogram by event; the last failure is kept for the dashboard.
std::unique_ptr<rest::UpstreamClient> MeterUpstream(std::unique_ptr<rest::UpstreamClient> inner);
struct UpstreamFailure {
  int64_t unix_ms = 0;  // 0: none yet
  std::string event;
  std::string hub;
  std::string error;  // the status or the network error; never a body or a token
};
UpstreamFailure LastUpstreamFailure();

}  // namespace hubcast::server::metric
