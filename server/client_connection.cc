#include "server/client_connection.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/names.h"
#include "base/random.h"
#include "rest/upstream_client.h"
#include "server/gateway.h"
#include "server/gateway_internal.h"
#include "server/json_codec.h"
#include "server/server_metrics.h"

#include <sys/uio.h>

namespace hubcast::server {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxReadsPerEvent = 8;  // fairness between the connections of one loop
constexpr int kMaxIov = 64;
// A recovery replays the unacknowledged window this much at a time (at least one message),
// refilled as the socket drains, outside the slow-consumer limit: the window may be far larger
// than that limit, and a client that reads at any speed must be able to catch up.
constexpr size_t kReplayChunkBytes = 256 * 1024;

int64_t NowMs() { return SystemClock::Get().NowUnixMs(); }

// Every line about a connection names its hub and id.
Logger ConnLog(const ClientConnection& c) {
  return Logger("conn").With("hub", c.hub()->name().str()).With("id", c.id());
}

void CountHeld(int delta) { metrics::Count(metric::kReliableHeld, {}, delta); }

}  // namespace

ClientConnection::ClientConnection(Gateway* gateway, EventLoop* loop,
                                   std::shared_ptr<replication::Hub> hub, Init init,
                                   const ConnectionLimits& limits)
    : gateway_(gateway),
      loop_(loop),
      hub_(std::move(hub)),
      init_(std::move(init)),
      limits_(limits),
      codec_(&CodecFor(init_.protocol)),
      reader_(limits.max_message_bytes) {}

ClientConnection::~ClientConnection() { ShrinkOut(out_bytes_); }

bool ClientConnection::Recover(std::unique_ptr<Transport>& transport, std::string early_bytes) {
  if (!codec_->reliable() || log_closed_) return false;
  if (state_ == State::kOpen) {
    auto self = shared_from_this();
    DetachSocket();
    state_ = State::kHeld;
    CountHeld(+1);
  }
  if (state_ != State::kHeld) return false;
  Attach(std::move(transport), std::move(early_bytes));
  return true;
}

void ClientConnection::Attach(std::unique_ptr<Transport> transport, std::string early_bytes) {
  if (state_ != State::kNew && state_ != State::kHeld) {
    // It ended while its 101 was on the way (a REST close, a failed registration): the
    // client hears why, as an attached socket would have, and the socket goes. An ended
    // connection is never served again.
    uint16_t code = end_code_ != 0 ? end_code_ : (codec_->reliable() ? 1008 : 1000);
    WriteAndClose(std::move(transport),
                  codec_->Disconnected(end_reason_) + WsCloseFrame(code, end_reason_));
    return;
  }
  bool recovering = state_ == State::kHeld;
  if (recovering) loop_->RemoveTicker(this);
  if (recovering) CountHeld(-1);
  transport_ = std::move(transport);
  reader_ = WsReader(limits_.max_message_bytes);
  front_offset_ = 0;
  want_write_ = false;
  state_ = State::kOpen;
  last_read_ = last_write_ = std::chrono::steady_clock::now();
  auto self = std::static_pointer_cast<ClientConnection>(shared_from_this());
  // A session recovered while an event-handler call of its old socket is pending stays
  // paused: its new socket is not read (into an unbounded buffer) until the answer comes.
  if (!loop_->Add(transport_->fd(), Interest(), self)) {
    transport_.reset();
    End("Failed to register the socket.");
    return;
  }
  if (recovering) {
    // A fresh `connected` first (same id, a new token): the client keeps the token, and client
    // SDK 1.1 resumes its outbound group streams only on this message.
    SendControl(
        codec_->Connected(init_.user_id, init_.id, gateway_->ReconnectionToken(*hub_, init_.id)));
    // Everything the client has not acknowledged, in order, with its original numbers, streamed
    // in chunks by RefillReplay; deliveries meanwhile wait behind it in unacked_.
    replaying_ = true;
    replay_next_ = 0;
    RefillReplay();
    ResendAfterRecovery();
  }
  // Frames queued before the socket arrived (the `connected` message, early deliveries).
  if (!out_.empty()) loop_->RequestFlush(this);
  // Frames the client sent right behind its upgrade request.
  if (!early_bytes.empty()) {
    reader_.Feed(early_bytes.data(), early_bytes.size());
    ProcessBuffered();
  }
}

