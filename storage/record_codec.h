// Binary encoding of a connection record as the RocksDB view stores it (the `conns` column
// family). Versioned like log entries: byte 0 is the format version, and a reader accepts
// every version up to its own. Version 1 layout, all integers varints, strings and lists
// length-prefixed:
//   version(1) id user_present [user] subprotocol reliable node_id created_position
//   roles[] groups[] (for sendToGroup, joinLeaveGroup: granted_all deny_all granted[] revoked[])
//   seq acked checkpoints[](position seq groups[])
// Version 2 appends: state_present [state]. Version 3 appends: held_until_ms (zigzag).
// Pure functions; thread-safe.
#pragma once

#include "base/status.h"
#include "storage/hub_view.h"

#include <string>
#include <string_view>

namespace hubcast::storage {

inline constexpr uint8_t kRecordFormatVersion = 3;

std::string EncodeConnectionRecord(const ConnectionRecord& record);
// kInvalidArgument for corrupt bytes or a newer version; never reads out of bounds.
Result<ConnectionRecord> DecodeConnectionRecord(std::string_view bytes);

}  // namespace hubcast::storage
