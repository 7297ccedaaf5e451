// base/json.h's reader on arbitrary text. Checks that Parse, Validate, Read with a
// CompactWriter and ExtractMembers agree (same verdict, same error, same serialization), that
// serialization is a fixpoint, and that AppendQuoted always yields a JSON string that parses
// back to its input when the input is UTF-8.
#include "base/json.h"

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <string>
#include <string_view>

namespace json = hubcast::json;

namespace {

constexpr json::MemberSpec kSpecs[] = {
    {"type"},
    {"data", json::Capture::kCompactJson},
    {"groups", json::Capture::kStrings},
    {""},
};

void CheckExtraction(const json::Value& root, const json::Extracted& extracted) {
  FUZZ_CHECK(extracted.root == root.kind());
  for (size_t i = 0; i < std::size(kSpecs); ++i) {
    const json::ExtractedMember& m = extracted.members[i];
    const json::Value* found = root.Find(kSpecs[i].key);
    FUZZ_CHECK(m.present == (found != nullptr));
    if (!found) continue;
    FUZZ_CHECK(m.value.kind() == found->kind());
    if (!found->is_array() && !found->is_object()) {
      FUZZ_CHECK(json::Serialize(m.value) == json::Serialize(*found));
    }
    if (kSpecs[i].capture == json::Capture::kCompactJson) {
      FUZZ_CHECK(m.json == json::Serialize(*found));
    }
    if (kSpecs[i].capture == json::Capture::kStrings && found->is_array()) {
      size_t n = 0;
      while (n < found->items().size() && found->items()[n].is_string()) ++n;
      FUZZ_CHECK(m.strings.size() == n);
      FUZZ_CHECK(m.only_strings == (n == found->items().size()));
      for (size_t k = 0; k < n; ++k) FUZZ_CHECK(m.strings[k] == found->items()[k].str());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  hubcast::Result<json::Value> parsed = json::Parse(text);
  const hubcast::Status validated = json::Validate(text);
  hubcast::Result<json::Extracted> extracted = json::ExtractMembers(text, kSpecs);
  FUZZ_CHECK(parsed.ok() == validated.ok());
  FUZZ_CHECK(parsed.ok() == extracted.ok());
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().message() == validated.message());
    FUZZ_CHECK(parsed.status().message() == extracted.status().message());
  } else {
    const std::string compact = json::Serialize(*parsed);
    json::CompactWriter writer;
    FUZZ_CHECK(json::Read(text, writer).ok());
    FUZZ_CHECK(writer.out() == compact);
    hubcast::Result<json::Value> again = json::Parse(compact);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(json::Serialize(*again) == compact);
    CheckExtraction(*parsed, *extracted);
    if (parsed->is_number()) {
      (void)parsed->as_int64();
      (void)parsed->as_uint64();
      (void)parsed->as_double();
    }
  }

  std::string quoted;
  json::AppendQuoted(quoted, text);
  hubcast::Result<json::Value> back = json::Parse(quoted);
  FUZZ_CHECK(back.ok() && back->is_string());
  if (json::IsValidUtf8(text)) FUZZ_CHECK(back->str() == text);
  return 0;
}
