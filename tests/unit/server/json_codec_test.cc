// Tests of server/json_codec.h: the JSON subprotocols' client messages (PROTOCOL.md 3.2) and
// service messages (PROTOCOL.md 3.4). Encoded frames are parsed back with base/json.h.
#include "server/json_codec.h"

#include "base/base64.h"
#include "base/json.h"
#include "base/status.h"
#include "storage/entry.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/alloc_meter.h"
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hubcast::server {
namespace {

using storage::DataType;

// Decodes a frame that must be well-formed; fails the test otherwise.
ClientMessage Decode(std::string_view text) {
  auto m = DecodeClientMessage(text);
  EXPECT_TRUE(m.ok()) << text << " -> " << m.status().message();
  if (!m.ok()) return ClientMessage();
  return *m;
}

// Decodes a frame that must be valid for its type (no invalid_reason).
ClientMessage DecodeValid(std::string_view text) {
  ClientMessage m = Decode(text);
  EXPECT_FALSE(m.invalid_reason.has_value()) << text << " -> " << *m.invalid_reason;
  return m;
}

// Decodes a frame that must be well-formed JSON but invalid for its type (BadRequest).
ClientMessage DecodeInvalid(std::string_view text) {
  ClientMessage m = Decode(text);
  EXPECT_TRUE(m.invalid_reason.has_value()) << "accepted: " << text;
  if (m.invalid_reason) {
    EXPECT_FALSE(m.invalid_reason->empty()) << text;
  }
  return m;
}

// Expects the frame to be malformed (the 1003 case).
void ExpectMalformed(std::string_view text) {
  auto m = DecodeClientMessage(text);
  EXPECT_FALSE(m.ok()) << "accepted: " << text;
  if (!m.ok()) {
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_FALSE(m.status().message().empty()) << text;
  }
}

// Parses an encoded frame; fails the test unless it is one JSON object.
json::Value ParseFrame(const std::string& frame) {
  auto v = json::Parse(frame);
  EXPECT_TRUE(v.ok()) << frame << " -> " << v.status().message();
  if (!v.ok()) return json::Value();
  EXPECT_TRUE(v->is_object()) << frame;
  return *v;
}

// The string member `key`, or nullopt when absent or not a string.
std::optional<std::string> Str(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.Find(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->str();
}

std::optional<uint64_t> U64(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.Find(key);
  return v ? v->as_uint64() : std::nullopt;
}

std::optional<bool> Bool(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.Find(key);
  if (v == nullptr || !v->is_bool()) return std::nullopt;
  return v->as_bool();
}

size_t MemberCount(const json::Value& obj) { return obj.members().size(); }

storage::Entry Message(storage::MessageFrom from, DataType type, std::string data) {
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.from = from;
  e.data_type = type;
  e.data = std::move(data);
  return e;
}

storage::Entry GroupMessage(std::string group, std::string from_user, DataType type,
                            std::string data) {
  storage::Entry e = Message(storage::MessageFrom::kGroup, type, std::move(data));
  e.scope = storage::Scope::kGroup;
  e.target = std::move(group);
  e.from_user_id = std::move(from_user);
  return e;
}

// The JSON frame ("{" + body) of a message, parsed.
json::Value MessageFrame(const storage::Entry& e) { return ParseFrame("{" + EncodeMessageBody(e)); }

// ---------------------------------------------------------------------------------------------
// DecodeClientMessage: valid messages

TEST(JsonCodecDecode, JoinGroup) {
  ClientMessage m = DecodeValid(R"({"type":"joinGroup","group":"g1","ackId":1})");
  EXPECT_EQ(m.type, ClientMessageType::kJoinGroup);
  EXPECT_EQ(m.type_name, "joinGroup");
  EXPECT_EQ(m.group, "g1");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(1));
}

TEST(JsonCodecDecode, JoinGroupWithoutAckIdHasNone) {
  ClientMessage m = DecodeValid(R"({"type":"joinGroup","group":"g1"})");
  EXPECT_EQ(m.type, ClientMessageType::kJoinGroup);
  EXPECT_FALSE(m.ack_id.has_value());
}

TEST(JsonCodecDecode, LeaveGroup) {
  ClientMessage m = DecodeValid(R"({"ackId":2,"group":"room 1","type":"leaveGroup"})");
  EXPECT_EQ(m.type, ClientMessageType::kLeaveGroup);
  EXPECT_EQ(m.type_name, "leaveGroup");
  EXPECT_EQ(m.group, "room 1");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(2));
}

TEST(JsonCodecDecode, GroupNameKeepsEscapedCharacters) {
  ClientMessage m = DecodeValid(R"({"type":"joinGroup","group":"a\"b\\c\u00e9"})");
  EXPECT_EQ(m.group, "a\"b\\c\xc3\xa9");
}

TEST(JsonCodecDecode, SendToGroupDefaultsToJsonData) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","ackId":3,"data":{"a": [1, true, null]}})");
  EXPECT_EQ(m.type, ClientMessageType::kSendToGroup);
  EXPECT_EQ(m.group, "g");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(3));
  EXPECT_FALSE(m.no_echo);
  EXPECT_EQ(m.data_type, DataType::kJson);
  EXPECT_EQ(m.data, R"({"a":[1,true,null]})");
}

TEST(JsonCodecDecode, SendToGroupJsonStringKeepsQuotes) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","dataType":"json","data":"hi"})");
  EXPECT_EQ(m.data_type, DataType::kJson);
  EXPECT_EQ(m.data, R"("hi")");
}

TEST(JsonCodecDecode, SendToGroupJsonWithoutDataForwardsNull) {
  ClientMessage m = DecodeValid(R"({"type":"sendToGroup","group":"g"})");
  EXPECT_EQ(m.data_type, DataType::kJson);
  EXPECT_EQ(m.data, "null");
}

TEST(JsonCodecDecode, SendToGroupNullDataTypeMeansJson) {
  ClientMessage m = DecodeValid(R"({"type":"sendToGroup","group":"g","dataType":null,"data":[1]})");
  EXPECT_EQ(m.data_type, DataType::kJson);
  EXPECT_EQ(m.data, "[1]");
}

