// How bench_loadgen speaks to each server it compares: Hubcast (json.webpubsub.azure.v1 or
// json.reliable.webpubsub.azure.v1), nats-server over WebSocket, a Socket.IO 4 server (Engine.IO
// v4 over WebSocket) and a `ws` server (tests/bench/peers/). A Dialect turns the generator's
// few verbs (connect member N and put it in its groups, send to a group with an ack, publish
// from the app server) into the server's wire format, and the server's messages back into
// events (ready, delivered, acked). The generator core owns sockets, WebSocket framing, timing
// and accounting; a dialect never touches a socket.
//
// Naming is shared by every dialect, so the same cell means the same thing on every server:
// member with global index i belongs to user "u<i>" and to group "g<S>-<i/S>" for every group
// size S; a connection is addressed by the id its server gave it (NATS: subject "c<i>").
//
// Thread-safety: none; everything runs on the generator's one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcast::bench {

// One client WebSocket connection of the generator (a group member, and a chat publisher).
struct Member {
  enum class State : uint8_t {
    kIdle,         // not started, or waiting to retry
    kConnecting,   // TCP connect in progress
    kHandshaking,  // upgrade request sent
    kOpen,         // upgraded; the dialect's own greeting is in progress
    kReady,        // the server confirmed the connection (and its groups)
    kDead,         // closed or failed after being ready; no longer counted on
  };
  int fd = -1;
  State state = State::kIdle;
  int local = 0;   // index in this process
  int global = 0;  // index across all generator processes; names derive from it
  int attempts = 0;
  bool want_write = false;
  std::string key;  // Sec-WebSocket-Key
  std::string in;   // received bytes not parsed yet
  std::string out;  // bytes not written yet
  bool in_fragment = false;
  uint8_t fragment_opcode = 0;
  std::string fragments;
  // Dialect state.
  bool greeted = false;         // the dialect's first message after the upgrade is sent
  std::string id;               // the server's id for this connection (sendToConnection target)
  std::string stream;           // NATS: protocol bytes not parsed yet (NATS ignores frame borders)
  uint64_t last_sequence = 0;   // reliable: highest sequenceId received
  uint64_t acked_sequence = 0;  // reliable: highest sequenceId acknowledged
  // Chat publishes awaiting their ack, in send order: (ack id, message id).
  uint64_t next_ack_id = 1;
  std::vector<std::pair<uint64_t, uint64_t>> pending;
};

// What a dialect may do to the generator core.
class DialectHost {
 public:
  virtual ~DialectHost() = default;
  // Queues one masked frame on the member's socket.
  virtual void Send(Member& member, uint8_t opcode, std::string_view payload) = 0;
  // The server confirmed the connection; `id` addresses it in sendToConnection.
  virtual void Ready(Member& member, std::string id) = 0;
  // A message carrying a benchmark payload arrived (the whole server message; the core finds
  // the payload in it).
  virtual void Delivered(Member& member, std::string_view message) = 0;
  // A chat publish was acknowledged; no ack id means the oldest one still pending.
  virtual void Acked(Member& member, std::optional<uint64_t> ack_id, bool success) = 0;
  // The server ended or refused the connection at its protocol's level.
  virtual void Broken(Member& member, std::string reason) = 0;
};

enum class Addressing { kGroup, kConnection, kUser };

class Dialect {
 public:
  virtual ~Dialect() = default;
  // The WebSocket request target (path and query) of a member, and the subprotocol to offer.
  virtual std::string Target(const Member& member) = 0;
  virtual std::string_view Subprotocol() const { return {}; }
  // A complete text or binary message from the server.
  virtual void OnMessage(Member& member, uint8_t opcode, std::string_view payload,
                         DialectHost& host) = 0;
  // A member's send to a group with an acknowledgement, as one frame.
  virtual void EncodeGroupSend(std::string_view group, uint64_t ack_id, std::string_view data,
                               std::string& frame, uint8_t& opcode) = 0;
  // Called once a second (reliable acknowledgements).
  virtual void OnSecond(std::vector<Member>& /*members*/, DialectHost& /*host*/) {}
  // App-server publishes: the bytes of one request on a keep-alive HTTP connection, or for NATS
  // a PUB followed by PING on a native TCP connection (its PONG is the acknowledgement).
  virtual bool NatsPublisher() const { return false; }
  virtual std::string PublishRequest(Addressing addressing, std::string_view name,
                                     std::string_view body) = 0;
  // NATS only: what a publisher connection sends first.
  virtual std::string PublisherGreeting() const { return {}; }
};

struct DialectOptions {
  std::string server;  // hubcast | nats | ws | socketio
  bool reliable = false;
  int port = 0;  // the server's WebSocket/HTTP port
  std::string hub = "bench";
  std::string key;  // Hubcast's access key; the peers' bearer secret
  std::vector<int> group_sizes;
};

// Null (and *error set) for an unknown server name or a missing key.
std::unique_ptr<Dialect> MakeDialect(const DialectOptions& options, std::string* error);

std::string GroupName(int group_size, int global_index);
std::string UserName(int global_index);

}  // namespace hubcast::bench
