// ClientConnection: one logical client connection of a hub, served by one EventLoop.
//
// It owns the socket (while attached), the incremental frame reader, the outbound queue and,
// for the reliable subprotocol, the per-connection sequence numbers and the buffer of
// messages the client has not acknowledged yet.
//
// Lifecycle (every step on the owning loop's thread):
//   1. Attach(transport): start serving an upgraded connection (plain or TLS, see
//      server/transport.h), either new or recovering a held session.
//   2. Client frames become log commands (Hub::Append, asynchronous: the loop never waits);
//      acks come back as completions on this loop (AppendCallbacks), deliveries from the
//      appliers through the Gateway as posted tasks (SendControl, DeliverMessage).
//   3. The socket ends: by a client close, a drop, a slow-consumer overflow or a service close.
//      A reliable connection that drops without a normal close is *held* for the hold window
//      and keeps numbering and buffering what it is sent; Attach() with a recovered socket
//      replays every unacknowledged message, streamed a bounded chunk at a time as the
//      socket drains (outside the slow-consumer limit, so any window can be caught up). Otherwise
//      the logical connection ends: a kConnectionClose command is appended (unless the log itself
//      closed it).
//   4. The Gateway drops the connection from its loop's table when the close entry is
//      applied (or when the close could not be appended).
//
// Client SDK 1.1 (invocations.cc, group_streams.cc): invocations in flight (an `invoke`
// waits for the event handler without pausing the connection, so `cancelInvocation` and
// other frames keep flowing) and the group streams this connection publishes (each message
// a log entry to the group, acknowledged to the publisher once applied; see group_streams.cc
// for the numbering rules).
//
// Outbound frames are queued as (per-connection head, shared body) pairs: a message body is
// encoded once per subprotocol and shared by every recipient; only the WebSocket header and
// the reliable `{"sequenceId":N,` prefix are per connection. Everything queued during one
// loop turn leaves in one writev.
#pragma once

#include "base/interned_string.h"
#include "base/lazy_box.h"
#include "base/lazy_deque.h"
#include "replication/hub.h"
#include "server/codec.h"
#include "server/event_loop.h"
#include "server/outbound_budget.h"
#include "server/transport.h"
#include "server/ws_frame.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

namespace hubcast::server {

class Gateway;

// What a user event's handler answered, as the loop needs it.
struct UpstreamAnswer {
  bool ok = false;
  int status = 0;
  bool timed_out = false;
  std::string error;
  std::string content_type;
  std::string body;
  std::optional<std::string> state;  // ce-connectionState header, when present
};

// The data type of an event handler's answer, from its Content-Type (parameters ignored); a
// missing or unknown type is binary, and JSON that does not parse is text (PROTOCOL.md 5.5).
storage::DataType AnswerDataType(const std::string& content_type, const std::string& body);

struct ConnectionLimits {
  size_t max_message_bytes = 1024 * 1024;
  size_t max_outbound_bytes = 16 * 1024 * 1024;  // queued but unsent; past it: slow consumer
  // Node-wide bytes of all outgoing queues (nullptr: unbounded); it outlives the connections.
  OutboundBudget* outbound_budget = nullptr;
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
    bool raw_no_echo = false;
    // Raw clients with webpubsub_mode=sendToGroup publish their frames to this group (empty:
    // none; a group name is never empty).
    InternedString raw_publish_group;
    InternedString subprotocol;                     // as negotiated (may be a custom one)
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
  // `early_bytes`: what the client sent right behind its upgrade request (WebSocket frames).
  // A connection that ended meanwhile sends `disconnected` and a close frame and drops it.
  void Attach(std::unique_ptr<Transport> transport, std::string early_bytes = {});
  // Resumes a reliable session on a new connection: a held one, or an open one whose old
  // socket the server has not seen die yet (the new one takes over). False if the session
  // ended; the transport is taken only on success.
  bool Recover(std::unique_ptr<Transport>& transport, std::string early_bytes);
  // A whole frame that is not a data message (system, ack, pong; from codec()): never
  // sequenced. An empty frame (a subprotocol without that message) sends nothing.
  void SendControl(std::string frame);
  // The same, for a frame shared by several connections (group state updates).
  void SendShared(const SharedBytes& frame);
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
  void StartMoved(std::unique_ptr<Transport> transport, std::string early_bytes,
                  std::vector<std::pair<uint64_t, SharedBytes>> replayed, uint64_t acked);

