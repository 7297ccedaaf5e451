#include "server/hub_settings.h"

#include "base/names.h"
#include "base/strings.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace hubcast::server {
namespace {

constexpr std::string_view kEventHandler = "event-handler";
constexpr std::string_view kAnonymousConnect = "anonymous-connect";
constexpr std::string_view kHubKeepalive = "hub-keepalive-seconds";
constexpr int kMinKeepalive = 1;
constexpr int kMaxKeepalive = 120;

// The option value as it appears in an error message: a URL's query (which may carry a
// secret such as an Azure Functions `?code=` key) is elided up to the next attribute.
std::string Shown(std::string_view value) {
  size_t q = value.find('?');
  if (q == std::string_view::npos) return std::string(value);
  size_t end = value.find(';', q);
  std::string out(value.substr(0, q));
  out += "?...";
  if (end != std::string_view::npos) out += value.substr(end);
  return out;
}

Status Invalid(std::string_view option, std::string_view value, std::string_view reason) {
  return Status::InvalidArgument("invalid " + std::string(option) + " '" + Shown(value) +
                                 "': " + std::string(reason));
}

// HUB=REST: the lower-case hub name (or "*") and REST.
Status SplitHub(std::string_view option, std::string_view value, std::string* hub,
                std::string_view* rest) {
  size_t eq = value.find('=');
  if (eq == std::string_view::npos) {
    return Invalid(option, value, "expected HUB=VALUE, where HUB is a hub name or '*'");
  }
  std::string_view name = Trim(value.substr(0, eq));
  *rest = Trim(value.substr(eq + 1));
  if (name == "*") {
    *hub = "*";
    return Status::Ok();
  }
  Result<HubName> parsed = HubName::Parse(name);
  if (!parsed.ok()) return Invalid(option, value, parsed.status().message());
  *hub = parsed->str();
  return Status::Ok();
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// http(s)://AUTHORITY[/path][?query][#fragment] with a non-empty host, no placeholder in the
// scheme or authority, and only {hub} and {event} as placeholders elsewhere.
Status ValidateUrlTemplate(std::string_view value, std::string_view url) {
  if (url.empty()) return Invalid(kEventHandler, value, "the URL template is empty");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return Invalid(kEventHandler, value,
                     "the URL template must not contain whitespace or control characters");
    }
  }
  size_t scheme_len = 0;
  if (StartsWithIgnoreCase(url, "http://")) {
    scheme_len = 7;
  } else if (StartsWithIgnoreCase(url, "https://")) {
    scheme_len = 8;
  } else {
    return Invalid(kEventHandler, value, "the URL template must start with http:// or https://");
  }
  std::string_view after = url.substr(scheme_len);
  std::string_view authority = after.substr(0, after.find_first_of("/?#"));
  if (authority.find_first_of("{}") != std::string_view::npos) {
    return Invalid(kEventHandler, value,
                   "placeholders such as {hub} and {event} are not allowed in the host part");
  }
  std::string_view host_port = authority;
  if (size_t at = host_port.rfind('@'); at != std::string_view::npos) {
    host_port.remove_prefix(at + 1);
  }
  std::string_view host = host_port, port;
  bool has_port = false;
  if (!host_port.empty() && host_port.front() == '[') {  // IPv6 literal
    size_t close = host_port.find(']');
    if (close == std::string_view::npos) {
      return Invalid(kEventHandler, value, "the URL template has an unterminated IPv6 address");
    }
    host = host_port.substr(1, close - 1);
    std::string_view tail = host_port.substr(close + 1);
    if (!tail.empty()) {
      if (tail.front() != ':') {
        return Invalid(kEventHandler, value, "unexpected characters after the IPv6 address");
      }
      has_port = true;
      port = tail.substr(1);
    }
  } else if (size_t colon = host_port.find(':'); colon != std::string_view::npos) {
    host = host_port.substr(0, colon);
    has_port = true;
    port = host_port.substr(colon + 1);
  }
  if (host.empty()) return Invalid(kEventHandler, value, "the URL template has no host");
  if (has_port) {
    int n = 0;
    if (!IsDigits(port) || port.size() > 5 ||
        std::from_chars(port.data(), port.data() + port.size(), n).ec != std::errc() || n < 1 ||
        n > 65535) {
      return Invalid(kEventHandler, value, "the URL template has an invalid port");
    }
  }

  std::string_view rest = after.substr(authority.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '}') {
      return Invalid(kEventHandler, value, "'}' without a matching '{' in the URL template");
    }
    if (rest[i] != '{') continue;
    size_t close = rest.find('}', i);
    if (close == std::string_view::npos) {
      return Invalid(kEventHandler, value, "unterminated '{' in the URL template");
    }
    std::string_view name = rest.substr(i + 1, close - i - 1);
    if (name != "hub" && name != "event") {
      return Invalid(kEventHandler, value,
                     "unknown placeholder {" + std::string(name) +
                         "} in the URL template (allowed: {hub} and {event})");
    }
    i = close;
  }
  return Status::Ok();
}

