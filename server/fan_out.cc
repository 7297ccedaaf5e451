#include "base/json.h"
#include "server/gateway.h"
#include "server/json_codec.h"

namespace hubcast::server {

void Gateway::Deliver(const HubName& hub, uint64_t position, const storage::Entry& e,
                      const storage::ApplyResult& r) {
  auto origin = e.origin_connection.empty() ? nullptr : Find(e.origin_connection);
  switch (e.kind) {
    case storage::EntryKind::kConnectionOpen: {
      if (!origin) return;
      if (!r.status.ok()) {
        origin->loop()->Post([origin] {
          origin->CloseByService(1011, "The connection could not be registered.", true);
        });
        Forget(origin->id());
        return;
      }
      if (origin->protocol() != ClientProtocol::kRaw) {
        std::optional<std::string> token;
        if (origin->protocol() == ClientProtocol::kJsonReliable) {
          token = ReconnectionToken(*origin->hub(), origin->id());
        }
        std::string text = EncodeConnected(e.user_id, origin->id(), token);
        origin->loop()->Post(
            [origin, text = std::move(text)]() mutable { origin->SendControl(std::move(text)); });
      }
      // After the `connected` message (PROTOCOL.md 5.4); the position is a stable event id.
      if (r.opened) {
        FireSystemEvent(SystemEvent::kConnected, hub.str(), *r.opened, std::to_string(position),
                        "{}");
      }
      return;
    }
    case storage::EntryKind::kConnectionClose:
    case storage::EntryKind::kCloseConnections: {
      // `disconnected` fires once per logical connection: here, when its close is applied,
      // on the node that held it.
      for (const auto& rec : r.closed_records) {
        if (rec.node_id != registry_->node_id()) continue;
        std::string body = "{\"reason\":";
        json::AppendQuoted(body, e.reason);
        body += '}';
        FireSystemEvent(SystemEvent::kDisconnected, hub.str(), rec, std::to_string(position),
                        std::move(body));
      }
      std::vector<std::shared_ptr<ClientConnection>> closed;
      {
        std::lock_guard lock(conns_mu_);
        for (const auto& id : r.closed) {
          auto it = conns_.find(id);
          if (it == conns_.end()) continue;
          closed.push_back(it->second);
          conns_.erase(it);
        }
        if (e.kind == storage::EntryKind::kConnectionClose) conns_.erase(e.origin_connection);
      }
      for (auto& c : closed) {
        if (e.kind == storage::EntryKind::kConnectionClose) {
          c->loop()->Post([c] { c->MarkLogClosed(); });
          continue;
        }
        // A reliable client must not try to recover a connection the app closed.
        uint16_t code = c->protocol() == ClientProtocol::kJsonReliable ? 1008 : 1000;
        c->loop()->Post([c, code, reason = e.reason] { c->CloseByService(code, reason, true); });
      }
      return;
    }
    case storage::EntryKind::kSend: {
      if (!r.recipients.empty()) {
        auto m = std::make_shared<EncodedMessage>();
        if (e.message_ttl_seconds > 0) {
          m->expire_unix_ms = e.timestamp_ms + int64_t{e.message_ttl_seconds} * 1000;
        }
        using Target = std::pair<std::shared_ptr<ClientConnection>, uint64_t>;
        std::vector<std::vector<Target>> per_loop(loops_.size());
        {
          std::lock_guard lock(conns_mu_);
          for (size_t i = 0; i < r.recipients.size(); ++i) {
            auto it = conns_.find(r.recipients[i]->id);
            if (it == conns_.end()) continue;
            auto& c = it->second;
            switch (c->protocol()) {
              case ClientProtocol::kRaw:
                if (!m->raw_frame) {
                  bool binary = e.data_type == storage::DataType::kBinary ||
                                e.data_type == storage::DataType::kProtobuf;
                  m->raw_frame = std::make_shared<const std::string>(
                      WsFrame(binary ? WsOpcode::kBinary : WsOpcode::kText, e.data));
                }
                break;
              case ClientProtocol::kJson:
              case ClientProtocol::kJsonReliable:
                if (!m->reliable_body) {
                  m->reliable_body = std::make_shared<const std::string>(EncodeMessageBody(e));
                }
                if (c->protocol() == ClientProtocol::kJson && !m->json_frame) {
                  std::string text = "{" + *m->reliable_body;
                  m->json_frame =
                      std::make_shared<const std::string>(WsFrame(WsOpcode::kText, text));
                }
                break;
            }
            per_loop[c->loop()->index()].emplace_back(c, r.sequence_ids[i]);
          }
        }
        for (size_t i = 0; i < per_loop.size(); ++i) {
          if (per_loop[i].empty()) continue;
          loops_[i]->Post([m, list = std::move(per_loop[i])] {
            for (const auto& [c, seq] : list) c->DeliverMessage(*m, seq);
          });
        }
      }
      break;
    }
    default:
      break;
  }
  if (origin && e.ack_id) {
    std::string ack = EncodeAck(*e.ack_id, r.status);
    origin->loop()->Post(
        [origin, ack = std::move(ack)]() mutable { origin->SendControl(std::move(ack)); });
  }
}

}  // namespace hubcast::server
