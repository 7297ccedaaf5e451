#include "base/clock.h"
#include "base/log.h"
#include "rest/jwt.h"
#include "server/gateway.h"
#include "server/gateway_internal.h"
#include "server/json_codec.h"
#include "storage/replay.h"

#include <thread>

namespace hubcast::server {

namespace {

constexpr const char* kCannotRecover = "The connection cannot be recovered.";

}  // namespace

// Reconnection token (format 2): "<expiry>.<mac>", where expiry is Unix seconds in decimal and
// mac the hex HMAC-SHA256, with the primary key, of "reconnect2:{hub}/{epoch}/{id}/{expiry}".
// Bound to the hub's log epoch (a recreated log refuses it) and valid until its expiry; any
// configured key verifies it. Tokens of format 1 (a bare MAC, no expiry) are refused: they
// never expire, and their sessions (held across the upgrade's restart) start new connections.
namespace {

// What a reconnection token's MAC covers.
std::string TokenMessage(const replication::Hub& hub, const std::string& id,
                         std::string_view expiry) {
  return "reconnect2:" + hub.name().str() + "/" + std::to_string(hub.epoch()) + "/" + id + "/" +
         std::string(expiry);
}

}  // namespace

std::string Gateway::ReconnectionToken(const replication::Hub& hub, const std::string& id) const {
  std::string expiry = std::to_string(SystemClock::Get().NowUnixMs() / 1000 +
                                      options_.reconnection_token_lifetime.count());
  return expiry + "." +
         rest::HmacSha256Hex(options_.access_keys.front(), TokenMessage(hub, id, expiry));
}

bool Gateway::VerifyReconnectionToken(const replication::Hub& hub, const std::string& id,
                                      const std::string& token) const {
  size_t dot = token.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 18) return false;  // fits an int64
  std::string_view expiry_text(token.data(), dot);
  int64_t expiry = 0;
  for (char c : expiry_text) {
    if (c < '0' || c > '9') return false;
    expiry = expiry * 10 + (c - '0');
  }
  if (expiry < SystemClock::Get().NowUnixMs() / 1000) return false;
  std::string message = TokenMessage(hub, id, expiry_text);
  std::string_view mac = std::string_view(token).substr(dot + 1);
  bool ok = false;
  for (const auto& key : options_.access_keys) {
    ok |= rest::ConstantTimeEquals(rest::HmacSha256Hex(key, message), mac);
  }
  return ok;
}

void Gateway::RestoreSessions() {
  Logger log("restore");
  auto steady_now = std::chrono::steady_clock::now();
  // Down from when the previous run was last alive until this one started (not until now:
  // start-up may be slow, and the clients cannot come back before the sessions are restored).
  const int64_t back_ms =
      options_.started_unix_ms > 0 ? options_.started_unix_ms : SystemClock::Get().NowUnixMs();
  int64_t since_ms = options_.last_alive_unix_ms > 0
                         ? std::max<int64_t>(0, back_ms - options_.last_alive_unix_ms)
                         : 0;
  auto until = steady_now + options_.limits.reliable_hold - std::chrono::milliseconds(since_ms);
  size_t held = 0, ended = 0;
  for (const auto& hub : registry_->AllHubs()) {
    storage::Store* store = hub->store();
    for (const auto& rec : hub->view().AllConnections()) {
      if (rec.node_id != registry_->node_id()) continue;
      ClientConnection::Init init;
      init.id = rec.id;
      init.user_id = rec.user_id;
      const SubprotocolCodec& codec = CodecByName(rec.subprotocol);
      init.protocol = codec.protocol();
      init.subprotocol = rec.subprotocol;
      init.state = rec.state;
      auto conn = NewConnection(hub, std::move(init));
      hub->AttachLocal(rec.id, conn->handle());
      std::vector<std::pair<uint64_t, SharedBytes>> unacked;
      std::string why = "The service restarted.";
      bool can_hold = rec.reliable && store && !rec.checkpoints.empty() && until > steady_now;
      if (can_hold) {
        auto replay = storage::ReplayConnection(
            *store, hub->name().str(), rec, rec.checkpoints.front(), hub->replayable_position(),
            rec.acked, [&](uint64_t seq, uint64_t, const storage::Entry& e) {
              EncodedMessage m;
              codec.Encode(e, &m);
              unacked.emplace_back(seq, codec.Shared(m));
            });
        if (!replay.ok()) {
          can_hold = false;
          why = "The connection's messages left the replay log: " + replay.status().message();
        }
      }
      EventLoop* loop = conn->loop();
      if (can_hold) {
        ++held;
        loop->RunAndWait([&] { conn->RestoreHeld(std::move(unacked), rec.acked, until); });
      } else {
        ++ended;
        loop->RunAndWait([&] { conn->EndRestored(why); });
      }
    }
  }
  if (held + ended > 0) {
    log.Info("after the restart: ", held, " reliable sessions held for recovery, ", ended,
             " connections closed");
  }
}