void ClientConnection::SendControl(std::string frame) {
  if (!Accepting() || frame.empty()) return;
  Enqueue(std::move(frame));
}

void ClientConnection::SendShared(const SharedBytes& frame) {
  if (!Accepting() || !frame || frame.size() == 0) return;
  Enqueue({}, frame);
}

void ClientConnection::DeliverMessage(const EncodedMessage& m, uint64_t seq) {
  const SharedBytes& shared = codec_->Shared(m);
  if (!codec_->reliable()) {
    if (Accepting()) Enqueue({}, shared, m.expire_unix_ms);
    return;
  }
  if (!Accepting() && state_ != State::kHeld) return;
  Unacked u{seq, shared};
  unacked_.push_back(u);
  unacked_bytes_ += u.body.size();
  if (unacked_.size() > limits_.max_unacked_messages ||
      unacked_bytes_ > limits_.max_unacked_bytes) {
    // PROTOCOL.md 3.6: past the buffer the connection ends and cannot be recovered.
    if (state_ == State::kOpen) {
      CloseByService(1008, "Too many unacknowledged messages.", false);
    } else {
      End("Too many unacknowledged messages.");
    }
    return;
  }
  if (!Accepting()) return;
  if (replaying_) {
    loop_->RequestFlush(this);  // queued behind the replay: RefillReplay takes it in turn
  } else {
    EnqueueReliable(u);
  }
}

void ClientConnection::EnqueueReliable(const Unacked& u, bool replay) {
  Enqueue(codec_->ReliableHead(u.seq, u.body.size()), u.body, 0, replay);
}

void ClientConnection::RefillReplay() {
  while (replaying_ && transport_ && !close_after_flush_ &&
         replay_queued_bytes_ < kReplayChunkBytes) {
    if (replay_next_ >= unacked_.size()) {
      replaying_ = false;  // caught up: new deliveries are queued directly again
      return;
    }
    EnqueueReliable(unacked_[replay_next_++], /*replay=*/true);
  }
}

void ClientConnection::Enqueue(std::string head, SharedBytes body, int64_t expire, bool replay) {
  if ((!transport_ && state_ != State::kNew) || close_after_flush_) return;
  if (out_.empty()) write_progress_ = std::chrono::steady_clock::now();
  size_t size = head.size() + body.size();
  GrowOut(size);
  if (replay) replay_queued_bytes_ += size;
  out_.push_back({std::move(head), std::move(body), expire, replay});
  if (DropIfNodeBackedUp()) return;
  // The replay is bounded by its chunk and waits for the socket; it does not count here.
  if (out_bytes_ - replay_queued_bytes_ > limits_.max_outbound_bytes) {
    // A client that does not read must not hold the server's memory hostage.
    ConnLog(*this).Warn("outbound queue over ", limits_.max_outbound_bytes,
                        " bytes; dropping the slow client");
    metric::CountDropped("slow_consumer", static_cast<int64_t>(out_.size()));
    Lost("The client is not reading its messages.");
    return;
  }
  loop_->RequestFlush(this);
}

void ClientConnection::GrowOut(size_t bytes) {
  if (limits_.outbound_budget && bytes > 0) limits_.outbound_budget->Add(bytes, out_bytes_ == 0);
  out_bytes_ += bytes;
}

void ClientConnection::ShrinkOut(size_t bytes) {
  out_bytes_ -= bytes;
  if (limits_.outbound_budget && bytes > 0) limits_.outbound_budget->Sub(bytes, out_bytes_ == 0);
}

bool ClientConnection::DropIfNodeBackedUp() {
  if (!limits_.outbound_budget || !limits_.outbound_budget->ShouldDrop(out_bytes_)) return false;
  ConnLog(*this).Warn("node outbound queues over their bound and this one holds ", out_bytes_,
                      " bytes; dropping the slow client");
  metric::CountDropped("slow_consumer", static_cast<int64_t>(out_.size()));
  Lost("The client is not reading its messages.");
  return true;
}

void ClientConnection::CloseByService(uint16_t code, const std::string& reason, bool log_closed) {
  if (log_closed) {
    log_closed_ = true;
    EndAllStreams(true);
  }
  if (state_ == State::kHeld || state_ == State::kNew) {
    end_code_ = code;
    End(reason);
    return;
  }
  if (state_ != State::kOpen) return;
  SendControl(codec_->Disconnected(reason));
  Enqueue(WsCloseFrame(code, reason));
  close_after_flush_ = true;
  state_ = State::kClosing;
  if (!log_closed_) AppendClose(reason);
  loop_->RequestFlush(this);
}

