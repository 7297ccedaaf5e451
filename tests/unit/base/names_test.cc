// Tests of base/names.h: every name field against every byte value 0..255, in the middle of a
// name and alone, plus lengths and multi-byte UTF-8 (docs/PROTOCOL-DECISIONS.md, "Names").
#include "base/names.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace hubcast {
namespace {

using Validator = std::function<Status(std::string_view)>;

// The name fields that share the common rule (hub names have their own, stricter one).
std::vector<std::pair<const char*, Validator>> CommonRuleFields() {
  return {{"group", ValidateGroupName},
          {"user id", ValidateUserId},
          {"connection id", ValidateConnectionId},
          {"event name", ValidateEventName}};
}

// A single byte inside a name: control characters and bytes that are not UTF-8 on their own
// (0x80-0xFF) are refused; every other byte is kept.
bool CommonRuleAccepts(unsigned b) { return b >= 0x20 && b != 0x7f && b < 0x80; }

TEST(Names, EveryByteValueInsideAName) {
  for (const auto& [field, validate] : CommonRuleFields()) {
    for (unsigned b = 0; b < 256; ++b) {
      std::string name = "a";
      name.push_back(static_cast<char>(b));
      name += "b";
      Status s = validate(name);
      EXPECT_EQ(s.ok(), CommonRuleAccepts(b)) << field << " with byte " << b << ": " << s.message();
      if (!s.ok()) {
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
        EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
      }
    }
  }
}

TEST(Names, EveryByteValueAsAWholeName) {
  for (const auto& [field, validate] : CommonRuleFields()) {
    for (unsigned b = 0; b < 256; ++b) {
      bool expected = CommonRuleAccepts(b) && !(b == ' ' && std::string(field) == "group");
      EXPECT_EQ(validate(std::string(1, static_cast<char>(b))).ok(), expected)
          << field << " of byte " << b;
    }
  }
}

TEST(Names, HubNamesTakeOnlyTheirCharactersAtEveryByteValue) {
  for (unsigned b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool hub_char = letter || (c >= '0' && c <= '9') || c == '_' || c == '`' || c == ',' ||
                          c == '.' || c == '[' || c == ']';
    EXPECT_EQ(HubName::Parse(std::string("h") + c).ok(), hub_char) << "byte " << b;
    EXPECT_EQ(HubName::Parse(std::string(1, c)).ok(), letter) << "byte " << b;
  }
}

TEST(Names, MultiByteUtf8IsAcceptedAndBrokenSequencesAreNot) {
  for (const auto& [field, validate] : CommonRuleFields()) {
    EXPECT_TRUE(validate("gr\xc3\xbc\xc3\x9f \xe6\x97\xa5\xf0\x9f\x98\x80").ok()) << field;
    EXPECT_FALSE(validate("a\xc3").ok()) << field << ": truncated sequence";
    EXPECT_FALSE(validate("a\xc0\xafz").ok()) << field << ": overlong encoding";
    EXPECT_FALSE(validate("a\xed\xa0\x80z").ok()) << field << ": surrogate";
    EXPECT_FALSE(validate("a\xf4\x90\x80\x80z").ok()) << field << ": past U+10FFFF";
  }
}

TEST(Names, LengthIsOneTo1024Bytes) {
  for (const auto& [field, validate] : CommonRuleFields()) {
    EXPECT_FALSE(validate("").ok()) << field;
    EXPECT_TRUE(validate(std::string(1024, 'x')).ok()) << field;
    EXPECT_FALSE(validate(std::string(1025, 'x')).ok()) << field;
  }
}

TEST(Names, AGroupOfSpacesOnlyIsRefusedAndSpacesInsideAreKept) {
  EXPECT_FALSE(ValidateGroupName("   ").ok());
  EXPECT_TRUE(ValidateGroupName(" a ").ok());
  EXPECT_TRUE(ValidateUserId("   ").ok());
}

}  // namespace
}  // namespace hubcast
