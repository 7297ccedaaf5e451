#include "base/json.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

namespace hubcast::json {
namespace {

constexpr char kReplacementChar[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8
constexpr char kHexDigits[] = "0123456789abcdef";

struct Utf8Step {
  size_t len;  // bytes consumed: the whole sequence, or its maximal invalid prefix (>= 1)
  bool valid;
};

// Decodes one UTF-8 sequence at p (avail >= 1). On failure, len is the "maximal subpart"
// (Unicode 3.9, U+FFFD substitution), so a truncated sequence becomes one U+FFFD rather than
// several, and the byte that broke it is re-examined as the start of the next sequence.
// Restricting the second byte's range is what rules out overlongs, surrogates and > U+10FFFF.
Utf8Step DecodeUtf8(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  if (c < 0x80) return {1, true};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0xC2) {
    return {1, false};  // stray continuation byte, or C0/C1 (always overlong)
  } else if (c < 0xE0) {
    need = 1;
  } else if (c < 0xF0) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;  // overlong 3-byte
    if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates D800..DFFF
  } else if (c < 0xF5) {
    need = 3;
    if (c == 0xF0) lo = 0x90;  // overlong 4-byte
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return {1, false};
  }
  for (size_t k = 1; k <= need; ++k) {
    if (k >= avail) return {k, false};
    const unsigned char b = p[k];
    if (b < lo || b > hi) return {k, false};
    lo = 0x80;
    hi = 0xBF;
  }
  return {need + 1, true};
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True for bytes AppendQuoted can copy verbatim: printable ASCII other than '"' and '\\'.
// Both the writer and the string parser use it for their bulk-copy fast path.
bool IsPlainAscii(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

// Recursive descent over the input, reporting what it reads to a Visitor. Every method returns
// false after recording the first error, so no exceptions are needed and the first failure's
// offset is the one reported.
class Reader {
 public:
  Reader(std::string_view text, int max_depth, Visitor& visitor)
      : text_(text), max_depth_(max_depth), visitor_(visitor) {}

  Status ReadDocument() {
    SkipWhitespace();
    if (!ReadValue(0)) return Status::InvalidArgument(std::move(error_));
    SkipWhitespace();
    if (pos_ != text_.size()) {
      Fail(pos_, "unexpected trailing characters after the value");
      return Status::InvalidArgument(std::move(error_));
    }
    return Status::Ok();
  }

 private:
  bool Fail(size_t offset, std::string_view what) {
    error_ = "Invalid JSON at byte " + std::to_string(offset) + ": ";
    error_.append(what);
    return false;
  }

  void SkipWhitespace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  bool ReadValue(int depth) {
    if (pos_ >= text_.size()) return Fail(pos_, "expected a value, found end of input");
    switch (text_[pos_]) {
      case '{':
        return ReadObject(depth + 1);
      case '[':
        return ReadArray(depth + 1);
      case '"':
        scratch_.clear();
        if (!ReadString(scratch_)) return false;
        visitor_.OnString(scratch_);
        return true;
      case 't':
        if (!ReadLiteral("true")) return false;
        visitor_.OnBool(true);
        return true;
      case 'f':
        if (!ReadLiteral("false")) return false;
        visitor_.OnBool(false);
        return true;
      case 'n':
        if (!ReadLiteral("null")) return false;
        visitor_.OnNull();
        return true;
      default:
        if (text_[pos_] == '-' || IsDigit(text_[pos_])) return ReadNumber();
        return Fail(pos_, "expected a value");
    }
  }

  bool ReadLiteral(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return Fail(pos_, "invalid literal");
    pos_ += word.size();
    return true;
  }

  bool ReadNumber() {
    const size_t start = pos_;
    const size_t n = text_.size();
    if (text_[pos_] == '-') ++pos_;
    if (pos_ >= n || !IsDigit(text_[pos_])) return Fail(pos_, "expected a digit");
    if (text_[pos_] == '0') {
      ++pos_;
      if (pos_ < n && IsDigit(text_[pos_])) return Fail(pos_, "leading zeros are not allowed");
    } else {
      while (pos_ < n && IsDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < n && text_[pos_] == '.') {
      ++pos_;
      if (pos_ >= n || !IsDigit(text_[pos_])) return Fail(pos_, "expected a digit after '.'");
      while (pos_ < n && IsDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < n && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < n && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (pos_ >= n || !IsDigit(text_[pos_])) return Fail(pos_, "expected a digit in exponent");
      while (pos_ < n && IsDigit(text_[pos_])) ++pos_;
    }
    visitor_.OnNumber(text_.substr(start, pos_ - start));
    return true;
  }

  // Reads 4 hex digits at pos_ (just after "\u").
  bool ReadHex4(uint32_t& cp) {
    if (text_.size() - pos_ < 4) return Fail(pos_, "truncated \\u escape");
    cp = 0;
    for (size_t i = 0; i < 4; ++i) {
      const int h = HexValue(text_[pos_ + i]);
      if (h < 0) return Fail(pos_ + i, "invalid hex digit in \\u escape");
      cp = (cp << 4) | static_cast<uint32_t>(h);
    }
    pos_ += 4;
    return true;
  }

  bool ReadEscape(std::string& out) {
    const size_t esc_start = pos_;  // at the backslash
    ++pos_;
    if (pos_ >= text_.size()) return Fail(pos_, "unterminated string");
    const char c = text_[pos_++];
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out.push_back(c);
        return true;
      case 'b':
        out.push_back('\b');
        return true;
      case 'f':
        out.push_back('\f');
        return true;
      case 'n':
        out.push_back('\n');
        return true;
      case 'r':
        out.push_back('\r');
        return true;
      case 't':
        out.push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return Fail(esc_start, "invalid escape sequence");
    }
    uint32_t cp = 0;
    if (!ReadHex4(cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail(esc_start, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // A high surrogate is only meaningful as the first half of a pair; passing it through
      // would produce invalid UTF-8 (CESU-8) that downstream consumers may reject.
      if (text_.substr(pos_, 2) != "\\u") {
        return Fail(esc_start, "lone high surrogate in \\u escape");
      }
      pos_ += 2;
      uint32_t low = 0;
      if (!ReadHex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) {
        return Fail(esc_start, "high surrogate not followed by a low surrogate");
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(out, cp);
    return true;
  }

  bool ReadString(std::string& out) {
    ++pos_;  // opening quote
    const size_t n = text_.size();
    const auto* bytes = reinterpret_cast<const unsigned char*>(text_.data());
    while (true) {
      // Copy runs of unescaped ASCII in one append; most strings are nothing else.
      const size_t run_start = pos_;
      while (pos_ < n && IsPlainAscii(bytes[pos_])) ++pos_;
      out.append(text_.data() + run_start, pos_ - run_start);
      if (pos_ >= n) return Fail(pos_, "unterminated string");
      const unsigned char c = bytes[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!ReadEscape(out)) return false;
      } else if (c < 0x20) {
        return Fail(pos_, "unescaped control character in string");
      } else {
        const Utf8Step step = DecodeUtf8(bytes + pos_, n - pos_);
        if (!step.valid) return Fail(pos_, "invalid UTF-8 in string");
        out.append(text_.data() + pos_, step.len);
        pos_ += step.len;
      }
    }
  }

  bool ReadArray(int depth) {
    if (depth > max_depth_) return Fail(pos_, "nesting too deep");
    ++pos_;  // '['
    visitor_.OnBeginArray();
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      visitor_.OnEndArray();
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (!ReadValue(depth)) return false;
      SkipWhitespace();
      if (pos_ >= text_.size()) return Fail(pos_, "unterminated array");
      const char c = text_[pos_++];
      if (c == ']') break;
      if (c != ',') return Fail(pos_ - 1, "expected ',' or ']' in array");
    }
    visitor_.OnEndArray();
    return true;
  }

  bool ReadObject(int depth) {
    if (depth > max_depth_) return Fail(pos_, "nesting too deep");
    ++pos_;  // '{'
    visitor_.OnBeginObject();
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      visitor_.OnEndObject();
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Fail(pos_, "expected a string key");
      scratch_.clear();
      if (!ReadString(scratch_)) return false;
      visitor_.OnKey(scratch_);
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Fail(pos_, "expected ':'");
      ++pos_;
      SkipWhitespace();
      if (!ReadValue(depth)) return false;
      SkipWhitespace();
      if (pos_ >= text_.size()) return Fail(pos_, "unterminated object");
      const char c = text_[pos_++];
      if (c == '}') break;
      if (c != ',') return Fail(pos_ - 1, "expected ',' or '}' in object");
    }
    visitor_.OnEndObject();
    return true;
  }

  std::string_view text_;
  int max_depth_;
  Visitor& visitor_;
  size_t pos_ = 0;
  std::string scratch_;  // the string or key being decoded; visitors may move from it
  std::string error_;
};

// Builds the tree Parse returns. Containers under construction wait on a stack (with the key
// they will be stored under) and move into their parent when they close.
class TreeBuilder : public Visitor {
 public:
  Value Take() { return std::move(root_); }

  void OnNull() override { Add(Value()); }
  void OnBool(bool b) override { Add(Value::Bool(b)); }
  void OnNumber(std::string_view source_text) override {
    Add(Value::Number(std::string(source_text)));
  }
  void OnString(std::string& s) override { Add(Value::String(std::move(s))); }
  void OnBeginArray() override { Open(Value::Array()); }
  void OnEndArray() override { Close(); }
  void OnBeginObject() override { Open(Value::Object()); }
  void OnKey(std::string& key) override { key_ = std::move(key); }
  void OnEndObject() override { Close(); }

 private:
  struct Frame {
    std::string key;  // where the container goes in its parent (if that is an object)
    Value value;
  };

  void Add(Value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return;
    }
    Value& parent = stack_.back().value;
    if (parent.is_array()) {
      parent.items().push_back(std::move(v));
    } else {
      parent.members().emplace_back(std::move(key_), std::move(v));
    }
  }
  void Open(Value container) { stack_.push_back(Frame{std::move(key_), std::move(container)}); }
  void Close() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    key_ = std::move(frame.key);
    Add(std::move(frame.value));
  }

  Value root_;
  std::string key_;
  std::vector<Frame> stack_;
};

// Keeps nothing: Validate.
class NullVisitor : public Visitor {
 public:
  void OnNull() override {}
  void OnBool(bool) override {}
  void OnNumber(std::string_view) override {}
  void OnString(std::string&) override {}
  void OnBeginArray() override {}
  void OnEndArray() override {}
  void OnBeginObject() override {}
  void OnKey(std::string&) override {}
  void OnEndObject() override {}
};

}  // namespace

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.bool_ = b;
  return v;
}

Value Value::Number(std::string source_text) {
  Value v;
  v.kind_ = Kind::kNumber;
  v.str_ = std::move(source_text);
  return v;
}

Value Value::Int(int64_t n) { return Number(std::to_string(n)); }

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.str_ = std::move(s);
  return v;
}

