#include "base/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace hubcast::json {
namespace {

using namespace std::string_literals;

Value ParseOk(std::string_view text) {
  Result<Value> r = Parse(text);
  EXPECT_TRUE(r.ok()) << "input: " << text << " error: " << r.status().message();
  return r.ok() ? std::move(r).value() : Value();
}

// Asserts the parse fails with kInvalidArgument and that the message names `offset`.
void ExpectRejectedAt(std::string_view text, size_t offset) {
  Result<Value> r = Parse(text);
  ASSERT_FALSE(r.ok()) << "input unexpectedly accepted: " << text;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("byte " + std::to_string(offset)), std::string::npos)
      << "input: " << text << " message: " << r.status().message();
}

void ExpectRejected(std::string_view text) {
  Result<Value> r = Parse(text);
  EXPECT_FALSE(r.ok()) << "input unexpectedly accepted: " << text;
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// ---- Parsing: value kinds ----

TEST(JsonParse, ParsesLiterals) {
  EXPECT_TRUE(ParseOk("null").is_null());
  Value t = ParseOk("true");
  ASSERT_TRUE(t.is_bool());
  EXPECT_TRUE(t.as_bool());
  Value f = ParseOk("false");
  ASSERT_TRUE(f.is_bool());
  EXPECT_FALSE(f.as_bool());
}

TEST(JsonParse, ParsesStrings) {
  Value v = ParseOk(R"("hello")");
  ASSERT_TRUE(v.is_string());
  EXPECT_EQ(v.str(), "hello");
  EXPECT_EQ(ParseOk(R"("")").str(), "");
}

TEST(JsonParse, ParsesNumbers) {
  Value v = ParseOk("42");
  ASSERT_TRUE(v.is_number());
  EXPECT_EQ(v.str(), "42");
  EXPECT_EQ(v.as_int64(), 42);
  EXPECT_EQ(ParseOk("-17").as_int64(), -17);
  EXPECT_EQ(ParseOk("0").as_int64(), 0);
  EXPECT_EQ(ParseOk("3.25").as_double(), 3.25);
  EXPECT_EQ(ParseOk("-2.5E-3").as_double(), -2.5e-3);
  EXPECT_EQ(ParseOk("1e+2").as_double(), 100.0);
}

TEST(JsonParse, ParsesArraysInOrder) {
  Value v = ParseOk(R"([1, "two", true, null, [], {}])");
  ASSERT_TRUE(v.is_array());
  ASSERT_EQ(v.items().size(), 6u);
  EXPECT_EQ(v.items()[0].as_int64(), 1);
  EXPECT_EQ(v.items()[1].str(), "two");
  EXPECT_TRUE(v.items()[2].as_bool());
  EXPECT_TRUE(v.items()[3].is_null());
  EXPECT_TRUE(v.items()[4].is_array());
  EXPECT_TRUE(v.items()[4].items().empty());
  EXPECT_TRUE(v.items()[5].is_object());
  EXPECT_TRUE(v.items()[5].members().empty());
}

TEST(JsonParse, ParsesObjectsKeepingMemberOrder) {
  Value v = ParseOk(R"({"b": 1, "a": "x", "c": null})");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.members().size(), 3u);
  EXPECT_EQ(v.members()[0].first, "b");
  EXPECT_EQ(v.members()[1].first, "a");
  EXPECT_EQ(v.members()[2].first, "c");
  ASSERT_NE(v.Find("a"), nullptr);
  EXPECT_EQ(v.Find("a")->str(), "x");
  EXPECT_EQ(v.Find("missing"), nullptr);
}

TEST(JsonParse, FindReturnsFirstOfDuplicateKeys) {
  Value v = ParseOk(R"({"k": 1, "k": 2})");
  ASSERT_EQ(v.members().size(), 2u);
  ASSERT_NE(v.Find("k"), nullptr);
  EXPECT_EQ(v.Find("k")->as_int64(), 1);
}