void ClientConnection::OnEvents(uint32_t events) {
  if (!transport_) return;
  if (events & EPOLLIN) {
    char buf[kReadChunk];
    for (int i = 0; i < kMaxReadsPerEvent && transport_; ++i) {
      IoResult r = transport_->Read(buf, sizeof buf);
      if (r.status == IoStatus::kOk) {
        metrics::Add(metrics::Counter::kBytesIn, r.bytes);
        last_read_ = std::chrono::steady_clock::now();
        if (state_ == State::kClosing) continue;  // draining until the peer closes
        reader_.Feed(buf, r.bytes);
        ProcessBuffered();
        if (paused_) break;  // the rest stays in the socket until the event handler answers
        // TLS may hold decrypted bytes epoll does not report.
        if (r.bytes < sizeof buf && !(transport_ && transport_->HasBufferedInput())) break;
      } else if (r.status == IoStatus::kClosed) {
        if (state_ == State::kClosing) {
          End("");
        } else {
          Lost("The client closed the connection without a close frame.");
        }
        return;
      } else if (r.status == IoStatus::kAgain) {
        break;
      } else {
        Lost("Read failed: " + transport_->error());
        return;
      }
    }
  }
  if (!transport_) return;
  // A TLS read may have produced output (a key update, a session ticket).
  if (transport_->HasPendingOutput()) loop_->RequestFlush(this);
  if (events & (EPOLLHUP | EPOLLERR)) {
    Lost("The connection was reset.");
    return;
  }
  if (events & EPOLLOUT) WriteSome();
}

void ClientConnection::ProcessBuffered() {
  while (transport_ && state_ == State::kOpen && !paused_) {
    auto msg = reader_.Next();
    if (!msg) break;
    HandleMessage(*msg);
  }
  if (transport_ && state_ == State::kOpen && !paused_ && reader_.error()) {
    CloseWith(reader_.error()->close_code, reader_.error()->reason);
  }
}

uint32_t ClientConnection::Interest() const {
  // While paused nothing is read, and EPOLLRDHUP (level-triggered) would fire again and
  // again after a half-close: only writes are of interest then (errors are always reported).
  return (paused_ ? 0u : uint32_t{EPOLLIN | EPOLLRDHUP}) | (want_write_ ? uint32_t{EPOLLOUT} : 0u);
}

void ClientConnection::Pause() {
  paused_ = true;
  if (transport_) loop_->Modify(transport_->fd(), Interest());
}

void ClientConnection::Resume() {
  if (!paused_) return;
  paused_ = false;
  if (!transport_) return;
  loop_->Modify(transport_->fd(), Interest());
  ProcessBuffered();
}

namespace {

const char* ContentTypeFor(storage::DataType t) {
  switch (t) {
    case storage::DataType::kJson:
      return "application/json";
    case storage::DataType::kText:
      return "text/plain; charset=utf-8";
    case storage::DataType::kBinary:
      return "application/octet-stream";
    case storage::DataType::kProtobuf:
      return "application/x-protobuf";
  }
  return "application/octet-stream";
}

}  // namespace

storage::DataType AnswerDataType(const std::string& content_type, const std::string& body) {
  std::string media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.pop_back();
  for (auto& ch : media) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (media == "text/plain") return storage::DataType::kText;
  if (media == "application/json") {
    // JSON clients get `data` as parsed JSON: an answer that is not JSON travels as text.
    return json::Parse(body).ok() ? storage::DataType::kJson : storage::DataType::kText;
  }
  return storage::DataType::kBinary;
}

void ClientConnection::StartUserEvent(const std::string& event, storage::DataType type,
                                      std::string data, std::optional<uint64_t> ack_id) {
  bool called = CallEventHandler(event, type, std::move(data),
                                 [event, ack_id](ClientConnection& c, const UpstreamAnswer& a) {
                                   c.FinishUserEvent(event, ack_id, a);
                                 });
  if (!called) {
    if (init_.protocol == ClientProtocol::kRaw) {
      // A raw client's frames are the `message` user event; with no event handler to take
      // them the service closes the connection (PROTOCOL.md 3.1).
      CloseWith(1011, "No event handler is configured for the 'message' event.");
    } else if (ack_id) {
      SendControl(codec_->Ack(
          *ack_id, Status::Internal("No event handler is configured for event '" + event + "'.")));
    }
    return;
  }
  Pause();
}

