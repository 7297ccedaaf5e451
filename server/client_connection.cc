#include "server/client_connection.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/names.h"
#include "base/random.h"
#include "rest/upstream_client.h"
#include "server/gateway.h"
#include "server/json_codec.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace hubcast::server {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kMaxReadsPerEvent = 8;  // fairness between the connections of one loop
constexpr int kMaxIov = 64;

int64_t NowMs() { return SystemClock::Get().NowUnixMs(); }

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

ClientConnection::~ClientConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool ClientConnection::Recover(int fd) {
  if (!codec_->reliable() || log_closed_) return false;
  if (state_ == State::kOpen) {
    auto self = shared_from_this();
    DetachSocket();
    state_ = State::kHeld;
  }
  if (state_ != State::kHeld) return false;
  Attach(fd);
  return true;
}

void ClientConnection::Attach(int fd) {
  bool recovering = state_ == State::kHeld;
  if (recovering) loop_->RemoveTicker(this);
  fd_ = fd;
  reader_ = WsReader(limits_.max_message_bytes);
  front_offset_ = 0;
  want_write_ = false;
  state_ = State::kOpen;
  last_read_ = last_write_ = std::chrono::steady_clock::now();
  auto self = std::static_pointer_cast<ClientConnection>(shared_from_this());
  if (!loop_->Add(fd_, EPOLLIN | EPOLLRDHUP, self)) {
    ::close(fd_);
    fd_ = -1;
    End("Failed to register the socket.");
    return;
  }
  if (recovering) {
    // Everything the client has not acknowledged, in order, with its original numbers.
    for (const auto& u : unacked_) EnqueueReliable(u);
  }
  // Frames queued before the socket arrived (the `connected` message, early deliveries).
  if (!out_.empty()) loop_->RequestFlush(this);
}

void ClientConnection::SendControl(std::string frame) {
  if (!Accepting() || frame.empty()) return;
  Enqueue(std::move(frame));
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
  if (Accepting()) EnqueueReliable(u);
}

void ClientConnection::EnqueueReliable(const Unacked& u) {
  Enqueue(codec_->ReliableHead(u.seq, u.body.size()), u.body);
}

void ClientConnection::Enqueue(std::string head, SharedBytes body, int64_t expire) {
  if ((fd_ < 0 && state_ != State::kNew) || close_after_flush_) return;
  if (out_.empty()) write_progress_ = std::chrono::steady_clock::now();
  out_bytes_ += head.size() + body.size();
  out_.push_back({std::move(head), std::move(body), expire});
  if (out_bytes_ > limits_.max_outbound_bytes) {
    // A client that does not read must not hold the server's memory hostage.
    Logger("conn")
        .With("id", init_.id)
        .Warn("outbound queue over ", limits_.max_outbound_bytes,
              " bytes; dropping the slow client");
    Lost("The client is not reading its messages.");
    return;
  }
  loop_->RequestFlush(this);
}

void ClientConnection::CloseByService(uint16_t code, const std::string& reason, bool log_closed) {
  if (log_closed) log_closed_ = true;
  if (state_ == State::kHeld || state_ == State::kNew) {
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
  if (fd_ < 0) return;
  if (events & EPOLLIN) {
    char buf[kReadChunk];
    for (int i = 0; i < kMaxReadsPerEvent && fd_ >= 0; ++i) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n > 0) {
        last_read_ = std::chrono::steady_clock::now();
        if (state_ == State::kClosing) continue;  // draining until the peer closes
        reader_.Feed(buf, static_cast<size_t>(n));
        ProcessBuffered();
        if (paused_) break;  // the rest stays in the socket until the event handler answers
        if (static_cast<size_t>(n) < sizeof buf) break;
      } else if (n == 0) {
        if (state_ == State::kClosing) {
          End("");
        } else {
          Lost("The client closed the connection without a close frame.");
        }
        return;
      } else {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        Lost(std::string("Read failed: ") + std::strerror(errno));
        return;
      }
    }
  }
  if (fd_ < 0) return;
  if (events & (EPOLLHUP | EPOLLERR)) {
    Lost("The connection was reset.");
    return;
  }
  if (events & EPOLLOUT) WriteSome();
}

