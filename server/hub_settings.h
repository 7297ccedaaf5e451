// Hub settings (PROTOCOL.md 5.8): per hub, an ordered list of event handlers, the anonymous
// connect policy and the keep-alive interval; a "*" entry is the default for hubs without
// their own. Parsed from the `event-handler`, `anonymous-connect` and `hub-keepalive-seconds`
// options (config file, HUBCAST_* environment, flags) and replaced as a whole on SIGHUP.
//
// Option syntax (each option repeatable):
//   event-handler = HUB=URL_TEMPLATE[;user=PATTERN][;system=LIST]
//       URL_TEMPLATE may contain {hub} and {event} (not in the host part); PATTERN is "*",
//       a comma-separated list or one name (case-insensitive), default "*"; LIST is a
//       comma-separated subset of connect,connected,disconnected,joined,left, default
//       connect,connected,disconnected (group events, azure.webpubsub.gp.joined / gp.left, are
//       sent only to handlers that name them, as Azure sends them only when configured).
//       Handlers of a hub keep the order of the options; the first match handles an event.
//   anonymous-connect = HUB=allow|deny          (default deny)
//   hub-keepalive-seconds = HUB=N               (1-120, default: --keepalive-seconds)
// HUB is a hub name (case-insensitive) or "*".
//
// Thread-safety: a HubSettings value is immutable after parsing; share it through
// shared_ptr<const HubSettings> and swap the pointer on reload.
#pragma once

#include "base/status.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::server {

enum class SystemEvent { kConnect, kConnected, kDisconnected, kGroupJoined, kGroupLeft };

struct EventHandlerSettings {
  std::string url_template;
  std::vector<std::string> user_events;  // lower-case names; {"*"} = all; empty = none
  bool connect = true;
  bool connected = true;
  bool disconnected = true;
  bool joined = false;  // azure.webpubsub.gp.joined
  bool left = false;    // azure.webpubsub.gp.left

  bool HandlesUserEvent(std::string_view event) const;  // case-insensitive
  bool HandlesSystemEvent(SystemEvent e) const;
  // The URL for an event: {hub} and {event} replaced by their percent-encoded values.
  std::string Resolve(std::string_view hub, std::string_view event) const;
};

struct HubSettingsEntry {
  std::vector<EventHandlerSettings> handlers;
  std::optional<bool> allow_anonymous;
  std::optional<int> keepalive_seconds;
};

class HubSettings {
 public:
  // Parses the three options' values (in order). Errors name the offending value.
  static Result<HubSettings> Parse(const std::vector<std::string>& event_handlers,
                                   const std::vector<std::string>& anonymous_connect,
                                   const std::vector<std::string>& keepalive);

  // The first handler of `hub` (else of "*") that handles the user event / system event.
  const EventHandlerSettings* ForUserEvent(std::string_view hub, std::string_view event) const;
  const EventHandlerSettings* ForSystemEvent(std::string_view hub, SystemEvent e) const;
  bool AllowAnonymous(std::string_view hub) const;
  std::optional<int> KeepaliveSeconds(std::string_view hub) const;
  bool empty() const { return hubs_.empty(); }

 private:
  const HubSettingsEntry* Find(std::string_view hub) const;  // hub's own entry, else "*"
  std::map<std::string, HubSettingsEntry> hubs_;             // key: lower-case hub name or "*"
};

}  // namespace hubcast::server
