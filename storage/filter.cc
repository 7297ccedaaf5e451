// OData filter: tokenizer, recursive-descent parser with parse-time type checking, and an
// evaluator over the resulting immutable tree.
//
// Decisions beyond the header:
// - `not` is a unary operator binding tighter than comparisons (PROTOCOL.md precedence), so
//   `not a eq b` is `(not a) eq b`; the header's grammar line is read together with its
//   "not length(userId)" example.
// - Comparisons do not chain: `a eq b eq c` is rejected (the header's cmp takes one operator).
// - Boolean logic is three-valued (Kleene): a predicate function on a null argument is null,
//   `not null` is null, `null and false` is false, `null or true` is true; a filter matches
//   only when the whole expression is true. eq/ne/ordering always give true/false.
// - length/substring/indexof count Unicode code points of the UTF-8 text (closest to the
//   .NET service's UTF-16 indexing for BMP characters); substring clamps out-of-range
//   indexes like the OData "NoThrow" canonical functions instead of failing.
// - tolower/toupper map ASCII letters only and trim strips ASCII whitespace, so evaluation
//   never depends on the process locale.
// - Error positions are 0-based byte offsets into the filter text (as Microsoft.OData does).
#include "storage/filter.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace hubcast::storage {
namespace {

constexpr int kMaxClauses = 100;
constexpr int kMaxDepth = 64;
// Bounds the parse tree (at most one node per token) whatever the filter's length: a 1 MiB
// filter is refused after reading this many tokens instead of growing a tree of its size.
constexpr size_t kMaxTokens = 10000;
// Long literals are cut in error messages so a hostile filter cannot bloat the 400 body.
constexpr size_t kMaxQuotedInError = 40;

// ---------------------------------------------------------------------------------------
// Expression tree

// Static type of an expression; kNull is the type of the `null` literal only (identifiers
// and functions can still produce null at run time).
enum class Type { kNull, kBool, kInt, kString, kCollection };

const char* TypeName(Type t) {
  switch (t) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "boolean";
    case Type::kInt:
      return "integer";
    case Type::kString:
      return "string";
    case Type::kCollection:
      return "collection";
  }
  return "unknown";
}

// "a string", "an integer": for readable error messages.
std::string Described(Type t) {
  return (t == Type::kInt ? "an " : "a ") + std::string(TypeName(t));
}

enum class NodeKind {
  kLiteral,
  kUserId,
  kConnectionId,
  kGroups,
  kProtocol,
  kNot,
  kAnd,
  kOr,
  kCompare,
  kInList,        // children[0] in (children[1..]) where the rest are literals
  kInCollection,  // children[0] in children[1]
  kCall,
};

enum class CmpOp { kEq, kNe, kGt, kGe, kLt, kLe };

enum class Func {
  kToLower,
  kToUpper,
  kTrim,
  kSubstring,
  kEndsWith,
  kStartsWith,
  kContains,
  kConcat,
  kIndexOf,
  kLength,
};

struct FuncInfo {
  std::string_view name;  // lower case
  Func func;
  size_t min_args;
  size_t max_args;
  Type result;
};

constexpr FuncInfo kFunctions[] = {
    {"tolower", Func::kToLower, 1, 1, Type::kString},
    {"toupper", Func::kToUpper, 1, 1, Type::kString},
    {"trim", Func::kTrim, 1, 1, Type::kString},
    {"substring", Func::kSubstring, 2, 3, Type::kString},
    {"endswith", Func::kEndsWith, 2, 2, Type::kBool},
    {"startswith", Func::kStartsWith, 2, 2, Type::kBool},
    {"contains", Func::kContains, 2, 2, Type::kBool},
    {"concat", Func::kConcat, 2, 2, Type::kString},
    {"indexof", Func::kIndexOf, 2, 2, Type::kInt},
    {"length", Func::kLength, 1, 1, Type::kInt},
};

const FuncInfo* FindFunction(std::string_view lower_name) {
  for (const FuncInfo& f : kFunctions) {
    if (f.name == lower_name) return &f;
  }
  return nullptr;
}

std::optional<CmpOp> FindComparison(std::string_view lower_word) {
  if (lower_word == "eq") return CmpOp::kEq;
  if (lower_word == "ne") return CmpOp::kNe;
  if (lower_word == "gt") return CmpOp::kGt;
  if (lower_word == "ge") return CmpOp::kGe;
  if (lower_word == "lt") return CmpOp::kLt;
  if (lower_word == "le") return CmpOp::kLe;
  return std::nullopt;
}

std::optional<NodeKind> FindIdentifier(std::string_view lower_word) {
  if (lower_word == "userid") return NodeKind::kUserId;
  if (lower_word == "connectionid") return NodeKind::kConnectionId;
  if (lower_word == "groups") return NodeKind::kGroups;
  if (lower_word == "protocol") return NodeKind::kProtocol;
  return std::nullopt;
}