  void OnEvents(uint32_t events) override;
  void OnFlush() override;
  void OnTick(std::chrono::steady_clock::time_point now) override;

 private:
  struct OutItem {
    std::string head;  // per-connection bytes
    SharedBytes body;  // shared bytes, may be empty
    int64_t expire_unix_ms = 0;
    bool replay = false;  // part of a recovery's replay (counted in replay_queued_bytes_)
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
  void Enqueue(std::string head, SharedBytes body = {}, int64_t expire = 0, bool replay = false);
  void EnqueueReliable(const Unacked& u, bool replay = false);
  // Recovery: queues the next unacknowledged messages while less than a chunk of the replay
  // waits for the socket; called again as the socket drains, until the replay caught up.
  void RefillReplay();
  void WriteSome();
  void GrowOut(size_t bytes);
  void ShrinkOut(size_t bytes);
  // Over the node's outbound budget with one of its largest queues: dropped as slow.
  bool DropIfNodeBackedUp();
  void WaitWritable();  // the transport is full: watch EPOLLOUT
  // The socket is gone without a normal close: hold a reliable session, else end.
  void Lost(const std::string& why);
  // Closes the socket now (after a best-effort final write) and ends the logical connection.
  void End(const std::string& reason);
  void DetachSocket();
  void AppendClose(const std::string& reason);
  void CloseWith(uint16_t code, const std::string& reason);  // protocol error from the client
  void AppendCommand(storage::Entry entry);
  // A client's message to a group (sendToGroup, a raw client's frame, a stream's message).
  storage::Entry GroupMessage(const std::string& group, bool no_echo, storage::DataType type,
                              std::string data) const;
  using StatusFn = std::function<void(ClientConnection&, const Status&)>;
  // Append completions that run `done` once on this loop, with the apply status or why the
  // entry was not appended (unless the connection is gone by then).
  replication::AppendCallbacks OnLoop(StatusFn done);
  // A user event to the app's event handler (PROTOCOL.md 5.5). Frames of this connection
  // wait until the answer is back: blocking events are processed one at a time.
  void StartUserEvent(const std::string& event, storage::DataType type, std::string data,
                      std::optional<uint64_t> ack_id);
  void FinishUserEvent(const std::string& event, std::optional<uint64_t> ack_id,
                       const UpstreamAnswer& answer);
  using AnswerFn = std::function<void(ClientConnection&, const UpstreamAnswer&)>;
  // Calls the event handler for a user event; `done` runs on this loop (unless the connection
  // is gone by then). False when no handler takes the event.
  bool CallEventHandler(const std::string& event, storage::DataType type, std::string data,
                        AnswerFn done);
  // A state the answer set (ce-connectionState) goes through the log.
  void ApplyAnswerState(const UpstreamAnswer& answer);
  // A message that is dropped without an answer: say so in the log (a few per connection).
  void LogIgnored(const ClientMessage& m, const std::string& why);

