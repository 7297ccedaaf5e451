#include "storage/view_snapshot.h"

#include "storage/byte_reader.h"
#include "storage/entry_codec.h"
#include "storage/record_codec.h"

namespace hubcast::storage {

std::string EncodeViewState(const ViewState& s) {
  std::string out;
  out.push_back(static_cast<char>(kViewSnapshotFormatVersion));
  PutVarint64(&out, s.applied_position);
  PutVarint64(&out, ZigZagEncode(s.last_timestamp_ms));
  PutVarint64(&out, s.connections.size());
  for (const ConnectionState& c : s.connections) {
    ConnectionRecord r = c.record;
    r.local_handle = 0;
    PutLengthPrefixed(&out, EncodeConnectionRecord(r));
    PutVarint64(&out, c.acks.size());
    for (const AckRecord& a : c.acks) {
      PutVarint64(&out, a.ack_id);
      PutVarint64(&out, a.position);
    }
  }
  PutVarint64(&out, s.user_groups.size());
  for (const UserGroupRecord& ug : s.user_groups) {
    PutLengthPrefixed(&out, ug.user_id);
    PutLengthPrefixed(&out, ug.group);
    PutVarint64(&out, ZigZagEncode(ug.expires_at_ms));
  }
  return out;
}

Result<ViewState> DecodeViewState(std::string_view bytes) {
  if (bytes.empty()) return Status::InvalidArgument("corrupt view snapshot: empty");
  uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version == 0) return Status::InvalidArgument("corrupt view snapshot: version 0");
  if (version > kViewSnapshotFormatVersion) {
    return Status::InvalidArgument("view snapshot written by a newer format (version " +
                                   std::to_string(version) + ")");
  }
  ByteReader in(bytes.substr(1));
  ViewState s;
  uint64_t n = 0;
  in.U64(&s.applied_position);
  in.I64(&s.last_timestamp_ms);
  in.Count(&n);
  for (uint64_t i = 0; i < n && in.ok(); ++i) {
    std::string record;
    if (!in.Str(&record)) break;
    auto r = DecodeConnectionRecord(record);
    if (!r.ok()) return Status::InvalidArgument("corrupt view snapshot: " + r.status().message());
    ConnectionState& c = s.connections.emplace_back();
    c.record = std::move(r).value();
    uint64_t acks = 0;
    in.Count(&acks);
    for (uint64_t j = 0; j < acks && in.ok(); ++j) {
      AckRecord& a = c.acks.emplace_back();
      in.U64(&a.ack_id);
      in.U64(&a.position);
    }
  }
  in.Count(&n);
  for (uint64_t i = 0; i < n && in.ok(); ++i) {
    UserGroupRecord& ug = s.user_groups.emplace_back();
    in.Str(&ug.user_id);
    in.Str(&ug.group);
    in.I64(&ug.expires_at_ms);
  }
  if (!in.ok() || !in.done()) return Status::InvalidArgument("corrupt view snapshot");
  return s;
}

}  // namespace hubcast::storage
