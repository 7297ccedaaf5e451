#include "base/log.h"
#include "rest/jwt.h"
#include "server/gateway.h"
#include "server/gateway_internal.h"
#include "server/json_codec.h"
#include "storage/replay.h"

namespace hubcast::server {

namespace {

constexpr const char* kCannotRecover = "The connection cannot be recovered.";

}  // namespace

std::string Gateway::ReconnectionToken(const replication::Hub& hub, const std::string& id) const {
  return rest::HmacSha256Hex(
      options_.access_keys.front(),
      "reconnect:" + hub.name().str() + "/" + std::to_string(hub.epoch()) + "/" + id);
}

bool Gateway::VerifyReconnectionToken(const replication::Hub& hub, const std::string& id,
                                      const std::string& token) const {
  std::string message =
      "reconnect:" + hub.name().str() + "/" + std::to_string(hub.epoch()) + "/" + id;
  for (const auto& key : options_.access_keys) {
    std::string expected = rest::HmacSha256Hex(key, message);
    if (expected.size() != token.size()) continue;
    unsigned char diff = 0;
    for (size_t i = 0; i < token.size(); ++i) diff |= expected[i] ^ token[i];
    if (diff == 0) return true;
  }
  return false;
}

void Gateway::RestoreSessions() {
  Logger log("restore");
  auto steady_now = std::chrono::steady_clock::now();
  int64_t now_ms = SystemClock::Get().NowUnixMs();
  int64_t since_ms = options_.last_alive_unix_ms > 0
                         ? std::max<int64_t>(0, now_ms - options_.last_alive_unix_ms)
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
                      const std::shared_ptr<replication::Hub>& hub, const std::string& protocol,
                      const std::string& accept, const std::string& connection_id,
                      const std::string& token) {
  // Recovery failure is "accept, then close 1008" (PROTOCOL.md 3.6): an HTTP error would
  // leave the official client retrying for 30 s.
  // The frame is built on this thread; the loops only write it (or attach the connection).
  std::string reject_frame = CodecByName(protocol).Disconnected(kCannotRecover);
  reject_frame += WsCloseFrame(1008, kCannotRecover);
  uint64_t handle = 0;
  if (hub && CodecByName(protocol).reliable() &&
      VerifyReconnectionToken(*hub, connection_id, token)) {
    if (auto rec = hub->view().GetConnection(connection_id)) handle = rec->local_handle;
  }
  exchange->Upgrade(
      SwitchingProtocols(accept, protocol),
      [this, handle, reject_frame](std::unique_ptr<Transport> transport, std::string early_bytes) {
        if (!transport) return;
        if (handle == 0) {
          WriteAndClose(std::move(transport), reject_frame);
          return;
        }
        auto box = std::make_shared<std::unique_ptr<Transport>>(std::move(transport));
        LoopOf(handle)->Post([this, handle, box, reject_frame, early = std::move(early_bytes)] {
          ClientConnection* conn = Lookup(handle);
          if (!conn || !conn->Recover(*box, early)) WriteAndClose(std::move(*box), reject_frame);
        });
      });
}

}  // namespace hubcast::server
