#include "base/names.h"

#include "base/json.h"

#include <cctype>

namespace hubcast {
namespace {
constexpr size_t kMaxNameBytes = 1024;

bool IsHubChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '`' || c == ',' ||
         c == '.' || c == '[' || c == ']';
}

// The common rule of every name: length, UTF-8, no control characters. `what` names the field.
Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return Status::InvalidArgument("Invalid " + std::string(what) +
                                   ": it must have 1-1024 characters.");
  }
  for (char c : name) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) {
      return Status::InvalidArgument("Invalid " + std::string(what) +
                                     ": it must not contain control characters (byte " +
                                     std::to_string(b) + ").");
    }
  }
  if (!json::IsValidUtf8(name)) {
    return Status::InvalidArgument("Invalid " + std::string(what) + ": it is not valid UTF-8.");
  }
  return Status::Ok();
}

}  // namespace

Result<HubName> HubName::Parse(std::string_view text) {
  if (text.empty() || text.size() > 128 || !std::isalpha(static_cast<unsigned char>(text[0]))) {
    return Status::InvalidArgument("Invalid hub name '" + std::string(text.substr(0, 140)) +
                                   "': it must start with a letter and have 1-128 characters.");
  }
  std::string lower;
  lower.reserve(text.size());
  for (char c : text) {
    if (!IsHubChar(c)) {
      return Status::InvalidArgument("Invalid hub name '" + std::string(text) +
                                     "': allowed characters are letters, digits and _`,.[]");
    }
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return HubName(std::move(lower));
}

Status ValidateGroupName(std::string_view group) {
  if (Status s = ValidateName("group name", group); !s.ok()) return s;
  for (char c : group) {
    if (c != ' ') return Status::Ok();  // the only whitespace a valid name may hold
  }
  return Status::InvalidArgument("Invalid group name: it must not be only whitespace.");
}

Status ValidateUserId(std::string_view user) { return ValidateName("user id", user); }

Status ValidateConnectionId(std::string_view id) { return ValidateName("connection id", id); }

Status ValidateEventName(std::string_view event) { return ValidateName("event name", event); }

}  // namespace hubcast
