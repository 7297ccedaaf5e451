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

// Recursive descent over the input. Every method returns false after recording the first
// error, so no exceptions are needed and the first failure's offset is the one reported.
class Parser {
 public:
  Parser(std::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  Result<Value> ParseDocument() {
    Value root;
    SkipWhitespace();
    if (!ParseValue(root, 0)) return Status::InvalidArgument(std::move(error_));
    SkipWhitespace();
    if (pos_ != text_.size()) {
      Fail(pos_, "unexpected trailing characters after the value");
      return Status::InvalidArgument(std::move(error_));
    }
    return root;
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

  bool ParseValue(Value& out, int depth) {
    if (pos_ >= text_.size()) return Fail(pos_, "expected a value, found end of input");
    switch (text_[pos_]) {
      case '{':
        return ParseObject(out, depth + 1);
      case '[':
        return ParseArray(out, depth + 1);
      case '"': {
        std::string s;
        if (!ParseString(s)) return false;
        out = Value::String(std::move(s));
        return true;
      }
      case 't':
        return ParseLiteral("true", Value::Bool(true), out);
      case 'f':
        return ParseLiteral("false", Value::Bool(false), out);
      case 'n':
        return ParseLiteral("null", Value::Null(), out);
      default:
        if (text_[pos_] == '-' || IsDigit(text_[pos_])) return ParseNumber(out);
        return Fail(pos_, "expected a value");
    }
  }

  bool ParseLiteral(std::string_view word, Value v, Value& out) {
    if (text_.substr(pos_, word.size()) != word) return Fail(pos_, "invalid literal");
    pos_ += word.size();
    out = std::move(v);
    return true;
  }

  bool ParseNumber(Value& out) {
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
    out = Value::Number(std::string(text_.substr(start, pos_ - start)));
    return true;
  }

  // Reads 4 hex digits at pos_ (just after "\u").
  bool ParseHex4(uint32_t& cp) {
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

  bool ParseEscape(std::string& out) {
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
    if (!ParseHex4(cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail(esc_start, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // A high surrogate is only meaningful as the first half of a pair; passing it through
      // would produce invalid UTF-8 (CESU-8) that downstream consumers may reject.
      if (text_.substr(pos_, 2) != "\\u") {
        return Fail(esc_start, "lone high surrogate in \\u escape");
      }
      pos_ += 2;
      uint32_t low = 0;
      if (!ParseHex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) {
        return Fail(esc_start, "high surrogate not followed by a low surrogate");
      }
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(out, cp);
    return true;
  }

  bool ParseString(std::string& out) {
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
        if (!ParseEscape(out)) return false;
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

  bool ParseArray(Value& out, int depth) {
    if (depth > max_depth_) return Fail(pos_, "nesting too deep");
    ++pos_;  // '['
    std::vector<Value> items;
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      out = Value::Array(std::move(items));
      return true;
    }
    while (true) {
      SkipWhitespace();
      items.emplace_back();
      if (!ParseValue(items.back(), depth)) return false;
      SkipWhitespace();
      if (pos_ >= text_.size()) return Fail(pos_, "unterminated array");
      const char c = text_[pos_++];
      if (c == ']') break;
      if (c != ',') return Fail(pos_ - 1, "expected ',' or ']' in array");
    }
    out = Value::Array(std::move(items));
    return true;
  }

  bool ParseObject(Value& out, int depth) {
    if (depth > max_depth_) return Fail(pos_, "nesting too deep");
    ++pos_;  // '{'
    std::vector<Value::Member> members;
    SkipWhitespace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      out = Value::Object(std::move(members));
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Fail(pos_, "expected a string key");
      // Explicit arguments: under clang, pair's default constructor can be ruled out
      // because Value was incomplete when Member was first named in the header.
      members.emplace_back(std::string(), Value());
      if (!ParseString(members.back().first)) return false;
      SkipWhitespace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Fail(pos_, "expected ':'");
      ++pos_;
      SkipWhitespace();
      if (!ParseValue(members.back().second, depth)) return false;
      SkipWhitespace();
      if (pos_ >= text_.size()) return Fail(pos_, "unterminated object");
      const char c = text_[pos_++];
      if (c == '}') break;
      if (c != ',') return Fail(pos_ - 1, "expected ',' or '}' in object");
    }
    out = Value::Object(std::move(members));
    return true;
  }

  std::string_view text_;
  int max_depth_;
  size_t pos_ = 0;
  std::string error_;
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

Result<Value> Parse(std::string_view text, const ParseOptions& options) {
  return Parser(text, options.max_depth).ParseDocument();
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

}  // namespace hubcast::json