TEST(JsonCodecDecode, SendToGroupText) {
  ClientMessage m = DecodeValid(
      R"({"type":"sendToGroup","group":"g","dataType":"text","data":"line\n\"q\" \u00e9"})");
  EXPECT_EQ(m.data_type, DataType::kText);
  EXPECT_EQ(m.data, "line\n\"q\" \xc3\xa9");
}

TEST(JsonCodecDecode, SendToGroupBinaryIsBase64Decoded) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":"AAEC/w=="})");
  EXPECT_EQ(m.data_type, DataType::kBinary);
  EXPECT_EQ(m.data, std::string("\x00\x01\x02\xff", 4));
}

TEST(JsonCodecDecode, SendToGroupEmptyBinary) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":""})");
  EXPECT_EQ(m.data_type, DataType::kBinary);
  EXPECT_EQ(m.data, "");
}

TEST(JsonCodecDecode, SendToGroupProtobufIsBase64Decoded) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","dataType":"protobuf","data":"CgNhYmM="})");
  EXPECT_EQ(m.data_type, DataType::kProtobuf);
  EXPECT_EQ(m.data,
            "\x0a\x03"
            "abc");
}

TEST(JsonCodecDecode, SendToGroupNoEcho) {
  EXPECT_TRUE(DecodeValid(R"({"type":"sendToGroup","group":"g","noEcho":true,"data":1})").no_echo);
  EXPECT_FALSE(
      DecodeValid(R"({"type":"sendToGroup","group":"g","noEcho":false,"data":1})").no_echo);
  EXPECT_FALSE(DecodeValid(R"({"type":"sendToGroup","group":"g","noEcho":null,"data":1})").no_echo);
}

TEST(JsonCodecDecode, EventWithEachDataType) {
  ClientMessage json = DecodeValid(R"({"type":"event","event":"chat","ackId":4,"data":{"x":1}})");
  EXPECT_EQ(json.type, ClientMessageType::kEvent);
  EXPECT_EQ(json.type_name, "event");
  EXPECT_EQ(json.event, "chat");
  EXPECT_EQ(json.ack_id, std::optional<uint64_t>(4));
  EXPECT_EQ(json.data_type, DataType::kJson);
  EXPECT_EQ(json.data, R"({"x":1})");

  ClientMessage text = DecodeValid(R"({"type":"event","event":"e","dataType":"text","data":"t"})");
  EXPECT_EQ(text.data_type, DataType::kText);
  EXPECT_EQ(text.data, "t");

  ClientMessage bin =
      DecodeValid(R"({"type":"event","event":"e","dataType":"binary","data":"aGk="})");
  EXPECT_EQ(bin.data_type, DataType::kBinary);
  EXPECT_EQ(bin.data, "hi");
}

TEST(JsonCodecDecode, SequenceAck) {
  ClientMessage m = DecodeValid(R"({"type":"sequenceAck","sequenceId":12})");
  EXPECT_EQ(m.type, ClientMessageType::kSequenceAck);
  EXPECT_EQ(m.sequence_id, 12u);
  EXPECT_FALSE(m.ack_id.has_value());
}

TEST(JsonCodecDecode, SequenceAckTakesFullUint64) {
  EXPECT_EQ(DecodeValid(R"({"type":"sequenceAck","sequenceId":18446744073709551615})").sequence_id,
            UINT64_MAX);
}

TEST(JsonCodecDecode, Ping) {
  ClientMessage m = DecodeValid(R"({"type":"ping"})");
  EXPECT_EQ(m.type, ClientMessageType::kPing);
  EXPECT_EQ(m.type_name, "ping");
  EXPECT_FALSE(m.ack_id.has_value());
}

TEST(JsonCodecDecode, SurroundingWhitespaceAndUnknownMembersAreAllowed) {
  ClientMessage m =
      DecodeValid(" \n{\"type\":\"joinGroup\",\"group\":\"g\",\"extra\":{\"x\":[1]}}\r\n ");
  EXPECT_EQ(m.type, ClientMessageType::kJoinGroup);
  EXPECT_EQ(m.group, "g");
}

TEST(JsonCodecDecode, AckIdTakesFullUint64) {
  EXPECT_EQ(DecodeValid(R"({"type":"joinGroup","group":"g","ackId":18446744073709551615})").ack_id,
            std::optional<uint64_t>(UINT64_MAX));
  EXPECT_EQ(DecodeValid(R"({"type":"joinGroup","group":"g","ackId":0})").ack_id,
            std::optional<uint64_t>(0));
}

TEST(JsonCodecDecode, BigJsonNumbersAreKeptExactly) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","data":{"big":12345678901234567890123,)"
                  R"("neg":-98765432109876543210,"one":1.0,"exp":1E400,"tiny":1.5e-330}})");
  EXPECT_EQ(m.data, R"({"big":12345678901234567890123,"neg":-98765432109876543210,"one":1.0,)"
                    R"("exp":1E400,"tiny":1.5e-330})");

  EXPECT_EQ(DecodeValid(R"({"type":"event","event":"e","data":12345678901234567890123})").data,
            "12345678901234567890123");
  EXPECT_EQ(DecodeValid(R"({"type":"event","event":"e","data":[0.10000000000000000001]})").data,
            "[0.10000000000000000001]");
}

TEST(JsonCodecDecode, PayloadMembersMayComeInAnyOrderAndTheFirstOfAKeyWins) {
  ClientMessage m = DecodeValid(
      R"({"data":"aGk=","ackId":7,"dataType":"binary","group":"g","type":"sendToGroup",)"
      R"("data":"ignored","dataType":"text","type":"ping"})");
  EXPECT_EQ(m.type, ClientMessageType::kSendToGroup);
  EXPECT_EQ(m.data_type, DataType::kBinary);
  EXPECT_EQ(m.data, "hi");
  EXPECT_EQ(m.ack_id, 7u);
}

