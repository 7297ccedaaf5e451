// DecodeConnectionRecord (storage/record_codec.h) on arbitrary bytes: total decoding, and what
// decodes re-encodes to one canonical form that decodes to an equal encoding again.
#include "storage/record_codec.h"

#include "tests/fuzz/fuzz_check.h"
#include <cstdint>
#include <string>
#include <string_view>

using hubcast::storage::DecodeConnectionRecord;
using hubcast::storage::EncodeConnectionRecord;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckCanonicalRoundTrip(bytes, DecodeConnectionRecord, EncodeConnectionRecord);
  return 0;
}
