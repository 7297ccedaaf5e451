// DecodeViewState (storage/view_snapshot.h) on arbitrary bytes: a snapshot arrives from
// JetStream, written by another node. Decoding is total, and what decodes re-encodes to one
// canonical form that decodes to an equal encoding again.
#include "storage/view_snapshot.h"

#include "tests/fuzz/fuzz_check.h"

FUZZ_CANONICAL_CODEC_TARGET(hubcast::storage::DecodeViewState, hubcast::storage::EncodeViewState)