TEST(JsonCodecDecode, JsonDataIsForwardedCompactWithEscapesNormalised) {
  EXPECT_EQ(
      DecodeValid(R"({"type":"event","event":"e","data": { "a" : [ 1 , "\u0041\/" ] } })").data,
      R"({"a":[1,"A/"]})");
  EXPECT_EQ(DecodeValid(R"({"type":"event","event":"e","data":"x\u2028"})").data, R"("x\u2028")");
}

TEST(JsonCodecDecode, MalformedFramesKeepTheirErrorMessages) {
  auto message = [](std::string_view text) { return DecodeClientMessage(text).status().message(); };
  EXPECT_EQ(message(R"({"type":"ping",})"),
            "Invalid JSON: Invalid JSON at byte 15: expected a string key");
  EXPECT_EQ(message(R"({"type":"ping","data":[1,2)"),
            "Invalid JSON: Invalid JSON at byte 26: unterminated array");
  EXPECT_EQ(message(R"([{"type":"ping"}])"), "A message must be a JSON object.");
  EXPECT_EQ(message(R"({"type":{"name":"ping"}})"), "A message must have a string \"type\".");
  EXPECT_EQ(message(R"({"type":"ping","ackId":[1]})"), "ackId must be an unsigned 64-bit integer.");
  // The whole frame is checked before any field: invalid JSON after a bad ackId is a JSON error.
  EXPECT_EQ(message(R"({"ackId":-1,"type":"ping",)"),
            "Invalid JSON: Invalid JSON at byte 26: expected a string key");
}

TEST(JsonCodecDecode, InvalidFieldsKeepTheirReasons) {
  EXPECT_EQ(DecodeInvalid(R"({"type":"joinGroup","group":{"g":1}})").invalid_reason,
            "group must be a string.");
  EXPECT_EQ(DecodeInvalid(R"({"type":"event","event":"e","dataType":"text","data":["x"]})")
                .invalid_reason,
            "data must be a string when dataType is text.");
  EXPECT_EQ(DecodeInvalid(R"({"type":"sequenceAck","sequenceId":{}})").invalid_reason,
            "sequenceId must be an unsigned 64-bit integer.");
  EXPECT_EQ(DecodeInvalid(R"({"type":"sendToGroup","group":"g","noEcho":[]})").invalid_reason,
            "noEcho must be a boolean.");
}

// A 1 MiB frame of `[0,0,...]` (the most tree per byte JSON allows): decoding costs about what
// the forwarded data itself needs, not a tree of half a million values.
TEST(JsonCodecDecode, MemoryStaysProportionalToTheDataKept) {
  if (!testing::AllocationMeter::Available()) GTEST_SKIP() << "no allocation meter";
  std::string zeros = "[0";
  while (zeros.size() < 1024 * 1024 - 64) zeros += ",0";
  zeros += "]";
  const std::string frame = R"({"type":"sendToGroup","group":"g","data":)" + zeros + "}";
  const std::string skipped = R"({"type":"ping","unused":)" + zeros + "}";
  size_t peak_data = 0;
  size_t peak_skipped = 0;
  {
    testing::AllocationMeter meter;
    auto m = DecodeClientMessage(frame);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->data, zeros);
    peak_data = meter.peak_bytes();
  }
  {
    testing::AllocationMeter meter;
    auto m = DecodeClientMessage(skipped);
    ASSERT_TRUE(m.ok());
    peak_skipped = meter.peak_bytes();
  }
  EXPECT_LT(peak_data, 3 * frame.size());
  EXPECT_LT(peak_skipped, 64u * 1024);
}

// ---------------------------------------------------------------------------------------------
// DecodeClientMessage: malformed frames (close 1003)

TEST(JsonCodecDecode, NotJsonIsMalformed) {
  ExpectMalformed("");
  ExpectMalformed("   ");
  ExpectMalformed("hello");
  ExpectMalformed(R"({"type":"ping")");
  ExpectMalformed(R"({"type":"ping"} {"type":"ping"})");
  ExpectMalformed(R"({"type":"ping",})");
  ExpectMalformed(R"({'type':'ping'})");
}

TEST(JsonCodecDecode, NonObjectIsMalformed) {
  ExpectMalformed("[]");
  ExpectMalformed(R"([{"type":"ping"}])");
  ExpectMalformed(R"("ping")");
  ExpectMalformed("42");
  ExpectMalformed("null");
  ExpectMalformed("true");
}

TEST(JsonCodecDecode, MissingOrNonStringTypeIsMalformed) {
  ExpectMalformed("{}");
  ExpectMalformed(R"({"group":"g","ackId":1})");
  ExpectMalformed(R"({"type":null})");
  ExpectMalformed(R"({"type":1})");
  ExpectMalformed(R"({"type":true})");
  ExpectMalformed(R"({"type":["ping"]})");
  ExpectMalformed(R"({"type":{"name":"ping"}})");
}

TEST(JsonCodecDecode, NegativeAckIdIsMalformed) {
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":-1})");
}

TEST(JsonCodecDecode, FractionalAckIdIsMalformed) {
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":1.5})");
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":1e3})");
}

TEST(JsonCodecDecode, StringAckIdIsMalformed) {
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":"1"})");
  ExpectMalformed(R"({"type":"sendToGroup","group":"g","ackId":"abc","data":1})");
}

TEST(JsonCodecDecode, NonNumberAckIdIsMalformed) {
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":true})");
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":[1]})");
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":{}})");
}

TEST(JsonCodecDecode, AckIdBeyondUint64IsMalformed) {
  ExpectMalformed(R"({"type":"joinGroup","group":"g","ackId":18446744073709551616})");
}

TEST(JsonCodecDecode, AckIdIsCheckedForUnknownTypesToo) {
  ExpectMalformed(R"({"type":"whatever","ackId":-5})");
}

// ---------------------------------------------------------------------------------------------
// DecodeClientMessage: invalid fields (BadRequest ack)

