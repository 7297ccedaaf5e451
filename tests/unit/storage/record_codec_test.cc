// Tests of storage/record_codec.h: the versioned encoding of a ConnectionRecord (the `conns`
// column family). Round trips, rejection of corrupt / truncated / newer input, and a golden
// version-1 vector that every later build must keep decoding.
#include "storage/record_codec.h"

#include "base/status.h"
#include "storage/hub_view.h"
#include "storage/permissions.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/test_util.h"
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::storage {
namespace {

using hubcast::testing::FromHex;
using hubcast::testing::ToHex;

constexpr Permission kPermissions[] = {Permission::kSendToGroup, Permission::kJoinLeaveGroup};

void ExpectSameOverrides(const PermissionSet::Overrides& want,
                         const PermissionSet::Overrides& got) {
  EXPECT_EQ(want.granted_all, got.granted_all);
  EXPECT_EQ(want.deny_all, got.deny_all);
  EXPECT_EQ(want.granted, got.granted);
  EXPECT_EQ(want.revoked, got.revoked);
}

void ExpectSameRecord(const ConnectionRecord& want, const ConnectionRecord& got) {
  EXPECT_EQ(want.id, got.id);
  EXPECT_EQ(want.user_id, got.user_id);
  EXPECT_EQ(want.subprotocol, got.subprotocol);
  EXPECT_EQ(want.reliable, got.reliable);
  EXPECT_EQ(want.node_id, got.node_id);
  EXPECT_EQ(want.created_position, got.created_position);
  EXPECT_EQ(want.permissions.roles(), got.permissions.roles());
  for (Permission p : kPermissions) {
    SCOPED_TRACE(PermissionName(p));
    ExpectSameOverrides(want.permissions.overrides(p), got.permissions.overrides(p));
    for (const char* g : {"room", "room.1", "lobby", "secret", "x", "granted", "other"}) {
      EXPECT_EQ(want.permissions.Allowed(p, std::string(g)),
                got.permissions.Allowed(p, std::string(g)))
          << g;
    }
    EXPECT_EQ(want.permissions.Allowed(p, std::nullopt), got.permissions.Allowed(p, std::nullopt));
  }
  EXPECT_EQ(want.groups, got.groups);
  EXPECT_EQ(want.seq, got.seq);
  EXPECT_EQ(want.acked, got.acked);
  EXPECT_EQ(want.checkpoints, got.checkpoints);
  EXPECT_EQ(want.state, got.state);
  EXPECT_EQ(want.held_until_ms, got.held_until_ms);
  EXPECT_EQ(want.group_states, got.group_states);
  EXPECT_EQ(want.state_subscriptions, got.state_subscriptions);
}

ConnectionRecord RoundTrip(const ConnectionRecord& r) {
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(EncodeConnectionRecord(r));
  EXPECT_TRUE(decoded.ok()) << decoded.status().message();
  return decoded.ok() ? std::move(decoded).value() : ConnectionRecord();
}

// Every field set, with runtime grants and revokes on top of the roles.
ConnectionRecord FullRecord() {
  ConnectionRecord r;
  r.id = "conn-\xc3\xa9-1";
  r.user_id = "alice";
  r.subprotocol = "json.reliable.webpubsub.azure.v1";
  r.reliable = true;
  r.node_id = "node-a";
  r.created_position = 1'234'567'890'123ull;
  r.permissions = PermissionSet(
      {"webpubsub.joinLeaveGroup.room", "webpubsub.sendToGroups.room.*", "custom.role"});
  r.permissions.Grant(Permission::kSendToGroup, std::string("granted"));
  r.permissions.Revoke(Permission::kSendToGroup, std::string("room.1"));
  r.permissions.Revoke(Permission::kJoinLeaveGroup, std::nullopt);  // deny all
  r.permissions.Grant(Permission::kJoinLeaveGroup, std::string("lobby"));
  r.groups = {"room", "lobby", std::string("with\0nul", 8)};
  r.seq = 300;
  r.acked = 250;
  r.checkpoints = {{100, 250, {"room"}}, {150, 280, {"room", "lobby"}}, {200, 300, {}}};
  r.state = std::string("{\"cart\":[1,2]}") + '\0' + "binary";
  r.held_until_ms = 1'700'000'090'000;
  r.group_states = {{"room", {R"({"mood":"busy"})", 1'700'000'000'123}}, {"lobby", {"{}", 7}}};
  r.state_subscriptions = {"room", "elsewhere"};
  return r;
}

TEST(RecordCodec, RoundTripsEveryField) {
  ConnectionRecord r = FullRecord();
  // The fixture really exercises the overrides.
  ASSERT_TRUE(r.permissions.overrides(Permission::kJoinLeaveGroup).deny_all);
  ASSERT_EQ(r.permissions.overrides(Permission::kSendToGroup).revoked,
            (std::set<std::string>{"room.1"}));
  ASSERT_FALSE(r.permissions.Allowed(Permission::kSendToGroup, std::string("room.1")));
  ASSERT_TRUE(r.permissions.Allowed(Permission::kSendToGroup, std::string("room.2")));

  ConnectionRecord got = RoundTrip(r);
  ExpectSameRecord(r, got);
  EXPECT_EQ(EncodeConnectionRecord(got), EncodeConnectionRecord(r));
}

TEST(RecordCodec, RoundTripsGrantAllAfterRevokeAll) {
  ConnectionRecord r;
  r.id = "c";
  r.permissions.Revoke(Permission::kSendToGroup, std::nullopt);
  r.permissions.Grant(Permission::kSendToGroup, std::nullopt);
  r.permissions.Revoke(Permission::kSendToGroup, std::string("no"));
  ConnectionRecord got = RoundTrip(r);
  ExpectSameRecord(r, got);
  EXPECT_TRUE(got.permissions.overrides(Permission::kSendToGroup).granted_all);
  EXPECT_TRUE(got.permissions.Allowed(Permission::kSendToGroup, std::string("yes")));
  EXPECT_FALSE(got.permissions.Allowed(Permission::kSendToGroup, std::string("no")));
}

TEST(RecordCodec, KeepsAnAbsentUserApartFromAnEmptyOne) {
  ConnectionRecord absent;
  absent.id = "c1";
  ConnectionRecord empty = absent;
  empty.user_id = "";
  EXPECT_NE(EncodeConnectionRecord(absent), EncodeConnectionRecord(empty));
  EXPECT_EQ(RoundTrip(absent).user_id, std::nullopt);
  EXPECT_EQ(RoundTrip(empty).user_id, std::optional<std::string>(""));
}

TEST(RecordCodec, KeepsAnAbsentStateApartFromAnEmptyOne) {
  ConnectionRecord absent;
  absent.id = "c1";
  ConnectionRecord empty = absent;
  empty.state = "";
  EXPECT_NE(EncodeConnectionRecord(absent), EncodeConnectionRecord(empty));
  EXPECT_EQ(RoundTrip(absent).state, std::nullopt);
  EXPECT_EQ(RoundTrip(empty).state, std::optional<std::string>(""));
}

TEST(RecordCodec, RoundTripsADefaultRecord) {
  ConnectionRecord r;
  ConnectionRecord got = RoundTrip(r);
  ExpectSameRecord(r, got);
}

TEST(RecordCodec, RoundTripsLargeNumbersAndManyCheckpoints) {
  ConnectionRecord r;
  r.id = std::string(1024, 'i');
  r.created_position = UINT64_MAX;
  r.seq = UINT64_MAX - 1;
  r.acked = UINT64_MAX / 2;
  for (uint64_t i = 0; i < 9; ++i) {
    r.checkpoints.push_back({UINT64_MAX - i, i << 40, {"g" + std::to_string(i)}});
  }
  for (int i = 0; i < 200; ++i) r.groups.insert("group-" + std::to_string(i));
  ExpectSameRecord(r, RoundTrip(r));
}

TEST(RecordCodec, VersionByteComesFirst) {
  std::string bytes = EncodeConnectionRecord(FullRecord());
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kRecordFormatVersion);
}

void ExpectRejected(std::string_view bytes) {
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(bytes);
  ASSERT_FALSE(decoded.ok()) << "decoded " << ToHex(bytes);
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
}

TEST(RecordCodec, RejectsEmptyInputAndVersionZero) {
  ExpectRejected("");
  std::string bytes = EncodeConnectionRecord(FullRecord());
  bytes[0] = 0;
  ExpectRejected(bytes);
}

TEST(RecordCodec, RejectsEveryTruncation) {
  for (const ConnectionRecord& r : {FullRecord(), ConnectionRecord()}) {
    std::string bytes = EncodeConnectionRecord(r);
    for (size_t n = 0; n < bytes.size(); ++n) {
      SCOPED_TRACE(n);
      ExpectRejected(std::string_view(bytes).substr(0, n));
    }
  }
}

TEST(RecordCodec, RejectsTrailingBytes) {
  std::string bytes = EncodeConnectionRecord(FullRecord());
  ExpectRejected(bytes + '\0');
  ExpectRejected(bytes + "junk");
}

TEST(RecordCodec, RejectsNewerVersionsNamingTheVersion) {
  std::string bytes = EncodeConnectionRecord(FullRecord());
  for (int v : {kRecordFormatVersion + 1, 0x7f, 0xff}) {
    bytes[0] = static_cast<char>(v);
    Result<ConnectionRecord> decoded = DecodeConnectionRecord(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find("newer"), std::string::npos)
        << decoded.status().message();
    EXPECT_NE(decoded.status().message().find(std::to_string(v)), std::string::npos)
        << decoded.status().message();
  }
}

TEST(RecordCodec, RejectsCorruptFields) {
  // version 1, id "c", user_present = 2 (not a bool)
  ExpectRejected(
      std::string("\x01\x01"
                  "c\x02",
                  4));
  // id length beyond the input
  ExpectRejected(
      std::string("\x01\x7f"
                  "c",
                  3));
  // id length as a varint longer than 10 bytes
  ExpectRejected(std::string("\x01") + std::string(11, '\xff') + '\x01');
  // a role list claiming more items than bytes remain
  ConnectionRecord r;
  std::string ok = EncodeConnectionRecord(r);
  // Layout of the default record: 01 id(00) user(00) sub(00) reliable(00) node(00) created(00)
  // roles(00) ...; patch the role count.
  ASSERT_EQ(static_cast<uint8_t>(ok[0]), kRecordFormatVersion);
  ASSERT_EQ(ok.substr(1, 7), std::string(7, '\0'));
  std::string bad = ok;
  bad[7] = '\x7f';
  ExpectRejected(bad);
  // reliable = 5
  bad = ok;
  bad[4] = '\x05';
  ExpectRejected(bad);
}

TEST(RecordCodec, RandomCorruptionNeverCrashes) {
  const std::string good = EncodeConnectionRecord(FullRecord());
  std::mt19937 rng(12345);
  size_t rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    Result<ConnectionRecord> decoded = DecodeConnectionRecord(bytes);
    if (!decoded.ok()) {
      ++rejected;
      EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    } else {
      // Whatever decodes re-encodes to a decodable record.
      EXPECT_TRUE(DecodeConnectionRecord(EncodeConnectionRecord(*decoded)).ok());
    }
  }
  EXPECT_GT(rejected, 0u);
}