bool ClientConnection::CallEventHandler(const std::string& event, storage::DataType type,
                                        std::string data, AnswerFn done) {
  const std::string& hub = hub_->name().str();
  // Held for as long as `handler` is used: a SIGHUP may replace the settings meanwhile.
  std::shared_ptr<const HubSettings> settings = gateway_->settings();
  const EventHandlerSettings* handler = settings->ForUserEvent(hub, event);
  if (!handler) return false;
  rest::UpstreamRequest request = NewUpstreamRequest(*handler, hub, event, false, init_.id,
                                                     init_.user_id, init_.subprotocol, init_.state);
  request.event_id = RandomHex(8);
  request.content_type = ContentTypeFor(type);
  request.body = std::move(data);
  std::weak_ptr<ClientConnection> weak =
      std::static_pointer_cast<ClientConnection>(shared_from_this());
  EventLoop* loop = loop_;
  gateway_->upstream()->Call(std::move(request),
                             [weak, loop, done = std::move(done)](rest::UpstreamResponse r) {
                               UpstreamAnswer a{r.ok(),
                                                r.status,
                                                r.timed_out,
                                                std::move(r.error),
                                                std::move(r.content_type),
                                                std::move(r.body),
                                                std::move(r.connection_state)};
                               loop->Post([weak, done, a = std::move(a)] {
                                 if (auto self = weak.lock()) done(*self, a);
                               });
                             });
  return true;
}

void ClientConnection::ApplyAnswerState(const UpstreamAnswer& a) {
  if (!a.ok || !a.state) return;
  // What the answer changes goes through the log: durable, and the same on every node.
  init_.state = a.state->empty() ? std::nullopt : a.state;
  storage::Entry s;
  s.kind = storage::EntryKind::kConnectionState;
  s.timestamp_ms = NowMs();
  s.target = init_.id;
  s.connection_state = init_.state;
  AppendCommand(std::move(s));
}

void ClientConnection::LogIgnored(const ClientMessage& m, const std::string& why) {
  constexpr int kMaxLogged = 8;  // per connection: a misbehaving client must not flood the log
  if (ignored_logged_ >= kMaxLogged) return;
  if (++ignored_logged_ == kMaxLogged) {
    ConnLog(*this).Info("ignored a '", m.type_name, "' message: ", why,
                        " (further ones are not logged)");
    return;
  }
  ConnLog(*this).Info("ignored a '", m.type_name, "' message: ", why);
}

void ClientConnection::FinishUserEvent(const std::string& event, std::optional<uint64_t> ack_id,
                                       const UpstreamAnswer& a) {
  if (state_ == State::kEnded) return;
  if (!a.ok) {
    std::string why = "The event handler for '" + event +
                      "' failed: " + (a.status ? "status " + std::to_string(a.status) : a.error);
    if (init_.protocol == ClientProtocol::kRaw) {
      CloseWith(1011, why);  // PROTOCOL.md 3.1: a failed `message` event closes a raw client
      return;
    }
    if (ack_id) SendControl(codec_->Ack(*ack_id, Status::Internal(why)));
    Resume();
    return;
  }
  ApplyAnswerState(a);
  storage::Entry e;
  e.timestamp_ms = NowMs();
  e.origin_connection = init_.id;
  if (init_.protocol != ClientProtocol::kRaw) e.ack_id = ack_id;
  if (!a.body.empty()) {
    // The answer, then the ack (the applier delivers the message before acking the origin).
    e.kind = storage::EntryKind::kSend;
    e.scope = storage::Scope::kConnection;
    e.target = init_.id;
    e.from = storage::MessageFrom::kServer;
    e.data_type = AnswerDataType(a.content_type, a.body);
    e.data = a.body;
    AppendCommand(std::move(e));
  } else if (e.ack_id) {
    // No answer to send: the ack alone, recorded so a retry with this ackId is a Duplicate.
    e.kind = storage::EntryKind::kClientAck;
    AppendCommand(std::move(e));
  }
  Resume();
}

