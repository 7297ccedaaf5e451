// The binary encoding of a hub's whole view (ViewState): what a node writes into JetStream as
// a snapshot for joining nodes, and the canonical form two views are compared in (views that
// applied the same entries encode to the same bytes).
//
// Layout (byte 0 the format version; integers varints, signed ones zigzag; strings and
// lists length-prefixed):
//   version(1) applied_position last_timestamp_ms
//   connections[]( record(bytes: record_codec) acks[](ack_id position) )
//   user_groups[]( user group expires_at_ms )
// Decoding is strict and total: malformed or truncated input is kInvalidArgument, never a
// crash, and a snapshot written by a newer format is refused. Pure functions; thread-safe.
#pragma once

#include "base/status.h"
#include "storage/hub_view.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace hubcast::storage {

inline constexpr uint8_t kViewSnapshotFormatVersion = 1;

std::string EncodeViewState(const ViewState& state);
Result<ViewState> DecodeViewState(std::string_view bytes);

}  // namespace hubcast::storage