bool IsOperatorKeyword(std::string_view lower_word) {
  return lower_word == "and" || lower_word == "or" || lower_word == "not" || lower_word == "in" ||
         FindComparison(lower_word).has_value();
}

struct Node {
  NodeKind kind = NodeKind::kLiteral;
  Type type = Type::kNull;
  size_t pos = 0;  // where the expression starts, for error messages
  bool bool_value = false;
  int64_t int_value = 0;
  std::string string_value;
  CmpOp op = CmpOp::kEq;
  Func func = Func::kLength;
  std::vector<std::unique_ptr<Node>> children;
};

std::unique_ptr<Node> MakeNode(NodeKind kind, Type type, size_t pos) {
  auto node = std::make_unique<Node>();
  node->kind = kind;
  node->type = type;
  node->pos = pos;
  return node;
}

// ---------------------------------------------------------------------------------------
// Tokenizer

enum class Tok { kLParen, kRParen, kComma, kString, kInt, kWord, kEnd };

struct Token {
  Tok kind = Tok::kEnd;
  size_t pos = 0;
  std::string_view raw;  // the source text of the token
  std::string text;      // kString: unescaped value; kWord: lower-cased word
  int64_t int_value = 0;
};

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsWordChar(char c) { return IsAlpha(c) || IsDigit(c) || c == '_'; }
char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

std::string Quote(std::string_view s) {
  if (s.size() <= kMaxQuotedInError) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, kMaxQuotedInError)) + "...'";
}

std::string Describe(const Token& t) {
  switch (t.kind) {
    case Tok::kLParen:
      return "'('";
    case Tok::kRParen:
      return "')'";
    case Tok::kComma:
      return "','";
    case Tok::kString:
      return "string literal " + Quote(t.text);
    case Tok::kInt:
      return "integer " + std::string(t.raw);
    case Tok::kWord:
      return Quote(t.raw);
    case Tok::kEnd:
      return "the end of the filter";
  }
  return "a token";
}

bool IsLiteralToken(const Token& t) {
  return t.kind == Tok::kString || t.kind == Tok::kInt ||
         (t.kind == Tok::kWord && (t.text == "true" || t.text == "false" || t.text == "null"));
}

Status FilterError(size_t pos, const std::string& what) {
  return Status::InvalidArgument("Invalid filter at position " + std::to_string(pos) + ": " + what +
                                 ".");
}

// Produces one token at a time, so the parser holds two tokens at most, never a list as
// long as the input.
class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  // The next token (kEnd at the end, again and again); false after a lexical error, which
  // error() then describes.
  bool Next(Token& tok) {
    const size_t n = text_.size();
    size_t i = pos_;
    while (i < n && IsSpace(text_[i])) ++i;
    tok = Token();
    tok.pos = i;
    if (i >= n) {
      pos_ = i;
      return true;
    }
    const char c = text_[i];
    if (c == '(' || c == ')' || c == ',') {
      tok.kind = c == '(' ? Tok::kLParen : (c == ')' ? Tok::kRParen : Tok::kComma);
      ++i;
    } else if (c == '\'') {
      tok.kind = Tok::kString;
      bool closed = false;
      for (++i; i < n; ++i) {
        if (text_[i] != '\'') {
          tok.text.push_back(text_[i]);
        } else if (i + 1 < n && text_[i + 1] == '\'') {
          tok.text.push_back('\'');  // '' is an escaped quote
          ++i;
        } else {
          closed = true;
          ++i;
          break;
        }
      }
      if (!closed) return Fail(tok.pos, "unterminated string literal");
    } else if (IsDigit(c) || ((c == '+' || c == '-') && i + 1 < n && IsDigit(text_[i + 1]))) {
      tok.kind = Tok::kInt;
      size_t end = i + 1;
      while (end < n && IsDigit(text_[end])) ++end;
      if (end < n && (IsWordChar(text_[end]) || text_[end] == '.')) {
        // "1.5", "12ab": reject here rather than as two confusing tokens.
        while (end < n && (IsWordChar(text_[end]) || text_[end] == '.')) ++end;
        return Fail(i, "invalid number " + Quote(text_.substr(i, end - i)) +
                           " (only integers are supported)");
      }
      // from_chars accepts '-' but not '+'.
      const size_t digits_begin = c == '+' ? i + 1 : i;
      auto [ptr, ec] =
          std::from_chars(text_.data() + digits_begin, text_.data() + end, tok.int_value);
      if (ec != std::errc() || ptr != text_.data() + end) {
        return Fail(
            i, "integer " + std::string(text_.substr(i, end - i)) + " is outside the 64-bit range");
      }
      i = end;
    } else if (IsAlpha(c) || c == '_') {
      tok.kind = Tok::kWord;
      size_t end = i + 1;
      while (end < n && IsWordChar(text_[end])) ++end;
      tok.text.reserve(end - i);
      for (size_t k = i; k < end; ++k) tok.text.push_back(AsciiLower(text_[k]));
      i = end;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      if (byte >= 0x20 && byte < 0x7f)
        return Fail(i, std::string("unexpected character '") + c + "'");
      static constexpr char kHex[] = "0123456789abcdef";
      return Fail(i, std::string("unexpected byte 0x") + kHex[byte >> 4] + kHex[byte & 0xf]);
    }
    tok.raw = text_.substr(tok.pos, i - tok.pos);
    pos_ = i;
    return true;
  }

  const Status& error() const { return error_; }

 private:
  bool Fail(size_t pos, const std::string& what) {
    error_ = FilterError(pos, what);
    pos_ = text_.size();
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
  Status error_;
};

