// InternedString: an immutable string shared by every holder of the same text, for values
// that tens of thousands of connection records repeat (the node that serves a connection, its
// subprotocol): one pointer-sized handle each instead of a std::string and its heap copy.
//
// The text lives once in a process-wide table while any handle holds it, and goes with the
// last one (the texts may come from clients, e.g. a custom subprotocol, so nothing is kept
// forever). An empty string is the null handle and allocates nothing.
//
// It reads as a `const std::string&` (implicitly), compares with strings by content, and is
// assigned from any string view. Copies share the text (an atomic reference count).
//
// Thread-safety: a handle is a value (as std::shared_ptr: one writer at a time); interning
// and the release of the last handle lock the table, from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace hubcast {

class InternedString {
 public:
  InternedString() = default;
  InternedString(std::string_view text);  // NOLINT: implicit, reads as a string
  InternedString(const std::string& text) : InternedString(std::string_view(text)) {}  // NOLINT
  InternedString(const char* text) : InternedString(std::string_view(text)) {}         // NOLINT

  const std::string& str() const { return text_ ? *text_ : Empty(); }
  operator const std::string&() const { return str(); }  // NOLINT
  operator std::string_view() const { return str(); }    // NOLINT
  bool empty() const { return text_ == nullptr; }
  size_t size() const { return str().size(); }
  const char* data() const { return str().data(); }
  void clear() { text_.reset(); }

  // Handles of equal texts share one; the text decides either way.
  friend bool operator==(const InternedString& a, const InternedString& b) {
    return a.text_ == b.text_ || a.str() == b.str();
  }
  friend bool operator==(const InternedString& a, std::string_view b) { return a.str() == b; }
  friend bool operator==(const InternedString& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const InternedString& a, const char* b) { return a.str() == b; }
  friend std::ostream& operator<<(std::ostream& out, const InternedString& s) {
    return out << s.str();
  }

  // Distinct texts held now (for tests).
  static size_t TableSize();

 private:
  static const std::string& Empty();
  std::shared_ptr<const std::string> text_;
};

}  // namespace hubcast
