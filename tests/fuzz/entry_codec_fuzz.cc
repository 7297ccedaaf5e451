// DecodeEntry (storage/entry_codec.h) on arbitrary bytes. Decoding must be total (no crash, no
// read past the input); whatever decodes must re-encode to bytes that decode again, and the
// second encoding must equal the first (one canonical form per entry).
#include "storage/entry.h"
#include "storage/entry_codec.h"

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <string>
#include <string_view>

using hubcast::storage::DecodeEntry;
using hubcast::storage::EncodeEntry;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  std::string_view varint_input = bytes;
  uint64_t value = 0;
  if (hubcast::storage::GetVarint64(&varint_input, &value)) {
    std::string encoded;
    hubcast::storage::PutVarint64(&encoded, value);
    std::string_view again = encoded;
    uint64_t round = 0;
    FUZZ_CHECK(hubcast::storage::GetVarint64(&again, &round) && round == value && again.empty());
  } else {
    FUZZ_CHECK(varint_input.size() == bytes.size());  // unchanged on failure
  }

  CheckCanonicalRoundTrip(bytes, DecodeEntry, EncodeEntry);
  return 0;
}
