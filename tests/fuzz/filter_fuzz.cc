// The OData filter parser and evaluator (storage/filter.h) on arbitrary text. Checks: parsing
// never fails other than with kInvalidArgument and a positioned message; a parsed filter keeps
// its text, evaluates without failing against varied connections, and gives the same answer
// twice.
#include "storage/filter.h"

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

using hubcast::storage::Filter;
using hubcast::storage::FilterSubject;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = Filter::Parse(text);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == hubcast::StatusCode::kInvalidArgument);
    FUZZ_CHECK(parsed.status().message().rfind("Invalid filter at position ", 0) == 0);
    FUZZ_CHECK(parsed.status().message().size() < 512);  // literals are cut in messages
    return 0;
  }
  const Filter& filter = **parsed;
  FUZZ_CHECK(filter.text() == text);

  const std::string user = "user1";
  const std::string odd_user = "\xC3\xA9t\xC3\xA9 'x' ";
  const std::set<std::string> groups = {"g1", "group 2", ""};
  const std::set<std::string> none;
  const FilterSubject subjects[] = {
      {"conn1", nullptr, nullptr, ""},
      {"conn2", &user, &groups, "json.webpubsub.azure.v1"},
      {"", &odd_user, &none, "json.reliable.webpubsub.azure.v1"},
  };
  for (const FilterSubject& s : subjects) {
    const bool first = filter.Matches(s);
    FUZZ_CHECK(filter.Matches(s) == first);
  }
  return 0;
}
