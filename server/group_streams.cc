// Client SDK 1.1 group streams: a publisher opens a stream to a group (`sendToGroup` with
// `stream`), sends numbered messages (`streamData`) and ends it (`streamEnd`); members receive
// ordinary group messages carrying `stream` (docs/PROTOCOL-DECISIONS.md, "Group streams").
//
// The rules, on the publisher's connection (its loop thread):
//   1. Start: the permission to send to the group is checked in log order (a no-op client
//      action); then streamAck with expectedSequenceId 1, or streamClosed with the error.
//   2. Message n: n == expected is published (one kSend entry, like any group message: ordered
//      by the log, numbered for reliable members, recoverable); n < expected is a resend after
//      a recovery and is dropped; n > expected is refused with streamNack InvalidSequenceId.
//      A message without a sequence id is a keep-alive.
//   3. streamAck{expected} goes to the publisher once the messages before `expected` are
//      applied: when nothing is in flight any more, or every kAckEvery messages.
//   4. The stream ends with its last message to the group (endOfStream, numbered `expected`):
//      on streamEnd (its error surfaces to members as UserError), after idleTimeoutMs without
//      a message (IdleTimeout), or when the publisher's connection ends (ConnectionClosed).
//      The publisher gets streamClosed, with the error when the service ended the stream.
#include "base/clock.h"
#include "base/log.h"
#include "base/names.h"
#include "server/client_connection.h"
#include "server/json_codec.h"

