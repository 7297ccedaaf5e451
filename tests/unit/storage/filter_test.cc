#include "storage/filter.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/alloc_meter.h"
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hubcast::storage {
namespace {

// A connection as the filter sees it; owns the strings FilterSubject points at.
struct Connection {
  std::string connection_id = "conn1";
  std::optional<std::string> user_id;
  std::optional<std::set<std::string>> groups;
  std::string protocol;

  FilterSubject Subject() const {
    FilterSubject s;
    s.connection_id = connection_id;
    s.user_id = user_id ? &*user_id : nullptr;
    s.groups = groups ? &*groups : nullptr;
    s.protocol = protocol;
    return s;
  }
};

Connection User(std::string user) {
  Connection c;
  c.user_id = std::move(user);
  return c;
}

Connection Anonymous() { return Connection(); }

Connection InGroups(std::set<std::string> groups) {
  Connection c = User("u1");
  c.groups = std::move(groups);
  return c;
}

// Parses `text` (failing the test if it is rejected) and evaluates it against `conn`.
bool Matches(std::string_view text, const Connection& conn) {
  auto filter = Filter::Parse(text);
  EXPECT_TRUE(filter.ok()) << text << " -> " << filter.status().message();
  if (!filter.ok()) return false;
  return (*filter)->Matches(conn.Subject());
}

// The always-true constants need a subject; most literal-only tests do not care which.
bool Matches(std::string_view text) { return Matches(text, User("u1")); }

bool Parses(std::string_view text) { return Filter::Parse(text).ok(); }

// Returns the error message, failing the test unless `text` is rejected as kInvalidArgument.
std::string ParseError(std::string_view text) {
  auto filter = Filter::Parse(text);
  EXPECT_FALSE(filter.ok()) << "accepted: " << text;
  if (filter.ok()) return "";
  EXPECT_EQ(filter.status().code(), StatusCode::kInvalidArgument) << text;
  return filter.status().message();
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// `count` comparisons joined by `joiner`, e.g. "userId eq 'u0' or userId eq 'u1' ...".
std::string Clauses(int count, const std::string& joiner = " or ") {
  std::string text;
  for (int i = 0; i < count; ++i) {
    if (i > 0) text += joiner;
    text += "userId eq 'u" + std::to_string(i) + "'";
  }
  return text;
}

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// ---------------------------------------------------------------------------------------
// Grammar

TEST(FilterParse, KeepsTheSourceText) {
  auto filter = Filter::Parse("  userId eq 'a'  ");
  ASSERT_TRUE(filter.ok());
  EXPECT_EQ((*filter)->text(), "  userId eq 'a'  ");
}

TEST(FilterParse, AcceptsEveryComparisonOperator) {
  for (const char* op : {"eq", "ne", "gt", "ge", "lt", "le"}) {
    EXPECT_TRUE(Parses(std::string("userId ") + op + " 'a'")) << op;
    EXPECT_TRUE(Parses(std::string("length(userId) ") + op + " 3")) << op;
  }
}

TEST(FilterParse, KeywordsAreCaseInsensitive) {
  EXPECT_TRUE(Matches("USERID EQ 'u1' AND NOT (ConnectionId Ne 'conn1') Or TRUE"));
  EXPECT_TRUE(Matches("'G1' IN GROUPS", InGroups({"G1"})));
  EXPECT_TRUE(Matches("userid In ('x', 'u1')"));
  EXPECT_TRUE(Matches("ProtoCol eq ''"));
  EXPECT_TRUE(Matches("UserId eq Null", Anonymous()));
  EXPECT_FALSE(Matches("FALSE"));
}

TEST(FilterParse, FunctionNamesAreCaseInsensitive) {
  EXPECT_TRUE(Matches("StartsWith(userId, 'u') and ENDSWITH(userId, '1')"));
  EXPECT_TRUE(Matches("ToUpper(userId) eq 'U1' and TOLOWER('A') eq 'a'"));
  EXPECT_TRUE(Matches("LENGTH(userId) eq 2 and IndexOf(userId, '1') eq 1"));
}

TEST(FilterParse, BooleanLiteralsAloneAreFilters) {
  EXPECT_TRUE(Matches("true"));
  EXPECT_FALSE(Matches("false"));
  EXPECT_TRUE(Matches("(true)"));
}

TEST(FilterParse, WhitespaceIsFlexible) {
  EXPECT_TRUE(Matches("\tuserId\neq\r\n'u1' "));
  EXPECT_TRUE(Matches("startswith(userId,'u')and(userId eq'u1')"));
}

TEST(FilterParse, NotBindsTighterThanComparison) {
  const std::string error = ParseError("not length(userId) gt 5");
  EXPECT_TRUE(Contains(error, "position 0")) << error;
  EXPECT_TRUE(Contains(error, "'not'")) << error;
  EXPECT_TRUE(Matches("not (length(userId) gt 5)"));
}

TEST(FilterParse, NotBeforeInNeedsParentheses) {
  EXPECT_TRUE(Contains(ParseError("not 'g1' in groups"), "'not'"));
  EXPECT_TRUE(Matches("not ('g1' in groups)", InGroups({"g2"})));
  EXPECT_TRUE(Matches("not('g1' in groups)", InGroups({"g2"})));  // the SDK docs' spelling
}

TEST(FilterParse, NotAppliesToABooleanOperand) {
  EXPECT_TRUE(Matches("not false"));
  EXPECT_TRUE(Matches("not not true"));
  EXPECT_FALSE(Matches("not startswith(userId, 'u')"));
  EXPECT_TRUE(Matches("not startswith(userId, 'x') and true"));
}

TEST(FilterParse, AndBindsTighterThanOr) {
  // true or (true and false) == true; (true or true) and false would be false.
  EXPECT_TRUE(Matches("true or true and false"));
  // (false and true) or true == true; false and (true or true) would be false.
  EXPECT_TRUE(Matches("false and true or true"));
}

TEST(FilterParse, ParenthesesOverridePrecedence) {
  EXPECT_FALSE(Matches("(true or true) and false"));
  EXPECT_FALSE(Matches("false and (true or true)"));
  EXPECT_TRUE(Matches("((((userId eq 'u1'))))"));
}

TEST(FilterParse, AndAndOrChainLeftToRight) {
  EXPECT_TRUE(Matches("false or false or true"));
  EXPECT_FALSE(Matches("true and true and false"));
  EXPECT_TRUE(Matches("false or false and true or true"));
}

TEST(FilterParse, ComparisonsDoNotChain) {
  const std::string error = ParseError("userId eq 'a' eq true");
  EXPECT_TRUE(Contains(error, "position 14")) << error;
}

TEST(FilterParse, StringLiteralDoubledQuoteIsAQuote) {
  EXPECT_TRUE(Matches("userId eq 'O''Neil'", User("O'Neil")));
  EXPECT_FALSE(Matches("userId eq 'O''Neil'", User("O''Neil")));
  EXPECT_TRUE(Matches("userId eq ''''", User("'")));
  EXPECT_TRUE(Matches("userId eq ''", User("")));
  EXPECT_TRUE(Matches("length('''''') eq 2"));
}

TEST(FilterParse, IntegerLiteralsTakeAnOptionalSign) {
  EXPECT_TRUE(Matches("indexof(userId, 'x') eq -1"));
  EXPECT_TRUE(Matches("length(userId) eq +2"));
  EXPECT_TRUE(Matches("-3 lt 2"));
  EXPECT_TRUE(Matches("9223372036854775807 gt -9223372036854775808"));
  EXPECT_TRUE(Matches("007 eq 7"));
}

TEST(FilterParse, InAcceptsALiteralList) {
  EXPECT_TRUE(Parses("userId in ('a')"));
  EXPECT_TRUE(Parses("userId in ('a', 'b', null)"));
  EXPECT_TRUE(Parses("length(userId) in (1, -2, +3)"));
  EXPECT_TRUE(Parses("startswith(userId, 'a') in (true, false)"));
}

TEST(FilterParse, InAcceptsACollectionOperand) {
  EXPECT_TRUE(Parses("'g1' in groups"));
  EXPECT_TRUE(Parses("'g1' in (groups)"));
  EXPECT_TRUE(Parses("userId in groups"));
  EXPECT_TRUE(Parses("tolower(userId) in groups"));
}

TEST(FilterParse, LengthAcceptsStringsAndCollections) {
  EXPECT_TRUE(Parses("length(groups) gt 0"));
  EXPECT_TRUE(Parses("length(userId) gt 0"));
  EXPECT_TRUE(Parses("length('abc') gt 0"));
  EXPECT_TRUE(Parses("length(null) eq null"));
}

TEST(FilterParse, FunctionsAcceptNullArguments) {
  EXPECT_TRUE(Parses("tolower(null) eq null"));
  EXPECT_TRUE(Parses("substring('abc', null) eq null"));
  EXPECT_TRUE(Parses("startswith(null, 'a')"));
}

TEST(FilterParse, FunctionsNestAndComposeWithOperators) {
  EXPECT_TRUE(
      Parses("substring(tolower(trim(userId)), indexof(userId, 'a'), length('xy')) eq 'a'"));
  EXPECT_TRUE(Parses("startswith(concat(userId, connectionId), 'u') eq true"));
}

TEST(FilterParse, AcceptsUpToOneHundredClauses) {
  EXPECT_TRUE(Parses(Clauses(100)));
  EXPECT_TRUE(Parses(Clauses(100, " and ")));
}

TEST(FilterParse, AcceptsNestingUpToSixtyFourLevels) {
  EXPECT_TRUE(Parses(Repeat("(", 64) + "true" + Repeat(")", 64)));
  EXPECT_TRUE(Parses(Repeat("not ", 64) + "true"));
  EXPECT_TRUE(Parses(Repeat("tolower(", 63) + "userId" + Repeat(")", 63) + " eq 'a'"));
}

// ---------------------------------------------------------------------------------------
// Parse errors: every one is kInvalidArgument and names a position.

TEST(FilterParseError, EmptyOrBlankInputIsRejected) {
  EXPECT_TRUE(Contains(ParseError(""), "empty"));
  EXPECT_TRUE(Contains(ParseError("   \t\n"), "empty"));
}

TEST(FilterParseError, MessageNamesThePosition) {
  const std::string error = ParseError("userId eq 'a' and foo eq 'b'");
  EXPECT_TRUE(Contains(error, "position 18")) << error;
  EXPECT_TRUE(Contains(error, "'foo'")) << error;
}

TEST(FilterParseError, UnknownIdentifierIsRejected) {
  EXPECT_TRUE(Contains(ParseError("name eq 'a'"), "unknown identifier 'name'"));
  EXPECT_TRUE(Contains(ParseError("user_id eq 'a'"), "unknown identifier"));
}

TEST(FilterParseError, UnknownFunctionIsRejected) {
  const std::string error = ParseError("matches(userId, 'a')");
  EXPECT_TRUE(Contains(error, "unknown function 'matches'")) << error;
  EXPECT_TRUE(Contains(error, "position 0")) << error;
}

TEST(FilterParseError, FunctionNameWithoutParenthesesIsRejected) {
  const std::string error = ParseError("tolower eq 'a'");
  EXPECT_TRUE(Contains(error, "expected '('")) << error;
  EXPECT_TRUE(Contains(error, "position 8")) << error;
}

TEST(FilterParseError, WrongArityIsRejected) {
  EXPECT_TRUE(Contains(ParseError("tolower() eq 'a'"), "takes 1 argument but was given 0"));
  EXPECT_TRUE(Contains(ParseError("tolower(userId, 'x') eq 'a'"), "takes 1 argument"));
  EXPECT_TRUE(Contains(ParseError("substring(userId) eq 'a'"), "takes 2 or 3 arguments"));
  EXPECT_TRUE(Contains(ParseError("substring(userId, 1, 2, 3) eq 'a'"), "takes 2 or 3"));
  EXPECT_TRUE(Contains(ParseError("startswith(userId)"), "takes 2 arguments"));
  EXPECT_TRUE(Contains(ParseError("concat('a') eq 'a'"), "takes 2 arguments"));
  EXPECT_TRUE(Contains(ParseError("length() eq 0"), "takes 1 argument"));
}

TEST(FilterParseError, WrongArgumentTypesAreRejected) {
  const std::string error = ParseError("tolower(1) eq 'a'");
  EXPECT_TRUE(Contains(error, "argument 1 of 'tolower' must be a string")) << error;
  EXPECT_TRUE(Contains(error, "position 8")) << error;
  EXPECT_TRUE(Contains(ParseError("substring(userId, '1') eq 'a'"), "must be an integer"));
  EXPECT_TRUE(Contains(ParseError("substring(1, 1) eq 'a'"), "must be a string"));
  EXPECT_TRUE(Contains(ParseError("length(5) eq 1"), "a string or a collection"));
  EXPECT_TRUE(Contains(ParseError("startswith(groups, 'a')"), "must be a string"));
  EXPECT_TRUE(Contains(ParseError("concat(userId, true) eq 'a'"), "argument 2"));
  EXPECT_TRUE(Contains(ParseError("indexof(userId, 1) eq 0"), "argument 2"));
  EXPECT_TRUE(Contains(ParseError("trim(userId eq 'a') eq 'a'"), "not a boolean"));
}

TEST(FilterParseError, CollectionInEqualityIsRejected) {
  EXPECT_TRUE(Contains(ParseError("groups eq 'g1'"), "collection"));
  EXPECT_TRUE(Contains(ParseError("'g1' eq groups"), "collection"));
  EXPECT_TRUE(Contains(ParseError("groups ne null"), "collection"));
  EXPECT_TRUE(Contains(ParseError("groups eq groups"), "collection"));
  EXPECT_TRUE(Contains(ParseError("groups gt 'a'"), "collection"));
}

TEST(FilterParseError, MismatchedComparisonTypesAreRejected) {
  const std::string error = ParseError("userId eq 1");
  EXPECT_TRUE(Contains(error, "cannot compare a string with an integer")) << error;
  EXPECT_TRUE(Contains(error, "position 7")) << error;
  EXPECT_TRUE(Contains(ParseError("userId gt 5"), "cannot compare"));
  EXPECT_TRUE(Contains(ParseError("length(userId) lt 'a'"), "cannot compare"));
  EXPECT_TRUE(Contains(ParseError("true eq 'true'"), "cannot compare"));
}

TEST(FilterParseError, OrderingBooleansIsRejected) {
  EXPECT_TRUE(Contains(ParseError("true gt false"), "booleans cannot be ordered"));
  EXPECT_TRUE(Contains(ParseError("startswith(userId, 'a') le true"), "booleans"));
}

TEST(FilterParseError, NonBooleanTopLevelIsRejected) {
  for (const char* text : {"userId", "'a'", "42", "null", "length(groups)", "groups",
                           "tolower(userId)", "(connectionId)"}) {
    EXPECT_TRUE(Contains(ParseError(text), "must be a boolean expression")) << text;
  }
}

TEST(FilterParseError, LogicalOperatorsNeedBooleanOperands) {
  EXPECT_TRUE(Contains(ParseError("userId and true"), "'and' needs boolean operands"));
  EXPECT_TRUE(Contains(ParseError("true or length(userId)"), "'or' needs boolean operands"));
  EXPECT_TRUE(Contains(ParseError("not userId"), "'not' needs a boolean operand"));
  EXPECT_TRUE(Contains(ParseError("not null"), "'not'"));
}

TEST(FilterParseError, UnterminatedStringIsRejected) {
  const std::string error = ParseError("userId eq 'abc");
  EXPECT_TRUE(Contains(error, "unterminated string")) << error;
  EXPECT_TRUE(Contains(error, "position 10")) << error;
  EXPECT_TRUE(Contains(ParseError("userId eq 'O''"), "unterminated"));
}

TEST(FilterParseError, TrailingTokensAreRejected) {
  const std::string error = ParseError("userId eq 'a' 'b'");
  EXPECT_TRUE(Contains(error, "after a complete expression")) << error;
  EXPECT_TRUE(Contains(error, "position 14")) << error;
  EXPECT_TRUE(Contains(ParseError("userId eq 'a')"), "')'"));
  EXPECT_TRUE(Contains(ParseError("true true"), "after a complete expression"));
  EXPECT_TRUE(Contains(ParseError("userId eq 'a' userId"), "after a complete expression"));
}

TEST(FilterParseError, MissingOperandsAndParenthesesAreRejected) {
  EXPECT_TRUE(Contains(ParseError("userId eq"), "the end of the filter"));
  EXPECT_TRUE(Contains(ParseError("userId eq 'a' and"), "expected an operand"));
  EXPECT_TRUE(Contains(ParseError("and userId eq 'a'"), "operator 'and'"));
  EXPECT_TRUE(Contains(ParseError("(userId eq 'a'"), "expected ')'"));
  EXPECT_TRUE(Contains(ParseError("()"), "expected an operand"));
  EXPECT_TRUE(Contains(ParseError("startswith(userId 'a')"), "expected ',' or ')'"));
  EXPECT_TRUE(Contains(ParseError("startswith(userId,"), "expected an operand"));
}

TEST(FilterParseError, UnexpectedCharactersAreRejected) {
  const std::string error = ParseError("userId == 'a'");
  EXPECT_TRUE(Contains(error, "unexpected character '='")) << error;
  EXPECT_TRUE(Contains(error, "position 7")) << error;
  EXPECT_TRUE(Contains(ParseError("userId eq \"a\""), "unexpected character '\"'"));
  EXPECT_TRUE(Contains(ParseError("userId eq - 1"), "unexpected character '-'"));
  EXPECT_TRUE(Contains(ParseError("userId eq \xC3\xA9"), "unexpected byte 0xc3"));
}

TEST(FilterParseError, NonIntegerNumbersAreRejected) {
  EXPECT_TRUE(Contains(ParseError("length(userId) eq 1.5"), "only integers"));
  EXPECT_TRUE(Contains(ParseError("length(userId) eq 12ab"), "invalid number"));
}

TEST(FilterParseError, IntegerOutsideInt64IsRejected) {
  const std::string error = ParseError("length(userId) eq 9223372036854775808");
  EXPECT_TRUE(Contains(error, "64-bit range")) << error;
  EXPECT_TRUE(Contains(error, "position 18")) << error;
  EXPECT_TRUE(Contains(ParseError("length(userId) eq -9223372036854775809"), "64-bit range"));
}

TEST(FilterParseError, InListMustHoldLiteralsOfTheLeftType) {
  const std::string error = ParseError("userId in ('a', 1)");
  EXPECT_TRUE(Contains(error, "list item is an integer")) << error;
  EXPECT_TRUE(Contains(error, "position 16")) << error;
  EXPECT_TRUE(Contains(ParseError("userId in ('a', connectionId)"), "expected a literal"));
  EXPECT_TRUE(Contains(ParseError("userId in ('a',)"), "expected a literal"));
  EXPECT_TRUE(Contains(ParseError("userId in ('a' 'b')"), "expected ',' or ')'"));
  EXPECT_TRUE(Contains(ParseError("userId in ('a'"), "expected ',' or ')'"));
  EXPECT_TRUE(Contains(ParseError("groups in ('a')"), "collection cannot be the left operand"));
}

TEST(FilterParseError, InWithoutCollectionOrListIsRejected) {
  EXPECT_TRUE(Contains(ParseError("userId in ()"), "expected an operand"));
  EXPECT_TRUE(Contains(ParseError("'a' in userId"), "must be a collection"));
  EXPECT_TRUE(Contains(ParseError("userId in (connectionId)"), "must be a collection"));
  EXPECT_TRUE(Contains(ParseError("1 in groups"), "only a string can be a member"));
  EXPECT_TRUE(Contains(ParseError("userId in"), "expected an operand"));
}

TEST(FilterParseError, MoreThanOneHundredClausesIsRejected) {
  EXPECT_TRUE(Contains(ParseError(Clauses(101)), "more than 100 clauses"));
  EXPECT_TRUE(Contains(ParseError(Clauses(101, " and ")), "more than 100 clauses"));
}

TEST(FilterParseError, PredicateFunctionsAndInCountAsClauses) {
  const std::string ninety_nine = Clauses(99);
  EXPECT_TRUE(Parses(ninety_nine + " or startswith(userId, 'a')"));
  EXPECT_TRUE(
      Contains(ParseError(ninety_nine + " or startswith(userId, 'a') or contains(userId, 'b')"),
               "more than 100 clauses"));
  EXPECT_TRUE(Contains(ParseError(ninety_nine + " or 'g' in groups or userId in ('a')"),
                       "more than 100 clauses"));
  // Non-predicate functions are not clauses of their own.
  EXPECT_TRUE(Parses(ninety_nine + " or tolower(trim(userId)) eq 'a'"));
}

TEST(FilterParseError, NestingDeeperThanSixtyFourIsRejected) {
  EXPECT_TRUE(Contains(ParseError(Repeat("(", 65) + "true" + Repeat(")", 65)), "nested deeper"));
  EXPECT_TRUE(Contains(ParseError(Repeat("not ", 65) + "true"), "nested deeper"));
  EXPECT_TRUE(Contains(ParseError(Repeat("tolower(", 65) + "userId" + Repeat(")", 65) + " eq 'a'"),
                       "nested deeper"));
  // Deep enough to overflow an unguarded recursive descent.
  EXPECT_TRUE(Contains(ParseError(Repeat("(", 100000)), "nested deeper"));
}

TEST(FilterParseError, TenThousandLevelsAreRefusedAtTheSixtyFifth) {
  const std::string deep = Repeat("(", 10000) + "true" + Repeat(")", 10000);
  EXPECT_EQ(ParseError(deep),
            "Invalid filter at position 64: expressions are nested deeper than 64 levels.");
  EXPECT_EQ(ParseError(Repeat("not (", 10000) + "true" + Repeat(")", 10000)),
            "Invalid filter at position 160: expressions are nested deeper than 64 levels.");
}

TEST(FilterParseError, MoreThanTenThousandTokensIsRejected) {
  // `userId in ('a','a',...)`: three tokens before the list, two per item but the last, ')'.
  auto list = [](int items) { return "userId in (" + Repeat("'a',", items - 1) + "'a')"; };
  EXPECT_TRUE(Parses(list(4998)));      // 3 + 2 * 4998 = 9999 tokens
  const std::string over = list(4999);  // 10001 tokens: the last one, ')', is refused
  const std::string error = ParseError(over);
  EXPECT_EQ(error, "Invalid filter at position " + std::to_string(over.size() - 1) +
                       ": the filter has more than 10000 tokens (names, literals, operators and "
                       "punctuation).");
}

TEST(FilterParseError, LexicalErrorsAnywhereComeBeforeGrammarErrors) {
  // The grammar error is at position 10, the unterminated literal at 13.
  EXPECT_EQ(ParseError("userId eq eq 'abc"),
            "Invalid filter at position 13: unterminated string literal.");
}

TEST(FilterParseError, SurplusArgumentsAreCountedInTheError) {
  EXPECT_EQ(ParseError("tolower(" + Repeat("'a',", 999) + "'a') eq 'a'"),
            "Invalid filter at position 0: the function 'tolower' takes 1 argument but was given "
            "1000.");
}

// Each shape is the worst a megabyte can do for one part of the parser: recursion, a long
// list, a long argument list, a long chain, one huge literal, and nothing but blanks. Before
// the tokens were read lazily a 1 MiB filter cost some 80 MB; now the parse holds at most
// 10000 tokens' worth of tree plus a few copies of the longest literal.
TEST(FilterMemory, ParsingAMebibyteStaysWithinAFixedBudget) {
  if (!testing::AllocationMeter::Available()) GTEST_SKIP() << "no allocation meter";
  constexpr int kMiB = 1024 * 1024;
  const std::vector<std::pair<std::string, std::string>> shapes = {
      {"nesting", Repeat("(", kMiB)},
      {"in list", "userId in (" + Repeat("'',", kMiB / 3) + "'')"},
      {"arguments", "tolower(" + Repeat("'a',", kMiB / 4) + "'a') eq 'a'"},
      {"chain", Repeat("true and ", kMiB / 9) + "true"},
      {"literal", "userId eq '" + std::string(kMiB, 'x') + "'"},
      {"blanks", std::string(kMiB, ' ') + "true"},
  };
  for (const auto& [name, text] : shapes) {
    testing::AllocationMeter meter;
    { auto filter = Filter::Parse(text); }
    // 4 copies of a literal as long as the input (scan, lookahead, node, kept text) and
    // 10000 tokens' worth of nodes.
    EXPECT_LT(meter.peak_bytes(), 4 * text.size() + 2 * kMiB) << name;
    EXPECT_LT(meter.allocations(), 40000u) << name;
  }
}

// ---------------------------------------------------------------------------------------
// Evaluation

TEST(FilterEval, UserIdEqualityIsCaseSensitive) {
  EXPECT_TRUE(Matches("userId eq 'Alice'", User("Alice")));
  EXPECT_FALSE(Matches("userId eq 'alice'", User("Alice")));
  EXPECT_TRUE(Matches("userId ne 'alice'", User("Alice")));
}

TEST(FilterEval, ConnectionIdIsCompared) {
  Connection c = User("u1");
  c.connection_id = "abc123";
  EXPECT_TRUE(Matches("connectionId eq 'abc123'", c));
  EXPECT_FALSE(Matches("connectionId eq 'ABC123'", c));
  EXPECT_TRUE(Matches("startswith(connectionId, 'abc')", c));
}

TEST(FilterEval, AnonymousMatchesEqNullOnly) {
  EXPECT_TRUE(Matches("userId eq null", Anonymous()));
  EXPECT_FALSE(Matches("userId ne null", Anonymous()));
  EXPECT_FALSE(Matches("userId eq null", User("u1")));
  EXPECT_TRUE(Matches("userId ne null", User("u1")));
  EXPECT_TRUE(Matches("null eq userId", Anonymous()));
  EXPECT_FALSE(Matches("userId eq null", User("")));  // empty is not anonymous
}

TEST(FilterEval, NullComparedWithStringIsUnequal) {
  EXPECT_FALSE(Matches("userId eq 'u1'", Anonymous()));
  EXPECT_TRUE(Matches("userId ne 'u1'", Anonymous()));
  EXPECT_FALSE(Matches("userId eq ''", Anonymous()));
  EXPECT_TRUE(Matches("null eq null"));
  EXPECT_FALSE(Matches("null ne null"));
}

TEST(FilterEval, OrderingWithNullIsFalse) {
  for (const char* op : {"gt", "ge", "lt", "le"}) {
    EXPECT_FALSE(Matches(std::string("userId ") + op + " 'm'", Anonymous())) << op;
    EXPECT_FALSE(Matches(std::string("length(userId) ") + op + " 0", Anonymous())) << op;
    EXPECT_FALSE(Matches(std::string("'m' ") + op + " null")) << op;
  }
}

TEST(FilterEval, FunctionsOnNullYieldNull) {
  const Connection anon = Anonymous();
  for (const char* expr :
       {"tolower(userId)", "toupper(userId)", "trim(userId)", "substring(userId, 1)",
        "substring(userId, 0, 1)", "substring('abc', null)", "substring('abc', 0, null)",
        "concat(userId, 'x')", "concat('x', userId)", "indexof(userId, 'a')",
        "indexof('a', userId)", "length(userId)", "startswith(userId, 'a')",
        "endswith('a', userId)", "contains(userId, 'a')", "tolower(tolower(userId))"}) {
    EXPECT_TRUE(Matches(std::string(expr) + " eq null", anon)) << expr;
    EXPECT_FALSE(Matches(std::string(expr) + " ne null", anon)) << expr;
  }
}

TEST(FilterEval, NullPredicateIsNeitherTrueNorFalse) {
  const Connection anon = Anonymous();
  EXPECT_FALSE(Matches("startswith(userId, 'a')", anon));
  EXPECT_FALSE(Matches("not startswith(userId, 'a')", anon));
  EXPECT_TRUE(Matches("startswith(userId, 'a') or true", anon));
  EXPECT_FALSE(Matches("startswith(userId, 'a') and true", anon));
  EXPECT_FALSE(Matches("not (startswith(userId, 'a') and false) and false", anon));
  EXPECT_TRUE(Matches("not (startswith(userId, 'a') and false)", anon));
  EXPECT_TRUE(Matches("not startswith(userId, 'a') or userId eq null", anon));
}

TEST(FilterEval, EveryComparisonOperatorOnIntegers) {
  EXPECT_TRUE(Matches("2 eq 2"));
  EXPECT_FALSE(Matches("2 eq 3"));
  EXPECT_TRUE(Matches("2 ne 3"));
  EXPECT_TRUE(Matches("3 gt 2"));
  EXPECT_FALSE(Matches("2 gt 2"));
  EXPECT_TRUE(Matches("2 ge 2"));
  EXPECT_TRUE(Matches("-5 lt 3"));
  EXPECT_FALSE(Matches("3 lt 3"));
  EXPECT_TRUE(Matches("3 le 3"));
  EXPECT_TRUE(Matches("10 gt 9"));  // numeric, not lexical
}

TEST(FilterEval, StringOrderingIsOrdinalByteWise) {
  EXPECT_TRUE(Matches("'abc' lt 'abd'"));
  EXPECT_TRUE(Matches("'ab' lt 'abc'"));
  EXPECT_TRUE(Matches("'B' lt 'a'"));                       // upper case sorts before lower case
  EXPECT_TRUE(Matches("'10' lt '9'"));                      // lexical, not numeric
  EXPECT_TRUE(Matches("userId gt 'z'", User("\xC3\xA9")));  // UTF-8 bytes above ASCII
  EXPECT_TRUE(Matches("userId ge 'u1' and userId le 'u1'", User("u1")));
  EXPECT_FALSE(Matches("userId gt 'u1'", User("u1")));
}

TEST(FilterEval, BooleansCompareWithEqAndNe) {
  EXPECT_TRUE(Matches("startswith(userId, 'u') eq true"));
  EXPECT_TRUE(Matches("startswith(userId, 'x') ne true"));
  EXPECT_TRUE(Matches("(userId eq 'u1') eq (connectionId eq 'conn1')"));
}

TEST(FilterEval, MembershipInGroups) {
  const Connection c = InGroups({"g1", "g2"});
  EXPECT_TRUE(Matches("'g1' in groups", c));
  EXPECT_FALSE(Matches("'G1' in groups", c));
  EXPECT_FALSE(Matches("'g3' in groups", c));
  EXPECT_TRUE(Matches("'g2' in (groups)", c));
  EXPECT_TRUE(Matches("not ('g3' in groups)", c));
  EXPECT_FALSE(Matches("null in groups", c));
}

TEST(FilterEval, ConnectionWithoutGroupsIsInNoGroup) {
  EXPECT_FALSE(Matches("'g1' in groups", User("u1")));
  EXPECT_FALSE(Matches("'g1' in groups", InGroups({})));
  EXPECT_TRUE(Matches("length(groups) eq 0", User("u1")));
}

TEST(FilterEval, ComputedStringsAreLookedUpInGroups) {
  Connection c = InGroups({"u1", "conn1", "g1", "json"});
  c.protocol = "json";
  EXPECT_TRUE(Matches("userId in groups", c));
  EXPECT_TRUE(Matches("connectionId in groups", c));
  EXPECT_TRUE(Matches("protocol in groups", c));
  EXPECT_TRUE(Matches("tolower('G1') in groups", c));
  EXPECT_TRUE(Matches("concat('g', '1') in groups", c));
  EXPECT_TRUE(Matches("trim('  g1 ') in groups", c));
  EXPECT_FALSE(Matches("userId in groups", Anonymous()));
}

TEST(FilterEval, LengthOfGroupsCountsMemberships) {
  EXPECT_TRUE(Matches("length(groups) eq 3", InGroups({"a", "b", "c"})));
  EXPECT_TRUE(Matches("length(groups) gt 0 and length(groups) lt 4", InGroups({"a"})));
}

TEST(FilterEval, InListMatchesAnyLiteral) {
  EXPECT_TRUE(Matches("userId in ('a', 'u1', 'b')", User("u1")));
  EXPECT_FALSE(Matches("userId in ('a', 'b')", User("u1")));
  EXPECT_FALSE(Matches("userId in ('a', 'b')", Anonymous()));
  EXPECT_TRUE(Matches("userId in ('a', null)", Anonymous()));
  EXPECT_TRUE(Matches("length(userId) in (1, 2)", User("u1")));
  EXPECT_TRUE(Matches("startswith(userId, 'u') in (true)", User("u1")));
}

TEST(FilterEval, ProtocolIsTheSelectedSubprotocol) {
  Connection json = User("u1");
  json.protocol = "json.webpubsub.azure.v1";
  EXPECT_TRUE(Matches("protocol eq 'json.webpubsub.azure.v1'", json));
  EXPECT_FALSE(Matches("protocol eq 'protobuf.webpubsub.azure.v1'", json));
  EXPECT_TRUE(Matches("protocol eq ''", User("u1")));  // raw client
  EXPECT_FALSE(Matches("protocol eq null", User("u1")));
}

TEST(FilterEval, CaseMappingFunctions) {
  EXPECT_TRUE(Matches("tolower(userId) eq 'alice'", User("ALice")));
  EXPECT_TRUE(Matches("toupper(userId) eq 'ALICE'", User("ALice")));
  EXPECT_TRUE(Matches("tolower(userId) eq 'abc'", User("abc")));  // already lower
  EXPECT_TRUE(Matches("toupper('a\xC3\xA9z') eq 'A\xC3\xA9Z'"));  // non-ASCII untouched
}

TEST(FilterEval, TrimRemovesSurroundingWhitespace) {
  EXPECT_TRUE(Matches("trim(userId) eq 'a b'", User("  a b \t")));
  EXPECT_TRUE(Matches("trim('   ') eq ''"));
  EXPECT_TRUE(Matches("trim('') eq ''"));
  EXPECT_TRUE(Matches("trim(toupper(' x ')) eq 'X'"));
}

TEST(FilterEval, SubstringTakesStartAndOptionalLength) {
  EXPECT_TRUE(Matches("substring('hello', 1) eq 'ello'"));
  EXPECT_TRUE(Matches("substring('hello', 1, 3) eq 'ell'"));
  EXPECT_TRUE(Matches("substring('hello', 0, 0) eq ''"));
  EXPECT_TRUE(Matches("substring(userId, 0, 4) eq 'user'", User("user42")));
  EXPECT_TRUE(Matches("substring(toupper(userId), 4) eq 'X2'", User("userx2")));
}

TEST(FilterEval, SubstringClampsOutOfRangeIndexes) {
  EXPECT_TRUE(Matches("substring('hello', 10) eq ''"));
  EXPECT_TRUE(Matches("substring('hello', 5) eq ''"));
  EXPECT_TRUE(Matches("substring('hello', -2) eq 'hello'"));
  EXPECT_TRUE(Matches("substring('hello', -2, 2) eq 'he'"));
  EXPECT_TRUE(Matches("substring('hello', 2, -1) eq ''"));
  EXPECT_TRUE(Matches("substring('hello', 2, 100) eq 'llo'"));
  EXPECT_TRUE(Matches("substring('hello', 9223372036854775807, 9223372036854775807) eq ''"));
  EXPECT_TRUE(Matches("substring('hello', -9223372036854775808) eq 'hello'"));
}

TEST(FilterEval, StringFunctionsCountCodePoints) {
  EXPECT_TRUE(Matches("length('h\xC3\xA9llo') eq 5"));
  EXPECT_TRUE(Matches("substring('h\xC3\xA9llo', 1, 2) eq '\xC3\xA9l'"));
  EXPECT_TRUE(Matches("indexof('h\xC3\xA9llo', 'l') eq 2"));
  EXPECT_TRUE(Matches("length(userId) eq 1", User("\xE2\x82\xAC")));
}

TEST(FilterEval, PredicateFunctions) {
  const Connection c = User("user-42");
  EXPECT_TRUE(Matches("startswith(userId, 'user')", c));
  EXPECT_FALSE(Matches("startswith(userId, 'User')", c));
  EXPECT_TRUE(Matches("endswith(userId, '42')", c));
  EXPECT_FALSE(Matches("endswith(userId, '4')", c));
  EXPECT_TRUE(Matches("contains(userId, 'r-4')", c));
  EXPECT_FALSE(Matches("contains(userId, 'x')", c));
  EXPECT_TRUE(
      Matches("startswith(userId, '') and endswith(userId, '') and contains(userId, '')", c));
  EXPECT_TRUE(Matches("not endswith(userId, 'milk')", c));
}

TEST(FilterEval, ConcatJoinsStrings) {
  EXPECT_TRUE(Matches("concat(userId, '-x') eq 'u1-x'"));
  EXPECT_TRUE(Matches("concat(concat(userId, '/'), connectionId) eq 'u1/conn1'"));
  EXPECT_TRUE(Matches("concat(tolower('A'), toupper('b')) eq 'aB'"));
  EXPECT_TRUE(Matches("concat('', '') eq ''"));
}

TEST(FilterEval, IndexOfReturnsMinusOneWhenAbsent) {
  EXPECT_TRUE(Matches("indexof(userId, 'c') eq 2", User("abcabc")));
  EXPECT_TRUE(Matches("indexof(userId, 'z') eq -1", User("abcabc")));
  EXPECT_TRUE(Matches("indexof(userId, '') eq 0", User("abc")));
  EXPECT_TRUE(Matches("indexof(userId, 'x') lt 0", User("abc")));
}

TEST(FilterEval, LengthOfStrings) {
  EXPECT_TRUE(Matches("length(userId) le 10 and length(userId) gt 3", User("alice")));
  EXPECT_FALSE(Matches("length(userId) gt 10 or length(userId) le 3", User("alice")));
  EXPECT_TRUE(Matches("length('') eq 0"));
}

TEST(FilterEval, DocumentationExamples) {
  Connection c = InGroups({"group1"});
  c.user_id = "user1";
  EXPECT_TRUE(Matches("userId eq 'user1' or (not (startswith(userId, 'user')))", c));
  EXPECT_FALSE(Matches("not('group1' in groups)", c));
  EXPECT_TRUE(Matches("'group1' in groups or 'group2' in groups", c));
  EXPECT_FALSE(Parses("user in ('user1','user2')"));  // the docs' typo: no `user` identifier
  EXPECT_TRUE(Matches("userId in ('user1','user2')", c));
}

TEST(FilterEval, HundredClauseChainEvaluates) {
  EXPECT_TRUE(Matches(Clauses(100), User("u99")));
  EXPECT_FALSE(Matches(Clauses(100), User("u100")));
  EXPECT_FALSE(Matches(Clauses(100, " and "), User("u0")));
}

TEST(FilterEval, DeepNestingEvaluates) {
  EXPECT_TRUE(Matches(Repeat("not ", 64) + "true"));
  EXPECT_TRUE(Matches(Repeat("(", 64) + "userId eq 'u1'" + Repeat(")", 64)));
  EXPECT_TRUE(
      Matches(Repeat("tolower(", 63) + "userId" + Repeat(")", 63) + " eq 'abc'", User("ABC")));
}

TEST(FilterEval, FilterIsReusableAcrossSubjects) {
  auto filter = Filter::Parse("'vip' in groups and not (userId eq null)");
  ASSERT_TRUE(filter.ok());
  EXPECT_TRUE((*filter)->Matches(InGroups({"vip"}).Subject()));
  EXPECT_FALSE((*filter)->Matches(InGroups({"other"}).Subject()));
  Connection anon = Anonymous();
  anon.groups = std::set<std::string>{"vip"};
  EXPECT_FALSE((*filter)->Matches(anon.Subject()));
}

}  // namespace
}  // namespace hubcast::storage
