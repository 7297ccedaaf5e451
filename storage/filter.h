// The OData filter language of the REST API (PROTOCOL.md section 4, "OData filter"): parsed
// once into an immutable expression tree, then evaluated against connections.
//
// Grammar (keywords case-insensitive, identifier values compared case-sensitively):
//   expr      := or
//   or        := and ("or" and)*
//   and       := not ("and" not)*
//   not       := "not" not | cmp
//   cmp       := operand [("eq"|"ne"|"gt"|"ge"|"lt"|"le") operand | "in" (list | operand)]
//   operand   := "(" expr ")" | literal | identifier | function "(" args ")"
//   literal   := 'string' (with '' for a quote) | [+-]integer | true | false | null
//   identifier:= userId | connectionId | groups | protocol
//   list      := "(" literal ("," literal)* ")"
// Functions: tolower, toupper, trim, substring(s,i[,n]), endswith, startswith, contains,
// concat, indexof, length(string|collection).
// Type errors (e.g. "not length(userId)", comparing a collection with eq, a non-boolean
// top level) are parse errors. Limits: 100 clauses, 64 levels of nesting (parentheses, calls,
// `not`), 10000 tokens. Parsing reads tokens one at a time, so a filter of any length costs at
// most 10000 tokens' worth of tree plus a few copies of its longest literal. Evaluation never
// fails: a null userId compared with a string is simply unequal, and functions on null yield
// null.
//
// Thread-safety: a parsed Filter is immutable and may be evaluated from any thread.
#pragma once

#include "base/status.h"

#include <memory>
#include <set>
#include <string>
#include <string_view>

namespace hubcast::storage {

// What a filter can see of one connection.
struct FilterSubject {
  std::string_view connection_id;
  const std::string* user_id = nullptr;           // nullptr: anonymous connection (userId eq null)
  const std::set<std::string>* groups = nullptr;  // nullptr: no groups
  std::string_view protocol;                      // selected subprotocol, empty for raw clients
};

class Filter {
 public:
  virtual ~Filter() = default;
  // kInvalidArgument with a message saying what is wrong and where, for any text outside the
  // grammar above (also empty or whitespace-only text: callers treat "no filter" themselves).
  static Result<std::shared_ptr<const Filter>> Parse(std::string_view text);
  virtual bool Matches(const FilterSubject& subject) const = 0;
  // The source text it was parsed from (kept for the log entry encoding).
  virtual const std::string& text() const = 0;
};

}  // namespace hubcast::storage