  // Client SDK 1.1: invocations (invocations.cc).
  void HandleInvoke(ClientMessage& m);
  void FinishInvocation(const std::string& invocation_id, const std::string& event,
                        const UpstreamAnswer& answer);
  // Client SDK 1.1: group streams (group_streams.cc).
  struct GroupStream {
    uint64_t serial = 0;  // tells a reopened stream of the same id from the old one
    std::string group;
    bool no_echo = false;
    bool started = false;   // the permission check passed
    uint64_t expected = 1;  // the next sequence id accepted
    uint64_t durable = 1;   // every message below it is applied
    uint64_t acked = 0;     // the last expectedSequenceId the publisher was sent
    size_t in_flight = 0;   // appended, not yet applied
    std::chrono::milliseconds idle_timeout{300000};
    std::chrono::steady_clock::time_point last_activity;
  };
  void HandleStream(ClientMessage& m);
  // The open stream `id`, or nullptr after telling the publisher it is not open.
  GroupStream* OpenStream(const std::string& id);
  // The open stream `id`, or nullptr (allocates nothing).
  GroupStream* FindStream(const std::string& id);
  void StartStream(ClientMessage& m);
  void StreamStarted(const std::string& id, uint64_t serial, const Status& status);
  void StreamData(ClientMessage& m);
  void StreamApplied(const std::string& id, uint64_t serial, uint64_t seq, const Status& status);
  void EndStream(ClientMessage& m);
  // Closes an open stream: the publisher gets streamClosed (with `error`, if any) and, with
  // tell_group, the group gets the stream's last message carrying group_error.
  void CloseStream(const std::string& id, const std::optional<StreamError>& error,
                   const std::optional<StreamError>& group_error, bool tell_group);
  // Appends a stream's last message (endOfStream, numbered `expected`) to its group; when the
  // log no longer holds this connection (origin_gone), as a message without an origin.
  void AppendStreamEnd(const GroupStream& s, const std::string& id,
                       const std::optional<StreamError>& error, std::string user_error_code,
                       replication::AppendCallbacks cb = {}, bool origin_gone = false);
  void CheckStreamIdle(std::chrono::steady_clock::time_point now);
  // The connection is ending: every open stream ends for its group.
  void EndAllStreams(bool origin_gone);
  // After a recovery: where each stream stands, and the state of subscribed groups (what was
  // sent while the socket was gone is lost: these frames are not numbered).
  void ResendAfterRecovery();
  // Client SDK 1.1: group state (setGroupState, subscribeGroupState, unsubscribeGroupState).
  void HandleGroupState(ClientMessage& m);
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
  std::unique_ptr<Transport> transport_;  // while a socket is attached
  WsReader reader_;
  LazyDeque<OutItem> out_;   // no memory while nothing is queued (idle connections)
  size_t out_bytes_ = 0;     // change only through GrowOut / ShrinkOut (the node budget counts it)
  size_t front_offset_ = 0;  // bytes of out_.front() (head then body) already written
  bool want_write_ = false;
  bool close_after_flush_ = false;
  bool log_closed_ = false;
  bool close_appended_ = false;
  bool paused_ = false;  // waiting for an event handler: frames stay buffered
  // Why it ended, for a socket that arrives afterwards (its 101 was on the way); the close
  // code a service close asked for (0: 1008 for reliable clients, which must not recover, or
  // 1000).
  std::string end_reason_;
  uint16_t end_code_ = 0;
  std::chrono::steady_clock::time_point last_read_, last_write_, held_until_;
  std::chrono::steady_clock::time_point write_progress_;  // last write, or queue became non-empty

  // Reliable subprotocol.
  uint64_t acked_seq_ = 0;
  uint64_t checkpointed_ = 0;  // acked_seq_ as last queued for a checkpoint entry
  std::chrono::steady_clock::time_point next_checkpoint_;
  LazyDeque<Unacked> unacked_;
  size_t unacked_bytes_ = 0;
  // A recovery's replay in progress: unacked_[replay_next_..] are not queued for the socket
  // yet (deliveries meanwhile only join unacked_); replay_queued_bytes_ of out_ are replay.
  bool replaying_ = false;
  size_t replay_next_ = 0;
  size_t replay_queued_bytes_ = 0;

  // Client SDK 1.1 (no memory until a connection uses it).
  LazyBox<std::unordered_set<std::string>> invocations_;  // in flight; cancelled are removed
  LazyBox<std::map<std::string, GroupStream>> streams_;   // by stream id
  uint64_t stream_serial_ = 0;
  int ignored_logged_ = 0;
};

}  // namespace hubcast::server
