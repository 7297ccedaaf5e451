// The versioned binary encoding of a log Entry: what RocksDB (and later NATS JetStream)
// stores, so every encoding ever written must stay decodable. storage/ENTRY_FORMAT.md is the
// specification; this file and entry_codec.cc implement it.
//
// In short: one format-version byte, then protobuf-like tagged fields (tag varint =
// field_number << 3 | wire_type; wire type 0 = varint, 2 = length-delimited). Fields equal to
// their format default are omitted; presence-bearing optionals are written whenever set.
// Unknown field numbers (with a known wire type) are skipped, so a later writer may add
// optional fields without a version bump.
//
// Decoding is strict and total: any malformed input yields kInvalidArgument ("corrupt entry:
// ..." or "entry written by a newer format (version N)"); it never throws on bad input and
// never reads outside `bytes`.
//
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include "base/status.h"
#include "storage/entry.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hubcast::storage {

// The version byte EncodeEntry writes, and the highest one DecodeEntry accepts.
inline constexpr uint8_t kEntryFormatVersion = 1;

std::string EncodeEntry(const Entry& e);
Result<Entry> DecodeEntry(std::string_view bytes);

// Base-128 varints, least significant group first (protobuf / LevelDB encoding).
inline constexpr size_t kMaxVarint64Bytes = 10;
void PutVarint64(std::string* dst, uint64_t value);
// Parses a varint from the front of *input and advances past it. Returns false (and leaves
// *input unchanged) if the input ends inside the varint, or if it runs past 10 bytes or past
// 64 bits.
bool GetVarint64(std::string_view* input, uint64_t* value);

// Signed integers as varints (protobuf's sint64): small magnitudes stay short.
uint64_t ZigZagEncode(int64_t v);
int64_t ZigZagDecode(uint64_t v);

// Fixed-width big-endian integers: byte-wise comparison of the encodings orders them like the
// numbers, which is what RocksDB keys holding positions need.
void PutFixed64BE(std::string* dst, uint64_t value);
// Reads 8 bytes at `p`; the caller guarantees they exist.
uint64_t DecodeFixed64BE(const char* p);

}  // namespace hubcast::storage