void ClientConnection::HandleMessage(WsMessage& msg) {
  switch (msg.opcode) {
    case WsOpcode::kPing:
      Enqueue(WsFrame(WsOpcode::kPong, msg.payload));
      return;
    case WsOpcode::kPong:
      return;
    case WsOpcode::kClose: {
      uint16_t code;
      std::string reason;
      WsParseClose(msg.payload, &code, &reason);
      // A reliable client that closes with anything but a normal close may come back.
      if (codec_->reliable() && code != 1000 && code != 1001 && code != 1005) {
        Enqueue(WsCloseFrame(code == 1005 ? 1000 : code, ""));
        WriteSome();
        Lost("The client closed with code " + std::to_string(code) + ".");
        return;
      }
      Enqueue(WsCloseFrame(code == 1005 ? 1000 : code, ""));
      close_after_flush_ = true;
      state_ = State::kClosing;
      AppendClose(reason);
      return;
    }
    case WsOpcode::kText:
    case WsOpcode::kBinary: {
      metric::CountReceived(hub_->name().str());
      auto decoded = codec_->Decode(msg);
      if (!decoded.ok()) {
        CloseWith(1003, decoded.status().message());
        return;
      }
      Handle(*decoded);
      return;
    }
    case WsOpcode::kContinuation:
      return;  // never yielded by the reader
  }
}

void ClientConnection::Handle(ClientMessage& m) {
  if (m.type == ClientMessageType::kRawData) {
    HandleRaw(m);
    return;
  }
  if (!m.invalid_reason &&
      (m.type == ClientMessageType::kEvent || m.type == ClientMessageType::kInvoke)) {
    // The name travels in ce-eventName and the handler's URL: it must be representable there.
    if (Status s = ValidateEventName(m.event); !s.ok()) m.invalid_reason = s.message();
  }
  auto reject = [&](const Status& s) {
    if (m.ack_id) {
      SendControl(codec_->Ack(*m.ack_id, s));
    } else {
      LogIgnored(m, s.message());
    }
  };
  switch (m.type) {
    case ClientMessageType::kInvoke:
      HandleInvoke(m);
      return;
    case ClientMessageType::kCancelInvocation:
      if (m.invalid_reason) {
        LogIgnored(m, *m.invalid_reason);
      } else {
        invocations_.mut().erase(m.invocation_id);
        invocations_.Trim();  // its answer, when it comes, is dropped
      }
      return;
    case ClientMessageType::kStreamData:
    case ClientMessageType::kStreamEnd:
      HandleStream(m);
      return;
    case ClientMessageType::kSendToGroup:
      if (m.stream_start) {
        HandleStream(m);
        return;
      }
      break;
    default:
      break;
  }
  if (m.invalid_reason) {
    reject(Status::InvalidArgument(*m.invalid_reason));
    return;
  }
  storage::Entry e;
  e.timestamp_ms = NowMs();
  e.origin_connection = init_.id;
  e.ack_id = m.ack_id;
  switch (m.type) {
    case ClientMessageType::kPing:
      SendControl(codec_->Pong());
      return;
    case ClientMessageType::kSequenceAck:
      if (!codec_->reliable()) return;
      if (m.sequence_id > acked_seq_) acked_seq_ = m.sequence_id;
      while (!unacked_.empty() && unacked_.front().seq <= acked_seq_) {
        unacked_bytes_ -= unacked_.front().body.size();
        unacked_.pop_front();
        // The client has it already (from before the drop): the replay skips it.
        if (replay_next_ > 0) --replay_next_;
      }
      return;
    case ClientMessageType::kJoinGroup:
    case ClientMessageType::kLeaveGroup: {
      if (Status s = ValidateGroupName(m.group); !s.ok()) {
        reject(s);
        return;
      }
      e.kind = m.type == ClientMessageType::kJoinGroup ? storage::EntryKind::kAddToGroups
                                                       : storage::EntryKind::kRemoveFromGroups;
      e.scope = storage::Scope::kConnection;
      e.target = init_.id;
      e.groups = {m.group};
      e.required_permission = storage::Permission::kJoinLeaveGroup;
      e.permission_target = m.group;
      break;
    }
    case ClientMessageType::kSendToGroup: {
      if (Status s = ValidateGroupName(m.group); !s.ok()) {
        reject(s);
        return;
      }
      e = GroupMessage(m.group, m.no_echo, m.data_type, std::move(m.data));
      e.ack_id = m.ack_id;
      break;
    }
    case ClientMessageType::kEvent:
      // A processed ackId is not sent to the app again (PROTOCOL.md 3.5).
      if (m.ack_id && hub_->view().HasAck(init_.id, *m.ack_id)) {
        reject(Status::Duplicate("Message with ackId " + std::to_string(*m.ack_id) +
                                 " was already processed."));
        return;
      }
      StartUserEvent(m.event, m.data_type, std::move(m.data), m.ack_id);
      return;
    case ClientMessageType::kSetGroupState:
    case ClientMessageType::kSubscribeGroupState:
    case ClientMessageType::kUnsubscribeGroupState:
      HandleGroupState(m);
      return;
    case ClientMessageType::kUnknown:
      reject(Status::InvalidArgument("Unknown message type '" + m.type_name + "'."));
      return;
    case ClientMessageType::kInvoke:
    case ClientMessageType::kCancelInvocation:
    case ClientMessageType::kStreamData:
    case ClientMessageType::kStreamEnd:
    case ClientMessageType::kRawData:
      return;  // handled above
  }
  AppendCommand(std::move(e));
}

