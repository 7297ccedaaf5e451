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

// Group: 1-1024 bytes, not whitespace only. Case-sensitive.
Status ValidateGroupName(std::string_view group);
// User id / connection id: at least one byte, at most 1024 (a bound of ours, against abuse).
Status ValidateUserId(std::string_view user);
Status ValidateConnectionId(std::string_view id);

}  // namespace hubcast
