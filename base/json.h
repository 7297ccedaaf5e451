// A small, strict JSON reader and writer used for client frames, REST bodies and upstream
// bodies. Why our own: client payloads with dataType "json" must be forwarded exactly
// (numbers keep their source text, so 12345678901234567890123 or 1.0 survive unchanged),
// inputs are untrusted (bounded depth, no exceptions), and base/ depends on nothing.
//
// Parse accepts exactly RFC 8259 JSON (one value, optional surrounding whitespace); it never
// throws and never recurses deeper than ParseOptions::max_depth. Values are plain immutable
// data after parsing; share them read-only between threads.
//
// A parsed tree costs far more than its text (a Value per element: `[0,0,...]` grows about
// 40-fold), so untrusted input that only needs checking or a few fields goes through Read,
// Validate or ExtractMembers instead: the same grammar, limits and error messages, with memory
// bounded by a small multiple of what the caller keeps. Parse itself is Read plus a tree
// builder, so the two can never disagree about what is JSON.
#pragma once

#include "base/status.h"

#include <cstdint>
#include <optional>
#include <span>
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

// Receives a document's parts in document order (a SAX-style reader). Between OnBeginObject
// and OnEndObject, each member is an OnKey followed by its value's events.
class Visitor {
 public:
  virtual ~Visitor() = default;
  virtual void OnNull() = 0;
  virtual void OnBool(bool b) = 0;
  // The number's exact source text (valid JSON number grammar).
  virtual void OnNumber(std::string_view source_text) = 0;
  // The decoded string (valid UTF-8); the visitor may move from it.
  virtual void OnString(std::string& s) = 0;
  virtual void OnBeginArray() = 0;
  virtual void OnEndArray() = 0;
  virtual void OnBeginObject() = 0;
  // A member's decoded key; the visitor may move from it.
  virtual void OnKey(std::string& key) = 0;
  virtual void OnEndObject() = 0;
};

// Reads text with Parse's grammar, limits and error messages, handing its parts to visitor
// instead of building a tree. On an error the visitor has seen the events of a prefix of the
// text, and the status is exactly the one Parse returns. Beyond what the visitor keeps, memory
// is O(max_depth) plus the longest string.
Status Read(std::string_view text, Visitor& visitor, const ParseOptions& options = {});

// Ok exactly when Parse would succeed (same error otherwise), without building anything.
Status Validate(std::string_view text, const ParseOptions& options = {});

// A Visitor that appends the compact serialization of what it sees to a string: for any valid
// text, what Read leaves in out() equals Serialize(*Parse(text)).
class CompactWriter : public Visitor {
 public:
  void OnNull() override;
  void OnBool(bool b) override;
  void OnNumber(std::string_view source_text) override;
  void OnString(std::string& s) override;
  void OnBeginArray() override;
  void OnEndArray() override;
  void OnBeginObject() override;
  void OnKey(std::string& key) override;
  void OnEndObject() override;

  std::string& out() { return out_; }

 private:
  void BeforeValue();

  std::string out_;
  bool need_comma_ = false;  // a value was written in the open container
};

// ExtractMembers: a few members of a top-level object, taken in one validating pass (the
// first member with each key, as Value::Find would see it). Everything else in the document
// is checked and dropped, so memory is bounded by the members kept, never by the document.
enum class Capture {
  kShallow,      // scalars kept as values; an array or object only as an empty one of its kind
  kCompactJson,  // as kShallow, and the member's compact serialization in `json`
  kStrings,      // as kShallow, and an array's leading string items in `strings`
};

struct MemberSpec {
  std::string_view key;
  Capture capture = Capture::kShallow;
};

struct ExtractedMember {
  bool present = false;
  Value value;
  std::string json;                  // kCompactJson: Serialize() of the whole member value
  std::vector<std::string> strings;  // kStrings: the array's items up to the first non-string
  bool only_strings = true;          // kStrings: false if a non-string item followed those
};

struct Extracted {
  Value::Kind root = Value::Kind::kNull;  // the document's top-level kind
  std::vector<ExtractedMember> members;   // one per spec, in the specs' order
};

// Fails exactly when Parse fails, with the same status. A root that is not an object yields
// no present members.
Result<Extracted> ExtractMembers(std::string_view text, std::span<const MemberSpec> specs,
                                 const ParseOptions& options = {});

// Compact serialization (no whitespace); numbers are written as their source text.
std::string Serialize(const Value& v);
void SerializeTo(std::string& out, const Value& v);

// Appends s as a quoted JSON string, escaping '"', '\\', control characters, and U+2028/9.
// Invalid UTF-8 bytes are replaced by U+FFFD so the output is always valid JSON.
void AppendQuoted(std::string& out, std::string_view s);

// True if s is valid UTF-8 (no overlongs, no surrogates, max U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace hubcast::json
