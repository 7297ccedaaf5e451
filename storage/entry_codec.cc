#include "storage/entry_codec.h"

#include "storage/filter.h"
#include "storage/permissions.h"

#include <climits>
#include <optional>
#include <utility>

namespace hubcast::storage {

namespace {

enum WireType : uint64_t { kVarint = 0, kLengthDelimited = 2 };

// Stable field numbers (storage/ENTRY_FORMAT.md, "Fields"). Never renumber, never reuse.
enum Field : uint64_t {
  kFieldKind = 1,
  kFieldTimestampMs = 2,
  kFieldScope = 3,
  kFieldTarget = 4,
  kFieldExcluded = 5,  // repeated
  kFieldFilter = 6,
  kFieldGroups = 7,  // repeated
  kFieldOriginConnection = 8,
  kFieldAckId = 9,                // presence
  kFieldRequiredPermission = 10,  // presence
  kFieldFrom = 11,
  kFieldFromUserId = 12,
  kFieldNoEcho = 13,
  kFieldDataType = 14,
  kFieldData = 15,
  kFieldMessageTtlSeconds = 16,
  kFieldUserId = 17,  // presence
  kFieldRoles = 18,   // repeated
  kFieldSubprotocol = 19,
  kFieldReliable = 20,
  kFieldNodeId = 21,
  kFieldReason = 22,
  kFieldPermission = 23,
  kFieldPermissionTarget = 24,  // presence
  kFieldAcks = 25,              // repeated, each an Ack (below)
  kFieldMembershipTtl = 26,     // presence, zigzag
  kFieldExpiring = 27,
  kFieldConnectionState = 28,  // presence
  kFieldHoldUntilMs = 29,      // zigzag
  kLastKnownField = 29,
  // 26..1023: reserved for future Entry members, assigned in order, each an optional field
  // whose absence means its default (so version-1 readers may skip it). 1024..(2^29 - 1):
  // reserved, unassigned. See ENTRY_FORMAT.md before adding one.
};

// The fields inside one kFieldAcks payload (a nested field sequence, same rules).
enum AckField : uint64_t {
  kAckFieldConnectionId = 1,
  kAckFieldSequenceId = 2,
};

// Field numbers are limited to 29 bits, as in protobuf.
constexpr uint64_t kMaxFieldNumber = (uint64_t{1} << 29) - 1;

// Format defaults: an omitted field decodes to these. They belong to the format, not to the
// Entry struct's member initialisers, so changing the struct never changes what old bytes
// mean.
constexpr int64_t kDefaultTimestampMs = 0;
constexpr Scope kDefaultScope = Scope::kAll;
constexpr MessageFrom kDefaultFrom = MessageFrom::kServer;
constexpr DataType kDefaultDataType = DataType::kText;
constexpr int kDefaultMessageTtlSeconds = 0;
constexpr Permission kDefaultPermission = Permission::kSendToGroup;


void PutTag(std::string* out, uint64_t field, WireType wire) {
  PutVarint64(out, (field << 3) | wire);
}

void PutVarintField(std::string* out, uint64_t field, uint64_t value) {
  PutTag(out, field, kVarint);
  PutVarint64(out, value);
}

void PutBytesField(std::string* out, uint64_t field, std::string_view value) {
  PutTag(out, field, kLengthDelimited);
  PutVarint64(out, value.size());
  out->append(value);
}

void PutStringIfNotEmpty(std::string* out, Field field, const std::string& value) {
  if (!value.empty()) PutBytesField(out, field, value);
}

template <typename E>
uint64_t EnumValue(E e) {
  return static_cast<uint64_t>(e);
}

Status Corrupt(std::string what) { return Status::InvalidArgument("corrupt entry: " + what); }

// The wire type of each known field (1..kLastKnownField).
constexpr WireType WireOf(uint64_t field) {
  switch (field) {
    case kFieldKind:
    case kFieldTimestampMs:
    case kFieldScope:
    case kFieldAckId:
    case kFieldRequiredPermission:
    case kFieldFrom:
    case kFieldNoEcho:
    case kFieldDataType:
    case kFieldMessageTtlSeconds:
    case kFieldReliable:
    case kFieldPermission:
    case kFieldMembershipTtl:
    case kFieldExpiring:
    case kFieldHoldUntilMs:
      return kVarint;
    default:
      return kLengthDelimited;
  }
}

bool IsRepeated(uint64_t field) {
  return field == kFieldExcluded || field == kFieldGroups || field == kFieldRoles ||
         field == kFieldAcks;
}

// Range-checked enum conversion: values outside [lo, hi] are corruption.
template <typename E>
std::optional<E> ToEnum(uint64_t v, E lo, E hi) {
  if (v < EnumValue(lo) || v > EnumValue(hi)) return std::nullopt;
  return static_cast<E>(v);
}

// One field as read from the wire, before its number is interpreted.
struct RawField {
  uint64_t number = 0;
  uint64_t wire = 0;
  uint64_t varint = 0;     // wire type 0
  std::string_view bytes;  // wire type 2: points into the input
};

// Reads one field from the front of *in and advances past it. On failure returns what is
// wrong (for "corrupt entry: <what> at offset N"); raw->number is set once the tag was read.
// Errors are formatted only on failure: decoding is on the replay hot path.
std::optional<std::string> ReadField(std::string_view* in, RawField* raw) {
  uint64_t tag = 0;
  if (!GetVarint64(in, &tag)) return "truncated or overlong tag varint";
  raw->number = tag >> 3;
  raw->wire = tag & 7;
  if (raw->number == 0 || raw->number > kMaxFieldNumber) {
    return "field number " + std::to_string(raw->number) + " out of range";
  }
  if (raw->wire == kVarint) {
    if (!GetVarint64(in, &raw->varint)) {
      return std::string("truncated or overlong varint in field ") + std::to_string(raw->number);
    }
  } else if (raw->wire == kLengthDelimited) {
    uint64_t len = 0;
    if (!GetVarint64(in, &len)) {
      return std::string("truncated or overlong length varint in field ") +
             std::to_string(raw->number);
    }
    if (len > in->size()) {
      return "length " + std::to_string(len) + " runs past the end in field " +
             std::to_string(raw->number);
    }
    raw->bytes = in->substr(0, static_cast<size_t>(len));
    in->remove_prefix(static_cast<size_t>(len));
  } else {
    return "unknown wire type " + std::to_string(raw->wire) + " in field " +
           std::to_string(raw->number);
  }
  return std::nullopt;
}

// Decodes one kFieldAcks payload. On failure returns what is wrong.
std::optional<std::string> DecodeAck(std::string_view in, std::pair<std::string, uint64_t>* ack) {
  bool seen_connection = false;
  bool seen_sequence = false;
  while (!in.empty()) {
    RawField raw;
    if (auto error = ReadField(&in, &raw)) return "ack: " + *error;
    bool* seen = nullptr;
    if (raw.number == kAckFieldConnectionId && raw.wire == kLengthDelimited) {
      seen = &seen_connection;
      ack->first.assign(raw.bytes);
    } else if (raw.number == kAckFieldSequenceId && raw.wire == kVarint) {
      seen = &seen_sequence;
      ack->second = raw.varint;
    } else if (raw.number == kAckFieldConnectionId || raw.number == kAckFieldSequenceId) {
      return "ack: wrong wire type " + std::to_string(raw.wire) + " in field " +
             std::to_string(raw.number);
    } else {
      continue;  // unknown: skipped
    }
    if (*seen) return "ack: duplicate field " + std::to_string(raw.number);
    *seen = true;
  }
  return std::nullopt;
}

}  // namespace

void PutVarint64(std::string* dst, uint64_t value) {
  char buf[kMaxVarint64Bytes];
  size_t n = 0;
  while (value >= 0x80) {
    buf[n++] = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  buf[n++] = static_cast<char>(value);
  dst->append(buf, n);
}

bool GetVarint64(std::string_view* input, uint64_t* value) {
  uint64_t result = 0;
  const size_t available = input->size();
  for (size_t i = 0; i < kMaxVarint64Bytes && i < available; ++i) {
    const auto byte = static_cast<uint8_t>((*input)[i]);
    // The 10th byte holds bit 63 only: anything more overflows 64 bits (and a continuation bit
    // there would make the varint longer than 10 bytes).
    if (i == kMaxVarint64Bytes - 1 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = result;
      input->remove_prefix(i + 1);
      return true;
    }
  }
  return false;  // truncated
}

void PutFixed64BE(std::string* dst, uint64_t value) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  dst->append(buf, 8);
}

uint64_t DecodeFixed64BE(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string EncodeEntry(const Entry& e) {
  std::string out;
  out.reserve(32 + e.data.size() + e.target.size() + e.origin_connection.size());
  out.push_back(static_cast<char>(kEntryFormatVersion));

  // Fields in ascending field-number order (readers accept any order).
  PutVarintField(&out, kFieldKind, EnumValue(e.kind));  // always written
  if (e.timestamp_ms != kDefaultTimestampMs) {
    PutVarintField(&out, kFieldTimestampMs, ZigZagEncode(e.timestamp_ms));
  }
  if (e.scope != kDefaultScope) PutVarintField(&out, kFieldScope, EnumValue(e.scope));
  PutStringIfNotEmpty(&out, kFieldTarget, e.target);
  for (const std::string& id : e.excluded) PutBytesField(&out, kFieldExcluded, id);
  if (e.filter) PutBytesField(&out, kFieldFilter, e.filter->text());
  for (const std::string& g : e.groups) PutBytesField(&out, kFieldGroups, g);
  PutStringIfNotEmpty(&out, kFieldOriginConnection, e.origin_connection);
  if (e.ack_id) PutVarintField(&out, kFieldAckId, *e.ack_id);
  if (e.required_permission) {
    PutVarintField(&out, kFieldRequiredPermission, EnumValue(*e.required_permission));
  }
  if (e.from != kDefaultFrom) PutVarintField(&out, kFieldFrom, EnumValue(e.from));
  PutStringIfNotEmpty(&out, kFieldFromUserId, e.from_user_id);
  if (e.no_echo) PutVarintField(&out, kFieldNoEcho, 1);
  if (e.data_type != kDefaultDataType) {
    PutVarintField(&out, kFieldDataType, EnumValue(e.data_type));
  }
  PutStringIfNotEmpty(&out, kFieldData, e.data);
  if (e.message_ttl_seconds != kDefaultMessageTtlSeconds) {
    PutVarintField(&out, kFieldMessageTtlSeconds, ZigZagEncode(e.message_ttl_seconds));
  }
  if (e.user_id) PutBytesField(&out, kFieldUserId, *e.user_id);
  for (const std::string& r : e.roles) PutBytesField(&out, kFieldRoles, r);
  PutStringIfNotEmpty(&out, kFieldSubprotocol, e.subprotocol);
  if (e.reliable) PutVarintField(&out, kFieldReliable, 1);
  PutStringIfNotEmpty(&out, kFieldNodeId, e.node_id);
  PutStringIfNotEmpty(&out, kFieldReason, e.reason);
  if (e.permission != kDefaultPermission) {
    PutVarintField(&out, kFieldPermission, EnumValue(e.permission));
  }
  if (e.permission_target) PutBytesField(&out, kFieldPermissionTarget, *e.permission_target);
  std::string ack;
  for (const auto& [connection_id, sequence_id] : e.acks) {
    ack.clear();
    if (!connection_id.empty()) PutBytesField(&ack, kAckFieldConnectionId, connection_id);
    if (sequence_id != 0) PutVarintField(&ack, kAckFieldSequenceId, sequence_id);
    PutBytesField(&out, kFieldAcks, ack);
  }
  if (e.membership_ttl_seconds) {
    PutVarintField(&out, kFieldMembershipTtl, ZigZagEncode(*e.membership_ttl_seconds));
  }
  if (e.expiring) PutVarintField(&out, kFieldExpiring, 1);
  if (e.connection_state) PutBytesField(&out, kFieldConnectionState, *e.connection_state);
  if (e.hold_until_ms != 0) PutVarintField(&out, kFieldHoldUntilMs, ZigZagEncode(e.hold_until_ms));
  return out;
}

Result<Entry> DecodeEntry(std::string_view bytes) {
  if (bytes.empty()) return Corrupt("empty input, no format version byte");
  const auto version = static_cast<uint8_t>(bytes[0]);
  if (version == 0) return Corrupt("format version 0 is not a valid version");
  if (version > kEntryFormatVersion) {
    return Status::InvalidArgument("entry written by a newer format (version " +
                                   std::to_string(version) + ")");
  }

  // Start from the format defaults explicitly (not from Entry's member initialisers).
  Entry e;
  e.timestamp_ms = kDefaultTimestampMs;
  e.scope = kDefaultScope;
  e.from = kDefaultFrom;
  e.no_echo = false;
  e.data_type = kDefaultDataType;
  e.message_ttl_seconds = kDefaultMessageTtlSeconds;
  e.reliable = false;
  e.permission = kDefaultPermission;

  uint64_t seen = 0;  // bit n: non-repeated known field n already read
  std::string_view in = bytes.substr(1);
  while (!in.empty()) {
    const size_t offset = bytes.size() - in.size();
    const auto fail = [&](std::string_view what) {
      return Corrupt(std::string(what) + " at offset " + std::to_string(offset));
    };
    RawField raw;
    if (auto error = ReadField(&in, &raw)) return fail(*error);
    const uint64_t field = raw.number;
    const uint64_t wire = raw.wire;
    const uint64_t v = raw.varint;
    const std::string_view s = raw.bytes;

    if (field > kLastKnownField) continue;  // a field from a later writer: skipped
    if (wire != WireOf(field)) {
      return fail("wire type " + std::to_string(wire) + " (expected " +
                  std::to_string(static_cast<uint64_t>(WireOf(field))) + ") in field " +
                  std::to_string(field));
    }
    if (!IsRepeated(field)) {
      const uint64_t bit = uint64_t{1} << field;
      if (seen & bit) return fail("duplicate field " + std::to_string(field));
      seen |= bit;
    }

    const auto bad_value = [&] {
      return fail("value " + std::to_string(v) + " out of range in field " + std::to_string(field));
    };
    switch (field) {
      case kFieldKind: {
        auto k = ToEnum(v, EntryKind::kConnectionOpen, EntryKind::kConnectionMoved);
        if (!k) return bad_value();
        e.kind = *k;
        break;
      }
      case kFieldTimestampMs:
        e.timestamp_ms = ZigZagDecode(v);
        break;
      case kFieldScope: {
        auto sc = ToEnum(v, Scope::kAll, Scope::kConnection);
        if (!sc) return bad_value();
        e.scope = *sc;
        break;
      }
      case kFieldTarget:
        e.target.assign(s);
        break;
      case kFieldExcluded:
        e.excluded.emplace_back(s);
        break;
      case kFieldFilter: {
        auto parsed = Filter::Parse(s);
        if (!parsed.ok()) {
          return fail("filter text no longer parses (" + parsed.status().message() + ") in field " +
                      std::to_string(field));
        }
        e.filter = std::move(parsed).value();
        break;
      }
      case kFieldGroups:
        e.groups.emplace_back(s);
        break;
      case kFieldOriginConnection:
        e.origin_connection.assign(s);
        break;
      case kFieldAckId:
        e.ack_id = v;
        break;
      case kFieldRequiredPermission: {
        auto p = ToEnum(v, Permission::kSendToGroup, Permission::kJoinLeaveGroup);
        if (!p) return bad_value();
        e.required_permission = *p;
        break;
      }
      case kFieldFrom: {
        auto f = ToEnum(v, MessageFrom::kServer, MessageFrom::kGroup);
        if (!f) return bad_value();
        e.from = *f;
        break;
      }
      case kFieldFromUserId:
        e.from_user_id.assign(s);
        break;
      case kFieldNoEcho:
        if (v > 1) return bad_value();
        e.no_echo = v == 1;
        break;
      case kFieldDataType: {
        auto t = ToEnum(v, DataType::kJson, DataType::kProtobuf);
        if (!t) return bad_value();
        e.data_type = *t;
        break;
      }
      case kFieldData:
        e.data.assign(s);
        break;
      case kFieldMessageTtlSeconds: {
        const int64_t ttl = ZigZagDecode(v);
        if (ttl < INT_MIN || ttl > INT_MAX) return bad_value();
        e.message_ttl_seconds = static_cast<int>(ttl);
        break;
      }
      case kFieldUserId:
        e.user_id.emplace(s);
        break;
      case kFieldRoles:
        e.roles.emplace_back(s);
        break;
      case kFieldSubprotocol:
        e.subprotocol.assign(s);
        break;
      case kFieldReliable:
        if (v > 1) return bad_value();
        e.reliable = v == 1;
        break;
      case kFieldNodeId:
        e.node_id.assign(s);
        break;
      case kFieldReason:
        e.reason.assign(s);
        break;
      case kFieldPermission: {
        auto p = ToEnum(v, Permission::kSendToGroup, Permission::kJoinLeaveGroup);
        if (!p) return bad_value();
        e.permission = *p;
        break;
      }
      case kFieldPermissionTarget:
        e.permission_target.emplace(s);
        break;
      case kFieldAcks: {
        std::pair<std::string, uint64_t> ack;
        if (auto error = DecodeAck(s, &ack)) {
          return fail(*error + " (in field " + std::to_string(field) + ")");
        }
        e.acks.push_back(std::move(ack));
        break;
      }
      case kFieldMembershipTtl:
        e.membership_ttl_seconds = ZigZagDecode(v);
        break;
      case kFieldExpiring:
        if (v > 1) return bad_value();
        e.expiring = v == 1;
        break;
      case kFieldConnectionState:
        e.connection_state.emplace(s);
        break;
      case kFieldHoldUntilMs:
        e.hold_until_ms = ZigZagDecode(v);
        break;
      default:
        break;  // unreachable: every field in 1..kLastKnownField has a case
    }
  }
  if ((seen & (uint64_t{1} << kFieldKind)) == 0) return Corrupt("missing kind (field 1)");
  return e;
}

uint64_t ZigZagEncode(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

int64_t ZigZagDecode(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

}  // namespace hubcast::storage
