// Read, Validate, CompactWriter and ExtractMembers: the tree-less ways through a JSON
// document. They must agree with Parse exactly (same documents accepted, same errors, same
// serialization) while keeping memory bounded by what the caller asks for.
#include "base/json.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/alloc_meter.h"
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::json {
namespace {

using testing::AllocationMeter;

constexpr size_t kMiB = 1024 * 1024;

// Documents covering every production of the grammar, escapes included.
const std::vector<std::string>& ValidDocuments() {
  static const std::vector<std::string> docs = {
      "null",
      " true ",
      "false",
      "0",
      "-0.5e+10",
      "12345678901234567890123",
      R"("")",
      R"("a\"b\\c\/d\b\f\n\r\t\u0001\u00e9\ud83d\ude00 \u2028")",
      "\"\xE2\x80\xA8 raw line separator\"",
      "[]",
      "{}",
      R"([1, [2, [3, {}]], {"a": [], "b": {"c": null}}])",
      R"({"k": 1, "k": 2, "": "empty key", "nested": {"x": [true, false]}})",
      "\t\r\n[ 1 ,\n2 ]\n",
  };
  return docs;
}

const std::vector<std::string>& InvalidDocuments() {
  static const std::vector<std::string> docs = {
      "",      " ",    "[1,]",     "{\"a\"}",  "{\"a\":1,}",  "[1 2]",       "01",
      "1.",    "-",    "tru",      "\"\\x\"",  "\"\\ud800\"", "\"a",         "[[[",
      "{1:2}", "[1]x", "\"\x01\"", "\"\xFF\"", "nul",         "[\"a\" : 1]",
  };
  return docs;
}

TEST(JsonValidate, AgreesWithParseOnEveryDocument) {
  for (const std::string& doc : ValidDocuments()) {
    EXPECT_TRUE(Validate(doc).ok()) << doc;
  }
  for (const std::string& doc : InvalidDocuments()) {
    Status validated = Validate(doc);
    Result<Value> parsed = Parse(doc);
    ASSERT_FALSE(parsed.ok()) << doc;
    EXPECT_EQ(validated.code(), StatusCode::kInvalidArgument) << doc;
    EXPECT_EQ(validated.message(), parsed.status().message()) << doc;
  }
}

TEST(JsonValidate, AppliesTheDepthLimit) {
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(Validate(deep).message(), Parse(deep).status().message());
  EXPECT_FALSE(Validate(deep).ok());
  EXPECT_TRUE(Validate(deep, ParseOptions{.max_depth = 65}).ok());
}

TEST(JsonCompactWriter, WritesWhatSerializeWritesForTheParsedTree) {
  for (const std::string& doc : ValidDocuments()) {
    CompactWriter writer;
    ASSERT_TRUE(Read(doc, writer).ok()) << doc;
    EXPECT_EQ(writer.out(), Serialize(*Parse(doc))) << doc;
  }
}

TEST(JsonExtractMembers, TakesTheFirstMemberOfEachKeyLikeFind) {
  const MemberSpec specs[] = {{"a"}, {"b"}, {"missing"}};
  Result<Extracted> r = ExtractMembers(R"({"b": "x", "a": 1, "a": 2, "b": null})", specs);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->root, Value::Kind::kObject);
  ASSERT_TRUE(r->members[0].present);
  EXPECT_EQ(r->members[0].value.as_int64(), 1);
  ASSERT_TRUE(r->members[1].present);
  EXPECT_EQ(r->members[1].value.str(), "x");
  EXPECT_FALSE(r->members[2].present);
}

TEST(JsonExtractMembers, KeepsContainersOnlyAsTheirKindWhenShallow) {
  const MemberSpec specs[] = {{"arr"}, {"obj"}};
  Result<Extracted> r = ExtractMembers(R"({"arr": [1, 2, 3], "obj": {"arr": 5}})", specs);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->members[0].value.is_array());
  EXPECT_TRUE(r->members[0].value.items().empty());
  EXPECT_TRUE(r->members[1].value.is_object());
  EXPECT_TRUE(r->members[1].value.members().empty());
}

TEST(JsonExtractMembers, IgnoresKeysOfNestedObjects) {
  const MemberSpec specs[] = {{"type"}};
  Result<Extracted> r = ExtractMembers(R"({"x": {"type": "inner"}, "y": [{"type": 1}]})", specs);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->members[0].present);
}