void ClientConnection::ProcessBuffered() {
  while (fd_ >= 0 && state_ == State::kOpen && !paused_) {
    auto msg = reader_.Next();
    if (!msg) break;
    HandleMessage(*msg);
  }
  if (fd_ >= 0 && state_ == State::kOpen && !paused_ && reader_.error()) {
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
  if (fd_ >= 0) loop_->Modify(fd_, Interest());
}

void ClientConnection::Resume() {
  if (!paused_) return;
  paused_ = false;
  if (fd_ < 0) return;
  loop_->Modify(fd_, Interest());
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

// The data type of an event handler's answer, from its Content-Type (parameters ignored);
// a missing or unknown type is binary (PROTOCOL.md 5.5).
storage::DataType DataTypeOfAnswer(const std::string& content_type, const std::string& body) {
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

}  // namespace

void ClientConnection::StartUserEvent(const std::string& event, storage::DataType type,
                                      std::string data, std::optional<uint64_t> ack_id) {
  const std::string& hub = hub_->name().str();
  // Held for as long as `handler` is used: a SIGHUP may replace the settings meanwhile.
  std::shared_ptr<const HubSettings> settings = gateway_->settings();
  const EventHandlerSettings* handler = settings->ForUserEvent(hub, event);
  if (!handler) {
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
  rest::UpstreamRequest request = NewUpstreamRequest(*handler, hub, event, false, init_.id,
                                                     init_.user_id, init_.subprotocol, init_.state);
  request.event_id = RandomHex(8);
  request.content_type = ContentTypeFor(type);
  request.body = std::move(data);
  Pause();
  std::weak_ptr<ClientConnection> weak =
      std::static_pointer_cast<ClientConnection>(shared_from_this());
  EventLoop* loop = loop_;
  gateway_->upstream()->Call(std::move(request),
                             [weak, loop, event, ack_id](rest::UpstreamResponse r) {
                               UpstreamAnswer a{r.ok(),
                                                r.status,
                                                std::move(r.error),
                                                std::move(r.content_type),
                                                std::move(r.body),
                                                std::move(r.connection_state)};
                               loop->Post([weak, event, ack_id, a = std::move(a)] {
                                 if (auto self = weak.lock())
                                   self->FinishUserEvent(event, ack_id, a);
                               });
                             });
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
  // What the answer changes goes through the log: durable, and the same on every node.
  if (a.state) {
    init_.state = a.state->empty() ? std::nullopt : a.state;
    storage::Entry s;
    s.kind = storage::EntryKind::kConnectionState;
    s.timestamp_ms = NowMs();
    s.target = init_.id;
    s.connection_state = init_.state;
    AppendCommand(std::move(s));
  }
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
    e.data_type = DataTypeOfAnswer(a.content_type, a.body);
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
  auto reject = [&](const Status& s) {
    if (m.ack_id) SendControl(codec_->Ack(*m.ack_id, s));
  };
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
      e.kind = storage::EntryKind::kSend;
      e.scope = storage::Scope::kGroup;
      e.target = m.group;
      e.from = storage::MessageFrom::kGroup;
      e.from_user_id = init_.user_id.value_or("");
      e.no_echo = m.no_echo;
      e.data_type = m.data_type;
      e.data = std::move(m.data);
      e.required_permission = storage::Permission::kSendToGroup;
      e.permission_target = m.group;
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
    case ClientMessageType::kUnknown:
      reject(Status::InvalidArgument("Unknown message type '" + m.type_name + "'."));
      return;
    case ClientMessageType::kRawData:
      return;  // handled above
  }
  AppendCommand(std::move(e));
}

void ClientConnection::HandleRaw(ClientMessage& m) {
  if (!init_.raw_publish_group) {
    // Every frame of a raw client is the `message` user event (PROTOCOL.md 3.1).
    StartUserEvent("message", m.data_type, std::move(m.data), std::nullopt);
    return;
  }
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.timestamp_ms = NowMs();
  e.origin_connection = init_.id;
  e.scope = storage::Scope::kGroup;
  e.target = *init_.raw_publish_group;
  e.from = storage::MessageFrom::kGroup;
  e.from_user_id = init_.user_id.value_or("");
  e.no_echo = init_.raw_no_echo;
  e.data_type = m.data_type;
  e.data = std::move(m.data);
  e.required_permission = storage::Permission::kSendToGroup;
  e.permission_target = e.target;
  AppendCommand(std::move(e));
}

void ClientConnection::AppendCommand(storage::Entry entry) {
  replication::AppendCallbacks cb;
  if (std::optional<uint64_t> ack = entry.ack_id) {
    // The ack comes back to this loop: an error ack when the command could not be appended
    // (a full queue, a full disk), else the apply status once it was applied and delivered
    // (so an echo of the client's own message arrives before its ack).
    auto weak = weak_from_this();
    cb.executor = loop_;
    cb.durable = [weak, ack](Result<uint64_t> r) {
      if (r.ok()) return;
      if (auto self = weak.lock()) {
        auto& conn = static_cast<ClientConnection&>(*self);
        conn.SendControl(conn.codec_->Ack(*ack, r.status()));
      }
    };
    cb.applied = [weak, ack](uint64_t, const Status& s) {
      if (auto self = weak.lock()) {
        auto& conn = static_cast<ClientConnection&>(*self);
        conn.SendControl(conn.codec_->Ack(*ack, s));
      }
    };
  }
  hub_->Append(std::move(entry), std::move(cb));
}

void ClientConnection::CloseWith(uint16_t code, const std::string& reason) {
  Logger("conn").With("id", init_.id).Info("closing with ", code, ": ", reason);
  SendControl(codec_->Disconnected(reason));
  Enqueue(WsCloseFrame(code, reason));
  close_after_flush_ = true;
  state_ = State::kClosing;
  AppendClose(reason);
}

void ClientConnection::OnFlush() { WriteSome(); }

void ClientConnection::WriteSome() {
  if (fd_ < 0) return;
  int64_t now_ms = 0;
  while (!out_.empty()) {
    // Messages whose TTL ran out before they started to leave are dropped (messageTtlSeconds).
    while (front_offset_ == 0 && !out_.empty() && out_.front().expire_unix_ms != 0) {
      if (now_ms == 0) now_ms = NowMs();
      if (out_.front().expire_unix_ms > now_ms) break;
      out_bytes_ -= out_.front().size();
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
    ssize_t w = ::writev(fd_, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!want_write_) {
          want_write_ = true;
          loop_->Modify(fd_, Interest());
        }
        return;
      }
      Lost(std::string("Write failed: ") + std::strerror(errno));
      return;
    }
    last_write_ = write_progress_ = std::chrono::steady_clock::now();
    size_t written = static_cast<size_t>(w);
    while (written > 0 && !out_.empty()) {
      OutItem& f = out_.front();
      size_t total = f.size();
      size_t left = total - front_offset_;
      if (written >= left) {
        written -= left;
        out_bytes_ -= total;
        front_offset_ = 0;
        out_.pop_front();
      } else {
        front_offset_ += written;
        written = 0;
      }
    }
  }
  if (want_write_) {
    want_write_ = false;
    loop_->Modify(fd_, Interest());
  }
  if (close_after_flush_) {
    // Half-close and wait (briefly, via the idle tick) for the client's close or EOF.
    ::shutdown(fd_, SHUT_WR);
    if (state_ != State::kClosing) state_ = State::kClosing;
    close_after_flush_ = false;
    held_until_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  }
}

void ClientConnection::RestoreHeld(std::vector<std::pair<uint64_t, SharedBytes>> unacked,
                                   uint64_t acked, std::chrono::steady_clock::time_point until) {
  for (auto& [seq, body] : unacked) {
    unacked_bytes_ += body.size();
    unacked_.push_back({seq, std::move(body)});
  }
  acked_seq_ = checkpointed_ = acked;
  state_ = State::kHeld;
  held_until_ = until;
  loop_->AddTicker(shared_from_this());
}

void ClientConnection::Release() {
  if (state_ == State::kEnded) return;
  auto self = shared_from_this();
  if (state_ == State::kHeld) loop_->RemoveTicker(this);
  log_closed_ = true;
  DetachSocket();
  state_ = State::kEnded;
  unacked_.clear();
  unacked_bytes_ = 0;
}

void ClientConnection::StartMoved(int fd, std::vector<std::pair<uint64_t, SharedBytes>> replayed,
                                  uint64_t acked) {
  if (state_ != State::kNew) {  // ended meanwhile (closed, or moved on again)
    ::close(fd);
    return;
  }
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
  out_bytes_ = 0;
  state_ = State::kHeld;
  Attach(fd);
}

void ClientConnection::OnTick(std::chrono::steady_clock::time_point now) {
  // sequenceAck is kept in memory and persisted lazily, batched into checkpoint entries.
  if (codec_->reliable() && acked_seq_ > checkpointed_ && now >= next_checkpoint_ &&
      (state_ == State::kOpen || state_ == State::kHeld)) {
    gateway_->QueueCheckpoint(loop_->index(), hub_, init_.id, acked_seq_);
    checkpointed_ = acked_seq_;
    next_checkpoint_ = now + limits_.checkpoint_interval;
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
      if (!out_.empty() && now - write_progress_ > limits_.write_stall) {
        Logger("conn")
            .With("id", init_.id)
            .Warn("no write progress for ", limits_.write_stall.count(),
                  " s; dropping the slow client");
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
  if (fd_ < 0) return;
  loop_->Remove(fd_);
  ::close(fd_);
  fd_ = -1;
  out_.clear();
  out_bytes_ = 0;
  front_offset_ = 0;
  want_write_ = false;
  close_after_flush_ = false;
}

void ClientConnection::Lost(const std::string& why) {
  if (state_ == State::kEnded || state_ == State::kHeld) return;
  if (codec_->reliable() && state_ == State::kOpen && !log_closed_) {
    Logger("conn").With("id", init_.id).Info("held for recovery: ", why);
    auto self = shared_from_this();  // keep alive across DetachSocket's Remove
    DetachSocket();
    state_ = State::kHeld;
    held_until_ = std::chrono::steady_clock::now() + limits_.reliable_hold;
    loop_->AddTicker(self);
    return;
  }
  End(why);
}

void ClientConnection::End(const std::string& reason) {
  if (state_ == State::kEnded) return;
  auto self = shared_from_this();
  if (state_ == State::kHeld) loop_->RemoveTicker(this);
  DetachSocket();
  state_ = State::kEnded;
  unacked_.clear();
  unacked_bytes_ = 0;
  AppendClose(reason);
}

void ClientConnection::AppendClose(const std::string& reason) {
  if (log_closed_ || close_appended_) return;
  close_appended_ = true;
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