TEST(JsonCodecDecode, TextWithNonStringDataIsInvalid) {
  ClientMessage m =
      DecodeInvalid(R"({"type":"sendToGroup","group":"g","ackId":5,"dataType":"text","data":1})");
  EXPECT_EQ(m.type, ClientMessageType::kSendToGroup);
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(5));
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"text","data":{"a":"b"}})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"text"})");
  DecodeInvalid(R"({"type":"event","event":"e","dataType":"text","data":null})");
}

TEST(JsonCodecDecode, BadBase64IsInvalid) {
  ClientMessage m = DecodeInvalid(
      R"({"type":"sendToGroup","group":"g","ackId":6,"dataType":"binary","data":"not base64!"})");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(6));
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":"A"})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":"AA AA"})");
  DecodeInvalid(R"({"type":"event","event":"e","dataType":"protobuf","data":"*"})");
}

TEST(JsonCodecDecode, BinaryWithNonStringDataIsInvalid) {
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":[0,1]})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"binary"})");
}

TEST(JsonCodecDecode, UnknownDataTypeIsInvalid) {
  ClientMessage m =
      DecodeInvalid(R"({"type":"sendToGroup","group":"g","ackId":7,"dataType":"xml","data":"x"})");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(7));
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"JSON","data":1})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","dataType":"","data":1})");
  DecodeInvalid(R"({"type":"event","event":"e","dataType":2,"data":1})");
}

TEST(JsonCodecDecode, MissingGroupIsInvalid) {
  ClientMessage join = DecodeInvalid(R"({"type":"joinGroup","ackId":8})");
  EXPECT_EQ(join.type, ClientMessageType::kJoinGroup);
  EXPECT_EQ(join.ack_id, std::optional<uint64_t>(8));
  EXPECT_EQ(DecodeInvalid(R"({"type":"leaveGroup"})").type, ClientMessageType::kLeaveGroup);
  EXPECT_EQ(DecodeInvalid(R"({"type":"sendToGroup","data":1})").type,
            ClientMessageType::kSendToGroup);
}

TEST(JsonCodecDecode, NonStringGroupIsInvalid) {
  DecodeInvalid(R"({"type":"joinGroup","group":1})");
  DecodeInvalid(R"({"type":"leaveGroup","group":null})");
  DecodeInvalid(R"({"type":"sendToGroup","group":["g"],"data":1})");
}

TEST(JsonCodecDecode, NonBooleanNoEchoIsInvalid) {
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","noEcho":"true","data":1})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","noEcho":1,"data":1})");
}

TEST(JsonCodecDecode, MissingOrEmptyEventNameIsInvalid) {
  EXPECT_EQ(DecodeInvalid(R"({"type":"event","data":1})").type, ClientMessageType::kEvent);
  DecodeInvalid(R"({"type":"event","event":"","data":1})");
  DecodeInvalid(R"({"type":"event","event":5,"data":1})");
}

TEST(JsonCodecDecode, BadSequenceIdIsInvalid) {
  EXPECT_EQ(DecodeInvalid(R"({"type":"sequenceAck"})").type, ClientMessageType::kSequenceAck);
  DecodeInvalid(R"({"type":"sequenceAck","sequenceId":-1})");
  DecodeInvalid(R"({"type":"sequenceAck","sequenceId":1.5})");
  DecodeInvalid(R"({"type":"sequenceAck","sequenceId":"12"})");
}

TEST(JsonCodecDecode, UnknownTypeKeepsAckIdAndName) {
  ClientMessage m = DecodeInvalid(R"({"type":"subscribe","ackId":9,"invocationId":"x"})");
  EXPECT_EQ(m.type, ClientMessageType::kUnknown);
  EXPECT_EQ(m.type_name, "subscribe");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(9));

  ClientMessage no_ack = DecodeInvalid(R"({"type":"JoinGroup","group":"g"})");
  EXPECT_EQ(no_ack.type, ClientMessageType::kUnknown);  // type names are case-sensitive
  EXPECT_FALSE(no_ack.ack_id.has_value());
  EXPECT_EQ(DecodeInvalid(R"({"type":""})").type, ClientMessageType::kUnknown);
}

// ---------------------------------------------------------------------------------------------
// Encode*: service messages

TEST(JsonCodecEncode, ConnectedWithUserAndReconnectionToken) {
  json::Value v = ParseFrame(EncodeConnected("user1", "conn1", "tok/en+="));
  EXPECT_EQ(Str(v, "type"), "system");
  EXPECT_EQ(Str(v, "event"), "connected");
  EXPECT_EQ(Str(v, "userId"), "user1");
  EXPECT_EQ(Str(v, "connectionId"), "conn1");
  EXPECT_EQ(Str(v, "reconnectionToken"), "tok/en+=");
  EXPECT_EQ(MemberCount(v), 5u);
}

TEST(JsonCodecEncode, ConnectedWithoutUserOrToken) {
  json::Value v = ParseFrame(EncodeConnected(std::nullopt, "conn1", std::nullopt));
  EXPECT_EQ(Str(v, "type"), "system");
  EXPECT_EQ(Str(v, "event"), "connected");
  EXPECT_EQ(Str(v, "connectionId"), "conn1");
  // An anonymous user is null or absent (PROTOCOL.md 3.4).
  const json::Value* user = v.Find("userId");
  EXPECT_TRUE(user == nullptr || user->is_null());
  EXPECT_EQ(v.Find("reconnectionToken"), nullptr);
}

TEST(JsonCodecEncode, ConnectedWithUserButNoToken) {
  json::Value v = ParseFrame(EncodeConnected("u", "c", std::nullopt));
  EXPECT_EQ(Str(v, "userId"), "u");
  EXPECT_EQ(v.Find("reconnectionToken"), nullptr);
}

TEST(JsonCodecEncode, ConnectedEscapesStrings) {
  const std::string user = "a\"b\\c\n\x01\xc3\xa9";
  json::Value v = ParseFrame(EncodeConnected(user, "id\"1", "t\"k"));
  EXPECT_EQ(Str(v, "userId"), user);
  EXPECT_EQ(Str(v, "connectionId"), "id\"1");
  EXPECT_EQ(Str(v, "reconnectionToken"), "t\"k");
}