// ---------------------------------------------------------------------------------------
// Parser: one instance per Parse call; the first error wins and aborts the descent.

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), lexer_(text) {}

  Status Run(std::unique_ptr<Node>* root) {
    // Lexical errors anywhere are reported before grammar errors, so the text is scanned once
    // (keeping nothing) before the parse reads it again token by token.
    if (!Scan()) return status_;
    if (Peek().kind == Tok::kEnd) {
      return Status::InvalidArgument("Invalid filter at position 0: the filter is empty.");
    }
    std::unique_ptr<Node> expr = ParseOr();
    if (!expr || !status_.ok()) return status_;
    if (Peek().kind != Tok::kEnd) {
      Fail(Peek().pos, "unexpected " + Describe(Peek()) + " after a complete expression");
    } else if (expr->type != Type::kBool) {
      Fail(expr->pos, "a filter must be a boolean expression, but this is " +
                          Described(expr->type) + " expression");
    }
    if (!status_.ok()) return status_;  // also the token limit, which ends the input early
    *root = std::move(expr);
    return Status::Ok();
  }

 private:
  // Counts one level of nesting (parenthesis, function call, `not`) for the lifetime of the
  // guard, so hostile input cannot overflow the recursive descent or the evaluator's stack.
  class DepthGuard {
   public:
    DepthGuard(Parser& parser, size_t pos) : parser_(parser) {
      ok_ = ++parser_.depth_ <= kMaxDepth;
      if (!ok_) {
        parser_.Fail(pos,
                     "expressions are nested deeper than " + std::to_string(kMaxDepth) + " levels");
      }
    }
    ~DepthGuard() { --parser_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    bool ok() const { return ok_; }

   private:
    Parser& parser_;
    bool ok_;
  };

  std::nullptr_t Fail(size_t pos, const std::string& what) {
    if (status_.ok()) status_ = FilterError(pos, what);
    return nullptr;
  }

  bool Scan() {
    Lexer scan(text_);
    Token tok;
    do {
      if (!scan.Next(tok)) {
        status_ = scan.error();
        return false;
      }
    } while (tok.kind != Tok::kEnd);
    return true;
  }

  // The token `ahead` positions on (0 or 1). Past the token limit, or after an error, the
  // parser sees kEnd: every rule then fails or finishes quickly, and status_ holds the error.
  const Token& Peek(size_t ahead = 0) {
    while (lookahead_count_ <= ahead) {
      Token& slot = lookahead_[(lookahead_first_ + lookahead_count_) % 2];
      if (!status_.ok() || !lexer_.Next(slot)) {
        if (status_.ok()) status_ = lexer_.error();
        slot = Token();
        slot.pos = text_.size();
      } else if (slot.kind != Tok::kEnd && ++tokens_read_ > kMaxTokens) {
        Fail(slot.pos, "the filter has more than " + std::to_string(kMaxTokens) +
                           " tokens (names, literals, operators and punctuation)");
        slot = Token();
        slot.pos = text_.size();
      }
      ++lookahead_count_;
    }
    return lookahead_[(lookahead_first_ + ahead) % 2];
  }
  void Advance() {
    Peek();
    lookahead_first_ = (lookahead_first_ + 1) % 2;
    --lookahead_count_;
  }
  bool AtWord(std::string_view lower) { return Peek().kind == Tok::kWord && Peek().text == lower; }

  bool CountClause(size_t pos) {
    if (++clauses_ <= kMaxClauses) return true;
    Fail(pos, "the filter has more than " + std::to_string(kMaxClauses) +
                  " clauses (comparisons and predicate function calls)");
    return false;
  }

  bool RequireBool(const Node& operand, std::string_view op) {
    if (operand.type == Type::kBool) return true;
    Fail(operand.pos, "'" + std::string(op) + "' needs boolean operands, but this operand is " +
                          Described(operand.type));
    return false;
  }

  // or := and ("or" and)*    and := cmp ("and" cmp)*
  // Both build one n-ary node per chain so long chains stay shallow for the evaluator.
  std::unique_ptr<Node> ParseOr() { return ParseChain(/*is_or=*/true); }

  std::unique_ptr<Node> ParseChain(bool is_or) {
    const std::string_view keyword = is_or ? "or" : "and";
    std::unique_ptr<Node> first = is_or ? ParseChain(false) : ParseComparison();
    if (!first) return nullptr;
    if (!AtWord(keyword)) return first;
    if (!RequireBool(*first, keyword)) return nullptr;
    const size_t pos = first->pos;
    std::unique_ptr<Node> chain =
        MakeNode(is_or ? NodeKind::kOr : NodeKind::kAnd, Type::kBool, pos);
    chain->children.push_back(std::move(first));
    while (AtWord(keyword)) {
      Advance();
      std::unique_ptr<Node> operand = is_or ? ParseChain(false) : ParseComparison();
      if (!operand) return nullptr;
      if (!RequireBool(*operand, keyword)) return nullptr;
      chain->children.push_back(std::move(operand));
    }
    return chain;
  }

  // cmp := unary [cmp-op unary | "in" (list | operand)]
  std::unique_ptr<Node> ParseComparison() {
    std::unique_ptr<Node> lhs = ParseUnary();
    if (!lhs) return nullptr;
    if (Peek().kind != Tok::kWord) return lhs;
    if (Peek().text == "in") return ParseIn(std::move(lhs));
    const std::optional<CmpOp> op = FindComparison(Peek().text);
    if (!op) return lhs;
    const Token op_token = Peek();  // a copy: Advance() reuses the slot
    Advance();
    std::unique_ptr<Node> rhs = ParseUnary();
    if (!rhs) return nullptr;
    if (!CheckComparable(*op, op_token, *lhs, *rhs)) return nullptr;
    if (!CountClause(op_token.pos)) return nullptr;
    std::unique_ptr<Node> node = MakeNode(NodeKind::kCompare, Type::kBool, lhs->pos);
    node->op = *op;
    node->children.push_back(std::move(lhs));
    node->children.push_back(std::move(rhs));
    return node;
  }

  bool CheckComparable(CmpOp op, const Token& op_token, const Node& lhs, const Node& rhs) {
    const std::string op_name = "'" + op_token.text + "'";
    if (lhs.type == Type::kCollection || rhs.type == Type::kCollection) {
      Fail(op_token.pos, "a collection cannot be compared with " + op_name +
                             "; use \"'value' in groups\" to test membership");
      return false;
    }
    const bool ordering = op != CmpOp::kEq && op != CmpOp::kNe;
    if (ordering && (lhs.type == Type::kBool || rhs.type == Type::kBool)) {
      Fail(op_token.pos, "booleans cannot be ordered with " + op_name);
      return false;
    }
    if (lhs.type != rhs.type && lhs.type != Type::kNull && rhs.type != Type::kNull) {
      Fail(op_token.pos, "cannot compare " + Described(lhs.type) + " with " + Described(rhs.type) +
                             " using " + op_name);
      return false;
    }
    return true;
  }

  std::unique_ptr<Node> ParseIn(std::unique_ptr<Node> lhs) {
    const size_t in_pos = Peek().pos;
    Advance();
    if (!CountClause(in_pos)) return nullptr;
    // A '(' followed by a literal starts a literal list; anything else after `in` is an
    // operand that must be a collection (e.g. `groups` or `(groups)`).
    if (Peek().kind == Tok::kLParen && IsLiteralToken(Peek(1))) {
      if (lhs->type == Type::kCollection) {
        Fail(lhs->pos, "a collection cannot be the left operand of 'in'");
        return nullptr;
      }
      std::unique_ptr<Node> node = MakeNode(NodeKind::kInList, Type::kBool, lhs->pos);
      const Type lhs_type = lhs->type;
      node->children.push_back(std::move(lhs));
      Advance();  // '('
      while (true) {
        const Token item = Peek();
        if (!IsLiteralToken(item)) {
          return Fail(item.pos, "expected a literal in the 'in' list but found " + Describe(item));
        }
        std::unique_ptr<Node> literal = MakeLiteral(item);
        Advance();
        if (lhs_type != Type::kNull && literal->type != Type::kNull && literal->type != lhs_type) {
          return Fail(item.pos, "'in' list item is " + Described(literal->type) +
                                    " but the left operand is " + Described(lhs_type));
        }
        node->children.push_back(std::move(literal));
        if (Peek().kind == Tok::kComma) {
          Advance();
        } else if (Peek().kind == Tok::kRParen) {
          Advance();
          return node;
        } else {
          return Fail(Peek().pos,
                      "expected ',' or ')' in the 'in' list but found " + Describe(Peek()));
        }
      }
    }
    std::unique_ptr<Node> rhs = ParseOperand();
    if (!rhs) return nullptr;
    if (rhs->type != Type::kCollection) {
      return Fail(rhs->pos,
                  "the right operand of 'in' must be a collection (groups) or a "
                  "parenthesised list of literals, not " +
                      Described(rhs->type));
    }
    if (lhs->type != Type::kString && lhs->type != Type::kNull) {
      return Fail(lhs->pos,
                  "only a string can be a member of a collection, not " + Described(lhs->type));
    }
    std::unique_ptr<Node> node = MakeNode(NodeKind::kInCollection, Type::kBool, lhs->pos);
    node->children.push_back(std::move(lhs));
    node->children.push_back(std::move(rhs));
    return node;
  }

  // unary := "not" unary | operand. `not` binds tighter than comparisons, so its operand
  // must itself be boolean: `not length(userId) gt 5` is a type error.
  std::unique_ptr<Node> ParseUnary() {
    if (!AtWord("not")) return ParseOperand();
    const size_t pos = Peek().pos;
    Advance();
    DepthGuard guard(*this, pos);
    if (!guard.ok()) return nullptr;
    std::unique_ptr<Node> operand = ParseUnary();
    if (!operand) return nullptr;
    if (operand->type != Type::kBool) {
      return Fail(pos, "'not' needs a boolean operand, but it is applied to " +
                           Described(operand->type) +
                           " ('not' binds tighter than comparisons; add parentheses)");
    }
    std::unique_ptr<Node> node = MakeNode(NodeKind::kNot, Type::kBool, pos);
    node->children.push_back(std::move(operand));
    return node;
  }

  // operand := "(" expr ")" | literal | identifier | function "(" args ")"
  std::unique_ptr<Node> ParseOperand() {
    const Token tok = Peek();
    switch (tok.kind) {
      case Tok::kLParen: {
        DepthGuard guard(*this, tok.pos);
        if (!guard.ok()) return nullptr;
        Advance();
        std::unique_ptr<Node> inner = ParseOr();
        if (!inner) return nullptr;
        if (Peek().kind != Tok::kRParen) {
          return Fail(Peek().pos, "expected ')' to close the '(' at position " +
                                      std::to_string(tok.pos) + " but found " + Describe(Peek()));
        }
        Advance();
        return inner;
      }
      case Tok::kString:
      case Tok::kInt:
        Advance();
        return MakeLiteral(tok);
      case Tok::kWord:
        break;
      default:
        return Fail(tok.pos, "expected an operand but found " + Describe(tok));
    }
    if (IsLiteralToken(tok)) {
      Advance();
      return MakeLiteral(tok);
    }
    if (std::optional<NodeKind> id = FindIdentifier(tok.text)) {
      Advance();
      return MakeNode(*id, *id == NodeKind::kGroups ? Type::kCollection : Type::kString, tok.pos);
    }
    if (const FuncInfo* fn = FindFunction(tok.text)) return ParseCall(*fn);
    if (IsOperatorKeyword(tok.text)) {
      return Fail(tok.pos, "expected an operand but found the operator " + Describe(tok));
    }
    if (Peek(1).kind == Tok::kLParen) {
      return Fail(tok.pos, "unknown function " + Quote(tok.raw));
    }
    return Fail(tok.pos, "unknown identifier " + Quote(tok.raw) +
                             " (expected userId, connectionId, groups or protocol)");
  }

  std::unique_ptr<Node> ParseCall(const FuncInfo& fn) {
    const size_t pos = Peek().pos;
    const std::string name(fn.name);
    Advance();
    if (Peek().kind != Tok::kLParen) {
      return Fail(Peek().pos,
                  "expected '(' after the function '" + name + "' but found " + Describe(Peek()));
    }
    DepthGuard guard(*this, Peek().pos);
    if (!guard.ok()) return nullptr;
    Advance();
    std::unique_ptr<Node> node = MakeNode(NodeKind::kCall, fn.result, pos);
    node->func = fn.func;
    size_t count = 0;
    if (Peek().kind != Tok::kRParen) {
      while (true) {
        std::unique_ptr<Node> arg = ParseOr();
        if (!arg) return nullptr;
        // Surplus arguments are only counted (the error below says how many there were), so
        // a call with a million arguments holds no more than one of them.
        if (++count <= fn.max_args) node->children.push_back(std::move(arg));
        if (Peek().kind == Tok::kComma) {
          Advance();
        } else if (Peek().kind == Tok::kRParen) {
          break;
        } else {
          return Fail(Peek().pos, "expected ',' or ')' in the arguments of '" + name +
                                      "' but found " + Describe(Peek()));
        }
      }
    }
    Advance();  // ')'
    if (count < fn.min_args || count > fn.max_args) {
      std::string expected = std::to_string(fn.min_args);
      if (fn.max_args != fn.min_args) expected += " or " + std::to_string(fn.max_args);
      return Fail(pos, "the function '" + name + "' takes " + expected + " argument" +
                           (fn.max_args == 1 ? "" : "s") + " but was given " +
                           std::to_string(count));
    }
    for (size_t k = 0; k < count; ++k) {
      const Type t = node->children[k]->type;
      const char* expected = nullptr;
      if (fn.func == Func::kLength) {
        if (t != Type::kString && t != Type::kNull && t != Type::kCollection) {
          expected = "a string or a collection";
        }
      } else if (fn.func == Func::kSubstring && k > 0) {
        if (t != Type::kInt && t != Type::kNull) expected = "an integer";
      } else if (t != Type::kString && t != Type::kNull) {
        expected = "a string";
      }
      if (expected != nullptr) {
        return Fail(node->children[k]->pos, "argument " + std::to_string(k + 1) + " of '" + name +
                                                "' must be " + expected + ", not " + Described(t));
      }
    }
    if (fn.result == Type::kBool && !CountClause(pos)) return nullptr;
    return node;
  }

  static std::unique_ptr<Node> MakeLiteral(const Token& tok) {
    std::unique_ptr<Node> node = MakeNode(NodeKind::kLiteral, Type::kNull, tok.pos);
    if (tok.kind == Tok::kString) {
      node->type = Type::kString;
      node->string_value = tok.text;
    } else if (tok.kind == Tok::kInt) {
      node->type = Type::kInt;
      node->int_value = tok.int_value;
    } else if (tok.text == "true" || tok.text == "false") {
      node->type = Type::kBool;
      node->bool_value = tok.text == "true";
    }
    return node;  // otherwise `null`
  }

  std::string_view text_;
  Lexer lexer_;
  Token lookahead_[2];  // a ring of lookahead_count_ tokens from lookahead_first_
  size_t lookahead_first_ = 0;
  size_t lookahead_count_ = 0;
  size_t tokens_read_ = 0;
  int depth_ = 0;
  int clauses_ = 0;
  Status status_;
};