// --- golden vector ------------------------------------------------------------------------
// Written when version 1 was introduced (hand-assembled from the layout in record_codec.h).
// Stored records live as long as their connections; this must keep decoding.
ConnectionRecord GoldenRecord() {
  ConnectionRecord r;
  r.id = "c1";
  r.user_id = "u";
  r.subprotocol = "p";
  r.reliable = true;
  r.node_id = "n";
  r.created_position = 5;
  r.permissions = PermissionSet({"r"});
  r.permissions.RestoreOverrides(Permission::kSendToGroup, {false, true, {}, {"x"}});
  r.permissions.RestoreOverrides(Permission::kJoinLeaveGroup, {true, false, {"y"}, {}});
  r.groups = {"g"};
  r.seq = 300;
  r.acked = 2;
  r.checkpoints = {{5, 0, {"g"}}};
  return r;
}

constexpr std::string_view kGoldenV1Hex =
    "01"            // version
    "026331"        // id "c1"
    "010175"        // user present, "u"
    "0170"          // subprotocol "p"
    "01"            // reliable
    "016e"          // node "n"
    "05"            // created position
    "010172"        // roles ["r"]
    "010167"        // groups ["g"]
    "000100010178"  // sendToGroup: granted_all 0, deny_all 1, granted [], revoked ["x"]
    "010001017900"  // joinLeaveGroup: granted_all 1, deny_all 0, granted ["y"], revoked []
    "ac02"          // seq 300
    "02"            // acked 2
    "0105000101"    // checkpoints: 1 of (position 5, seq 0, groups: 1 ...
    "67";           // ... "g")

