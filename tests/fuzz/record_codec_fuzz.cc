// DecodeConnectionRecord (storage/record_codec.h) on arbitrary bytes: total decoding, and what
// decodes re-encodes to one canonical form that decodes to an equal encoding again.
#include "storage/record_codec.h"

#include "tests/fuzz/fuzz_check.h"

FUZZ_CANONICAL_CODEC_TARGET(hubcast::storage::DecodeConnectionRecord,
                            hubcast::storage::EncodeConnectionRecord)
