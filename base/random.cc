#include "base/random.h"

#include <cstring>
#include <stdexcept>
#include <sys/random.h>
#include <vector>

namespace hubcast {
namespace {
void Fill(void* buf, size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) continue;  // EINTR; getrandom never fails otherwise once the pool is ready
    p += r;
    n -= static_cast<size_t>(r);
  }
}
}  // namespace

std::string RandomHex(size_t bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::vector<unsigned char> raw(bytes);
  Fill(raw.data(), bytes);
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

uint64_t RandomU64() {
  uint64_t v;
  Fill(&v, sizeof v);
  return v;
}

}  // namespace hubcast