TEST(JsonCodecEncode, Disconnected) {
  json::Value v = ParseFrame(EncodeDisconnected("Service \"reload\"\n"));
  EXPECT_EQ(Str(v, "type"), "system");
  EXPECT_EQ(Str(v, "event"), "disconnected");
  EXPECT_EQ(Str(v, "message"), "Service \"reload\"\n");
  EXPECT_EQ(MemberCount(v), 3u);
}

TEST(JsonCodecEncode, DisconnectedWithEmptyReason) {
  json::Value v = ParseFrame(EncodeDisconnected(""));
  EXPECT_EQ(Str(v, "event"), "disconnected");
  EXPECT_EQ(Str(v, "message"), "");
}

TEST(JsonCodecEncode, AckSuccess) {
  json::Value v = ParseFrame(EncodeAck(1, Status::Ok()));
  EXPECT_EQ(Str(v, "type"), "ack");
  EXPECT_EQ(U64(v, "ackId"), std::optional<uint64_t>(1));
  EXPECT_EQ(Bool(v, "success"), true);
  EXPECT_EQ(v.Find("error"), nullptr);
  EXPECT_EQ(MemberCount(v), 3u);
}

TEST(JsonCodecEncode, AckKeepsFullUint64AckId) {
  json::Value v = ParseFrame(EncodeAck(UINT64_MAX, Status::Ok()));
  EXPECT_EQ(U64(v, "ackId"), std::optional<uint64_t>(UINT64_MAX));
  EXPECT_EQ(U64(ParseFrame(EncodeAck(0, Status::Ok())), "ackId"), std::optional<uint64_t>(0));
}

// Parses an error ack and checks its fields.
void ExpectErrorAck(uint64_t ack_id, const Status& status, const char* name) {
  SCOPED_TRACE(name);
  json::Value v = ParseFrame(EncodeAck(ack_id, status));
  EXPECT_EQ(Str(v, "type"), "ack");
  EXPECT_EQ(U64(v, "ackId"), std::optional<uint64_t>(ack_id));
  EXPECT_EQ(Bool(v, "success"), false);
  const json::Value* error = v.Find("error");
  ASSERT_NE(error, nullptr);
  ASSERT_TRUE(error->is_object());
  EXPECT_EQ(Str(*error, "name"), name);
  EXPECT_EQ(Str(*error, "message"), status.message());
}

TEST(JsonCodecEncode, AckErrorForEachName) {
  ExpectErrorAck(2, Status::Forbidden("no permission to send to group 'g'."), "Forbidden");
  ExpectErrorAck(3, Status::Duplicate("Message with ackId 3 was already processed."), "Duplicate");
  ExpectErrorAck(4, Status::NotFound("The connection has gone."), "NotFound");
  ExpectErrorAck(5, Status::InvalidArgument("group must be a string."), "BadRequest");
  ExpectErrorAck(6, Status::Internal("upstream failed"), "InternalServerError");
  ExpectErrorAck(7, Status::Unavailable("shutting down"), "InternalServerError");
  ExpectErrorAck(8, Status::Unauthorized("no"), "Unauthorized");
  ExpectErrorAck(9, Status::TooLarge("too big"), "BadRequest");
}

TEST(JsonCodecEncode, AckErrorMessageIsEscaped) {
  ExpectErrorAck(10, Status::Forbidden("group 'a\"b\\c'\n\t\x02"), "Forbidden");
}

TEST(JsonCodecEncode, AckErrorNames) {
  EXPECT_STREQ(AckErrorName(StatusCode::kForbidden), "Forbidden");
  EXPECT_STREQ(AckErrorName(StatusCode::kDuplicate), "Duplicate");
  EXPECT_STREQ(AckErrorName(StatusCode::kNotFound), "NotFound");
  EXPECT_STREQ(AckErrorName(StatusCode::kInvalidArgument), "BadRequest");
  EXPECT_STREQ(AckErrorName(StatusCode::kTooLarge), "BadRequest");
  EXPECT_STREQ(AckErrorName(StatusCode::kUnsupportedMedia), "BadRequest");
  EXPECT_STREQ(AckErrorName(StatusCode::kInternal), "InternalServerError");
  EXPECT_STREQ(AckErrorName(StatusCode::kUnavailable), "InternalServerError");
}

TEST(JsonCodecEncode, Pong) {
  json::Value v = ParseFrame(EncodePong());
  EXPECT_EQ(Str(v, "type"), "pong");
  EXPECT_EQ(MemberCount(v), 1u);
}

// ---------------------------------------------------------------------------------------------
// EncodeMessageBody / AppendData

TEST(JsonCodecEncode, ServerTextMessage) {
  json::Value v =
      MessageFrame(Message(storage::MessageFrom::kServer, DataType::kText, "hi \"there\"\n"));
  EXPECT_EQ(Str(v, "type"), "message");
  EXPECT_EQ(Str(v, "from"), "server");
  EXPECT_EQ(Str(v, "dataType"), "text");
  EXPECT_EQ(Str(v, "data"), "hi \"there\"\n");
  EXPECT_EQ(v.Find("group"), nullptr);
  EXPECT_EQ(v.Find("fromUserId"), nullptr);
  EXPECT_EQ(v.Find("sequenceId"), nullptr);
}

TEST(JsonCodecEncode, ServerMessageIgnoresTargetAndFromUser) {
  storage::Entry e = Message(storage::MessageFrom::kServer, DataType::kText, "x");
  e.scope = storage::Scope::kUser;
  e.target = "alice";
  e.from_user_id = "bob";
  json::Value v = MessageFrame(e);
  EXPECT_EQ(Str(v, "from"), "server");
  EXPECT_EQ(v.Find("group"), nullptr);
  EXPECT_EQ(v.Find("fromUserId"), nullptr);
}