// user=PATTERN: "*", or event names separated by commas; empty means no user events.
Status ParseUserPattern(std::string_view value, std::string_view pattern,
                        std::vector<std::string>* out) {
  out->clear();
  if (pattern.empty()) return Status::Ok();
  if (pattern == "*") {
    out->push_back("*");
    return Status::Ok();
  }
  for (std::string_view part : Split(pattern, ',')) {
    std::string_view name = Trim(part);
    if (name.empty()) {
      return Invalid(kEventHandler, value, "user= has an empty event name");
    }
    if (name == "*") {
      return Invalid(kEventHandler, value, "user=* must not be combined with event names");
    }
    std::string lower = ToLower(name);
    if (std::find(out->begin(), out->end(), lower) == out->end()) out->push_back(lower);
  }
  return Status::Ok();
}

// system=LIST: a comma-separated subset of connect,connected,disconnected; empty means none.
Status ParseSystemList(std::string_view value, std::string_view list, EventHandlerSettings* h) {
  h->connect = h->connected = h->disconnected = false;
  if (list.empty()) return Status::Ok();
  for (std::string_view part : Split(list, ',')) {
    std::string_view name = Trim(part);
    if (EqualsIgnoreCase(name, "connect")) {
      h->connect = true;
    } else if (EqualsIgnoreCase(name, "connected")) {
      h->connected = true;
    } else if (EqualsIgnoreCase(name, "disconnected")) {
      h->disconnected = true;
    } else {
      return Invalid(kEventHandler, value,
                     "unknown system event '" + std::string(name) +
                         "' (allowed: connect, connected, disconnected)");
    }
  }
  return Status::Ok();
}

// URL_TEMPLATE[;user=PATTERN][;system=LIST]
Status ParseHandler(std::string_view value, std::string_view spec, EventHandlerSettings* h) {
  std::vector<std::string_view> parts = Split(spec, ';');
  std::string_view url = Trim(parts[0]);
  if (Status s = ValidateUrlTemplate(value, url); !s.ok()) return s;
  h->url_template = std::string(url);
  h->user_events = {"*"};
  bool seen_user = false, seen_system = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view attr = Trim(parts[i]);
    size_t eq = attr.find('=');
    if (eq == std::string_view::npos) {
      return Invalid(kEventHandler, value,
                     "expected user=PATTERN or system=LIST after ';', got '" + std::string(attr) +
                         "' (write a ';' in the URL as %3B)");
    }
    std::string_view key = Trim(attr.substr(0, eq));
    std::string_view arg = Trim(attr.substr(eq + 1));
    if (EqualsIgnoreCase(key, "user")) {
      if (seen_user) return Invalid(kEventHandler, value, "user= is given more than once");
      seen_user = true;
      if (Status s = ParseUserPattern(value, arg, &h->user_events); !s.ok()) return s;
    } else if (EqualsIgnoreCase(key, "system")) {
      if (seen_system) return Invalid(kEventHandler, value, "system= is given more than once");
      seen_system = true;
      if (Status s = ParseSystemList(value, arg, h); !s.ok()) return s;
    } else {
      return Invalid(kEventHandler, value,
                     "unknown attribute '" + std::string(key) + "' (allowed: user, system)");
    }
  }
  return Status::Ok();
}

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void AppendPercentEncoded(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : s) {
    if (IsUnreserved(c)) {
      out->push_back(c);
    } else {
      auto b = static_cast<unsigned char>(c);
      out->push_back('%');
      out->push_back(kHex[b >> 4]);
      out->push_back(kHex[b & 0xf]);
    }
  }
}

// The handlers that apply to a hub: its own when it has any, else those of "*".
const std::vector<EventHandlerSettings>* HandlersOf(const HubSettingsEntry* own,
                                                    const HubSettingsEntry* fallback) {
  if (own && !own->handlers.empty()) return &own->handlers;
  if (fallback) return &fallback->handlers;
  return nullptr;
}

}  // namespace

bool EventHandlerSettings::HandlesUserEvent(std::string_view event) const {
  for (const std::string& name : user_events) {
    if (name == "*" || EqualsIgnoreCase(name, event)) return true;
  }
  return false;
}

bool EventHandlerSettings::HandlesSystemEvent(SystemEvent e) const {
  switch (e) {
    case SystemEvent::kConnect:
      return connect;
    case SystemEvent::kConnected:
      return connected;
    case SystemEvent::kDisconnected:
      return disconnected;
  }
  return false;
}

