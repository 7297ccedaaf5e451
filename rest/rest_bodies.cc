#include "rest/rest_bodies.h"

#include "base/json.h"
#include "base/names.h"

#include <utility>

namespace hubcast::rest {
namespace {

enum Field : size_t { kGroups, kFilter, kFieldCount };
constexpr json::MemberSpec kFields[kFieldCount] = {
    {"groups", json::Capture::kStrings},
    {"filter"},
};

}  // namespace

Result<MembershipBody> DecodeMembershipBody(std::string_view body) {
  Result<json::Extracted> doc = json::ExtractMembers(body, kFields);
  if (!doc.ok()) {
    return Status::InvalidArgument("The body is not valid JSON: " + doc.status().message());
  }
  if (doc->root != json::Value::Kind::kObject) {
    return Status::InvalidArgument("The body must be a JSON object.");
  }

  json::ExtractedMember& groups = doc->members[kGroups];
  if (!groups.present || !groups.value.is_array() ||
      (groups.strings.empty() && groups.only_strings)) {
    return Status::InvalidArgument("'groups' must be a non-empty array of group names.");
  }
  // In array order: an invalid name before the first non-string item is the error reported.
  for (const std::string& g : groups.strings) {
    if (Status s = ValidateGroupName(g); !s.ok()) return s;
  }
  if (!groups.only_strings) return Status::InvalidArgument("'groups' must contain only strings.");

  MembershipBody out;
  out.groups = std::move(groups.strings);
  json::ExtractedMember& filter = doc->members[kFilter];
  if (filter.present && !filter.value.is_null()) {
    if (!filter.value.is_string()) {
      return Status::InvalidArgument("'filter' must be a string or null.");
    }
    out.filter = filter.value.str();
  }
  return out;
}

Status ValidateSendBody(storage::DataType type, std::string_view body) {
  if (type == storage::DataType::kJson) {
    if (Status s = json::Validate(body); !s.ok()) {
      return Status::InvalidArgument("The body is not valid JSON: " + s.message());
    }
  } else if (type == storage::DataType::kText && !json::IsValidUtf8(body)) {
    return Status::InvalidArgument("A text/plain body must be valid UTF-8.");
  }
  return Status::Ok();
}

}  // namespace hubcast::rest