TEST(JsonParse, FindOnNonObjectReturnsNull) {
  EXPECT_EQ(ParseOk("[1]").Find("0"), nullptr);
  EXPECT_EQ(ParseOk(R"("k")").Find("k"), nullptr);
}

TEST(JsonParse, ParsesNestedStructures) {
  Value v = ParseOk(R"({"type":"sendToGroup","group":"g1","data":{"list":[1,[2,{"x":[]}]]}})");
  const Value* data = v.Find("data");
  ASSERT_NE(data, nullptr);
  const Value* list = data->Find("list");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->items().size(), 2u);
  const Value& inner = list->items()[1];
  ASSERT_TRUE(inner.is_array());
  EXPECT_EQ(inner.items()[0].as_int64(), 2);
  const Value* x = inner.items()[1].Find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_TRUE(x->is_array());
}

TEST(JsonParse, AcceptsSurroundingWhitespace) {
  EXPECT_EQ(ParseOk(" \t\r\n 7 \n").as_int64(), 7);
  Value v = ParseOk("{ \"a\" :\n[ 1 ,\t2 ] }");
  ASSERT_NE(v.Find("a"), nullptr);
  EXPECT_EQ(v.Find("a")->items().size(), 2u);
}

// ---- Parsing: numbers keep their exact text ----

TEST(JsonParse, NumbersKeepExactSourceText) {
  for (const char* text :
       {"12345678901234567890123", "1.0", "-0", "1e400", "0.000", "1E-7", "-0.0e+00", "100"}) {
    Value v = ParseOk(text);
    ASSERT_TRUE(v.is_number()) << text;
    EXPECT_EQ(v.str(), text);
    EXPECT_EQ(Serialize(v), text);
  }
}

TEST(JsonParse, IntegerViewsRejectNonIntegralText) {
  EXPECT_EQ(ParseOk("1.0").as_int64(), std::nullopt);
  EXPECT_EQ(ParseOk("1e2").as_int64(), std::nullopt);
  EXPECT_EQ(ParseOk("1E2").as_uint64(), std::nullopt);
  EXPECT_EQ(ParseOk("2.5").as_uint64(), std::nullopt);
  EXPECT_EQ(ParseOk("1.0").as_double(), 1.0);
}