Value Value::Array(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::kArray;
  v.items_ = std::move(items);
  return v;
}

Value Value::Object(std::vector<Member> members) {
  Value v;
  v.kind_ = Kind::kObject;
  v.members_ = std::move(members);
  return v;
}

namespace {
// Number text is JSON grammar, so anything with a fraction or exponent is treated as
// non-integral even when its value is whole (1.0, 1e2): callers asking for an integer want
// one the client actually wrote as an integer.
bool IsIntegralText(const std::string& s) {
  return !s.empty() && s.find_first_of(".eE") == std::string::npos;
}
}  // namespace

std::optional<int64_t> Value::as_int64() const {
  if (kind_ != Kind::kNumber || !IsIntegralText(str_)) return std::nullopt;
  int64_t n = 0;
  const char* end = str_.data() + str_.size();
  auto [ptr, ec] = std::from_chars(str_.data(), end, n);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return n;
}

std::optional<uint64_t> Value::as_uint64() const {
  if (kind_ != Kind::kNumber || !IsIntegralText(str_)) return std::nullopt;
  const char* begin = str_.data();
  const char* end = begin + str_.size();
  if (*begin == '-') {
    // "-0" is a valid JSON spelling of zero; any other negative is out of range.
    for (const char* p = begin + 1; p != end; ++p) {
      if (*p != '0') return std::nullopt;
    }
    return 0;
  }
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(begin, end, n);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return n;
}