void ClientConnection::HandleRaw(ClientMessage& m) {
  if (init_.raw_publish_group.empty()) {
    // Every frame of a raw client is the `message` user event (PROTOCOL.md 3.1).
    StartUserEvent("message", m.data_type, std::move(m.data), std::nullopt);
    return;
  }
  AppendCommand(
      GroupMessage(init_.raw_publish_group, init_.raw_no_echo, m.data_type, std::move(m.data)));
}

storage::Entry ClientConnection::GroupMessage(const std::string& group, bool no_echo,
                                              storage::DataType type, std::string data) const {
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.timestamp_ms = NowMs();
  e.origin_connection = init_.id;
  e.scope = storage::Scope::kGroup;
  e.target = group;
  e.from = storage::MessageFrom::kGroup;
  e.from_user_id = init_.user_id.value_or("");
  e.no_echo = no_echo;
  e.data_type = type;
  e.data = std::move(data);
  e.required_permission = storage::Permission::kSendToGroup;
  e.permission_target = group;
  return e;
}

replication::AppendCallbacks ClientConnection::OnLoop(StatusFn done) {
  replication::AppendCallbacks cb;
  auto weak = weak_from_this();
  cb.executor = loop_;
  cb.durable = [weak, done](Result<uint64_t> r) {
    if (r.ok()) return;
    if (auto self = weak.lock()) done(static_cast<ClientConnection&>(*self), r.status());
  };
  cb.applied = [weak, done](uint64_t, const Status& status) {
    if (auto self = weak.lock()) done(static_cast<ClientConnection&>(*self), status);
  };
  return cb;
}

void ClientConnection::AppendCommand(storage::Entry entry) {
  replication::AppendCallbacks cb;
  if (std::optional<uint64_t> ack = entry.ack_id) {
    // The ack comes back to this loop: an error ack when the command could not be appended
    // (a full queue, a full disk), else the apply status once it was applied and delivered
    // (so an echo of the client's own message arrives before its ack).
    cb = OnLoop(
        [ack](ClientConnection& c, const Status& s) { c.SendControl(c.codec_->Ack(*ack, s)); });
  }
  hub_->Append(std::move(entry), std::move(cb));
}

void ClientConnection::CloseWith(uint16_t code, const std::string& reason) {
  ConnLog(*this).Info("closing with ", code, ": ", reason);
  SendControl(codec_->Disconnected(reason));
  Enqueue(WsCloseFrame(code, reason));
  close_after_flush_ = true;
  state_ = State::kClosing;
  AppendClose(reason);
}

void ClientConnection::OnFlush() { WriteSome(); }