// ---------------------------------------------------------------------------------------
// Evaluation. Runs per connection per message, so values borrow from the tree and the
// subject (string_view) and own a string only when a function had to build a new one.

enum class Tri { kFalse, kTrue, kNull };

Tri ToTri(bool b) { return b ? Tri::kTrue : Tri::kFalse; }

struct Value {
  Type type = Type::kNull;  // kNull: the value is null
  bool boolean = false;
  int64_t integer = 0;
  std::string_view view;  // the string unless is_owned
  std::string owned;      // the string when a function produced new text
  bool is_owned = false;
  // The std::string the view covers entirely, if any: lets `x in groups` look the string up
  // in the std::set without building a temporary key.
  const std::string* backing = nullptr;
  const std::set<std::string>* collection = nullptr;  // nullptr: empty

  std::string_view str() const { return is_owned ? std::string_view(owned) : view; }
};

Value NullValue() { return Value(); }

Value BoolValue(bool b) {
  Value v;
  v.type = Type::kBool;
  v.boolean = b;
  return v;
}

Value IntValue(int64_t i) {
  Value v;
  v.type = Type::kInt;
  v.integer = i;
  return v;
}

Value StringValue(std::string_view s, const std::string* backing) {
  Value v;
  v.type = Type::kString;
  v.view = s;
  v.backing = backing;
  return v;
}

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