TEST(JsonExtractMembers, CompactJsonEqualsSerializeOfTheMember) {
  const MemberSpec specs[] = {{"data", Capture::kCompactJson}};
  for (const std::string& value : ValidDocuments()) {
    const std::string doc = R"({"before": [1, {"data": 0}], "data": )" + value + R"(, "data": 7})";
    Result<Extracted> r = ExtractMembers(doc, specs);
    ASSERT_TRUE(r.ok()) << doc;
    ASSERT_TRUE(r->members[0].present);
    EXPECT_EQ(r->members[0].json, Serialize(*Parse(value))) << doc;
    EXPECT_EQ(r->members[0].value.kind(), Parse(value)->kind());
  }
}

TEST(JsonExtractMembers, StringsStopAtTheFirstItemThatIsNotAString) {
  const MemberSpec specs[] = {{"groups", Capture::kStrings}};
  Result<Extracted> all = ExtractMembers(R"({"groups": ["a", "b\n", ""]})", specs);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->members[0].strings, (std::vector<std::string>{"a", "b\n", ""}));
  EXPECT_TRUE(all->members[0].only_strings);

  for (const char* doc : {R"({"groups": ["a", 1, "c"]})", R"({"groups": ["a", ["x"], "c"]})",
                          R"({"groups": ["a", {"b": "x"}, "c"]})", R"({"groups": ["a", null]})"}) {
    Result<Extracted> r = ExtractMembers(doc, specs);
    ASSERT_TRUE(r.ok()) << doc;
    EXPECT_EQ(r->members[0].strings, std::vector<std::string>{"a"}) << doc;
    EXPECT_FALSE(r->members[0].only_strings) << doc;
  }

  Result<Extracted> scalar = ExtractMembers(R"({"groups": "a"})", specs);
  ASSERT_TRUE(scalar.ok());
  EXPECT_TRUE(scalar->members[0].value.is_string());
  EXPECT_TRUE(scalar->members[0].strings.empty());
}

TEST(JsonExtractMembers, ReportsTheRootKindAndNoMembersForOtherRoots) {
  const MemberSpec specs[] = {{"a"}};
  for (const auto& [doc, kind] :
       std::vector<std::pair<std::string, Value::Kind>>{{R"([{"a": 1}])", Value::Kind::kArray},
                                                        {R"("a")", Value::Kind::kString},
                                                        {"1", Value::Kind::kNumber},
                                                        {"null", Value::Kind::kNull},
                                                        {"true", Value::Kind::kBool}}) {
    Result<Extracted> r = ExtractMembers(doc, specs);
    ASSERT_TRUE(r.ok()) << doc;
    EXPECT_EQ(r->root, kind) << doc;
    EXPECT_FALSE(r->members[0].present) << doc;
  }
}

TEST(JsonExtractMembers, FailsWithParsesErrorOnInvalidDocuments) {
  const MemberSpec specs[] = {{"a", Capture::kCompactJson}};
  for (const std::string& doc : InvalidDocuments()) {
    Result<Extracted> r = ExtractMembers(doc, specs);
    ASSERT_FALSE(r.ok()) << doc;
    EXPECT_EQ(r.status().message(), Parse(doc).status().message()) << doc;
  }
  // Invalid after the wanted member is complete: still the whole document's error.
  EXPECT_FALSE(ExtractMembers(R"({"a": [1], "b": [1,]})", specs).ok());
}

// A 1 MiB array of zeros: what a hostile client frame or REST body can hold.
std::string ZeroArray(size_t bytes) {
  std::string s = "[0";
  while (s.size() + 3 <= bytes) s += ",0";
  s += "]";
  return s;
}

TEST(JsonMemoryBound, ValidateKeepsNothingOfTheDocument) {
  if (!AllocationMeter::Available()) GTEST_SKIP() << "no allocation meter under sanitizers";
  const std::string doc = ZeroArray(kMiB);
  AllocationMeter meter;
  ASSERT_TRUE(Validate(doc).ok());
  EXPECT_LT(meter.peak_bytes(), 64u * 1024) << "for a document of " << doc.size() << " bytes";
}

TEST(JsonMemoryBound, ExtractMembersHoldsOnlyTheMembersItKeeps) {
  if (!AllocationMeter::Available()) GTEST_SKIP() << "no allocation meter under sanitizers";
  const std::string array = ZeroArray(kMiB);
  const std::string doc = R"({"type": "x", "skipped": )" + array + R"(, "data": )" + array + "}";
  const MemberSpec specs[] = {{"type"}, {"data", Capture::kCompactJson}};
  size_t peak = 0;
  {
    AllocationMeter meter;
    Result<Extracted> r = ExtractMembers(doc, specs);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->members[1].json, array);
    peak = meter.peak_bytes();
  }
  // The kept `data` text (1 MiB, grown by doubling) and small change; the skipped member
  // costs nothing. A tree of the same document is some 40 times its size.
  EXPECT_LT(peak, 3 * array.size()) << "document of " << doc.size() << " bytes";
}

}  // namespace
}  // namespace hubcast::json
