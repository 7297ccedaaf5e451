// ClientConnection: one logical client connection of a hub, served by one EventLoop.
//
// It owns the socket (while attached), the incremental frame reader, the outbound queue and,
// for the reliable subprotocol, the per-connection sequence numbers and the buffer of
// messages the client has not acknowledged yet.
//
// Lifecycle (every step on the owning loop's thread):
//   1. Attach(fd): start serving a socket, either new or recovering a held session.
//   2. Client frames become log commands (Hub::Append, asynchronous: the loop never waits);
//      acks come back as completions on this loop (AppendCallbacks), deliveries from the
//      appliers through the Gateway as posted tasks (SendControl, DeliverMessage).
//   3. The socket ends: by a client close, a drop, a slow-consumer overflow or a service close.
//      A reliable connection that drops without a normal close is *held* for the hold window
//      and keeps numbering and buffering what it is sent; Attach() with a recovered socket
//      replays every unacknowledged message. Otherwise the logical connection ends: a
//      kConnectionClose command is appended (unless the log itself closed it).
//   4. The Gateway drops the connection from its loop's table when the close entry is
//      applied (or when the close could not be appended).
//
// Outbound frames are queued as (per-connection head, shared body) pairs: a message body is
// encoded once per subprotocol and shared by every recipient; only the WebSocket header and
// the reliable `{"sequenceId":N,` prefix are per connection. Everything queued during one
// loop turn leaves in one writev.
#pragma once

#include "replication/hub.h"
#include "server/codec.h"
#include "server/event_loop.h"
#include "server/ws_frame.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace hubcast::server {

class Gateway;

// What a user event's handler answered, as the loop needs it.
struct UpstreamAnswer {
  bool ok = false;
  int status = 0;
  std::string error;
  std::string content_type;
  std::string body;
  std::optional<std::string> state;  // ce-connectionState header, when present
};

struct ConnectionLimits {
  size_t max_message_bytes = 1024 * 1024;
  size_t max_outbound_bytes = 16 * 1024 * 1024;  // queued but unsent; past it: slow consumer
  // Reliable un-acknowledged window (PROTOCOL.md, Hubcast extensions: bounded by what the
  // node keeps, not Azure's 1000 messages; the official client acks only once a second).
  size_t max_unacked_messages = 100000;
  size_t max_unacked_bytes = 64 * 1024 * 1024;
  std::chrono::seconds keepalive{20};
  std::chrono::seconds idle_timeout{120};
  // Queued data and no write progress for this long: the client is not reading. Needed on
  // top of max_outbound_bytes because kernel buffers may absorb tens of megabytes first.
  std::chrono::seconds write_stall{30};
  std::chrono::seconds reliable_hold{30};
  std::chrono::seconds checkpoint_interval{5};
};

class ClientConnection final : public IoHandler {
 public:
  struct Init {
    std::string id;
    uint64_t handle = 0;  // node-local (Gateway: loop, protocol, serial)
    std::optional<std::string> user_id;
    ClientProtocol protocol = ClientProtocol::kRaw;
    // Raw clients with webpubsub_mode=sendToGroup publish their frames to this group.
    std::optional<std::string> raw_publish_group;
    bool raw_no_echo = false;
    std::string subprotocol;                        // as negotiated (may be a custom one)
    std::optional<std::string> state;               // ce-connectionState, set by event handlers
    std::optional<std::chrono::seconds> keepalive;  // the hub's setting, if it has one
  };

  ClientConnection(Gateway* gateway, EventLoop* loop, std::shared_ptr<replication::Hub> hub,
                   Init init, const ConnectionLimits& limits);
  ~ClientConnection() override;

  const std::string& id() const { return init_.id; }
  uint64_t handle() const { return init_.handle; }
  const std::optional<std::string>& user_id() const { return init_.user_id; }
  const std::optional<std::string>& state() const { return init_.state; }
  ClientProtocol protocol() const { return init_.protocol; }
  EventLoop* loop() const { return loop_; }
  const std::shared_ptr<replication::Hub>& hub() const { return hub_; }