void Gateway::Recover(const std::shared_ptr<HttpExchange>& exchange,
                      const Result<std::shared_ptr<replication::Hub>>& opened,
                      const std::string& protocol, const std::string& accept,
                      const std::string& connection_id, const std::string& token) {
  // Recovery failure is "accept, then close 1008" (PROTOCOL.md 3.6): an HTTP error would
  // leave the official client retrying for 30 s. That is right while the answer may change:
  // the hub's log is out of reach (an election after a lost server) or this node is still
  // catching up; the session then is not lost, only not reachable yet.
  std::shared_ptr<replication::Hub> hub = opened.ok() ? *opened : nullptr;
  bool verified = hub && CodecByName(protocol).reliable() &&
                  VerifyReconnectionToken(*hub, connection_id, token);
  Status ready = !opened.ok() && opened.status().code() == StatusCode::kUnavailable
                     ? opened.status()
                 : verified ? hub->Barrier()
                            : Status::Ok();
  if (!ready.ok()) {
    RefuseHandshake(exchange, 503, "ServiceUnavailable", ready.message(), {{"Retry-After", "1"}});
    return;
  }
  // The frame is built on this thread; the loops only write it (or attach the connection).
  std::string reject_frame = CodecByName(protocol).Disconnected(kCannotRecover);
  reject_frame += WsCloseFrame(1008, kCannotRecover);
  std::optional<storage::ConnectionRecord> rec;
  if (verified) rec = hub->view().GetConnection(connection_id);
  if (rec && (!rec->reliable ||
              CodecByName(rec->subprotocol).protocol() != CodecByName(protocol).protocol())) {
    rec.reset();
  }
  exchange->Upgrade(SwitchingProtocols(accept, protocol), [this, hub, rec, reject_frame](
                                                              std::unique_ptr<Transport> transport,
                                                              std::string early_bytes) {
    if (!transport) return;
    if (!rec) {
      WriteAndClose(std::move(transport), reject_frame);
      return;
    }
    if (rec->node_id == registry_->node_id() && rec->local_handle != 0) {
      uint64_t handle = rec->local_handle;
      auto box = std::make_shared<std::unique_ptr<Transport>>(std::move(transport));
      LoopOf(handle)->Post([this, handle, box, reject_frame, early = std::move(early_bytes)] {
        ClientConnection* conn = Lookup(handle);
        if (!conn || !conn->Recover(*box, early)) {
          WriteAndClose(std::move(*box), reject_frame);
        }
      });
      return;
    }
    MoveHere(hub, *rec, Moving{0, std::move(transport), std::move(early_bytes), reject_frame});
  });
}

