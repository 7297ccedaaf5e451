// Decoding of the REST API's request bodies (PROTOCOL.md section 4): the JSON body of
// AddConnectionsToGroups / RemoveConnectionsFromGroups, and the checks a send body gets before
// it is stored. Bodies are untrusted and up to 1 MiB, so nothing here builds a JSON tree: one
// validating pass keeps only the fields used, and memory stays a small multiple of the body.
// Errors are kInvalidArgument with the message the API returns (400).
//
// Pure functions, thread-safe.
#pragma once

#include "base/status.h"
#include "storage/entry.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::rest {

// `{"groups":["g1",...],"filter":"<odata>"}`: groups a non-empty array of valid group names;
// filter absent, null or a string (not parsed here: the caller parses a non-blank one).
struct MembershipBody {
  std::vector<std::string> groups;
  std::optional<std::string> filter;
};
Result<MembershipBody> DecodeMembershipBody(std::string_view body);

// A send body of the given type: JSON for kJson, UTF-8 for kText, anything for binary.
Status ValidateSendBody(storage::DataType type, std::string_view body);

}  // namespace hubcast::rest
