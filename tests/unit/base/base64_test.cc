#include "base/base64.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hubcast {
namespace {

using namespace std::string_literals;

// RFC 4648 section 10.
const std::vector<std::pair<std::string, std::string>> kRfcVectors = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

std::string AllBytes() {
  std::string s;
  for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
  return s;
}

TEST(Base64Encode, MatchesRfc4648Vectors) {
  for (const auto& [plain, encoded] : kRfcVectors) {
    EXPECT_EQ(Base64Encode(plain), encoded) << plain;
  }
}

TEST(Base64Decode, MatchesRfc4648Vectors) {
  for (const auto& [plain, encoded] : kRfcVectors) {
    EXPECT_EQ(Base64Decode(encoded), plain) << encoded;
  }
}

TEST(Base64Encode, UsesPlusAndSlash) {
  EXPECT_EQ(Base64Encode("\xFB\xFF\xBF"), "+/+/");
  EXPECT_EQ(Base64Decode("+/+/"), "\xFB\xFF\xBF");
}

TEST(Base64Decode, AcceptsMissingPadding) {
  EXPECT_EQ(Base64Decode("Zg"), "f");
  EXPECT_EQ(Base64Decode("Zm8"), "fo");
  EXPECT_EQ(Base64Decode("Zm9vYg"), "foob");
  EXPECT_EQ(Base64Decode("Zm9vYmE"), "fooba");
}

TEST(Base64Decode, RejectsInvalidCharacters) {
  EXPECT_EQ(Base64Decode("Zm9v!"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9-"), std::nullopt);  // base64url alphabet
  EXPECT_EQ(Base64Decode("Zm9_"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm\x80v"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9\0"s), std::nullopt);
  EXPECT_EQ(Base64Decode("Z!"), std::nullopt);  // in the final partial group
}

TEST(Base64Decode, RejectsWhitespace) {
  EXPECT_EQ(Base64Decode("Zm9v YmFy"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9v\nYmFy"), std::nullopt);
  EXPECT_EQ(Base64Decode(" Zm9v"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9v\r\n"), std::nullopt);
}

TEST(Base64Decode, RejectsBadPadding) {
  EXPECT_EQ(Base64Decode("="), std::nullopt);
  EXPECT_EQ(Base64Decode("=="), std::nullopt);
  EXPECT_EQ(Base64Decode("===="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zg="), std::nullopt);    // padded but not a multiple of 4
  EXPECT_EQ(Base64Decode("Zg==="), std::nullopt);  // too much padding
  EXPECT_EQ(Base64Decode("Zm8=="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9v="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9v===="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm8=Zm8="), std::nullopt);  // padding in the middle
  EXPECT_EQ(Base64Decode("Z=g="), std::nullopt);
  EXPECT_EQ(Base64Decode("Z==="), std::nullopt);
}

TEST(Base64Decode, RejectsImpossibleLength) {
  EXPECT_EQ(Base64Decode("Z"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9vY"), std::nullopt);
}

TEST(Base64Decode, IgnoresNonZeroTrailingBits) {
  // "Zh" carries 12 bits for one byte; the 4 spare bits are non-zero. RFC 4648 lets a
  // decoder ignore them.
  EXPECT_EQ(Base64Decode("Zh=="), "f");
  EXPECT_EQ(Base64Decode("Zm9="), "fo");
}

TEST(Base64, RoundTripsAllByteValuesAndLengths) {
  const std::string all = AllBytes();
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string plain = all.substr(all.size() - len);
    const std::string encoded = Base64Encode(plain);
    EXPECT_EQ(encoded.size() % 4, 0u);
    EXPECT_EQ(Base64Decode(encoded), plain) << "length " << len;
  }
}

TEST(Base64UrlEncode, UsesUrlAlphabetWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode("\xFB\xFF\xBF"), "-_-_");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode(""), "");
}

TEST(Base64UrlDecode, MatchesRfc4648VectorsWithAndWithoutPadding) {
  for (const auto& [plain, encoded] : kRfcVectors) {
    EXPECT_EQ(Base64UrlDecode(encoded), plain) << encoded;
    const std::string unpadded = encoded.substr(0, encoded.find('='));
    EXPECT_EQ(Base64UrlDecode(unpadded), plain) << unpadded;
  }
}

TEST(Base64UrlDecode, DecodesJwtSegment) {
  // The header of the JWT example in RFC 7519 section 3.1.
  EXPECT_EQ(Base64UrlDecode("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"),
            "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
}

TEST(Base64UrlDecode, RejectsStandardAlphabetAndBadInput) {
  EXPECT_EQ(Base64UrlDecode("+/+/"), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("-_-_"), "\xFB\xFF\xBF");
  EXPECT_EQ(Base64UrlDecode("Zm9v YmFy"), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("Zg="), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("Z"), std::nullopt);
  EXPECT_EQ(Base64UrlDecode("="), std::nullopt);
}

TEST(Base64Url, RoundTripsAllByteValuesAndLengths) {
  const std::string all = AllBytes();
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string plain = all.substr(0, len);
    const std::string encoded = Base64UrlEncode(plain);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
    EXPECT_EQ(Base64UrlDecode(encoded), plain) << "length " << len;
  }
}

}  // namespace
}  // namespace hubcast
