#include "base/names.h"

#include <cctype>

namespace hubcast {
namespace {
constexpr size_t kMaxNameBytes = 1024;

bool IsHubChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '`' || c == ',' ||
         c == '.' || c == '[' || c == ']';
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
  if (group.empty() || group.size() > kMaxNameBytes) {
    return Status::InvalidArgument("Invalid group name: it must have 1-1024 characters.");
  }
  for (char c : group) {
    if (!std::isspace(static_cast<unsigned char>(c))) return Status::Ok();
  }
  return Status::InvalidArgument("Invalid group name: it must not be only whitespace.");
}

Status ValidateUserId(std::string_view user) {
  if (user.empty() || user.size() > kMaxNameBytes) {
    return Status::InvalidArgument("Invalid user id: it must have 1-1024 characters.");
  }
  return Status::Ok();
}

Status ValidateConnectionId(std::string_view id) {
  if (id.empty() || id.size() > kMaxNameBytes) {
    return Status::InvalidArgument("Invalid connection id: it must have 1-1024 characters.");
  }
  return Status::Ok();
}

}  // namespace hubcast
