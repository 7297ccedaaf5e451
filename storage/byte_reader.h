// Reading and writing the length-prefixed, varint-based layouts of the storage formats
// (connection records, view snapshots). ByteReader never reads past its input: the first
// failure sticks, and every later read fails. Not thread-safe: one reader per decode.
#pragma once

#include "storage/entry_codec.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace hubcast::storage {

inline void PutLengthPrefixed(std::string* out, std::string_view s) {
  PutVarint64(out, s.size());
  out->append(s);
}

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool U64(uint64_t* v) { return ok_ = ok_ && GetVarint64(&in_, v); }
  bool I64(int64_t* v) {
    uint64_t u = 0;
    if (!U64(&u)) return false;
    *v = ZigZagDecode(u);
    return true;
  }
  bool Bool(bool* b) {
    uint64_t v = 0;
    if (!U64(&v) || v > 1) return ok_ = false;
    *b = v == 1;
    return true;
  }
  bool Str(std::string* s) {
    uint64_t n = 0;
    if (!U64(&n) || n > in_.size()) return ok_ = false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  // A count of items that each take at least one byte: never more than what is left, so a
  // lying count cannot make the caller allocate for it.
  bool Count(uint64_t* n) { return U64(n) && (*n <= in_.size() || (ok_ = false)); }
  template <typename F>
  bool List(F&& each) {
    uint64_t n = 0;
    if (!Count(&n)) return false;
    for (uint64_t i = 0; i < n && ok_; ++i) each();
    return ok_;
  }
  bool ok() const { return ok_; }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace hubcast::storage