TEST(JsonCodecEncode, GroupMessageWithFromUserId) {
  json::Value v = MessageFrame(GroupMessage("g1", "user1", DataType::kText, "hello"));
  EXPECT_EQ(Str(v, "type"), "message");
  EXPECT_EQ(Str(v, "from"), "group");
  EXPECT_EQ(Str(v, "group"), "g1");
  EXPECT_EQ(Str(v, "fromUserId"), "user1");
  EXPECT_EQ(Str(v, "dataType"), "text");
  EXPECT_EQ(Str(v, "data"), "hello");
  EXPECT_EQ(MemberCount(v), 6u);
}

TEST(JsonCodecEncode, GroupMessageWithoutFromUserIdOmitsIt) {
  json::Value v = MessageFrame(GroupMessage("g1", "", DataType::kText, "hello"));
  EXPECT_EQ(Str(v, "from"), "group");
  EXPECT_EQ(Str(v, "group"), "g1");
  EXPECT_EQ(v.Find("fromUserId"), nullptr);
}

TEST(JsonCodecEncode, GroupMessageEscapesGroupAndUser) {
  json::Value v = MessageFrame(GroupMessage("g\"1\\", "u\"\n", DataType::kText, "x"));
  EXPECT_EQ(Str(v, "group"), "g\"1\\");
  EXPECT_EQ(Str(v, "fromUserId"), "u\"\n");
}

TEST(JsonCodecEncode, JsonMessageForwardsDataExactly) {
  const std::string data = R"({"n":12345678901234567890123,"f":1.0,"a":[true,null,"s"]})";
  json::Value v = MessageFrame(Message(storage::MessageFrom::kServer, DataType::kJson, data));
  EXPECT_EQ(Str(v, "dataType"), "json");
  const json::Value* d = v.Find("data");
  ASSERT_NE(d, nullptr);
  ASSERT_TRUE(d->is_object());
  EXPECT_EQ(json::Serialize(*d), data);
  EXPECT_EQ(d->Find("n")->str(), "12345678901234567890123");
}

TEST(JsonCodecEncode, JsonMessageWithScalarData) {
  json::Value s = MessageFrame(Message(storage::MessageFrom::kServer, DataType::kJson, R"("hi")"));
  EXPECT_EQ(Str(s, "data"), "hi");
  json::Value n = MessageFrame(Message(storage::MessageFrom::kServer, DataType::kJson, "null"));
  ASSERT_NE(n.Find("data"), nullptr);
  EXPECT_TRUE(n.Find("data")->is_null());
}

TEST(JsonCodecEncode, BinaryMessageIsBase64) {
  const std::string bytes("\x00\x01\xfe\xff\"\\", 6);
  json::Value v = MessageFrame(GroupMessage("g", "u", DataType::kBinary, bytes));
  EXPECT_EQ(Str(v, "dataType"), "binary");
  auto data = Str(v, "data");
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(*data, Base64Encode(bytes));
  EXPECT_EQ(Base64Decode(*data), std::optional<std::string>(bytes));
}

TEST(JsonCodecEncode, EmptyBinaryMessageIsEmptyString) {
  json::Value v = MessageFrame(Message(storage::MessageFrom::kServer, DataType::kBinary, ""));
  EXPECT_EQ(Str(v, "data"), "");
}

TEST(JsonCodecEncode, ProtobufMessageIsBase64) {
  const std::string bytes(
      "\x0a\x03"
      "abc\x00",
      6);
  json::Value v = MessageFrame(GroupMessage("g", "u", DataType::kProtobuf, bytes));
  EXPECT_EQ(Str(v, "dataType"), "protobuf");
  auto data = Str(v, "data");
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(Base64Decode(*data), std::optional<std::string>(bytes));
}

TEST(JsonCodecEncode, TextWithInvalidUtf8StaysValidJson) {
  json::Value v = MessageFrame(Message(storage::MessageFrom::kServer, DataType::kText, "a\xff"));
  auto data = Str(v, "data");
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(data->substr(0, 1), "a");
}

TEST(JsonCodecEncode, BodyMakesAValidJsonFrameAndReliableFrame) {
  for (DataType type : {DataType::kJson, DataType::kText, DataType::kBinary, DataType::kProtobuf}) {
    SCOPED_TRACE(storage::DataTypeName(type));
    storage::Entry e = GroupMessage("g", "u", type, type == DataType::kJson ? "[1,2]" : "xy");
    const std::string body = EncodeMessageBody(e);
    ASSERT_FALSE(body.empty());
    EXPECT_NE(body.front(), '{');
    EXPECT_EQ(body.back(), '}');

    json::Value plain = ParseFrame("{" + body);
    EXPECT_EQ(Str(plain, "type"), "message");
    EXPECT_EQ(Str(plain, "dataType"), storage::DataTypeName(type));
    EXPECT_EQ(plain.Find("sequenceId"), nullptr);

    json::Value reliable = ParseFrame("{\"sequenceId\":7," + body);
    EXPECT_EQ(U64(reliable, "sequenceId"), std::optional<uint64_t>(7));
    EXPECT_EQ(Str(reliable, "type"), "message");
    EXPECT_EQ(Str(reliable, "from"), "group");
    EXPECT_EQ(Str(reliable, "group"), "g");
    EXPECT_EQ(Str(reliable, "fromUserId"), "u");
    EXPECT_EQ(MemberCount(reliable), MemberCount(plain) + 1);
  }
}

TEST(JsonCodecEncode, AppendDataPerType) {
  std::string out = "x";
  AppendData(out, DataType::kJson, R"({"a":1})");
  EXPECT_EQ(out, R"(x{"a":1})");

  out.clear();
  AppendData(out, DataType::kText, "say \"hi\"");
  EXPECT_EQ(out, R"("say \"hi\"")");

  out.clear();
  AppendData(out, DataType::kBinary, "hi");
  EXPECT_EQ(out, "\"aGk=\"");

  out.clear();
  AppendData(out, DataType::kProtobuf, std::string("\x00", 1));
  EXPECT_EQ(out, "\"AA==\"");
}