int64_t CodePointCount(std::string_view s) {
  int64_t count = 0;
  for (char c : s) count += IsContinuationByte(c) ? 0 : 1;
  return count;
}

// Byte offset of code point `index` (0-based); s.size() when index is past the end.
size_t ByteOffsetOfCodePoint(std::string_view s, int64_t index) {
  if (index <= 0) return 0;
  int64_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsContinuationByte(s[i])) continue;
    if (seen == index) return i;
    ++seen;
  }
  return s.size();
}

// Narrows a string value to [pos, pos + len) bytes without copying borrowed text.
void Slice(Value& v, size_t pos, size_t len) {
  if (pos == 0 && len == v.str().size()) return;
  if (v.is_owned) {
    v.owned.erase(pos + len);
    v.owned.erase(0, pos);
  } else {
    v.view = v.view.substr(pos, len);
  }
  v.backing = nullptr;
}

Tri EvalBool(const Node& node, const FilterSubject& subject);

Value EvalValue(const Node& node, const FilterSubject& subject);

bool ValuesEqual(const Value& a, const Value& b) {
  if (a.type == Type::kNull || b.type == Type::kNull) return a.type == b.type;
  if (a.type != b.type) return false;  // excluded by the type checker; be safe anyway
  switch (a.type) {
    case Type::kBool:
      return a.boolean == b.boolean;
    case Type::kInt:
      return a.integer == b.integer;
    case Type::kString:
      return a.str() == b.str();
    default:
      return false;
  }
}

