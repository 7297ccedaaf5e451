#include "storage/entry_codec.h"

#include "storage/entry.h"
#include "storage/filter.h"
#include "storage/permissions.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/test_util.h"
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::storage {
namespace {

using hubcast::testing::FromHex;
using hubcast::testing::ToHex;

using namespace std::string_literals;

std::shared_ptr<const Filter> MakeFilter(std::string_view text) {
  auto parsed = Filter::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  return parsed.ok() ? parsed.value() : nullptr;
}

void ExpectSameEntry(const Entry& want, const Entry& got) {
  EXPECT_EQ(want.kind, got.kind);
  EXPECT_EQ(want.timestamp_ms, got.timestamp_ms);
  EXPECT_EQ(want.scope, got.scope);
  EXPECT_EQ(want.target, got.target);
  EXPECT_EQ(want.excluded, got.excluded);
  ASSERT_EQ(want.filter == nullptr, got.filter == nullptr);
  if (want.filter) {
    EXPECT_EQ(want.filter->text(), got.filter->text());
  }
  EXPECT_EQ(want.groups, got.groups);
  EXPECT_EQ(want.origin_connection, got.origin_connection);
  EXPECT_EQ(want.ack_id, got.ack_id);
  EXPECT_EQ(want.required_permission, got.required_permission);
  EXPECT_EQ(want.from, got.from);
  EXPECT_EQ(want.from_user_id, got.from_user_id);
  EXPECT_EQ(want.no_echo, got.no_echo);
  EXPECT_EQ(want.data_type, got.data_type);
  EXPECT_EQ(want.data, got.data);
  EXPECT_EQ(want.message_ttl_seconds, got.message_ttl_seconds);
  EXPECT_EQ(want.user_id, got.user_id);
  EXPECT_EQ(want.roles, got.roles);
  EXPECT_EQ(want.subprotocol, got.subprotocol);
  EXPECT_EQ(want.reliable, got.reliable);
  EXPECT_EQ(want.node_id, got.node_id);
  EXPECT_EQ(want.reason, got.reason);
  EXPECT_EQ(want.permission, got.permission);
  EXPECT_EQ(want.permission_target, got.permission_target);
  EXPECT_EQ(want.acks, got.acks);
}

Entry RoundTrip(const Entry& e) {
  Result<Entry> decoded = DecodeEntry(EncodeEntry(e));
  EXPECT_TRUE(decoded.ok()) << decoded.status().message();
  return decoded.ok() ? std::move(decoded).value() : Entry();
}

void ExpectCorrupt(std::string_view bytes, std::string_view detail = "") {
  Result<Entry> decoded = DecodeEntry(bytes);
  ASSERT_FALSE(decoded.ok()) << "decoded " << ToHex(bytes);
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(decoded.status().message().rfind("corrupt entry: ", 0), 0u)
      << decoded.status().message();
  EXPECT_NE(decoded.status().message().find(detail), std::string::npos)
      << decoded.status().message();
}

constexpr EntryKind kAllKinds[] = {
    EntryKind::kConnectionOpen,   EntryKind::kConnectionClose,
    EntryKind::kCloseConnections, EntryKind::kAddToGroups,
    EntryKind::kRemoveFromGroups, EntryKind::kGrant,
    EntryKind::kRevoke,           EntryKind::kSend,
    EntryKind::kClientAck,        EntryKind::kCheckpoint,
};

// Every member set to a non-default value.
Entry FullEntry(EntryKind kind) {
  Entry e;
  e.kind = kind;
  e.timestamp_ms = 1'700'000'000'123;
  e.scope = Scope::kGroup;
  e.target = "room";
  e.excluded = {"c1", "c2"};
  e.filter = MakeFilter("userId eq 'alice' or 'vip' in groups");
  e.groups = {"g1", "g2", "g3"};
  e.origin_connection = "c0";
  e.ack_id = 42;
  e.required_permission = Permission::kJoinLeaveGroup;
  e.from = MessageFrom::kGroup;
  e.from_user_id = "bob";
  e.no_echo = true;
  e.data_type = DataType::kJson;  // 0: not the format default (text)
  e.data = R"({"a":1})";
  e.message_ttl_seconds = 3600;
  e.user_id = "alice";
  e.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.room"};
  e.subprotocol = "json.reliable.webpubsub.azure.v1";
  e.reliable = true;
  e.node_id = "node-a";
  e.reason = "bye";
  e.permission = Permission::kJoinLeaveGroup;
  e.permission_target = "room";
  e.acks = {{"c1", 5}, {"c2", 0}};
  return e;
}

// --- golden vectors -------------------------------------------------------------------------
// Version-1 encodings produced when the format was introduced. They must decode to these
// entries, and EncodeEntry must produce exactly these bytes, forever: never edit them. A
// format change that breaks them needs a new version byte (and new vectors beside these).

// A client message to a group: binary data with NUL bytes, filter, excluded, ackId,
// required permission (kSendToGroup = 0, presence), TTL.
Entry GoldenSend() {
  Entry e;
  e.kind = EntryKind::kSend;
  e.timestamp_ms = 1'700'000'000'123;
  e.scope = Scope::kGroup;
  e.target = "room";
  e.excluded = {"c1", "c2"};
  e.filter = MakeFilter("userId eq 'alice'");
  e.origin_connection = "c0";
  e.ack_id = 7;
  e.required_permission = Permission::kSendToGroup;
  e.from = MessageFrom::kGroup;
  e.from_user_id = "bob";
  e.no_echo = true;
  e.data_type = DataType::kBinary;
  e.data = "\x00\x01\xff"s + "hi\x00"s;
  e.message_ttl_seconds = 30;
  e.permission_target = "room";
  return e;
}
constexpr std::string_view kGoldenSendHex =
    "01080810f6a1abfef96218012204726f6f6d2a0263312a0263323211757365724964206571202761"
    "6c69636527420263304807500058016203626f62680170027a060001ff68690080013cc20104726f"
    "6f6d";

// A reliable connection opening with an empty (present) user id and a negative timestamp.
Entry GoldenConnectionOpen() {
  Entry e;
  e.kind = EntryKind::kConnectionOpen;
  e.timestamp_ms = -5;
  e.scope = Scope::kConnection;
  e.target = "conn-1";
  e.groups = {"chat", ""};
  e.user_id.emplace();  // present and empty
  e.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.chat"};
  e.subprotocol = "json.reliable.webpubsub.azure.v1";
  e.reliable = true;
  e.node_id = "node-a";
  return e;
}
constexpr std::string_view kGoldenConnectionOpenHex =
    "010801100918032206636f6e6e2d313a04636861743a008a01009201187765627075627375622e6a"
    "6f696e4c6561766547726f757092011a7765627075627375622e73656e64546f47726f75702e6368"
    "61749a01206a736f6e2e72656c6961626c652e7765627075627375622e617a7572652e7631a00101"
    "aa01066e6f64652d61";

// A revoke on the empty-named group (present ""), with ackId 0 (present) and extreme integers.
Entry GoldenRevoke() {
  Entry e;
  e.kind = EntryKind::kRevoke;
  e.timestamp_ms = std::numeric_limits<int64_t>::max();
  e.scope = Scope::kConnection;
  e.target = "conn-1";
  e.ack_id = 0;
  e.message_ttl_seconds = -1;
  e.reason = "revoked by admin";
  e.permission = Permission::kJoinLeaveGroup;
  e.permission_target.emplace();  // present and empty
  return e;
}
constexpr std::string_view kGoldenRevokeHex =
    "01080710feffffffffffffffff0118032206636f6e6e2d314800800101b201107265766f6b656420"
    "62792061646d696eb80101c20100";

// A checkpoint of three reliable connections' acknowledged sequence ids (one still at 0).
Entry GoldenCheckpoint() {
  Entry e;
  e.kind = EntryKind::kCheckpoint;
  e.timestamp_ms = 1'700'000'005'000;
  e.node_id = "node-a";
  e.acks = {{"conn-1", 300}, {"conn-2", 0}, {"conn-3", std::numeric_limits<uint64_t>::max()}};
  return e;
}
constexpr std::string_view kGoldenCheckpointHex =
    "01080a1090eeabfef962aa01066e6f64652d61ca010b0a06636f6e6e2d3110ac02ca01080a06636f"
    "6e6e2d32ca01130a06636f6e6e2d3310ffffffffffffffffff01";

struct Golden {
  const char* name;
  Entry (*entry)();
  std::string_view hex;
};
const Golden kGoldens[] = {
    {"send", GoldenSend, kGoldenSendHex},
    {"connection_open", GoldenConnectionOpen, kGoldenConnectionOpenHex},
    {"revoke", GoldenRevoke, kGoldenRevokeHex},
    {"checkpoint", GoldenCheckpoint, kGoldenCheckpointHex},
};

TEST(EntryCodecTest, GoldenVectorsStillDecodeToTheirEntries) {
  for (const Golden& g : kGoldens) {
    SCOPED_TRACE(g.name);
    Result<Entry> decoded = DecodeEntry(FromHex(g.hex));
    ASSERT_TRUE(decoded.ok()) << decoded.status().message();
    ExpectSameEntry(g.entry(), decoded.value());
  }
}

TEST(EntryCodecTest, EncoderStillProducesTheGoldenVectorsExactly) {
  for (const Golden& g : kGoldens) {
    SCOPED_TRACE(g.name);
    EXPECT_EQ(ToHex(EncodeEntry(g.entry())), g.hex);
  }
}

// --- varints and fixed-width helpers ---------------------------------------------------------

TEST(EntryCodecTest, VarintRoundTripsAtBoundaries) {
  std::vector<uint64_t> values = {0, 1, std::numeric_limits<uint64_t>::max()};
  for (int bits = 7; bits < 64; bits += 7) {
    const uint64_t edge = uint64_t{1} << bits;
    values.push_back(edge - 1);  // the largest value of (bits / 7) bytes
    values.push_back(edge);      // the smallest of one byte more
  }
  values.push_back(uint64_t{1} << 63);
  values.push_back((uint64_t{1} << 63) - 1);
  for (uint64_t v : values) {
    SCOPED_TRACE(v);
    std::string buf;
    PutVarint64(&buf, v);
    size_t expected_len = 1;
    for (uint64_t rest = v >> 7; rest != 0; rest >>= 7) ++expected_len;
    EXPECT_EQ(buf.size(), expected_len);
    buf += "tail";
    std::string_view in = buf;
    uint64_t got = 0;
    ASSERT_TRUE(GetVarint64(&in, &got));
    EXPECT_EQ(got, v);
    EXPECT_EQ(in, "tail");
  }
  std::string max;
  PutVarint64(&max, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(max.size(), kMaxVarint64Bytes);
}

TEST(EntryCodecTest, VarintRejectsTruncatedOverlongAndOverflowingInput) {
  uint64_t v = 0;
  std::string_view empty;
  EXPECT_FALSE(GetVarint64(&empty, &v));

  std::string truncated;
  PutVarint64(&truncated, 300);
  truncated.pop_back();
  std::string_view in = truncated;
  EXPECT_FALSE(GetVarint64(&in, &v));
  EXPECT_EQ(in.size(), truncated.size()) << "input must be left unchanged on failure";

  const std::string eleven = std::string(10, '\x80') + "\x01"s;  // longer than 10 bytes
  in = eleven;
  EXPECT_FALSE(GetVarint64(&in, &v));

  std::string overflow(9, '\xff');  // 63 bits set, then a 10th byte carrying bits 63 and 64
  overflow.push_back('\x02');
  in = overflow;
  EXPECT_FALSE(GetVarint64(&in, &v));

  std::string non_minimal = "\x80\x00"s;  // zero in two bytes: accepted, like protobuf
  in = non_minimal;
  ASSERT_TRUE(GetVarint64(&in, &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(in.empty());
}

TEST(EntryCodecTest, Fixed64BigEndianRoundTripsAndSortsLikeNumbers) {
  const uint64_t values[] = {
      0, 1, 255, 256, 0x0102030405060708, std::numeric_limits<uint64_t>::max()};
  std::string previous;
  for (uint64_t v : values) {
    std::string buf;
    PutFixed64BE(&buf, v);
    ASSERT_EQ(buf.size(), 8u);
    EXPECT_EQ(DecodeFixed64BE(buf.data()), v);
    EXPECT_LT(previous, buf);
    previous = buf;
  }
  std::string buf;
  PutFixed64BE(&buf, 0x0102030405060708);
  EXPECT_EQ(ToHex(buf), "0102030405060708");
}

// --- round trips -----------------------------------------------------------------------------

TEST(EntryCodecTest, RoundTripsEveryKindWithAllFieldsSet) {
  for (EntryKind kind : kAllKinds) {
    SCOPED_TRACE(static_cast<int>(kind));
    const Entry e = FullEntry(kind);
    ExpectSameEntry(e, RoundTrip(e));
  }
}

TEST(EntryCodecTest, RoundTripsEveryKindWithDefaultsInThreeBytes) {
  for (EntryKind kind : kAllKinds) {
    SCOPED_TRACE(static_cast<int>(kind));
    Entry e;
    e.kind = kind;
    const std::string bytes = EncodeEntry(e);
    EXPECT_EQ(bytes.size(), 3u) << "version, kind tag, kind value: " << ToHex(bytes);
    ExpectSameEntry(e, RoundTrip(e));
  }
}

TEST(EntryCodecTest, RoundTripsEveryEnumValue) {
  for (Scope s : {Scope::kAll, Scope::kGroup, Scope::kUser, Scope::kConnection}) {
    Entry e;
    e.scope = s;
    EXPECT_EQ(RoundTrip(e).scope, s);
  }
  for (DataType t : {DataType::kJson, DataType::kText, DataType::kBinary, DataType::kProtobuf}) {
    Entry e;
    e.data_type = t;
    EXPECT_EQ(RoundTrip(e).data_type, t);
  }
  for (MessageFrom f : {MessageFrom::kServer, MessageFrom::kGroup}) {
    Entry e;
    e.from = f;
    EXPECT_EQ(RoundTrip(e).from, f);
  }
  for (Permission p : {Permission::kSendToGroup, Permission::kJoinLeaveGroup}) {
    Entry e;
    e.permission = p;
    e.required_permission = p;
    const Entry got = RoundTrip(e);
    EXPECT_EQ(got.permission, p);
    EXPECT_EQ(got.required_permission, p);
  }
}

TEST(EntryCodecTest, RoundTripsIntegerExtremes) {
  for (int64_t ts : {std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{1},
                     std::numeric_limits<int64_t>::max()}) {
    Entry e;
    e.timestamp_ms = ts;
    EXPECT_EQ(RoundTrip(e).timestamp_ms, ts);
  }
  for (int ttl : {std::numeric_limits<int>::min(), -1, 1, std::numeric_limits<int>::max()}) {
    Entry e;
    e.message_ttl_seconds = ttl;
    EXPECT_EQ(RoundTrip(e).message_ttl_seconds, ttl);
  }
  Entry e;
  e.ack_id = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(RoundTrip(e).ack_id, std::numeric_limits<uint64_t>::max());
}

TEST(EntryCodecTest, AckIdZeroDiffersFromAbsent) {
  Entry absent;
  Entry zero;
  zero.ack_id = 0;
  EXPECT_NE(EncodeEntry(absent), EncodeEntry(zero));
  EXPECT_EQ(RoundTrip(absent).ack_id, std::nullopt);
  EXPECT_EQ(RoundTrip(zero).ack_id, std::optional<uint64_t>(0));
}

TEST(EntryCodecTest, UserIdEmptyDiffersFromAbsent) {
  Entry anonymous;
  Entry empty;
  empty.user_id.emplace();  // present and empty
  EXPECT_NE(EncodeEntry(anonymous), EncodeEntry(empty));
  EXPECT_EQ(RoundTrip(anonymous).user_id, std::nullopt);
  EXPECT_EQ(RoundTrip(empty).user_id, std::optional<std::string>(""));
}

TEST(EntryCodecTest, PermissionTargetAndRequiredPermissionKeepTheirPresence) {
  Entry all_groups;  // permission_target nullopt: all groups
  Entry empty_group;
  empty_group.permission_target.emplace();  // present and empty
  Entry named;
  named.permission_target = "room";
  EXPECT_EQ(RoundTrip(all_groups).permission_target, std::nullopt);
  EXPECT_EQ(RoundTrip(empty_group).permission_target, std::optional<std::string>(""));
  EXPECT_EQ(RoundTrip(named).permission_target, std::optional<std::string>("room"));

  Entry no_requirement;
  Entry requires_zero;  // kSendToGroup is 0, the same value as the permission default
  requires_zero.required_permission = Permission::kSendToGroup;
  EXPECT_EQ(RoundTrip(no_requirement).required_permission, std::nullopt);
  EXPECT_EQ(RoundTrip(requires_zero).required_permission, Permission::kSendToGroup);
}

TEST(EntryCodecTest, EmptyStringsInRepeatedFieldsAreKept) {
  Entry e;
  e.excluded = {"", "c1", ""};
  e.groups = {""};
  e.roles = {"", ""};
  ExpectSameEntry(e, RoundTrip(e));
}

TEST(EntryCodecTest, CheckpointAcksRoundTripInOrder) {
  Entry e;
  e.kind = EntryKind::kCheckpoint;
  e.acks = {{"b", 2}, {"a", 1}, {"", 0}, {"a", 7}, {"z", std::numeric_limits<uint64_t>::max()}};
  ExpectSameEntry(e, RoundTrip(e));
}

TEST(EntryCodecTest, CheckpointAckSkipsUnknownNestedFieldsAndRejectsCorruptOnes) {
  // Field 25 (tag 0xca 0x01), payload: nested field 1 "c", an unknown nested field 9, field 2 = 4.
  const std::string ok =
      "\x01\x08\x0a\xca\x01\x07\x0a\x01"
      "c"
      "\x48\x05\x10\x04"s;
  Result<Entry> got = DecodeEntry(ok);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->acks.size(), 1u);
  EXPECT_EQ(got->acks[0], (std::pair<std::string, uint64_t>("c", 4)));

  ExpectCorrupt("\x01\x08\x0a\xca\x01\x02\x10\x80"s, "ack: truncated or overlong varint");
  ExpectCorrupt("\x01\x08\x0a\xca\x01\x02\x0a\x05"s, "ack: length 5 runs past the end");
  ExpectCorrupt("\x01\x08\x0a\xca\x01\x04\x10\x01\x10\x02"s, "ack: duplicate field 2");
  ExpectCorrupt("\x01\x08\x0a\xca\x01\x02\x08\x01"s, "ack: wrong wire type 0 in field 1");
  ExpectCorrupt("\x01\x08\x0a\xca\x01\x02\x0d\x01"s, "ack: unknown wire type 5");
  ExpectCorrupt("\x01\x08\x0a\xc8\x01\x01"s, "wire type 0 (expected 2) in field 25");
}

TEST(EntryCodecTest, BinaryDataWithNulBytesRoundTrips) {
  Entry e;
  e.data_type = DataType::kBinary;
  for (int i = 0; i < 256; ++i) e.data.push_back(static_cast<char>(i));
  e.data += "\x00\x00"s;
  e.target = "a"s + '\0' + "b";
  const Entry got = RoundTrip(e);
  EXPECT_EQ(got.data, e.data);
  EXPECT_EQ(got.target, e.target);
}

TEST(EntryCodecTest, LargeDataRoundTrips) {
  Entry e;
  e.data_type = DataType::kBinary;
  e.data.resize(1 << 20);
  std::mt19937 rng(7);
  for (char& c : e.data) c = static_cast<char>(rng());
  const std::string bytes = EncodeEntry(e);
  EXPECT_LT(bytes.size(), e.data.size() + 16);
  Result<Entry> got = DecodeEntry(bytes);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->data, e.data);
}

// --- compatibility ---------------------------------------------------------------------------

TEST(EntryCodecTest, UnknownFieldsAreSkipped) {
  Entry e;
  e.kind = EntryKind::kAddToGroups;
  e.target = "conn-1";
  std::string bytes = EncodeEntry(e);
  // Field 99 as a varint (tag 99<<3|0 = 792 = 0x98 0x06) and as bytes (tag 794 = 0x9a 0x06),
  // both at the end and between known fields (after the version byte).
  const std::string unknown_varint = "\x98\x06\xff\xff\x03"s;
  const std::string unknown_bytes = "\x9a\x06\x03xyz"s;
  const std::string with_unknowns =
      bytes.substr(0, 1) + unknown_bytes + bytes.substr(1) + unknown_varint + unknown_bytes;
  Result<Entry> got = DecodeEntry(with_unknowns);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ExpectSameEntry(e, got.value());

  // A high field number (2^29 - 1, the largest) with an empty payload.
  std::string high = bytes;
  PutVarint64(&high, (((uint64_t{1} << 29) - 1) << 3) | 2);
  PutVarint64(&high, 0);
  EXPECT_TRUE(DecodeEntry(high).ok());
}

TEST(EntryCodecTest, FieldsAreAcceptedInAnyOrder) {
  // kind last, target first.
  const std::string bytes = "\x01\x22\x02hi\x08\x04"s;
  Result<Entry> got = DecodeEntry(bytes);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->kind, EntryKind::kAddToGroups);
  EXPECT_EQ(got->target, "hi");
}

TEST(EntryCodecTest, NewerFormatVersionIsRejected) {
  for (int version : {2, 255}) {
    std::string bytes = EncodeEntry(Entry());
    bytes[0] = static_cast<char>(version);
    Result<Entry> got = DecodeEntry(bytes);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(got.status().message(),
              "entry written by a newer format (version " + std::to_string(version) + ")");
  }
}

// --- corruption ------------------------------------------------------------------------------

TEST(EntryCodecTest, RejectsEmptyInputAndVersionZero) {
  ExpectCorrupt("", "empty");
  ExpectCorrupt("\x00\x08\x08"s, "version 0");
}

TEST(EntryCodecTest, RejectsMissingKind) {
  ExpectCorrupt("\x01", "missing kind");
  ExpectCorrupt("\x01\x22\x02hi"s, "missing kind");
}

TEST(EntryCodecTest, RejectsTruncatedAndOverlongVarints) {
  ExpectCorrupt("\x01\x08"s, "truncated or overlong varint");
  ExpectCorrupt("\x01\x08\x80"s, "truncated or overlong varint");
  ExpectCorrupt("\x01\x80"s, "tag varint");
  ExpectCorrupt("\x01\x08\x08\x10"s + std::string(10, '\x80') + "\x01"s, "overlong varint");
  ExpectCorrupt("\x01\x08\x08\x22"s, "length varint");
}

TEST(EntryCodecTest, RejectsLengthPastTheEnd) {
  ExpectCorrupt("\x01\x08\x08\x22\x05hi"s, "runs past the end");
  // A length near 2^64 must not wrap around.
  ExpectCorrupt("\x01\x08\x08\x22\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01hi"s, "runs past the end");
  // Also for an unknown field, which is skipped only when it is whole.
  ExpectCorrupt("\x01\x08\x08\x9a\x06\x09xyz"s, "runs past the end");
}

TEST(EntryCodecTest, RejectsUnknownWireTypes) {
  for (unsigned wire : {1u, 3u, 4u, 5u, 6u, 7u}) {
    SCOPED_TRACE(wire);
    // On a known field (target, 4) and on an unknown one (99).
    std::string known = "\x01\x08\x08"s;
    PutVarint64(&known, (4 << 3) | wire);
    known += std::string(8, '\0');
    ExpectCorrupt(known, "unknown wire type " + std::to_string(wire));
    std::string unknown = "\x01\x08\x08"s;
    PutVarint64(&unknown, (99 << 3) | wire);
    unknown += std::string(8, '\0');
    ExpectCorrupt(unknown, "unknown wire type " + std::to_string(wire));
  }
}

TEST(EntryCodecTest, RejectsAKnownFieldWithTheWrongWireType) {
  ExpectCorrupt("\x01\x0a\x01x"s, "wire type 2 (expected 0) in field 1");         // kind as bytes
  ExpectCorrupt("\x01\x08\x08\x20\x01"s, "wire type 0 (expected 2) in field 4");  // target
}

TEST(EntryCodecTest, RejectsFieldNumberZeroAndOutOfRange) {
  ExpectCorrupt("\x01\x08\x08\x00\x01"s, "field number 0");
  std::string huge = "\x01\x08\x08"s;
  PutVarint64(&huge, uint64_t{1} << 29 << 3);
  huge += "\x00"s;
  ExpectCorrupt(huge, "out of range");
}

TEST(EntryCodecTest, RejectsEnumAndBoolValuesOutOfRange) {
  const struct {
    const char* bytes_hex;
    const char* what;
  } cases[] = {
      {"010800", "kind 0"},
      {"01080e", "kind 14"},
      {"0108081804", "scope 4"},
      {"0108085802", "from 2"},
      {"0108086802", "no_echo 2"},
      {"0108087004", "data_type 4"},
      {"010808a00102", "reliable 2"},
      {"010808b80102", "permission 2"},
      {"0108085002", "required_permission 2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    ExpectCorrupt(FromHex(c.bytes_hex), "out of range");
  }
}

TEST(EntryCodecTest, RejectsMessageTtlOutsideInt) {
  std::string bytes = "\x01\x08\x08"s;
  PutVarint64(&bytes, (16 << 3) | 0);
  PutVarint64(&bytes, uint64_t{1} << 32);  // zigzag of 2^31
  ExpectCorrupt(bytes, "out of range in field 16");
}

TEST(EntryCodecTest, RejectsAFilterThatNoLongerParses) {
  std::string bytes = "\x01\x08\x08"s;
  PutVarint64(&bytes, (6 << 3) | 2);
  const std::string text = "userId eq";  // incomplete
  PutVarint64(&bytes, text.size());
  bytes += text;
  ExpectCorrupt(bytes, "filter text no longer parses");

  std::string empty = "\x01\x08\x08\x32\x00"s;  // a present but empty filter text
  ExpectCorrupt(empty, "filter text no longer parses");
}

TEST(EntryCodecTest, RejectsADuplicateSingularField) {
  ExpectCorrupt("\x01\x08\x08\x08\x08"s, "duplicate field 1");
  ExpectCorrupt("\x01\x08\x08\x22\x01x\x22\x01y"s, "duplicate field 4");
}

// --- robustness ------------------------------------------------------------------------------

TEST(EntryCodecTest, EveryTruncationFailsCleanlyOrDecodes) {
  std::vector<std::string> encodings;
  for (EntryKind kind : kAllKinds) encodings.push_back(EncodeEntry(FullEntry(kind)));
  for (const Golden& g : kGoldens) encodings.push_back(FromHex(g.hex));
  for (const std::string& full : encodings) {
    for (size_t n = 0; n < full.size(); ++n) {
      // A copy of exactly n bytes, so a sanitizer sees any read past the prefix.
      const std::string prefix = full.substr(0, n);
      Result<Entry> got = DecodeEntry(prefix);
      if (!got.ok()) {
        EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
        EXPECT_EQ(got.status().message().rfind("corrupt entry: ", 0), 0u) << got.status().message();
      }
    }
  }
}

TEST(EntryCodecTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20240601);
  const std::string seed = EncodeEntry(FullEntry(EntryKind::kSend));
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      // Pure noise, mostly behind a valid version byte so the field parser gets exercised.
      bytes.resize(rng() % 64);
      for (char& c : bytes) c = static_cast<char>(rng());
      if (!bytes.empty() && rng() % 4 != 0) bytes[0] = 1;
    } else {
      // A valid encoding with a few bytes flipped, inserted or cut.
      bytes = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits && !bytes.empty(); ++k) {
        const size_t at = rng() % bytes.size();
        switch (rng() % 3) {
          case 0:
            bytes[at] = static_cast<char>(rng());
            break;
          case 1:
            bytes.insert(at, 1, static_cast<char>(rng()));
            break;
          default:
            bytes.resize(at);
            break;
        }
      }
    }
    // Exact-size heap copy, so a sanitizer catches any read past the end.
    const std::string input(bytes);
    Result<Entry> got = DecodeEntry(input);
    if (got.ok()) {
      ++decoded;
      // Whatever decodes re-encodes to something that decodes to the same entry.
      Result<Entry> again = DecodeEntry(EncodeEntry(got.value()));
      ASSERT_TRUE(again.ok()) << again.status().message();
      ExpectSameEntry(got.value(), again.value());
    } else {
      ASSERT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace hubcast::storage