TEST(JsonCodecEncode, DecodedSendRoundTripsThroughMessageBody) {
  ClientMessage m =
      DecodeValid(R"({"type":"sendToGroup","group":"g","dataType":"binary","data":"AAEC/w=="})");
  storage::Entry e = GroupMessage("g", "u", m.data_type, m.data);
  json::Value v = MessageFrame(e);
  EXPECT_EQ(Str(v, "data"), "AAEC/w==");

  ClientMessage j = DecodeValid(R"({"type":"sendToGroup","group":"g","data":{"n":1.50}})");
  json::Value jv = MessageFrame(GroupMessage("g", "u", j.data_type, j.data));
  EXPECT_EQ(json::Serialize(*jv.Find("data")), R"({"n":1.50})");
}

// ---------------------------------------------------------------------------------------------
// Client SDK 1.1 messages (the frames @azure/web-pubsub-client 1.1.0's writeMessage produces)

TEST(JsonCodecDecode, Invoke) {
  ClientMessage m = DecodeValid(
      R"({"type":"invoke","invocationId":"7","target":"event","event":"ask","dataType":"text","data":"q"})");
  EXPECT_EQ(m.type, ClientMessageType::kInvoke);
  EXPECT_EQ(m.invocation_id, "7");
  EXPECT_EQ(m.event, "ask");
  EXPECT_EQ(m.data_type, DataType::kText);
  EXPECT_EQ(m.data, "q");
  // Without data (the SDK leaves both out): JSON null, like an event.
  m = DecodeValid(R"({"type":"invoke","invocationId":"8","target":"event","event":"ask"})");
  EXPECT_EQ(m.data, "null");
  EXPECT_EQ(DecodeInvalid(R"({"type":"invoke","invocationId":"9","target":"x","event":"e"})")
                .invocation_id,
            "9");
  EXPECT_TRUE(DecodeInvalid(R"({"type":"invoke","event":"e"})").invocation_id.empty());
  DecodeInvalid(R"({"type":"invoke","invocationId":"9","event":""})");
}

TEST(JsonCodecDecode, CancelInvocation) {
  ClientMessage m = DecodeValid(R"({"type":"cancelInvocation","invocationId":"7"})");
  EXPECT_EQ(m.type, ClientMessageType::kCancelInvocation);
  EXPECT_EQ(m.invocation_id, "7");
  DecodeInvalid(R"({"type":"cancelInvocation"})");
}

TEST(JsonCodecDecode, StreamStartDataAndEnd) {
  ClientMessage start = DecodeValid(
      R"({"type":"sendToGroup","group":"g","noEcho":true,"stream":{"streamId":"s","idleTimeoutMs":2000}})");
  EXPECT_EQ(start.type, ClientMessageType::kSendToGroup);
  EXPECT_TRUE(start.stream_start);
  EXPECT_EQ(start.stream_id, "s");
  EXPECT_EQ(start.idle_timeout_ms, std::optional<uint64_t>(2000));
  EXPECT_TRUE(start.no_echo);
  EXPECT_FALSE(DecodeValid(R"({"type":"sendToGroup","group":"g","stream":{"streamId":"s"}})")
                   .idle_timeout_ms);
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","stream":{"streamId":""}})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","stream":{"streamId":"s"},"data":"x"})");
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","stream":"s"})");
  // Without a group it is still a stream start (answered with streamClosed, not ignored).
  ClientMessage groupless = DecodeInvalid(R"({"type":"sendToGroup","stream":{"streamId":"s"}})");
  EXPECT_TRUE(groupless.stream_start);
  EXPECT_EQ(groupless.stream_id, "s");

  ClientMessage data = DecodeValid(
      R"({"type":"streamData","streamId":"s","streamSequenceId":3,"dataType":"binary","data":"AQI="})");
  EXPECT_EQ(data.type, ClientMessageType::kStreamData);
  EXPECT_EQ(data.stream_sequence_id, std::optional<uint64_t>(3));
  EXPECT_EQ(data.data_type, DataType::kBinary);
  EXPECT_EQ(data.data, "\x01\x02");
  ClientMessage keepalive = DecodeValid(R"({"type":"streamData","streamId":"s"})");
  EXPECT_EQ(keepalive.stream_sequence_id, std::nullopt);
  DecodeInvalid(
      R"({"type":"streamData","streamId":"s","streamSequenceId":0,"dataType":"text","data":"x"})");
  DecodeInvalid(R"({"type":"streamData","streamId":"s","streamSequenceId":1})");
  DecodeInvalid(
      R"({"type":"streamData","streamId":"s","streamSequenceId":-1,"dataType":"text","data":"x"})");

  ClientMessage end = DecodeValid(R"({"type":"streamEnd","streamId":"s"})");
  EXPECT_EQ(end.type, ClientMessageType::kStreamEnd);
  EXPECT_FALSE(end.stream_error);
  end = DecodeValid(
      R"({"type":"streamEnd","streamId":"s","error":{"message":"m","userErrorCode":"E1"}})");
  EXPECT_TRUE(end.stream_error);
  EXPECT_EQ(end.stream_error_message, "m");
  EXPECT_EQ(end.stream_user_error_code, "E1");
  DecodeInvalid(R"({"type":"streamEnd","streamId":"s","error":{"message":5}})");
}

