#include "base/json.h"
#include "base/log.h"
#include "server/gateway.h"

namespace hubcast::server {

rest::UpstreamRequest NewUpstreamRequest(const EventHandlerSettings& handler,
                                         const std::string& hub, const std::string& event,
                                         bool system, const std::string& connection_id,
                                         const std::optional<std::string>& user_id,
                                         const std::string& subprotocol,
                                         const std::optional<std::string>& state) {
  rest::UpstreamRequest r;
  r.url = handler.Resolve(hub, event);
  r.validation_url = handler.Resolve(hub, "validate");
  r.ce_type = (system ? "azure.webpubsub.sys." : "azure.webpubsub.user.") + event;
  r.event_name = event;
  r.hub = hub;
  r.connection_id = connection_id;
  r.user_id = user_id;
  r.subprotocol = subprotocol;
  r.connection_state = state;
  return r;
}

void Gateway::FireSystemEvent(SystemEvent event, const std::string& hub,
                              const storage::ConnectionRecord& c, std::string event_id,
                              std::string body) {
  // Held for as long as `handler` is used: a SIGHUP may replace the settings meanwhile.
  std::shared_ptr<const HubSettings> settings = this->settings();
  const EventHandlerSettings* handler = settings->ForSystemEvent(hub, event);
  if (!handler) return;
  const char* name = "connected";
  bool group_event = false;
  switch (event) {
    case SystemEvent::kConnect:  // blocking: handshake.cc
    case SystemEvent::kConnected:
      break;
    case SystemEvent::kDisconnected:
      name = "disconnected";
      break;
    case SystemEvent::kGroupJoined:
      name = "joined";
      group_event = true;
      break;
    case SystemEvent::kGroupLeft:
      name = "left";
      group_event = true;
      break;
  }
  rest::UpstreamRequest request =
      NewUpstreamRequest(*handler, hub, name, true, c.id, c.user_id, c.subprotocol, c.state);
  // Group events have their own CloudEvents type (azure.webpubsub.gp.*, express 1.1).
  if (group_event) request.ce_type = std::string("azure.webpubsub.gp.") + name;
  request.event_id = std::move(event_id);
  request.content_type = "application/json; charset=utf-8";
  request.body = std::move(body);
  request.retryable = true;
  upstream_->Call(std::move(request), [name, hub, id = c.id](rest::UpstreamResponse r) {
    // Notifications: the app's answer changes nothing; failures are only logged.
    if (!r.ok()) {
      Logger("upstream")
          .With("hub", hub)
          .With("id", id)
          .Warn(name, " event failed: ", r.status ? std::to_string(r.status) : r.error);
    }
  });
}

void Gateway::FireGroupEvents(replication::Hub& hub, uint64_t position,
                              const storage::ApplyResult& r) {
  const std::string& name = hub.name().str();
  std::shared_ptr<const HubSettings> settings = this->settings();
  const bool joined = settings->ForSystemEvent(name, SystemEvent::kGroupJoined) != nullptr;
  const bool left = settings->ForSystemEvent(name, SystemEvent::kGroupLeft) != nullptr;
  if (!joined && !left) return;
  for (size_t i = 0; i < r.membership.size(); ++i) {
    const auto& m = r.membership[i];
    if (m.joined ? !joined : !left) continue;
    // The connection as it is now, or as it was when this entry closed it.
    const storage::ConnectionRecord* rec = nullptr;
    for (const auto* t : r.touched) {
      if (t->id == m.connection_id) rec = t;
    }
    for (const auto& c : r.closed_records) {
      if (!rec && c.id == m.connection_id) rec = &c;
    }
    // Once per membership change, from the node that holds the connection.
    if (!rec || rec->node_id != registry_->node_id()) continue;
    std::string body = "{\"group\":";
    json::AppendQuoted(body, m.group);
    body += '}';
    FireSystemEvent(m.joined ? SystemEvent::kGroupJoined : SystemEvent::kGroupLeft, name, *rec,
                    std::to_string(position) + "." + std::to_string(i), std::move(body));
  }
}

}  // namespace hubcast::server
