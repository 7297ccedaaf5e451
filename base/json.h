// A small, strict JSON reader and writer used for client frames, REST bodies and upstream
// bodies. Why our own: client payloads with dataType "json" must be forwarded exactly
// (numbers keep their source text, so 12345678901234567890123 or 1.0 survive unchanged),
// inputs are untrusted (bounded depth, no exceptions), and base/ depends on nothing.
//
// Parse accepts exactly RFC 8259 JSON (one value, optional surrounding whitespace); it never
// throws and never recurses deeper than ParseOptions::max_depth. Values are plain immutable
// data after parsing; share them read-only between threads.
#pragma once

#include "base/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcast::json {

class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  using Member = std::pair<std::string, Value>;

  Value() = default;  // null
  static Value Null() { return Value(); }
  static Value Bool(bool b);
  static Value Number(std::string source_text);  // caller guarantees valid JSON number text
  static Value Int(int64_t n);
  static Value String(std::string s);
  static Value Array(std::vector<Value> items = {});
  static Value Object(std::vector<Member> members = {});

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool as_bool() const { return bool_; }
  // The decoded string (for kString) or the number's exact source text (for kNumber).
  const std::string& str() const { return str_; }
  // Integer views of a number: nullopt if not a number, not integral, or out of range.
  std::optional<int64_t> as_int64() const;
  std::optional<uint64_t> as_uint64() const;
  std::optional<double> as_double() const;

  const std::vector<Value>& items() const { return items_; }
  std::vector<Value>& items() { return items_; }
  const std::vector<Member>& members() const { return members_; }
  std::vector<Member>& members() { return members_; }
  // First member with this key, or nullptr (also nullptr when this is not an object).
  const Value* Find(std::string_view key) const;
  // Appends (does not replace) a member; for building objects.
  Value& Add(std::string key, Value v);

 private:
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  std::string str_;
  std::vector<Value> items_;
  std::vector<Member> members_;
};

struct ParseOptions {
  int max_depth = 64;
};

// Errors are kInvalidArgument with a message naming the byte offset.
Result<Value> Parse(std::string_view text, const ParseOptions& options = {});

// Compact serialization (no whitespace); numbers are written as their source text.
std::string Serialize(const Value& v);
void SerializeTo(std::string& out, const Value& v);

// Appends s as a quoted JSON string, escaping '"', '\\', control characters, and U+2028/9.
// Invalid UTF-8 bytes are replaced by U+FFFD so the output is always valid JSON.
void AppendQuoted(std::string& out, std::string_view s);

// True if s is valid UTF-8 (no overlongs, no surrogates, max U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace hubcast::json