bool EvalCompare(const Node& node, const FilterSubject& subject) {
  const Value a = EvalValue(*node.children[0], subject);
  const Value b = EvalValue(*node.children[1], subject);
  if (node.op == CmpOp::kEq) return ValuesEqual(a, b);
  if (node.op == CmpOp::kNe) return !ValuesEqual(a, b);
  if (a.type == Type::kNull || b.type == Type::kNull || a.type != b.type) return false;
  int order = 0;
  if (a.type == Type::kInt) {
    order = a.integer < b.integer ? -1 : (a.integer > b.integer ? 1 : 0);
  } else if (a.type == Type::kString) {
    // char_traits<char> compares as unsigned char: ordinal byte order.
    order = a.str().compare(b.str());
  } else {
    return false;
  }
  switch (node.op) {
    case CmpOp::kGt:
      return order > 0;
    case CmpOp::kGe:
      return order >= 0;
    case CmpOp::kLt:
      return order < 0;
    case CmpOp::kLe:
      return order <= 0;
    default:
      return false;
  }
}

bool EvalInCollection(const Node& node, const FilterSubject& subject) {
  const Value item = EvalValue(*node.children[0], subject);
  const Value coll = EvalValue(*node.children[1], subject);
  if (item.type != Type::kString || coll.collection == nullptr) return false;
  if (item.backing != nullptr) return coll.collection->count(*item.backing) > 0;
  if (item.is_owned) return coll.collection->count(item.owned) > 0;
  // std::set<std::string> has no heterogeneous lookup; a short key stays in SSO storage.
  return coll.collection->count(std::string(item.view)) > 0;
}