void Gateway::MoveHere(const std::shared_ptr<replication::Hub>& hub,
                       const storage::ConnectionRecord& rec, Moving moving) {
  // The session is held by another node, or by none (its node died): it moves here through
  // the log, and every node (its old one included) learns so when the move is applied.
  ClientConnection::Init init;
  init.id = rec.id;
  init.user_id = rec.user_id;
  init.protocol = CodecByName(rec.subprotocol).protocol();
  init.subprotocol = rec.subprotocol;
  init.state = rec.state;
  auto conn = NewConnection(hub, std::move(init));
  moving.handle = conn->handle();
  {
    std::lock_guard lock(opening_mu_);
    moving_[rec.id] = std::move(moving);
  }
  storage::Entry e;
  e.kind = storage::EntryKind::kConnectionMoved;
  e.timestamp_ms = SystemClock::Get().NowUnixMs();
  e.target = rec.id;
  e.node_id = registry_->node_id();
  replication::AppendCallbacks cb;
  cb.executor = conn->loop();
  cb.durable = [this, id = rec.id](Result<uint64_t> r) {
    if (r.ok()) return;
    if (auto moving = TakeMoving(id)) {
      Unregister(moving->handle);
      WriteAndClose(std::move(moving->transport), moving->reject_frame);
    }
  };
  hub->Append(std::move(e), std::move(cb));
}

std::optional<Gateway::Moving> Gateway::TakeMoving(const std::string& connection_id) {
  std::lock_guard lock(opening_mu_);
  auto it = moving_.find(connection_id);
  if (it == moving_.end()) return std::nullopt;
  Moving m = std::move(it->second);
  moving_.erase(it);
  return m;
}

void Gateway::ResumeMoved(std::shared_ptr<replication::Hub> hub, uint64_t position,
                          storage::ConnectionRecord rec, Moving moving) {
  // Off the applier and the loops: the replay reads the store, once every entry before the
  // move is there.
  auto m = std::make_shared<Moving>(std::move(moving));  // tasks are copyable
  recovery_->Execute([this, hub = std::move(hub), position, rec = std::move(rec), m] {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (hub->replayable_position() + 1 < position &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const SubprotocolCodec& codec = CodecByName(rec.subprotocol);
    std::vector<std::pair<uint64_t, SharedBytes>> replayed;
    Status failed;
    if (!hub->store() || rec.checkpoints.empty()) {
      failed = Status::NotFound("no replay log");
    } else {
      // Up to the entry before the move: the move itself numbers nothing, and a replicated
      // log's entries reach the store with their apply batch, which may still be open.
      auto replay = storage::ReplayConnection(*hub->store(), hub->name().str(), rec,
                                              rec.checkpoints.front(), position - 1, rec.acked,
                                              [&](uint64_t seq, uint64_t, const storage::Entry& e) {
                                                EncodedMessage m;
                                                codec.Encode(e, &m);
                                                replayed.emplace_back(seq, codec.Shared(m));
                                              });
      if (!replay.ok()) {
        failed = replay.status();
      } else if (replay->seq != rec.seq) {
        failed = Status::Internal("replay numbered " + std::to_string(replay->seq) +
                                  " messages, the view " + std::to_string(rec.seq));
      }
    }
    uint64_t handle = m->handle;
    LoopOf(handle)->Post(
        [this, handle, failed, replayed = std::move(replayed), acked = rec.acked, m]() mutable {
          ClientConnection* conn = Lookup(handle);
          if (!conn) return;  // the socket closes with `m`
          if (!failed.ok()) {
            Logger("recover")
                .With("hub", conn->hub()->name().str())
                .With("id", conn->id())
                .Warn("cannot resume the moved session: ", failed.message());
            WriteAndClose(std::move(m->transport), m->reject_frame);
            conn->EndRestored("The connection's messages could not be replayed.");
            return;
          }
          conn->StartMoved(std::move(m->transport), std::move(m->early_bytes), std::move(replayed),
                           acked);
        });
  });
}

}  // namespace hubcast::server