TEST(JsonParse, IntegerViewsRejectOutOfRange) {
  EXPECT_EQ(ParseOk("12345678901234567890123").as_int64(), std::nullopt);
  EXPECT_EQ(ParseOk("12345678901234567890123").as_uint64(), std::nullopt);
  EXPECT_EQ(ParseOk("9223372036854775807").as_int64(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseOk("9223372036854775808").as_int64(), std::nullopt);
  EXPECT_EQ(ParseOk("9223372036854775808").as_uint64(), uint64_t{9223372036854775808u});
  EXPECT_EQ(ParseOk("-9223372036854775808").as_int64(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(ParseOk("-9223372036854775809").as_int64(), std::nullopt);
  EXPECT_EQ(ParseOk("18446744073709551615").as_uint64(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(ParseOk("18446744073709551616").as_uint64(), std::nullopt);
  EXPECT_EQ(ParseOk("-1").as_uint64(), std::nullopt);
}

TEST(JsonParse, NegativeZeroIsIntegralZero) {
  Value v = ParseOk("-0");
  EXPECT_EQ(v.as_int64(), 0);
  EXPECT_EQ(v.as_uint64(), 0u);
  ASSERT_TRUE(v.as_double().has_value());
  EXPECT_TRUE(std::signbit(*v.as_double()));
}

TEST(JsonParse, HugeExponentBecomesInfinityAsDouble) {
  std::optional<double> d = ParseOk("1e400").as_double();
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(std::isinf(*d));
  EXPECT_EQ(ParseOk("1e400").as_int64(), std::nullopt);
}

TEST(JsonValue, NumericViewsOfNonNumbersAreNullopt) {
  Value s = Value::String("5");
  EXPECT_EQ(s.as_int64(), std::nullopt);
  EXPECT_EQ(s.as_uint64(), std::nullopt);
  EXPECT_EQ(s.as_double(), std::nullopt);
  EXPECT_EQ(Value::Null().as_int64(), std::nullopt);
}

// ---- Parsing: strings and escapes ----

TEST(JsonParse, DecodesSimpleEscapes) {
  EXPECT_EQ(ParseOk(R"("\"\\\/\b\f\n\r\t")").str(), "\"\\/\b\f\n\r\t");
}

TEST(JsonParse, DecodesUnicodeEscapesToUtf8) {
  EXPECT_EQ(ParseOk(R"("\u0041")").str(), "A");
  EXPECT_EQ(ParseOk(R"("\u00e9")").str(), "\xC3\xA9");
  EXPECT_EQ(ParseOk(R"("\u20AC")").str(), "\xE2\x82\xAC");
  EXPECT_EQ(ParseOk(R"("\uFFFF")").str(), "\xEF\xBF\xBF");
  EXPECT_EQ(ParseOk(R"("a\u0000b")").str(), "a\0b"s);
}

TEST(JsonParse, DecodesSurrogatePairsToUtf8) {
  EXPECT_EQ(ParseOk(R"("\uD83D\uDE00")").str(), "\xF0\x9F\x98\x80");  // U+1F600
  EXPECT_EQ(ParseOk(R"("\ud800\udc00")").str(), "\xF0\x90\x80\x80");  // U+10000
  EXPECT_EQ(ParseOk(R"("\uDBFF\uDFFF")").str(), "\xF4\x8F\xBF\xBF");  // U+10FFFF
}

TEST(JsonParse, AcceptsRawUtf8InStrings) {
  const std::string text = "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"";
  EXPECT_EQ(ParseOk(text).str(), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST(JsonParse, RejectsLoneSurrogates) {
  ExpectRejectedAt(R"("\uD800")", 1);
  ExpectRejectedAt(R"("\uDC00")", 1);
  ExpectRejectedAt(R"("ab\uD83Dx")", 3);
  ExpectRejected(R"("\uD83D\u0041")");
  ExpectRejected(R"("\uD83D\uD83D")");
  ExpectRejected(R"("\uD83D\n")");
}

TEST(JsonParse, RejectsBadEscapes) {
  ExpectRejectedAt(R"("\x")", 1);
  ExpectRejectedAt(R"("\u12")", 3);
  ExpectRejectedAt(R"("\u12G4")", 5);
  ExpectRejected(R"("\U0041")");
  ExpectRejected("\"\\");
}

TEST(JsonParse, RejectsControlCharactersInStrings) {
  ExpectRejectedAt("\"a\nb\"", 2);
  ExpectRejectedAt("\"\t\"", 1);
  ExpectRejectedAt("\"\x1F\"", 1);
  ExpectRejectedAt("\"a\0b\""s, 2);
}

TEST(JsonParse, AcceptsDelInStrings) { EXPECT_EQ(ParseOk("\"\x7F\"").str(), "\x7F"); }

TEST(JsonParse, RejectsInvalidUtf8InStrings) {
  ExpectRejectedAt("\"ab\xFF\"", 3);
  ExpectRejectedAt("\"\x80\"", 1);              // stray continuation
  ExpectRejectedAt("\"\xC0\xAF\"", 1);          // overlong '/'
  ExpectRejectedAt("\"\xE0\x80\xAF\"", 1);      // overlong 3-byte
  ExpectRejectedAt("\"\xED\xA0\x80\"", 1);      // encoded surrogate U+D800
  ExpectRejectedAt("\"\xF4\x90\x80\x80\"", 1);  // U+110000
  ExpectRejectedAt("\"\xE2\x82\"", 1);          // truncated
  ExpectRejected("\"\xC3");
}

TEST(JsonParse, RejectsUnterminatedString) {
  ExpectRejectedAt(R"("abc)", 4);
  ExpectRejected(R"({"a)");
}

// ---- Parsing: structural rejections ----

TEST(JsonParse, RejectsTrailingGarbage) {
  ExpectRejectedAt("1 2", 2);
  ExpectRejectedAt("{} x", 3);
  ExpectRejectedAt("[1]]", 3);
  ExpectRejectedAt("null,", 4);
  ExpectRejectedAt("truex", 4);
}

TEST(JsonParse, RejectsEmptyInput) {
  ExpectRejectedAt("", 0);
  ExpectRejectedAt("   ", 3);
}

TEST(JsonParse, RejectsLeadingZeros) {
  ExpectRejectedAt("01", 1);
  ExpectRejectedAt("-012", 2);
  ExpectRejectedAt("[00]", 2);
}

TEST(JsonParse, RejectsMalformedNumbers) {
  ExpectRejectedAt("-", 1);
  ExpectRejectedAt("1.", 2);
  ExpectRejectedAt("1.e5", 2);
  ExpectRejectedAt("1e", 2);
  ExpectRejectedAt("1e+", 3);
  ExpectRejected("+1");
  ExpectRejected(".5");
  ExpectRejected("0x10");
  ExpectRejected("NaN");
  ExpectRejected("Infinity");
  ExpectRejected("-Infinity");
}

TEST(JsonParse, RejectsBadLiterals) {
  ExpectRejectedAt("tru", 0);
  ExpectRejectedAt("nul", 0);
  ExpectRejectedAt("True", 0);
  ExpectRejectedAt("[fals]", 1);
}

TEST(JsonParse, RejectsMalformedArraysAndObjects) {
  ExpectRejectedAt("[1,]", 3);
  ExpectRejectedAt("[,1]", 1);
  ExpectRejectedAt("[1 2]", 3);
  ExpectRejectedAt("[1", 2);
  ExpectRejectedAt(R"({"a":1,})", 7);
  ExpectRejectedAt(R"({"a" 1})", 5);
  ExpectRejectedAt(R"({a:1})", 1);
  ExpectRejectedAt(R"({"a":})", 5);
  ExpectRejectedAt(R"({"a":1 "b":2})", 7);
  ExpectRejectedAt("{", 1);
  ExpectRejected("{'a':1}");
  ExpectRejected("]");
}

TEST(JsonParse, RejectsNonJsonWhitespace) {
  ExpectRejected("\v1");
  ExpectRejected("1\f");
  ExpectRejected(
      "\xC2\xA0"
      "1");  // NBSP
}

// ---- Parsing: depth limit ----

TEST(JsonParse, AcceptsNestingUpToMaxDepth) {
  EXPECT_TRUE(Parse(Nested(64)).ok());
  ParseOptions options;
  options.max_depth = 3;
  EXPECT_TRUE(Parse(Nested(3), options).ok());
  EXPECT_TRUE(Parse(R"({"a":[{"b":1}]})", options).ok());
}

TEST(JsonParse, RejectsNestingBeyondMaxDepth) {
  Result<Value> r = Parse(Nested(65));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("byte 64"), std::string::npos) << r.status().message();

  ParseOptions options;
  options.max_depth = 3;
  EXPECT_FALSE(Parse(Nested(4), options).ok());
  EXPECT_FALSE(Parse(R"({"a":[{"b":[]}]})", options).ok());
}

TEST(JsonParse, ZeroMaxDepthAllowsOnlyScalars) {
  ParseOptions options;
  options.max_depth = 0;
  EXPECT_TRUE(Parse("1", options).ok());
  EXPECT_TRUE(Parse(R"("s")", options).ok());
  EXPECT_FALSE(Parse("[]", options).ok());
  EXPECT_FALSE(Parse("{}", options).ok());
}

TEST(JsonParse, DeeplyNestedHostileInputFailsWithoutCrashing) {
  // Far beyond any stack the parser could survive if it recursed without a bound.
  EXPECT_FALSE(Parse(std::string(1'000'000, '[')).ok());
  std::string objects;
  for (int i = 0; i < 200'000; ++i) objects += R"({"a":)";
  EXPECT_FALSE(Parse(objects).ok());
}

// ---- Serialization ----

TEST(JsonSerialize, WritesCompactly) {
  Value v = ParseOk(R"( { "a" : [ 1 , 2.0 , true , null ] , "b" : { } , "c" : "x" } )");
  EXPECT_EQ(Serialize(v), R"({"a":[1,2.0,true,null],"b":{},"c":"x"})");
}

TEST(JsonSerialize, RoundTripsParsedDocuments) {
  for (const char* text : {
           "null",
           "true",
           "false",
           "0",
           "-0",
           "1.0",
           "1e400",
           "12345678901234567890123",
           R"("")",
           R"("plain")",
           R"("quote\"backslash\\newline\n")",
           R"("\u0001\u001f")",
           "[]",
           "{}",
           R"([1,[2,[3,[]]],{"a":{"b":{"c":null}}}])",
           R"({"type":"sendToGroup","group":"g","dataType":"json","data":{"n":1.50}})",
           R"({"dup":1,"dup":2})",
           "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"",
       }) {
    Value v = ParseOk(text);
    EXPECT_EQ(Serialize(v), text);
    Result<Value> again = Parse(Serialize(v));
    ASSERT_TRUE(again.ok()) << text;
    EXPECT_EQ(Serialize(*again), text);
  }
}

TEST(JsonSerialize, NormalizesEscapesOnRoundTrip) {
  EXPECT_EQ(Serialize(ParseOk(R"("\u0041\/\uD83D\uDE00")")), "\"A/\xF0\x9F\x98\x80\"");
  EXPECT_EQ(Serialize(ParseOk(R"("\u2028")")), R"("\u2028")");
}

TEST(JsonSerialize, SerializeToAppends) {
  std::string out = "prefix:";
  SerializeTo(out, Value::Array({Value::Int(1), Value::String("a")}));
  EXPECT_EQ(out, R"(prefix:[1,"a"])");
}

TEST(JsonValue, BuildsValuesProgrammatically) {
  Value obj = Value::Object();
  obj.Add("n", Value::Int(-42));
  obj.Add("big", Value::Number("12345678901234567890123"));
  obj.Add("s", Value::String("x\"y"));
  obj.Add("b", Value::Bool(true));
  obj.Add("z", Value::Null());
  Value& arr = obj.Add("a", Value::Array());
  arr.items().push_back(Value::Int(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(Serialize(obj),
            R"({"n":-42,"big":12345678901234567890123,"s":"x\"y","b":true,"z":null,)"
            R"("a":[-9223372036854775808]})");
  EXPECT_EQ(obj.Find("n")->as_int64(), -42);
}

TEST(JsonValue, AddOnNullValueMakesAnObject) {
  Value v;
  v.Add("k", Value::Int(1));
  EXPECT_TRUE(v.is_object());
  EXPECT_EQ(Serialize(v), R"({"k":1})");
}

TEST(JsonSerialize, EscapesStringKeys) {
  Value obj = Value::Object();
  obj.Add("a\"\n", Value::Null());
  EXPECT_EQ(Serialize(obj), R"({"a\"\n":null})");
}

// ---- AppendQuoted ----

std::string Quoted(std::string_view s) {
  std::string out;
  AppendQuoted(out, s);
  return out;
}

TEST(JsonAppendQuoted, EscapesQuoteAndBackslash) {
  EXPECT_EQ(Quoted(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(Quoted(""), R"("")");
  EXPECT_EQ(Quoted("/"), R"("/")");
}

TEST(JsonAppendQuoted, EscapesControlCharacters) {
  EXPECT_EQ(Quoted("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(Quoted("\x01\x1F"), R"("\u0001\u001f")");
  EXPECT_EQ(Quoted("a\0b"s), R"("a\u0000b")");
  EXPECT_EQ(Quoted("\x7F"), "\"\x7F\"");  // DEL is not a JSON control character
  for (int c = 0; c < 0x20; ++c) {
    const std::string q = Quoted(std::string(1, static_cast<char>(c)));
    Result<Value> back = Parse(q);
    ASSERT_TRUE(back.ok()) << "char " << c << ": " << q;
    EXPECT_EQ(back->str(), std::string(1, static_cast<char>(c)));
  }
}

TEST(JsonAppendQuoted, EscapesLineAndParagraphSeparators) {
  EXPECT_EQ(Quoted("a\xE2\x80\xA8"
                   "b\xE2\x80\xA9"
                   "c"),
            R"("a\u2028b\u2029c")");
  // Neighbouring characters sharing the E2 80 prefix are left alone.
  EXPECT_EQ(Quoted("\xE2\x80\xA7\xE2\x80\xAA"), "\"\xE2\x80\xA7\xE2\x80\xAA\"");
}

TEST(JsonAppendQuoted, KeepsValidMultibyteUtf8) {
  const std::string s = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF";
  EXPECT_EQ(Quoted(s), "\"" + s + "\"");
}

TEST(JsonAppendQuoted, ReplacesInvalidUtf8WithReplacementCharacter) {
  const std::string kFffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Quoted("a\xFF"
                   "b"),
            "\"a" + kFffd + "b\"");
  EXPECT_EQ(Quoted("\x80"), "\"" + kFffd + "\"");
  EXPECT_EQ(Quoted("\xC0\xAF"), "\"" + kFffd + kFffd + "\"");  // overlong: each byte bad
  EXPECT_EQ(Quoted("\xED\xA0\x80"), "\"" + kFffd + kFffd + kFffd + "\"");  // surrogate
  EXPECT_EQ(Quoted("\xF4\x90\x80\x80"), "\"" + kFffd + kFffd + kFffd + kFffd + "\"");
  // A truncated sequence is one replacement, and the byte that cut it short is kept.
  EXPECT_EQ(Quoted("\xE2\x82"
                   "a"),
            "\"" + kFffd + "a\"");
  EXPECT_EQ(Quoted("\xF0\x9F\x98"), "\"" + kFffd + "\"");
  EXPECT_EQ(Quoted("\xE2\x82\xC3\xA9"), "\"" + kFffd + "\xC3\xA9\"");
}

TEST(JsonAppendQuoted, OutputIsAlwaysValidJson) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  const std::string q = Quoted(all_bytes);
  EXPECT_TRUE(IsValidUtf8(q));
  Result<Value> back = Parse(q);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->str().substr(0, 128), all_bytes.substr(0, 128));
}

TEST(JsonAppendQuoted, AppendsToExistingContent) {
  std::string out = "x=";
  AppendQuoted(out, "y");
  EXPECT_EQ(out, R"(x="y")");
}

// ---- IsValidUtf8 ----

TEST(JsonIsValidUtf8, AcceptsValidText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii text that is longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("a\0b"s));
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));             // U+0080
  EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));             // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));         // U+0800
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));         // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));         // U+E000
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));         // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));     // U+10000
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));     // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("12345678\xC3\xA9xyz"));  // multibyte after the ASCII fast path
}

TEST(JsonIsValidUtf8, RejectsOverlongEncodings) {
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xE0\x9F\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));
}

TEST(JsonIsValidUtf8, RejectsSurrogates) {
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));              // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));              // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\xBD\xED\xB8\x80"));  // CESU-8 pair
}

TEST(JsonIsValidUtf8, RejectsAboveMaxCodePoint) {
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(JsonIsValidUtf8, RejectsTruncatedAndStraySequences) {
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(
      IsValidUtf8("\xC3"
                  "a"));
  EXPECT_FALSE(IsValidUtf8("abcdefgh\x80"));  // invalid byte after the ASCII fast path
  EXPECT_FALSE(IsValidUtf8("abcdefg\xE2\x82"));
}

}  // namespace
}  // namespace hubcast::json