TEST(RecordCodec, GoldenVersion1VectorStillDecodes) {
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(FromHex(kGoldenV1Hex));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ExpectSameRecord(GoldenRecord(), *decoded);
  EXPECT_FALSE(decoded->permissions.Allowed(Permission::kSendToGroup, std::string("g")));
  EXPECT_TRUE(decoded->permissions.Allowed(Permission::kJoinLeaveGroup, std::string("any")));
}

TEST(RecordCodec, GoldenVersion1VectorHasNoRoomForLaterFields) {
  // Version 1 ends after the checkpoints: bytes a later version appends are corrupt there.
  ExpectRejected(FromHex(std::string(kGoldenV1Hex) + "00"));
  ExpectRejected(FromHex(std::string(kGoldenV1Hex) + "0101" + "73"));
}

TEST(RecordCodec, GoldenVersion1RecordReencodesInTheCurrentVersion) {
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(FromHex(kGoldenV1Hex));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->state, std::nullopt);
  std::string bytes = EncodeConnectionRecord(*decoded);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kRecordFormatVersion);
  ExpectSameRecord(GoldenRecord(), RoundTrip(*decoded));
}

// Version 2 (the connection state appended) also keeps decoding: the golden version-1 bytes
// with version byte 2 and "state absent" appended.
TEST(RecordCodec, GoldenVersion2VectorStillDecodesWithoutGroupState) {
  std::string v2 = "02" + std::string(kGoldenV1Hex).substr(2) + "00";
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(FromHex(v2));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ExpectSameRecord(GoldenRecord(), *decoded);
  EXPECT_TRUE(decoded->group_states.empty());
  EXPECT_TRUE(decoded->state_subscriptions.empty());
}