void ClientConnection::WriteSome() {
  if (!transport_) return;
  int64_t now_ms = 0;
  for (;;) {
    RefillReplay();
    if (!transport_) return;
    if (out_.empty()) break;
    // Messages whose TTL ran out before they started to leave are dropped (messageTtlSeconds).
    while (front_offset_ == 0 && !out_.empty() && out_.front().expire_unix_ms != 0) {
      if (now_ms == 0) now_ms = NowMs();
      if (out_.front().expire_unix_ms > now_ms) break;
      ShrinkOut(out_.front().size());
      out_.pop_front();
    }
    if (out_.empty()) break;
    iovec iov[kMaxIov];
    int n = 0;
    size_t skip = front_offset_;
    for (auto it = out_.begin(); it != out_.end() && n < kMaxIov - 1; ++it) {
      const std::string& h = it->head;
      if (skip < h.size()) {
        iov[n++] = {const_cast<char*>(h.data()) + skip, h.size() - skip};
        skip = 0;
      } else {
        skip -= h.size();
      }
      if (it->body) {
        std::string_view b = it->body.view();
        if (skip < b.size()) {
          iov[n++] = {const_cast<char*>(b.data()) + skip, b.size() - skip};
          skip = 0;
        } else {
          skip -= b.size();
        }
      }
    }
    IoResult w = transport_->Writev(iov, n);
    if (w.status == IoStatus::kAgain) {
      WaitWritable();
      return;
    }
    if (w.status != IoStatus::kOk) {
      Lost("Write failed: " + transport_->error());
      return;
    }
    last_write_ = write_progress_ = std::chrono::steady_clock::now();
    metrics::Add(metrics::Counter::kBytesOut, w.bytes);
    size_t written = w.bytes;
    while (written > 0 && !out_.empty()) {
      OutItem& f = out_.front();
      size_t total = f.size();
      size_t left = total - front_offset_;
      if (written >= left) {
        written -= left;
        ShrinkOut(total);
        if (f.replay) replay_queued_bytes_ -= total;
        front_offset_ = 0;
        out_.pop_front();
      } else {
        front_offset_ += written;
        written = 0;
      }
    }
  }
  // Bytes the transport still holds (TLS records) leave before the queue counts as sent.
  if (transport_->HasPendingOutput()) {
    IoResult f = transport_->Flush();
    if (f.status == IoStatus::kError) {
      Lost("Write failed: " + transport_->error());
      return;
    }
    if (transport_->HasPendingOutput()) {
      WaitWritable();
      return;
    }
  }
  if (want_write_) {
    want_write_ = false;
    loop_->Modify(transport_->fd(), Interest());
  }
  if (close_after_flush_) {
    // Half-close and wait (briefly, via the idle tick) for the client's close or EOF.
    transport_->ShutdownWrite();
    if (state_ != State::kClosing) state_ = State::kClosing;
    close_after_flush_ = false;
    held_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  }
}

void ClientConnection::WaitWritable() {
  if (want_write_) return;
  want_write_ = true;
  loop_->Modify(transport_->fd(), Interest());
}

void ClientConnection::RestoreHeld(std::vector<std::pair<uint64_t, SharedBytes>> unacked,
                                   uint64_t acked, std::chrono::steady_clock::time_point until) {
  for (auto& [seq, body] : unacked) {
    unacked_bytes_ += body.size();
    unacked_.push_back({seq, std::move(body)});
  }
  acked_seq_ = checkpointed_ = acked;
  state_ = State::kHeld;
  CountHeld(+1);
  held_until_ = until;
  loop_->AddTicker(shared_from_this());
}

void ClientConnection::Release() {
  if (state_ == State::kEnded) return;
  auto self = shared_from_this();
  // Stream state lives here, not in the log: the streams end rather than move with the session.
  EndAllStreams(false);
  if (state_ == State::kHeld) loop_->RemoveTicker(this);
  if (state_ == State::kHeld) CountHeld(-1);
  log_closed_ = true;
  DetachSocket();
  state_ = State::kEnded;
  unacked_.clear();
  unacked_bytes_ = 0;
}

void ClientConnection::StartMoved(std::unique_ptr<Transport> transport, std::string early_bytes,
                                  std::vector<std::pair<uint64_t, SharedBytes>> replayed,
                                  uint64_t acked) {
  // Ended meanwhile (closed, or moved on again): the socket drops; the client's next recovery
  // attempt learns which.
  if (state_ != State::kNew) return;
  std::deque<Unacked> all;
  size_t bytes = 0;
  for (auto& [seq, body] : replayed) {
    bytes += body.size();
    all.push_back({seq, std::move(body)});
  }
  for (auto& u : unacked_) {
    if (!all.empty() && u.seq <= all.back().seq) continue;  // numbered before the move
    bytes += u.body.size();
    all.push_back(std::move(u));
  }
  unacked_ = std::move(all);
  unacked_bytes_ = bytes;
  acked_seq_ = checkpointed_ = acked;
  // Nothing was sent yet: the queue is rebuilt in sequence order by the recovering attach.
  out_.clear();
  ShrinkOut(out_bytes_);
  state_ = State::kHeld;
  CountHeld(+1);  // Attach counts the recovery
  Attach(std::move(transport), std::move(early_bytes));
}

