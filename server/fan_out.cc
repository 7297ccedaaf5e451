// The DeliverySink: applied entries to this node's sockets. Runs on the appliers.
#include "base/json.h"
#include "server/gateway.h"
#include "server/json_codec.h"
#include "server/server_metrics.h"

#include <array>

namespace hubcast::server {
namespace {

// What one loop receives for one message: the shared encodings and (handle, sequenceId) per
// recipient.
struct LoopBatch {
  std::vector<std::pair<uint64_t, uint64_t>> targets;
};

}  // namespace

void Gateway::Deliver(replication::Hub& hub, uint64_t position, const storage::Entry& e,
                      const storage::ApplyResult& r) {
  trace_.Record(hub.name().str(), position, e, r);
  DeliverEntry(hub, position, e, r);
  if (!r.group_states.empty()) DeliverGroupState(r);
  if (!r.membership.empty()) FireGroupEvents(hub, position, r);
}

void Gateway::DeliverGroupState(const storage::ApplyResult& r) {
  for (const auto& d : r.group_states) {
    // Encoded once per subprotocol, shared by every recipient of that subprotocol.
    auto frames = std::make_shared<std::array<SharedBytes, kProtocolCount>>();
    std::vector<std::vector<uint64_t>> per_loop(loops_.size());
    for (const storage::ConnectionRecord* rec : d.recipients) {
      uint64_t handle = LocalHandle(*rec);
      if (handle == 0) continue;  // held by another node
      ClientProtocol p = HandleProtocol(handle);
      auto& frame = (*frames)[static_cast<size_t>(p)];
      if (!frame) frame = SharedBytes(CodecFor(p).GroupState(d.snapshot, d.group, d.items));
      per_loop[HandleLoop(handle)].push_back(handle);
    }
    size_t bytes = 0;
    for (const SharedBytes& s : *frames) bytes += s ? s.size() : 0;
    for (size_t i = 0; i < per_loop.size(); ++i) {
      if (per_loop[i].empty()) continue;
      loops_[i]->loop->PostBounded(
          [this, frames, handles = std::move(per_loop[i])] {
            for (uint64_t handle : handles) {
              if (ClientConnection* c = Lookup(handle)) {
                c->SendShared((*frames)[static_cast<size_t>(HandleProtocol(handle))]);
              }
            }
          },
          bytes);
    }
  }
}

void Gateway::DeliverEntry(replication::Hub& hub, uint64_t position, const storage::Entry& e,
                           const storage::ApplyResult& r) {
  switch (e.kind) {
    case storage::EntryKind::kConnectionOpen: {
      uint64_t handle = TakeOpening(e.origin_connection);
      if (handle == 0) return;  // opened on another node
      if (!r.status.ok()) {
        LoopOf(handle)->PostBounded([this, handle] {
          if (ClientConnection* c = Lookup(handle)) {
            c->CloseByService(1011, "The connection could not be registered.", true);
          }
          Unregister(handle);
        });
        return;
      }
      hub.AttachLocal(e.origin_connection, handle);
      const SubprotocolCodec& codec = CodecFor(HandleProtocol(handle));
      std::optional<std::string> token;
      if (codec.reliable()) token = ReconnectionToken(hub, e.origin_connection);
      std::string connected = codec.Connected(e.user_id, e.origin_connection, token);
      if (!connected.empty()) {
        LoopOf(handle)->PostBounded([this, handle, frame = std::move(connected)]() mutable {
          if (ClientConnection* c = Lookup(handle)) c->SendControl(std::move(frame));
        });
      }
      // After the `connected` message (PROTOCOL.md 5.4); the position is a stable event id.
      if (r.opened) {
        FireSystemEvent(SystemEvent::kConnected, hub.name().str(), *r.opened,
                        std::to_string(position), "{}");
      }
      return;
    }
    case storage::EntryKind::kConnectionClose:
    case storage::EntryKind::kCloseConnections:
    case storage::EntryKind::kNodeDown: {
      // Deliveries start during LoadAll's catch-up, before the gateway has the registry.
      const std::string& me = hub.node_id();
      for (const auto& rec : r.closed_records) {
        // `disconnected` fires once per logical connection, from one node: the one that held
        // it; for a dead node's connections and for held sessions (no node), the node that
        // appended the entry.
        const std::string& firer = e.kind == storage::EntryKind::kNodeDown || rec.node_id.empty()
                                       ? e.node_id
                                       : rec.node_id.str();
        if (firer == me) {
          std::string body = "{\"reason\":";
          json::AppendQuoted(body, e.kind == storage::EntryKind::kNodeDown
                                       ? "The node holding the connection stopped."
                                       : e.reason);
          body += '}';
          FireSystemEvent(SystemEvent::kDisconnected, hub.name().str(), rec,
                          std::to_string(position), std::move(body));
        }
        uint64_t handle = rec.local_handle;  // a copy made under the view's lock
        if (handle == 0) continue;
        bool by_client = e.kind == storage::EntryKind::kConnectionClose;
        // A reliable client must not try to recover a connection the app closed.
        uint16_t code = CodecFor(HandleProtocol(handle)).reliable() ? 1008 : 1000;
        std::string reason = e.kind == storage::EntryKind::kNodeDown
                                 ? "This node was declared dead; reconnect."
                                 : e.reason;
        LoopOf(handle)->PostBounded([this, handle, by_client, code, reason] {
          if (ClientConnection* c = Lookup(handle)) {
            if (by_client) {
              c->MarkLogClosed();
            } else {
              c->CloseByService(code, reason, true);
            }
          }
          Unregister(handle);
        });
      }
      ReleaseSockets(r);
      return;
    }
    case storage::EntryKind::kConnectionMoved: {
      ReleaseSockets(r);
      if (!r.moved || e.node_id != hub.node_id()) return;
      auto moving = TakeMoving(e.target);
      if (!moving) return;  // moved here by an earlier attempt, or by another process
      hub.AttachLocal(e.target, moving->handle);
      // The record as of the move: the replay counts the client's messages up to here.
      ResumeMoved(hub.shared_from_this(), position, *r.moved, std::move(*moving));
      return;
    }
    case storage::EntryKind::kSend: {
      if (r.status.code() == StatusCode::kForbidden) metric::CountDropped("forbidden");
      if (r.recipients.empty()) return;
      auto m = std::make_shared<EncodedMessage>();
      if (e.message_ttl_seconds > 0) {
        m->expire_unix_ms = e.timestamp_ms + int64_t{e.message_ttl_seconds} * 1000;
      }
      std::vector<LoopBatch> per_loop(loops_.size());
      for (size_t i = 0; i < r.recipients.size(); ++i) {
        uint64_t handle = LocalHandle(*r.recipients[i]);
        if (handle == 0) continue;  // held by another node
        // Once per subprotocol, shared by all its recipients.
        const SubprotocolCodec& codec = CodecFor(HandleProtocol(handle));
        if (!codec.Shared(*m)) codec.Encode(e, m.get());
        auto& targets = per_loop[HandleLoop(handle)].targets;
        if (targets.empty()) targets.reserve(r.recipients.size() / loops_.size() + 1);
        targets.emplace_back(handle, r.sequence_ids[i]);
      }
      size_t bytes = 0;  // what the loops' inboxes hold for it, whatever the recipients
      for (const SharedBytes& s : m->shared) bytes += s ? s.size() : 0;
      for (size_t i = 0; i < per_loop.size(); ++i) {
        if (per_loop[i].targets.empty()) continue;
        loops_[i]->loop->PostBounded(
            [this, m, batch = std::move(per_loop[i]), name = hub.name().str()] {
              int64_t delivered = 0;
              for (const auto& [handle, seq] : batch.targets) {
                ClientConnection* c = Lookup(handle);
                if (c) c->DeliverMessage(*m, seq);
                delivered += c ? 1 : 0;
              }
              metric::CountDelivered(name, delivered);
              metric::CountDropped("closed",
                                   static_cast<int64_t>(batch.targets.size()) - delivered);
            },
            bytes);
      }
      return;
    }
    default:
      return;
  }
}

void Gateway::ReleaseSockets(const storage::ApplyResult& r) {
  for (const auto& released : r.released) {
    uint64_t handle = released.local_handle;
    if (handle == 0) continue;
    LoopOf(handle)->PostBounded([this, handle] {
      if (ClientConnection* c = Lookup(handle)) c->Release();
      Unregister(handle);
    });
  }
}

}  // namespace hubcast::server
