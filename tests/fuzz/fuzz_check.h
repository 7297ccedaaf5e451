// Shared by the fuzz targets: FUZZ_CHECK, an assertion that survives NDEBUG and prints what
// failed before aborting, so libFuzzer (and the corpus runner under ctest) report the input
// as a crash; the round-trip check of the binary codecs, and a whole target made of it.
// Single-threaded, like every target.
#pragma once

#include "base/status.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

// For a versioned binary codec: decoding any bytes is total (kInvalidArgument or a value), and
// what decodes re-encodes to a canonical form that decodes and re-encodes to the same bytes.
template <typename Decode, typename Encode>
void CheckCanonicalRoundTrip(std::string_view bytes, Decode decode, Encode encode) {
  auto decoded = decode(bytes);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == hubcast::StatusCode::kInvalidArgument);
    return;
  }
  const std::string first = encode(*decoded);
  auto again = decode(first);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(encode(*again) == first);
}

// A whole target for a codec with nothing to check beyond CheckCanonicalRoundTrip.
#define FUZZ_CANONICAL_CODEC_TARGET(decode, encode)                                              \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {                      \
    CheckCanonicalRoundTrip(std::string_view(reinterpret_cast<const char*>(data), size), decode, \
                            encode);                                                             \
    return 0;                                                                                    \
  }
