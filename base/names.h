// Validated names: hub, group, user and connection ids as the wire contract defines them
// (PROTOCOL.md 1.3). Each is built only through Parse, so an unchecked string never reaches
// the log or the view. Immutable values, safe to share between threads.
#pragma once

#include "base/status.h"

#include <string>
#include <string_view>

namespace hubcast {

// A hub name: ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$. Hubs are case-insensitive (the SDKs and
// the emulator compare them so), so the canonical form is lower-case.
class HubName {
 public:
  static Result<HubName> Parse(std::string_view text);
  const std::string& str() const { return name_; }
  bool operator==(const HubName&) const = default;

 private:
  explicit HubName(std::string n) : name_(std::move(n)) {}
  std::string name_;
};

// Every name below is 1-1024 bytes (a bound of ours, against abuse) of valid UTF-8 without
// control characters (U+0000-U+001F, U+007F): the store separates key parts with NUL, and user
// ids, connection ids and event names travel in event handler headers (ce-userId, ...), where
// CR and LF cannot be represented (docs/PROTOCOL-DECISIONS.md, "Names").
// Group: also not whitespace only. Case-sensitive.
Status ValidateGroupName(std::string_view group);
Status ValidateUserId(std::string_view user);
Status ValidateConnectionId(std::string_view id);
// A user event's name (`event` and `invoke` messages).
Status ValidateEventName(std::string_view event);

}  // namespace hubcast
