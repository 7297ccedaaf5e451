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
  const char* name = event == SystemEvent::kConnected ? "connected" : "disconnected";
  rest::UpstreamRequest request =
      NewUpstreamRequest(*handler, hub, name, true, c.id, c.user_id, c.subprotocol, c.state);
  request.event_id = std::move(event_id);
  request.content_type = "application/json; charset=utf-8";
  request.body = std::move(body);
  request.retryable = true;
  upstream_->Call(std::move(request), [name, id = c.id](rest::UpstreamResponse r) {
    // Notifications: the app's answer changes nothing; failures are only logged.
    if (!r.ok()) {
      Logger("upstream")
          .With("id", id)
          .Warn(name, " event failed: ", r.status ? std::to_string(r.status) : r.error);
    }
  });
}

}  // namespace hubcast::server