std::optional<double> Value::as_double() const {
  if (kind_ != Kind::kNumber || str_.empty()) return std::nullopt;
  // strtod (not from_chars) so out-of-range text still yields +-HUGE_VAL / 0 rather than an
  // error: a number the client sent is a number. JSON never has ',' decimals, and the server
  // never calls setlocale, so the "C" locale's '.' applies.
  char* end = nullptr;
  const double d = std::strtod(str_.c_str(), &end);
  if (end != str_.c_str() + str_.size()) return std::nullopt;
  return d;
}

const Value* Value::Find(std::string_view key) const {
  if (kind_ != Kind::kObject) return nullptr;
  for (const Member& m : members_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

Value& Value::Add(std::string key, Value v) {
  // A default-constructed (null) Value becomes an empty object, so builders can start from
  // `Value v;`.
  if (kind_ == Kind::kNull) kind_ = Kind::kObject;
  members_.emplace_back(std::move(key), std::move(v));
  return members_.back().second;
}

Status Read(std::string_view text, Visitor& visitor, const ParseOptions& options) {
  return Reader(text, options.max_depth, visitor).ReadDocument();
}

Status Validate(std::string_view text, const ParseOptions& options) {
  NullVisitor nothing;
  return Read(text, nothing, options);
}

Result<Value> Parse(std::string_view text, const ParseOptions& options) {
  TreeBuilder builder;
  if (Status s = Read(text, builder, options); !s.ok()) return s;
  return builder.Take();
}

void SerializeTo(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      out.append("null");
      return;
    case Value::Kind::kBool:
      out.append(v.as_bool() ? "true" : "false");
      return;
    case Value::Kind::kNumber:
      out.append(v.str());
      return;
    case Value::Kind::kString:
      AppendQuoted(out, v.str());
      return;
    case Value::Kind::kArray: {
      out.push_back('[');
      bool first = true;
      for (const Value& item : v.items()) {
        if (!first) out.push_back(',');
        first = false;
        SerializeTo(out, item);
      }
      out.push_back(']');
      return;
    }
    case Value::Kind::kObject: {
      out.push_back('{');
      bool first = true;
      for (const Value::Member& m : v.members()) {
        if (!first) out.push_back(',');
        first = false;
        AppendQuoted(out, m.first);
        out.push_back(':');
        SerializeTo(out, m.second);
      }
      out.push_back('}');
      return;
    }
  }
}

std::string Serialize(const Value& v) {
  std::string out;
  out.reserve(64);
  SerializeTo(out, v);
  return out;
}

void AppendQuoted(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const size_t run_start = i;
    while (i < n && IsPlainAscii(bytes[i])) ++i;
    out.append(s.data() + run_start, i - run_start);
    if (i >= n) break;
    const unsigned char c = bytes[i];
    if (c < 0x80) {
      out.push_back('\\');
      switch (c) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '\b':
          out.push_back('b');
          break;
        case '\f':
          out.push_back('f');
          break;
        case '\n':
          out.push_back('n');
          break;
        case '\r':
          out.push_back('r');
          break;
        case '\t':
          out.push_back('t');
          break;
        default: {
          const char esc[] = {'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 0xF]};
          out.append(esc, sizeof(esc));
        }
      }
      ++i;
      continue;
    }
    const Utf8Step step = DecodeUtf8(bytes + i, n - i);
    if (!step.valid) {
      out.append(kReplacementChar, 3);
    } else if (step.len == 3 && c == 0xE2 && bytes[i + 1] == 0x80 &&
               (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9)) {
      // U+2028/U+2029 are legal in JSON but terminate lines in JavaScript source, which
      // breaks clients that embed or eval frames.
      out.append(bytes[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
    } else {
      out.append(s.data() + i, step.len);
    }
    i += step.len;
  }
  out.push_back('"');
}

bool IsValidUtf8(std::string_view s) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Skip ASCII eight bytes at a time; memcpy keeps the load alignment-safe.
    if (n - i >= 8) {
      uint64_t chunk;
      std::memcpy(&chunk, bytes + i, 8);
      if ((chunk & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const Utf8Step step = DecodeUtf8(bytes + i, n - i);
    if (!step.valid) return false;
    i += step.len;
  }
  return true;
}

// ---- CompactWriter ----

void CompactWriter::BeforeValue() {
  if (need_comma_) out_.push_back(',');
  need_comma_ = true;
}

void CompactWriter::OnNull() {
  BeforeValue();
  out_.append("null");
}

void CompactWriter::OnBool(bool b) {
  BeforeValue();
  out_.append(b ? "true" : "false");
}

void CompactWriter::OnNumber(std::string_view source_text) {
  BeforeValue();
  out_.append(source_text);
}

void CompactWriter::OnString(std::string& s) {
  BeforeValue();
  AppendQuoted(out_, s);
}

void CompactWriter::OnBeginArray() {
  BeforeValue();
  out_.push_back('[');
  need_comma_ = false;
}

void CompactWriter::OnEndArray() {
  out_.push_back(']');
  need_comma_ = true;
}

void CompactWriter::OnBeginObject() {
  BeforeValue();
  out_.push_back('{');
  need_comma_ = false;
}

void CompactWriter::OnKey(std::string& key) {
  if (need_comma_) out_.push_back(',');
  AppendQuoted(out_, key);
  out_.push_back(':');
  need_comma_ = false;
}

void CompactWriter::OnEndObject() {
  out_.push_back('}');
  need_comma_ = true;
}

// ---- ExtractMembers ----

namespace {

// Follows the document's depth; while a wanted member of the root object is being read,
// member_ points at its slot and every event inside it is routed by its capture mode.
class MemberExtractor : public Visitor {
 public:
  explicit MemberExtractor(std::span<const MemberSpec> specs) : specs_(specs) {
    result_.members.resize(specs.size());
  }
  Extracted Take() { return std::move(result_); }

  void OnNull() override {
    if (Scalar(Value::Kind::kNull)) member_->value = Value();
    if (writing_) writer_.OnNull();
    EndScalar();
  }
  void OnBool(bool b) override {
    if (Scalar(Value::Kind::kBool)) member_->value = Value::Bool(b);
    if (writing_) writer_.OnBool(b);
    EndScalar();
  }
  void OnNumber(std::string_view source_text) override {
    if (Scalar(Value::Kind::kNumber)) member_->value = Value::Number(std::string(source_text));
    if (writing_) writer_.OnNumber(source_text);
    EndScalar();
  }
  void OnString(std::string& s) override {
    const bool whole = Scalar(Value::Kind::kString);
    if (writing_) writer_.OnString(s);
    if (whole) {
      member_->value = Value::String(std::move(s));
    } else if (collecting_ && depth_ == 2 && member_->only_strings) {
      member_->strings.push_back(std::move(s));
    }
    EndScalar();
  }
  void OnBeginArray() override { Begin(Value::Kind::kArray); }
  void OnBeginObject() override { Begin(Value::Kind::kObject); }
  void OnEndArray() override { End(Value::Kind::kArray); }
  void OnEndObject() override { End(Value::Kind::kObject); }
  void OnKey(std::string& key) override {
    if (depth_ == 1 && result_.root == Value::Kind::kObject) {
      member_ = nullptr;
      for (size_t i = 0; i < specs_.size(); ++i) {
        if (specs_[i].key == key && !result_.members[i].present) {
          member_ = &result_.members[i];
          capture_ = specs_[i].capture;
          break;
        }
      }
    } else if (writing_) {
      writer_.OnKey(key);
    }
  }

 private:
  // A value starts at `depth_`: true when it is a wanted member's whole value (the caller
  // stores it). Items inside a member's array are not (kStrings looks at them separately).
  bool Scalar(Value::Kind kind) {
    if (depth_ == 0) {
      result_.root = kind;
      return false;
    }
    if (member_ == nullptr) return false;
    if (depth_ == 1) {
      StartMember();
      return true;
    }
    if (collecting_ && depth_ == 2 && kind != Value::Kind::kString) member_->only_strings = false;
    return false;
  }

  void StartMember() {
    member_->present = true;
    writing_ = capture_ == Capture::kCompactJson;
    if (writing_) writer_ = CompactWriter();
  }

  // After a scalar: a member whose whole value it was is complete.
  void EndScalar() {
    if (member_ != nullptr && depth_ == 1) FinishMember();
  }

  void FinishMember() {
    if (writing_) member_->json = std::move(writer_.out());
    writing_ = false;
    collecting_ = false;
    member_ = nullptr;
  }

  void Begin(Value::Kind kind) {
    if (depth_ == 0) {
      result_.root = kind;
    } else if (member_ != nullptr && depth_ == 1) {
      StartMember();
      member_->value = kind == Value::Kind::kArray ? Value::Array() : Value::Object();
      collecting_ = capture_ == Capture::kStrings && kind == Value::Kind::kArray;
    } else if (collecting_ && depth_ == 2) {
      member_->only_strings = false;
    }
    if (writing_) {
      if (kind == Value::Kind::kArray) {
        writer_.OnBeginArray();
      } else {
        writer_.OnBeginObject();
      }
    }
    ++depth_;
  }

  void End(Value::Kind kind) {
    --depth_;
    if (writing_) {
      if (kind == Value::Kind::kArray) {
        writer_.OnEndArray();
      } else {
        writer_.OnEndObject();
      }
    }
    if (member_ != nullptr && depth_ == 1) FinishMember();
  }

  std::span<const MemberSpec> specs_;
  Extracted result_;
  int depth_ = 0;
  ExtractedMember* member_ = nullptr;  // the wanted root member being read, if any
  Capture capture_ = Capture::kShallow;
  bool writing_ = false;     // member_ is kCompactJson: events go to writer_
  bool collecting_ = false;  // member_ is kStrings and its value is an array
  CompactWriter writer_;
};

}  // namespace

Result<Extracted> ExtractMembers(std::string_view text, std::span<const MemberSpec> specs,
                                 const ParseOptions& options) {
  MemberExtractor extractor(specs);
  if (Status s = Read(text, extractor, options); !s.ok()) return s;
  return extractor.Take();
}

}  // namespace hubcast::json