Tri EvalPredicateCall(const Node& node, const FilterSubject& subject) {
  const Value s = EvalValue(*node.children[0], subject);
  if (s.type == Type::kNull) return Tri::kNull;
  const Value t = EvalValue(*node.children[1], subject);
  if (t.type == Type::kNull) return Tri::kNull;
  switch (node.func) {
    case Func::kStartsWith:
      return ToTri(s.str().starts_with(t.str()));
    case Func::kEndsWith:
      return ToTri(s.str().ends_with(t.str()));
    case Func::kContains:
      return ToTri(s.str().find(t.str()) != std::string_view::npos);
    default:
      return Tri::kNull;
  }
}

Value EvalCaseMapping(const Node& node, const FilterSubject& subject) {
  Value v = EvalValue(*node.children[0], subject);
  if (v.type == Type::kNull) return v;
  const bool upper = node.func == Func::kToUpper;
  auto changes = [upper](char c) {
    return upper ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z');
  };
  const std::string_view s = v.str();
  if (std::none_of(s.begin(), s.end(), changes)) return v;  // common case: no copy
  if (!v.is_owned) {
    v.owned.assign(s);
    v.is_owned = true;
  }
  v.backing = nullptr;
  for (char& c : v.owned) c = upper ? AsciiUpper(c) : AsciiLower(c);
  return v;
}

Value EvalStringCall(const Node& node, const FilterSubject& subject) {
  switch (node.func) {
    case Func::kToLower:
    case Func::kToUpper:
      return EvalCaseMapping(node, subject);
    case Func::kTrim: {
      Value v = EvalValue(*node.children[0], subject);
      if (v.type == Type::kNull) return v;
      const std::string_view s = v.str();
      size_t begin = 0;
      size_t end = s.size();
      while (begin < end && IsSpace(s[begin])) ++begin;
      while (end > begin && IsSpace(s[end - 1])) --end;
      Slice(v, begin, end - begin);
      return v;
    }
    case Func::kSubstring: {
      Value v = EvalValue(*node.children[0], subject);
      const Value start = EvalValue(*node.children[1], subject);
      if (v.type == Type::kNull || start.type == Type::kNull) return NullValue();
      const std::string_view s = v.str();
      const int64_t total = CodePointCount(s);
      const int64_t from = std::clamp<int64_t>(start.integer, 0, total);
      int64_t count = total - from;
      if (node.children.size() == 3) {
        const Value length = EvalValue(*node.children[2], subject);
        if (length.type == Type::kNull) return NullValue();
        count = std::clamp<int64_t>(length.integer, 0, count);
      }
      const size_t begin = ByteOffsetOfCodePoint(s, from);
      const size_t end = ByteOffsetOfCodePoint(s, from + count);
      Slice(v, begin, end - begin);
      return v;
    }
    case Func::kConcat: {
      Value a = EvalValue(*node.children[0], subject);
      if (a.type == Type::kNull) return a;
      const Value b = EvalValue(*node.children[1], subject);
      if (b.type == Type::kNull) return NullValue();
      if (!a.is_owned) {
        a.owned.reserve(a.view.size() + b.str().size());
        a.owned.assign(a.view);
        a.is_owned = true;
      }
      a.owned.append(b.str());
      a.backing = nullptr;
      return a;
    }
    case Func::kIndexOf: {
      const Value s = EvalValue(*node.children[0], subject);
      if (s.type == Type::kNull) return NullValue();
      const Value t = EvalValue(*node.children[1], subject);
      if (t.type == Type::kNull) return NullValue();
      const size_t at = s.str().find(t.str());
      if (at == std::string_view::npos) return IntValue(-1);
      return IntValue(CodePointCount(s.str().substr(0, at)));
    }
    case Func::kLength: {
      const Value v = EvalValue(*node.children[0], subject);
      if (v.type == Type::kCollection) {
        return IntValue(v.collection == nullptr ? 0 : static_cast<int64_t>(v.collection->size()));
      }
      if (v.type == Type::kNull) return v;
      return IntValue(CodePointCount(v.str()));
    }
    default:
      return NullValue();
  }
}