TEST(JsonCodecDecode, GroupStateMessages) {
  ClientMessage set =
      DecodeValid(R"({"type":"setGroupState","group":"g","ackId":2,"state":{"b":"2","a":"1"}})");
  EXPECT_EQ(set.type, ClientMessageType::kSetGroupState);
  EXPECT_EQ(set.ack_id, std::optional<uint64_t>(2));
  ASSERT_TRUE(set.group_state);
  EXPECT_EQ(GroupStateJson(*set.group_state), R"({"a":"1","b":"2"})") << "keys sorted";
  EXPECT_FALSE(DecodeValid(R"({"type":"setGroupState","group":"g"})").group_state) << "clears";
  DecodeInvalid(R"({"type":"setGroupState","group":"g","state":{"n":1}})");
  DecodeInvalid(R"({"type":"setGroupState","group":"g","state":["x"]})");
  EXPECT_EQ(DecodeValid(R"({"type":"subscribeGroupState","group":"g","ackId":1})").type,
            ClientMessageType::kSubscribeGroupState);
  EXPECT_EQ(DecodeValid(R"({"type":"unsubscribeGroupState","group":"g"})").type,
            ClientMessageType::kUnsubscribeGroupState);
  DecodeInvalid(R"({"type":"subscribeGroupState","ackId":1})");
}

// Nested objects become trees of their own only when small: a 1 MiB state, stream start or
// stream error is refused without building one (a frame's memory stays bounded).
TEST(JsonCodecDecode, OversizedNestedObjectsAreInvalid) {
  std::string big = "{";
  for (int i = 0; i < 2000; ++i) big += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":\"v\"";
  big += "}";
  ClientMessage state =
      DecodeInvalid(R"({"type":"setGroupState","group":"g","state":)" + big + "}");
  EXPECT_NE(state.invalid_reason->find("larger than"), std::string::npos);
  DecodeInvalid(R"({"type":"sendToGroup","group":"g","stream":)" + big + "}");
  DecodeInvalid(R"({"type":"streamEnd","streamId":"s","error":)" + big + "}");
  // The same members at an ordinary size are read.
  EXPECT_TRUE(DecodeValid(R"({"type":"setGroupState","group":"g","state":{"k":"v"}})").group_state);
}

TEST(JsonCodecEncode, ClientSdk11ServiceMessages) {
  InvokeResult ok;
  ok.success = true;
  ok.data_type = DataType::kJson;
  ok.data = R"({"answer":42})";
  json::Value v = ParseFrame(EncodeInvokeResponse("7", ok));
  EXPECT_EQ(Str(v, "type"), "invokeResponse");
  EXPECT_EQ(Str(v, "invocationId"), "7");
  EXPECT_EQ(Bool(v, "success"), true);
  EXPECT_EQ(Str(v, "dataType"), "json");
  EXPECT_EQ(v.Find("data")->Find("answer")->str(), "42");
  v = ParseFrame(EncodeInvokeResponse("8", InvokeResult{true, {}, "", "", ""}));
  EXPECT_EQ(v.Find("dataType"), nullptr) << "no data, no dataType";
  v = ParseFrame(EncodeInvokeResponse("9", InvokeResult{false, {}, "", "Timeout", "slow"}));
  EXPECT_EQ(Bool(v, "success"), false);
  EXPECT_EQ(Str(*v.Find("error"), "name"), "Timeout");
  EXPECT_EQ(Str(*v.Find("error"), "message"), "slow");

  v = ParseFrame(EncodeStreamAck("s", 5));
  EXPECT_EQ(Str(v, "type"), "streamAck");
  EXPECT_EQ(U64(v, "expectedSequenceId"), 5u);
  v = ParseFrame(EncodeStreamNack("s", 5, "InvalidSequenceId", "m"));
  EXPECT_EQ(Str(v, "name"), "InvalidSequenceId");
  EXPECT_EQ(U64(v, "expectedSequenceId"), 5u);
  v = ParseFrame(EncodeStreamClosed("s", std::nullopt));
  EXPECT_EQ(Str(v, "type"), "streamClosed");
  EXPECT_EQ(v.Find("error"), nullptr);
  v = ParseFrame(EncodeStreamClosed("s", StreamError{"IdleTimeout", "quiet"}));
  EXPECT_EQ(Str(*v.Find("error"), "name"), "IdleTimeout");

  std::vector<storage::GroupStateItem> items = {{"c1", std::string("u"), R"({"k":"v"})", 5},
                                                {"c2", std::nullopt, std::nullopt, 6}};
  v = ParseFrame(EncodeGroupState(true, "g", items));
  EXPECT_EQ(Str(v, "type"), "groupStateSnapshot");
  EXPECT_EQ(Str(v, "group"), "g");
  const auto& list = v.Find("items")->items();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(Str(list[0], "userId"), "u");
  EXPECT_EQ(Str(*list[0].Find("state"), "k"), "v");
  EXPECT_EQ(U64(list[0], "updatedAt"), 5u);
  EXPECT_EQ(list[1].Find("userId"), nullptr);
  EXPECT_EQ(list[1].Find("state"), nullptr);
  EXPECT_EQ(Str(ParseFrame(EncodeGroupState(false, "g", {})), "type"), "groupStateUpdate");
}

TEST(JsonCodecEncode, GroupStreamMessageCarriesStream) {
  storage::Entry e = GroupMessage("g", "u", DataType::kText, "chunk");
  e.stream_id = "s";
  e.stream_sequence_id = 3;
  json::Value v = MessageFrame(e);
  const json::Value* stream = v.Find("stream");
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(Str(*stream, "streamId"), "s");
  EXPECT_EQ(U64(*stream, "streamSequenceId"), 3u);
  EXPECT_EQ(Bool(*stream, "endOfStream"), false);
  EXPECT_EQ(stream->Find("error"), nullptr);
  e.stream_end = true;
  e.data.clear();
  e.stream_error_name = "UserError";
  e.stream_error_message = "stop";
  e.stream_user_error_code = "E2";
  v = MessageFrame(e);
  EXPECT_EQ(Str(v, "dataType"), "text") << "the SDK drops group messages without a dataType";
  EXPECT_EQ(Bool(*v.Find("stream"), "endOfStream"), true);
  const json::Value* error = v.Find("stream")->Find("error");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(Str(*error, "name"), "UserError");
  EXPECT_EQ(Str(*error, "userErrorCode"), "E2");
  EXPECT_EQ(MessageFrame(GroupMessage("g", "u", DataType::kText, "x")).Find("stream"), nullptr);
}

}  // namespace
}  // namespace hubcast::server