std::string EventHandlerSettings::Resolve(std::string_view hub, std::string_view event) const {
  constexpr std::string_view kHub = "{hub}";
  constexpr std::string_view kEvent = "{event}";
  std::string out;
  out.reserve(url_template.size() + hub.size() + event.size());
  std::string_view t = url_template;
  size_t i = 0;
  while (i < t.size()) {
    if (t.compare(i, kHub.size(), kHub) == 0) {
      AppendPercentEncoded(hub, &out);
      i += kHub.size();
    } else if (t.compare(i, kEvent.size(), kEvent) == 0) {
      AppendPercentEncoded(event, &out);
      i += kEvent.size();
    } else {
      out.push_back(t[i++]);
    }
  }
  return out;
}

Result<HubSettings> HubSettings::Parse(const std::vector<std::string>& event_handlers,
                                       const std::vector<std::string>& anonymous_connect,
                                       const std::vector<std::string>& keepalive) {
  HubSettings settings;
  for (const std::string& value : event_handlers) {
    std::string hub;
    std::string_view spec;
    if (Status s = SplitHub(kEventHandler, value, &hub, &spec); !s.ok()) return s;
    EventHandlerSettings handler;
    if (Status s = ParseHandler(value, spec, &handler); !s.ok()) return s;
    settings.hubs_[hub].handlers.push_back(std::move(handler));
  }
  for (const std::string& value : anonymous_connect) {
    std::string hub;
    std::string_view policy;
    if (Status s = SplitHub(kAnonymousConnect, value, &hub, &policy); !s.ok()) return s;
    bool allow = false;
    if (EqualsIgnoreCase(policy, "allow")) {
      allow = true;
    } else if (!EqualsIgnoreCase(policy, "deny")) {
      return Invalid(kAnonymousConnect, value, "the policy must be allow or deny");
    }
    std::optional<bool>& slot = settings.hubs_[hub].allow_anonymous;
    if (slot) return Invalid(kAnonymousConnect, value, "hub '" + hub + "' is given more than once");
    slot = allow;
  }
  for (const std::string& value : keepalive) {
    std::string hub;
    std::string_view number;
    if (Status s = SplitHub(kHubKeepalive, value, &hub, &number); !s.ok()) return s;
    int n = 0;
    if (!IsDigits(number) ||
        std::from_chars(number.data(), number.data() + number.size(), n).ec != std::errc() ||
        n < kMinKeepalive || n > kMaxKeepalive) {
      return Invalid(kHubKeepalive, value,
                     "the interval must be an integer number of seconds in [" +
                         std::to_string(kMinKeepalive) + ", " + std::to_string(kMaxKeepalive) +
                         "]");
    }
    std::optional<int>& slot = settings.hubs_[hub].keepalive_seconds;
    if (slot) return Invalid(kHubKeepalive, value, "hub '" + hub + "' is given more than once");
    slot = n;
  }
  return settings;
}

const HubSettingsEntry* HubSettings::Find(std::string_view hub) const {
  if (auto it = hubs_.find(ToLower(hub)); it != hubs_.end()) return &it->second;
  if (auto it = hubs_.find("*"); it != hubs_.end()) return &it->second;
  return nullptr;
}

const EventHandlerSettings* HubSettings::ForUserEvent(std::string_view hub,
                                                      std::string_view event) const {
  const std::vector<EventHandlerSettings>* handlers = HandlersOf(Find(hub), Find("*"));
  if (!handlers) return nullptr;
  for (const EventHandlerSettings& h : *handlers) {
    if (h.HandlesUserEvent(event)) return &h;
  }
  return nullptr;
}

const EventHandlerSettings* HubSettings::ForSystemEvent(std::string_view hub, SystemEvent e) const {
  const std::vector<EventHandlerSettings>* handlers = HandlersOf(Find(hub), Find("*"));
  if (!handlers) return nullptr;
  for (const EventHandlerSettings& h : *handlers) {
    if (h.HandlesSystemEvent(e)) return &h;
  }
  return nullptr;
}

bool HubSettings::AllowAnonymous(std::string_view hub) const {
  const HubSettingsEntry* own = Find(hub);
  if (own && own->allow_anonymous) return *own->allow_anonymous;
  const HubSettingsEntry* fallback = Find("*");
  return fallback && fallback->allow_anonymous.value_or(false);
}

std::optional<int> HubSettings::KeepaliveSeconds(std::string_view hub) const {
  const HubSettingsEntry* own = Find(hub);
  if (own && own->keepalive_seconds) return own->keepalive_seconds;
  const HubSettingsEntry* fallback = Find("*");
  return fallback ? fallback->keepalive_seconds : std::nullopt;
}

}  // namespace hubcast::server