Value EvalValue(const Node& node, const FilterSubject& subject) {
  switch (node.kind) {
    case NodeKind::kLiteral:
      switch (node.type) {
        case Type::kBool:
          return BoolValue(node.bool_value);
        case Type::kInt:
          return IntValue(node.int_value);
        case Type::kString:
          return StringValue(node.string_value, &node.string_value);
        default:
          return NullValue();
      }
    case NodeKind::kUserId:
      if (subject.user_id == nullptr) return NullValue();
      return StringValue(*subject.user_id, subject.user_id);
    case NodeKind::kConnectionId:
      return StringValue(subject.connection_id, nullptr);
    case NodeKind::kProtocol:
      return StringValue(subject.protocol, nullptr);
    case NodeKind::kGroups: {
      Value v;
      v.type = Type::kCollection;
      v.collection = subject.groups;
      return v;
    }
    case NodeKind::kCall:
      if (node.type != Type::kBool) return EvalStringCall(node, subject);
      break;
    default:
      break;
  }
  // Boolean-typed expression used as a value, e.g. `startswith(userId, 'a') eq true`.
  switch (EvalBool(node, subject)) {
    case Tri::kTrue:
      return BoolValue(true);
    case Tri::kFalse:
      return BoolValue(false);
    case Tri::kNull:
      break;
  }
  return NullValue();
}

Tri EvalBool(const Node& node, const FilterSubject& subject) {
  switch (node.kind) {
    case NodeKind::kLiteral:
      return ToTri(node.bool_value);
    case NodeKind::kNot:
      switch (EvalBool(*node.children[0], subject)) {
        case Tri::kTrue:
          return Tri::kFalse;
        case Tri::kFalse:
          return Tri::kTrue;
        case Tri::kNull:
          return Tri::kNull;
      }
      return Tri::kNull;
    case NodeKind::kAnd: {
      Tri result = Tri::kTrue;
      for (const auto& child : node.children) {
        const Tri t = EvalBool(*child, subject);
        if (t == Tri::kFalse) return Tri::kFalse;
        if (t == Tri::kNull) result = Tri::kNull;
      }
      return result;
    }
    case NodeKind::kOr: {
      Tri result = Tri::kFalse;
      for (const auto& child : node.children) {
        const Tri t = EvalBool(*child, subject);
        if (t == Tri::kTrue) return Tri::kTrue;
        if (t == Tri::kNull) result = Tri::kNull;
      }
      return result;
    }
    case NodeKind::kCompare:
      return ToTri(EvalCompare(node, subject));
    case NodeKind::kInList: {
      const Value item = EvalValue(*node.children[0], subject);
      for (size_t k = 1; k < node.children.size(); ++k) {
        if (ValuesEqual(item, EvalValue(*node.children[k], subject))) return Tri::kTrue;
      }
      return Tri::kFalse;
    }
    case NodeKind::kInCollection:
      return ToTri(EvalInCollection(node, subject));
    case NodeKind::kCall:
      return EvalPredicateCall(node, subject);
    default:
      return Tri::kFalse;  // not boolean-typed; the type checker never lets this through
  }
}

class ParsedFilter final : public Filter {
 public:
  ParsedFilter(std::string text, std::unique_ptr<const Node> root)
      : text_(std::move(text)), root_(std::move(root)) {}

  bool Matches(const FilterSubject& subject) const override {
    return EvalBool(*root_, subject) == Tri::kTrue;
  }
  const std::string& text() const override { return text_; }

 private:
  const std::string text_;
  const std::unique_ptr<const Node> root_;
};

}  // namespace

Result<std::shared_ptr<const Filter>> Filter::Parse(std::string_view text) {
  std::unique_ptr<Node> root;
  Parser parser(text);
  if (Status status = parser.Run(&root); !status.ok()) return status;
  return std::shared_ptr<const Filter>(
      std::make_shared<ParsedFilter>(std::string(text), std::move(root)));
}

}  // namespace hubcast::storage