TEST(RecordCodec, GoldenVersion3VectorDecodesWithoutGroupState) {
  // Version 3 appends held_until_ms (zigzag): 1000 -> 2000 = d0 0f.
  std::string v3 = "03" + std::string(kGoldenV1Hex).substr(2) + "00" + "d00f";
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(FromHex(v3));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ConnectionRecord want = GoldenRecord();
  want.held_until_ms = 1000;
  ExpectSameRecord(want, *decoded);
  EXPECT_TRUE(decoded->group_states.empty());
}

TEST(RecordCodec, GoldenVersion4VectorDecodesGroupState) {
  // Version 4 appends group states (group, state, updated_at zigzag) and state subscriptions.
  std::string v4 = "04" + std::string(kGoldenV1Hex).substr(2) +
                   "00"       // state absent
                   "00"       // held_until_ms 0
                   "01"       // 1 group state:
                   "0167"     //   group "g"
                   "027b7d"   //   state "{}"
                   "0e"       //   updated at 7 (zigzag 14)
                   "01016b";  // subscriptions ["k"]
  Result<ConnectionRecord> decoded = DecodeConnectionRecord(FromHex(v4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ConnectionRecord want = GoldenRecord();
  want.group_states = {{"g", {"{}", 7}}};
  want.state_subscriptions = {"k"};
  ExpectSameRecord(want, *decoded);
  EXPECT_EQ(EncodeConnectionRecord(*decoded), FromHex(v4));
}

}  // namespace
}  // namespace hubcast::storage
