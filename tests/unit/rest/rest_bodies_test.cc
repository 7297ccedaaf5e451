// rest/rest_bodies.h: the addToGroups / removeFromGroups body and the send-body checks. The
// messages are what the REST API answers with 400, so they are pinned here.
#include "rest/rest_bodies.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/alloc_meter.h"
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::rest {
namespace {

std::string DecodeError(std::string_view body) {
  Result<MembershipBody> r = DecodeMembershipBody(body);
  EXPECT_FALSE(r.ok()) << "accepted: " << body;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << body;
  return r.status().message();
}

TEST(MembershipBody, DecodesGroupsAndFilter) {
  Result<MembershipBody> r =
      DecodeMembershipBody(R"({"filter": "userId eq 'a'", "groups": ["g1", "g 2"], "x": [1]})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->groups, (std::vector<std::string>{"g1", "g 2"}));
  EXPECT_EQ(r->filter, "userId eq 'a'");
}

TEST(MembershipBody, AbsentOrNullFilterIsNone) {
  Result<MembershipBody> absent = DecodeMembershipBody(R"({"groups": ["g"]})");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->filter.has_value());
  Result<MembershipBody> null = DecodeMembershipBody(R"({"groups": ["g"], "filter": null})");
  ASSERT_TRUE(null.ok());
  EXPECT_FALSE(null->filter.has_value());
  // Blank text is returned as it is: the caller decides that it selects everything.
  EXPECT_EQ(DecodeMembershipBody(R"({"groups": ["g"], "filter": " "})")->filter, " ");
}

TEST(MembershipBody, TheFirstMemberOfAKeyCounts) {
  Result<MembershipBody> r =
      DecodeMembershipBody(R"({"groups": ["a"], "groups": 5, "filter": null, "filter": 5})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->groups, std::vector<std::string>{"a"});
  EXPECT_FALSE(r->filter.has_value());
}

TEST(MembershipBody, RefusesBadBodiesWithTheApisMessages) {
  EXPECT_EQ(DecodeError("not json"),
            "The body is not valid JSON: Invalid JSON at byte 0: invalid literal");
  EXPECT_EQ(DecodeError(R"([{"groups": ["g"]}])"), "The body must be a JSON object.");
  for (const char* body : {R"({})", R"({"groups": []})", R"({"groups": "g"})",
                           R"({"groups": {"0": "g"}})", R"({"groups": null})"}) {
    EXPECT_EQ(DecodeError(body), "'groups' must be a non-empty array of group names.") << body;
  }
  for (const char* body :
       {R"({"groups": [1]})", R"({"groups": ["g", ["h"]]})", R"({"groups": ["g", null, "  "]})"}) {
    EXPECT_EQ(DecodeError(body), "'groups' must contain only strings.") << body;
  }
  EXPECT_EQ(DecodeError(R"({"groups": ["g"], "filter": 5})"), "'filter' must be a string or null.");
  EXPECT_EQ(DecodeError(R"({"groups": ["g"], "filter": ["userId eq 'a'"]})"),
            "'filter' must be a string or null.");
}

TEST(MembershipBody, GroupErrorsAreReportedInArrayOrder) {
  // An invalid name before the first non-string item is the one reported, and the reverse.
  const std::string invalid_name = DecodeError(R"({"groups": ["  ", 1]})");
  EXPECT_NE(invalid_name, "'groups' must contain only strings.");
  EXPECT_FALSE(invalid_name.empty());
  EXPECT_EQ(DecodeError(R"({"groups": [1, "  "]})"), "'groups' must contain only strings.");
  // Group errors come before filter errors.
  EXPECT_EQ(DecodeError(R"({"filter": 5, "groups": [1]})"), "'groups' must contain only strings.");
}

TEST(SendBody, JsonMustBeJsonAndTextMustBeUtf8) {
  EXPECT_TRUE(ValidateSendBody(storage::DataType::kJson, R"({"a": [1, "x"]})").ok());
  EXPECT_EQ(ValidateSendBody(storage::DataType::kJson, "{nope").message(),
            "The body is not valid JSON: Invalid JSON at byte 1: expected a string key");
  EXPECT_EQ(ValidateSendBody(storage::DataType::kJson, "").message(),
            "The body is not valid JSON: Invalid JSON at byte 0: expected a value, found end of "
            "input");
  EXPECT_TRUE(ValidateSendBody(storage::DataType::kText, "h\xC3\xA9llo").ok());
  EXPECT_EQ(ValidateSendBody(storage::DataType::kText, "\xC3").message(),
            "A text/plain body must be valid UTF-8.");
  EXPECT_TRUE(ValidateSendBody(storage::DataType::kBinary, "\xFF\x00").ok());
}

// A 1 MiB body is the REST limit. Checking one costs next to nothing beyond the body; decoding
// a membership body keeps the group names it returns and nothing of the rest.
TEST(RestBodyMemory, CheckingABodyBuildsNoTree) {
  if (!testing::AllocationMeter::Available()) GTEST_SKIP() << "no allocation meter";
  std::string zeros = "[0";
  while (zeros.size() < 1024 * 1024 - 64) zeros += ",0";
  zeros += "]";
  {
    testing::AllocationMeter meter;
    EXPECT_TRUE(ValidateSendBody(storage::DataType::kJson, zeros).ok());
    EXPECT_LT(meter.peak_bytes(), 64u * 1024);
  }
  {
    const std::string body = R"({"groups": ["g"], "other": )" + zeros + "}";
    testing::AllocationMeter meter;
    EXPECT_TRUE(DecodeMembershipBody(body).ok());
    EXPECT_LT(meter.peak_bytes(), 64u * 1024);
  }
  {
    // Short names, the worst case for the kept list: a std::string per 4 bytes of body.
    std::string groups = R"({"groups": ["g")";
    while (groups.size() < 1024 * 1024 - 64) groups += R"(,"g")";
    groups += "]}";
    testing::AllocationMeter meter;
    Result<MembershipBody> r = DecodeMembershipBody(groups);
    ASSERT_TRUE(r.ok());
    EXPECT_GT(r->groups.size(), 250000u);
    EXPECT_LT(meter.peak_bytes(), 16 * groups.size());
  }
}

}  // namespace
}  // namespace hubcast::rest