namespace hubcast::server {
namespace {

constexpr size_t kMaxStreams = 64;  // open at once per connection
constexpr uint64_t kAckEvery = 64;
constexpr uint64_t kDefaultIdleMs = 300000;
constexpr uint64_t kMinIdleMs = 1000;  // the loop checks once a second
constexpr uint64_t kMaxIdleMs = 3600000;

int64_t NowMs() { return SystemClock::Get().NowUnixMs(); }

}  // namespace

void ClientConnection::HandleStream(ClientMessage& m) {
  if (m.invalid_reason && m.stream_id.empty()) {
    LogIgnored(m, *m.invalid_reason);  // no stream to answer about
    return;
  }
  if (m.type == ClientMessageType::kSendToGroup) {
    StartStream(m);
  } else if (m.type == ClientMessageType::kStreamData) {
    StreamData(m);
  } else {
    EndStream(m);
  }
}

void ClientConnection::StartStream(ClientMessage& m) {
  const std::string id = m.stream_id;
  auto refuse = [&](std::string why) {
    SendControl(codec_->StreamClosed(id, StreamError{"BadRequest", std::move(why)}));
  };
  if (m.invalid_reason) return refuse(*m.invalid_reason);
  if (Status s = ValidateGroupName(m.group); !s.ok()) return refuse(s.message());
  uint64_t idle = m.idle_timeout_ms.value_or(kDefaultIdleMs);
  if (idle < kMinIdleMs || idle > kMaxIdleMs) {
    return refuse("idleTimeoutMs must be between " + std::to_string(kMinIdleMs) + " and " +
                  std::to_string(kMaxIdleMs) + ".");
  }
  if (GroupStream* open = FindStream(id)) {
    // A repeated start of an open stream says where it stands.
    if (open->group != m.group) return refuse("Stream '" + id + "' is open to another group.");
    if (open->started) SendControl(codec_->StreamAck(id, open->durable));
    return;
  }
  if (streams_.get().size() >= kMaxStreams) {
    return refuse("More than " + std::to_string(kMaxStreams) + " streams are open.");
  }
  GroupStream s;
  s.serial = ++stream_serial_;
  s.group = m.group;
  s.no_echo = m.no_echo;
  s.idle_timeout = std::chrono::milliseconds(idle);
  s.last_activity = std::chrono::steady_clock::now();
  const uint64_t serial = s.serial;
  streams_.mut().emplace(id, std::move(s));

  storage::Entry e;
  e.kind = storage::EntryKind::kClientAck;
  e.timestamp_ms = NowMs();
  e.origin_connection = init_.id;
  e.required_permission = storage::Permission::kSendToGroup;
  e.permission_target = m.group;
  hub_->Append(std::move(e), OnLoop([id, serial](ClientConnection& c, const Status& status) {
                 c.StreamStarted(id, serial, status);
               }));
}

ClientConnection::GroupStream* ClientConnection::FindStream(const std::string& id) {
  if (!streams_.allocated()) return nullptr;  // a lookup allocates nothing
  auto it = streams_.mut().find(id);
  return it == streams_.mut().end() ? nullptr : &it->second;
}

void ClientConnection::StreamStarted(const std::string& id, uint64_t serial, const Status& status) {
  GroupStream* found = FindStream(id);
  if (!found || found->serial != serial) return;
  if (!status.ok()) {
    // Nothing reached the group: only the publisher hears of it.
    streams_.mut().erase(id);
    streams_.Trim();
    SendControl(
        codec_->StreamClosed(id, StreamError{AckErrorName(status.code()), status.message()}));
    return;
  }
  GroupStream& s = *found;
  s.started = true;
  s.acked = s.durable;  // 1: the start is applied before any of the stream's messages
  SendControl(codec_->StreamAck(id, s.acked));
}

ClientConnection::GroupStream* ClientConnection::OpenStream(const std::string& id) {
  if (GroupStream* s = FindStream(id)) return s;
  SendControl(codec_->StreamClosed(
      id, StreamError{"StreamNotFound", "Stream '" + id + "' is not open on this connection."}));
  return nullptr;
}

void ClientConnection::StreamData(ClientMessage& m) {
  const std::string id = m.stream_id;
  GroupStream* open = OpenStream(id);
  if (!open) return;
  GroupStream& s = *open;
  if (m.invalid_reason) {
    StreamError error{"BadRequest", *m.invalid_reason};
    CloseStream(id, error, error, true);
    return;
  }
  s.last_activity = std::chrono::steady_clock::now();
  if (!m.stream_sequence_id) return;  // keep-alive
  const uint64_t n = *m.stream_sequence_id;
  if (n < s.expected) return;  // published already: a resend after a recovery
  if (n > s.expected) {
    SendControl(codec_->StreamNack(id, s.expected, "InvalidSequenceId",
                                   "Expected stream sequence id " + std::to_string(s.expected) +
                                       ", got " + std::to_string(n) + "."));
    return;
  }
  storage::Entry e = GroupMessage(s.group, s.no_echo, m.data_type, std::move(m.data));
  e.stream_id = id;
  e.stream_sequence_id = n;
  ++s.expected;
  ++s.in_flight;
  const uint64_t serial = s.serial;
  hub_->Append(std::move(e), OnLoop([id, serial, n](ClientConnection& c, const Status& status) {
                 c.StreamApplied(id, serial, n, status);
               }));
}

void ClientConnection::StreamApplied(const std::string& id, uint64_t serial, uint64_t seq,
                                     const Status& status) {
  GroupStream* found = FindStream(id);
  if (!found || found->serial != serial) return;
  GroupStream& s = *found;
  --s.in_flight;
  if (!status.ok()) {
    // A refused message (a revoked permission, a full queue) ends the stream; members hear of
    // it unless the publisher may no longer send to the group.
    StreamError error{AckErrorName(status.code()), status.message()};
    CloseStream(id, error, error, status.code() != StatusCode::kForbidden);
    return;
  }
  s.durable = std::max(s.durable, seq + 1);
  if (s.in_flight == 0 || s.durable - s.acked >= kAckEvery) {
    s.acked = s.durable;
    SendControl(codec_->StreamAck(id, s.acked));
  }
}

void ClientConnection::EndStream(ClientMessage& m) {
  const std::string id = m.stream_id;
  GroupStream* open = OpenStream(id);
  if (!open) return;
  if (m.invalid_reason) {
    StreamError error{"BadRequest", *m.invalid_reason};
    CloseStream(id, error, error, true);
    return;
  }
  GroupStream s = std::move(*open);
  streams_.mut().erase(id);
  streams_.Trim();
  std::optional<StreamError> error;
  if (m.stream_error) error = StreamError{"UserError", m.stream_error_message};
  // streamClosed once the end is applied: after it, nothing of the stream is pending.
  auto closed = OnLoop([id](ClientConnection& c, const Status& status) {
    std::optional<StreamError> failure;
    if (!status.ok()) failure = StreamError{AckErrorName(status.code()), status.message()};
    c.SendControl(c.codec_->StreamClosed(id, failure));
  });
  AppendStreamEnd(s, id, error, m.stream_user_error_code, std::move(closed));
}

void ClientConnection::CloseStream(const std::string& id, const std::optional<StreamError>& error,
                                   const std::optional<StreamError>& group_error, bool tell_group) {
  GroupStream* found = FindStream(id);
  if (!found) return;
  GroupStream s = std::move(*found);
  streams_.mut().erase(id);
  streams_.Trim();
  if (tell_group && s.started) AppendStreamEnd(s, id, group_error, "");
  SendControl(codec_->StreamClosed(id, error));
}

void ClientConnection::AppendStreamEnd(const GroupStream& s, const std::string& id,
                                       const std::optional<StreamError>& error,
                                       std::string user_error_code, replication::AppendCallbacks cb,
                                       bool origin_gone) {
  // Clients drop a group message without a dataType: the end carries empty text.
  storage::Entry e = GroupMessage(s.group, s.no_echo, storage::DataType::kText, "");
  e.stream_id = id;
  e.stream_sequence_id = s.expected;
  e.stream_end = true;
  if (error) {
    e.stream_error_name = error->name;
    e.stream_error_message = error->message;
    e.stream_user_error_code = std::move(user_error_code);
  }
  if (origin_gone) {
    // A client action of a connection the log has removed would be refused: the service
    // ends the stream itself.
    e.origin_connection.clear();
    e.required_permission.reset();
  }
  hub_->Append(std::move(e), std::move(cb));
}

void ClientConnection::CheckStreamIdle(std::chrono::steady_clock::time_point now) {
  std::vector<std::string> idle;
  for (const auto& [id, s] : streams_.get()) {
    if (now - s.last_activity > s.idle_timeout) idle.push_back(id);
  }
  for (const auto& id : idle) {
    StreamError error{"IdleTimeout", "No stream message or keep-alive within idleTimeoutMs."};
    CloseStream(id, error, error, true);
  }
}

void ClientConnection::EndAllStreams(bool origin_gone) {
  StreamError error{"ConnectionClosed", "The publisher's connection ended."};
  if (!streams_.allocated()) return;
  for (const auto& [id, s] : streams_.get()) {
    if (s.started) AppendStreamEnd(s, id, error, "", {}, origin_gone);
  }
  streams_.mut().clear();
  streams_.Trim();
}

void ClientConnection::ResendAfterRecovery() {
  if (streams_.allocated()) {
    for (auto& [id, s] : streams_.mut()) {
      if (!s.started) continue;
      s.acked = s.durable;
      SendControl(codec_->StreamAck(id, s.acked));
    }
  }
  if (auto rec = hub_->view().GetConnection(init_.id)) {
    for (const auto& group : rec->state_subscriptions) {
      SendControl(codec_->GroupState(true, group, hub_->view().GroupState(group)));
    }
  }
}

}  // namespace hubcast::server