void ClientConnection::OnTick(std::chrono::steady_clock::time_point now) {
  // Drained queues give their memory back (an idle connection holds none).
  out_.Trim();
  unacked_.Trim();
  // sequenceAck is kept in memory and persisted lazily, batched into checkpoint entries.
  if (codec_->reliable() && acked_seq_ > checkpointed_ && now >= next_checkpoint_ &&
      (state_ == State::kOpen || state_ == State::kHeld)) {
    gateway_->QueueCheckpoint(loop_->index(), hub_, init_.id, acked_seq_);
    checkpointed_ = acked_seq_;
    next_checkpoint_ = now + limits_.checkpoint_interval;
  }
  if (!streams_.get().empty() && (state_ == State::kOpen || state_ == State::kHeld)) {
    CheckStreamIdle(now);
  }
  switch (state_) {
    case State::kHeld:
      if (now >= held_until_) End("The reliable session expired before the client came back.");
      return;
    case State::kClosing:
      if (!close_after_flush_ && now >= held_until_) End("");
      return;
    case State::kOpen:
      if (now - last_read_ > limits_.idle_timeout) {
        Lost("No data from the client within the idle timeout.");
        return;
      }
      if (DropIfNodeBackedUp()) return;
      if (!out_.empty() && now - write_progress_ > limits_.write_stall) {
        ConnLog(*this).Warn("no write progress for ", limits_.write_stall.count(),
                            " s; dropping the slow client");
        metric::CountDropped("slow_consumer", static_cast<int64_t>(out_.size()));
        Lost("The client is not reading its messages.");
        return;
      }
      // Half a tick of slack: the last write usually happened just after the previous tick.
      if (now - last_write_ + std::chrono::milliseconds(500) >=
          init_.keepalive.value_or(limits_.keepalive)) {
        Enqueue(WsFrame(WsOpcode::kPing, ""));
      }
      return;
    default:
      return;
  }
}

void ClientConnection::DetachSocket() {
  if (!transport_) return;
  loop_->Remove(transport_->fd());
  transport_.reset();
  out_.clear();
  ShrinkOut(out_bytes_);
  front_offset_ = 0;
  want_write_ = false;
  close_after_flush_ = false;
  replaying_ = false;  // a later recovery replays the whole window again
  replay_next_ = 0;
  replay_queued_bytes_ = 0;
}

void ClientConnection::Lost(const std::string& why) {
  if (state_ == State::kEnded || state_ == State::kHeld) return;
  if (codec_->reliable() && state_ == State::kOpen && !log_closed_) {
    ConnLog(*this).Info("held for recovery: ", why);
    auto self = shared_from_this();  // keep alive across DetachSocket's Remove
    DetachSocket();
    state_ = State::kHeld;
    CountHeld(+1);
    held_until_ = std::chrono::steady_clock::now() + limits_.reliable_hold;
    loop_->AddTicker(self);
    return;
  }
  End(why);
}

void ClientConnection::End(const std::string& reason) {
  if (state_ == State::kEnded) return;
  auto self = shared_from_this();
  end_reason_ = reason;
  if (state_ == State::kHeld) loop_->RemoveTicker(this);
  if (state_ == State::kHeld) CountHeld(-1);
  DetachSocket();
  state_ = State::kEnded;
  unacked_.clear();
  unacked_bytes_ = 0;
  AppendClose(reason);
}

void ClientConnection::AppendClose(const std::string& reason) {
  if (log_closed_) {
    EndAllStreams(true);  // the log removed this connection already (a REST close)
    return;
  }
  if (close_appended_) return;
  close_appended_ = true;
  EndAllStreams(false);  // their last messages go before the close that removes their publisher
  storage::Entry e;
  e.kind = storage::EntryKind::kConnectionClose;
  e.timestamp_ms = NowMs();
  e.origin_connection = init_.id;
  e.reason = reason;
  replication::AppendCallbacks cb;
  cb.executor = loop_;
  cb.durable = [gateway = gateway_, handle = init_.handle](Result<uint64_t> r) {
    // Nothing will apply a close that was never appended: the connection is gone here; the
    // log still holds it open until a restart or an operator closes it.
    if (!r.ok()) gateway->Unregister(handle);
  };
  hub_->Append(std::move(e), std::move(cb));
}

}  // namespace hubcast::server
