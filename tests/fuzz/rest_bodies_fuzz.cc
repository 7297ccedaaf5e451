// The REST body decoders (rest/rest_bodies.h) on arbitrary bodies. Checks: what decodes is
// what the JSON tree says (non-empty groups, all valid names, filter a string), a decoded
// filter goes on through the filter parser, and the send-body checks agree with Parse and
// IsValidUtf8.
#include "base/json.h"
#include "base/names.h"
#include "rest/rest_bodies.h"
#include "storage/entry.h"
#include "storage/filter.h"

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <string_view>

namespace json = hubcast::json;
using hubcast::storage::DataType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  hubcast::Result<hubcast::rest::MembershipBody> decoded =
      hubcast::rest::DecodeMembershipBody(body);
  hubcast::Result<json::Value> tree = json::Parse(body);
  if (!tree.ok()) FUZZ_CHECK(!decoded.ok());
  if (decoded.ok()) {
    FUZZ_CHECK(tree.ok() && tree->is_object());
    const json::Value* groups = tree->Find("groups");
    FUZZ_CHECK(groups != nullptr && groups->is_array());
    FUZZ_CHECK(!decoded->groups.empty() && decoded->groups.size() == groups->items().size());
    for (size_t i = 0; i < decoded->groups.size(); ++i) {
      FUZZ_CHECK(groups->items()[i].is_string() && groups->items()[i].str() == decoded->groups[i]);
      FUZZ_CHECK(hubcast::ValidateGroupName(decoded->groups[i]).ok());
    }
    const json::Value* filter = tree->Find("filter");
    FUZZ_CHECK(decoded->filter.has_value() == (filter != nullptr && !filter->is_null()));
    if (decoded->filter) {
      FUZZ_CHECK(filter->is_string() && filter->str() == *decoded->filter);
      (void)hubcast::storage::Filter::Parse(*decoded->filter);
    }
  } else {
    FUZZ_CHECK(decoded.status().code() == hubcast::StatusCode::kInvalidArgument);
  }

  FUZZ_CHECK(hubcast::rest::ValidateSendBody(DataType::kJson, body).ok() == tree.ok());
  FUZZ_CHECK(hubcast::rest::ValidateSendBody(DataType::kText, body).ok() ==
             json::IsValidUtf8(body));
  FUZZ_CHECK(hubcast::rest::ValidateSendBody(DataType::kBinary, body).ok());
  return 0;
}