  // --- loop thread only ---
  void Attach(int fd);
  // Resumes a reliable session on a new socket: a held one, or an open one whose old socket
  // the server has not seen die yet (the new socket takes over). False if the session ended.
  bool Recover(int fd);
  // A whole frame that is not a data message (system, ack, pong; from codec()): never
  // sequenced. An empty frame (a subprotocol without that message) sends nothing.
  void SendControl(std::string frame);
  const SubprotocolCodec& codec() const { return *codec_; }
  // `seq` is the sequenceId the view assigned (reliable connections), else 0.
  void DeliverMessage(const EncodedMessage& message, uint64_t seq);
  // Service-initiated end (REST close, shutdown): `disconnected` for JSON clients, then a
  // close frame. The logical connection is already gone from the log when log_closed.
  void CloseByService(uint16_t code, const std::string& reason, bool log_closed);
  // The log removed this connection (close entry applied): never append a close again.
  void MarkLogClosed() { log_closed_ = true; }
  // Start-up after a restart: a reliable session that was open when the process stopped,
  // held until `until` with the messages (sequenceId, body) the client has not acknowledged.
  void RestoreHeld(std::vector<std::pair<uint64_t, SharedBytes>> unacked, uint64_t acked,
                   std::chrono::steady_clock::time_point until);
  // Start-up after a restart: a connection that cannot come back; ends it in the log.
  void EndRestored(const std::string& reason) { End(reason); }
  // The log gave this connection to another node or held it there (kConnectionMoved,
  // kNodeDown): the socket goes, abruptly (a reliable client recovers elsewhere), and nothing
  // is appended.
  void Release();
  // A reliable session that resumed on this node (kConnectionMoved to it): `replayed` are
  // the messages after the client's last acknowledged one up to the move, from the replay
  // log; deliveries since the move are already queued behind them.
  void StartMoved(int fd, std::vector<std::pair<uint64_t, SharedBytes>> replayed,
                  uint64_t acked);

  void OnEvents(uint32_t events) override;
  void OnFlush() override;
  void OnTick(std::chrono::steady_clock::time_point now) override;

 private:
  struct OutItem {
    std::string head;  // per-connection bytes
    SharedBytes body;  // shared bytes, may be empty
    int64_t expire_unix_ms = 0;
    size_t size() const { return head.size() + body.size(); }
  };
  struct Unacked {
    uint64_t seq;
    SharedBytes body;
  };
  enum class State { kNew, kOpen, kHeld, kClosing, kEnded };
  // New (socket not attached yet: frames wait in the queue) or open.
  bool Accepting() const { return state_ == State::kNew || state_ == State::kOpen; }

  void HandleMessage(WsMessage& msg);
  void Handle(ClientMessage& m);
  void HandleRaw(ClientMessage& m);
  void Enqueue(std::string head, SharedBytes body = {}, int64_t expire = 0);
  void EnqueueReliable(const Unacked& u);
  void WriteSome();
  // The socket is gone without a normal close: hold a reliable session, else end.
  void Lost(const std::string& why);
  // Closes the socket now (after a best-effort final write) and ends the logical connection.
  void End(const std::string& reason);
  void DetachSocket();
  void AppendClose(const std::string& reason);
  void CloseWith(uint16_t code, const std::string& reason);  // protocol error from the client
  void AppendCommand(storage::Entry entry);
  // A user event to the app's event handler (PROTOCOL.md 5.5). Frames of this connection
  // wait until the answer is back: blocking events are processed one at a time.
  void StartUserEvent(const std::string& event, storage::DataType type, std::string data,
                      std::optional<uint64_t> ack_id);
  void FinishUserEvent(const std::string& event, std::optional<uint64_t> ack_id,
                       const UpstreamAnswer& answer);
  uint32_t Interest() const;  // the epoll events to watch now
  void Pause();
  void Resume();
  void ProcessBuffered();

  Gateway* gateway_;
  EventLoop* loop_;
  std::shared_ptr<replication::Hub> hub_;
  Init init_;
  const ConnectionLimits& limits_;
  const SubprotocolCodec* codec_;

  State state_ = State::kNew;
  int fd_ = -1;
  WsReader reader_;
  std::deque<OutItem> out_;
  size_t out_bytes_ = 0;
  size_t front_offset_ = 0;  // bytes of out_.front() (head then body) already written
  bool want_write_ = false;
  bool close_after_flush_ = false;
  bool log_closed_ = false;
  bool close_appended_ = false;
  bool paused_ = false;  // waiting for an event handler: frames stay buffered
  std::chrono::steady_clock::time_point last_read_, last_write_, held_until_;
  std::chrono::steady_clock::time_point write_progress_;  // last write, or queue became non-empty

  // Reliable subprotocol.
  uint64_t acked_seq_ = 0;
  uint64_t checkpointed_ = 0;  // acked_seq_ as last queued for a checkpoint entry
  std::chrono::steady_clock::time_point next_checkpoint_;
  std::deque<Unacked> unacked_;
  size_t unacked_bytes_ = 0;
};

}  // namespace hubcast::server
