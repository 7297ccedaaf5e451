// Tests of server/protobuf_codec.h: the protobuf subprotocols. Upstream messages are built and
// downstream frames parsed with the code generated from server/proto/webpubsub.proto, so the
// hand-written data-message encoder is checked against the schema; malformed input (truncated
// varints, wrong wire types, invalid UTF-8, huge strings) must be refused without a crash.
#include "server/protobuf_codec.h"

#include "base/json.h"
#include "server/codec.h"
#include "server/json_codec.h"
#include "server/proto/webpubsub.pb.h"
#include "server/ws_frame.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/entries.h"
#include "tests/unit/testing/ws_frames.h"
#include <random>
#include <string>

namespace hubcast::server {
namespace {

namespace pb = ::azure::webpubsub;
using storage::DataType;

using hubcast::testing::Unframe;

pb::DownstreamMessage Parse(std::string_view frame) {
  auto [op, payload] = Unframe(frame);
  EXPECT_EQ(op, WsOpcode::kBinary);
  pb::DownstreamMessage m;
  EXPECT_TRUE(m.ParseFromString(payload));
  return m;
}

ClientMessage Decode(const pb::UpstreamMessage& up) {
  auto m = DecodeProtobufClientMessage(up.SerializeAsString());
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : ClientMessage();
}

std::string AnyBytes(const std::string& type_url, const std::string& value) {
  google::protobuf::Any any;
  any.set_type_url(type_url);
  any.set_value(value);
  return any.SerializeAsString();
}

storage::Entry GroupMessage(DataType type, std::string data) {
  return hubcast::testing::GroupMessage("room", "alice", type, std::move(data));
}

TEST(ProtobufCodec, NegotiatedByNameAndReliableOnlyForTheReliableOne) {
  const SubprotocolCodec* plain = Negotiate({"x", kProtobufProtocol});
  const SubprotocolCodec* reliable = Negotiate({kProtobufReliableProtocol});
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(reliable, nullptr);
  EXPECT_EQ(plain->protocol(), ClientProtocol::kProtobuf);
  EXPECT_EQ(reliable->protocol(), ClientProtocol::kProtobufReliable);
  EXPECT_FALSE(plain->reliable());
  EXPECT_TRUE(reliable->reliable());
  EXPECT_EQ(&CodecFor(ClientProtocol::kProtobufReliable), reliable);
  EXPECT_EQ(CodecByName(kProtobufProtocol).protocol(), ClientProtocol::kProtobuf);
}

TEST(ProtobufCodec, DecodesEveryDocumentedUpstreamMessage) {
  pb::UpstreamMessage up;
  auto* send = up.mutable_send_to_group_message();
  send->set_group("g");
  send->set_ack_id(7);
  send->set_no_echo(true);
  send->mutable_data()->set_text_data("hi");
  ClientMessage m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kSendToGroup);
  EXPECT_EQ(m.group, "g");
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(7));
  EXPECT_TRUE(m.no_echo);
  EXPECT_EQ(m.data_type, DataType::kText);
  EXPECT_EQ(m.data, "hi");
  EXPECT_FALSE(m.invalid_reason);

  up.Clear();
  auto* event = up.mutable_event_message();
  event->set_event("ev");
  event->mutable_data()->set_binary_data(std::string("\x00\xff", 2));
  m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kEvent);
  EXPECT_EQ(m.event, "ev");
  EXPECT_EQ(m.ack_id, std::nullopt);
  EXPECT_EQ(m.data_type, DataType::kBinary);
  EXPECT_EQ(m.data, std::string("\x00\xff", 2));

  up.Clear();
  up.mutable_join_group_message()->set_group("j");
  up.mutable_join_group_message()->set_ack_id(0);  // 0 is a present ack id
  m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kJoinGroup);
  EXPECT_EQ(m.ack_id, std::optional<uint64_t>(0));

  up.Clear();
  up.mutable_leave_group_message()->set_group("j");
  EXPECT_EQ(Decode(up).type, ClientMessageType::kLeaveGroup);

  up.Clear();
  up.mutable_sequence_ack_message()->set_sequence_id(UINT64_MAX);
  m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kSequenceAck);
  EXPECT_EQ(m.sequence_id, UINT64_MAX);

  up.Clear();
  up.mutable_ping_message();
  EXPECT_EQ(Decode(up).type, ClientMessageType::kPing);
}

TEST(ProtobufCodec, PayloadsKeepTheirDataTypeAndBytes) {
  pb::UpstreamMessage up;
  auto* data = up.mutable_send_to_group_message()->mutable_data();
  up.mutable_send_to_group_message()->set_group("g");

  data->set_json_data(" { \"a\" : [1, 2.50] } ");
  ClientMessage m = Decode(up);
  EXPECT_EQ(m.data_type, DataType::kJson);
  EXPECT_EQ(m.data, R"({"a":[1,2.50]})");  // compact, numbers as written, like JSON clients'

  const std::string any = AnyBytes("type.googleapis.com/x.Y", std::string("\x08\x01", 2));
  ASSERT_TRUE(data->mutable_protobuf_data()->ParseFromString(any));
  m = Decode(up);
  EXPECT_EQ(m.data_type, DataType::kProtobuf);
  EXPECT_EQ(m.data, any);

  data->set_json_data("{not json");
  EXPECT_TRUE(Decode(up).invalid_reason);

  // No data at all is JSON null, as for a JSON client that leaves `data` out.
  up.mutable_send_to_group_message()->clear_data();
  m = Decode(up);
  EXPECT_EQ(m.data_type, DataType::kJson);
  EXPECT_EQ(m.data, "null");
}

TEST(ProtobufCodec, DecodesClientSdk11Messages) {
  pb::UpstreamMessage up;
  auto* invoke = up.mutable_invoke_message();
  invoke->set_invocation_id("i1");
  invoke->set_event("ask");
  invoke->mutable_data()->set_text_data("q");
  ClientMessage m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kInvoke);
  EXPECT_EQ(m.invocation_id, "i1");
  EXPECT_EQ(m.event, "ask");
  EXPECT_EQ(m.data, "q");
  EXPECT_FALSE(m.invalid_reason);
  invoke->set_target("somewhere");
  EXPECT_TRUE(Decode(up).invalid_reason);

  up.Clear();
  up.mutable_cancel_invocation_message()->set_invocation_id("i1");
  EXPECT_EQ(Decode(up).type, ClientMessageType::kCancelInvocation);

  up.Clear();
  auto* start = up.mutable_send_to_group_message();
  start->set_group("g");
  start->mutable_stream()->set_stream_id("s");
  start->mutable_stream()->set_idle_timeout_ms(5000);
  m = Decode(up);
  EXPECT_TRUE(m.stream_start);
  EXPECT_EQ(m.stream_id, "s");
  EXPECT_EQ(m.idle_timeout_ms, std::optional<uint64_t>(5000));
  start->mutable_data()->set_text_data("x");
  EXPECT_TRUE(Decode(up).invalid_reason) << "a stream start carries no data";

  up.Clear();
  auto* data = up.mutable_stream_data_message();
  data->set_stream_id("s");
  m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kStreamData);
  EXPECT_EQ(m.stream_sequence_id, std::nullopt);  // keep-alive
  data->set_stream_sequence_id(3);
  EXPECT_TRUE(Decode(up).invalid_reason) << "a numbered message needs data";
  data->mutable_data()->set_text_data("chunk");
  m = Decode(up);
  EXPECT_EQ(m.stream_sequence_id, std::optional<uint64_t>(3));
  EXPECT_EQ(m.data, "chunk");

  up.Clear();
  up.mutable_stream_end_message()->set_stream_id("s");
  up.mutable_stream_end_message()->mutable_error()->set_message("boom");
  up.mutable_stream_end_message()->mutable_error()->set_user_error_code("E1");
  m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kStreamEnd);
  EXPECT_TRUE(m.stream_error);
  EXPECT_EQ(m.stream_error_message, "boom");
  EXPECT_EQ(m.stream_user_error_code, "E1");

  up.Clear();
  auto* set = up.mutable_set_group_state_message();
  set->set_group("g");
  set->set_ack_id(4);
  (*set->mutable_state()->mutable_values())["mood"] = "ok";
  m = Decode(up);
  EXPECT_EQ(m.type, ClientMessageType::kSetGroupState);
  ASSERT_TRUE(m.group_state);
  EXPECT_EQ(m.group_state->at("mood"), "ok");
  set->clear_state();
  EXPECT_FALSE(Decode(up).group_state) << "no state clears it";

  up.Clear();
  up.mutable_subscribe_group_state_message()->set_group("g");
  EXPECT_EQ(Decode(up).type, ClientMessageType::kSubscribeGroupState);
  up.Clear();
  up.mutable_unsubscribe_group_state_message()->set_group("g");
  EXPECT_EQ(Decode(up).type, ClientMessageType::kUnsubscribeGroupState);
}

TEST(ProtobufCodec, AnEmptyMessageOrOneOfALaterVersionIsAnUnknownType) {
  auto empty = DecodeProtobufClientMessage("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->type, ClientMessageType::kUnknown);
  // Field 50 (not in the schema), length-delimited: skipped like any unknown field.
  auto later = DecodeProtobufClientMessage(std::string("\x92\x03\x02\x08\x01", 5));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->type, ClientMessageType::kUnknown);
  // Unknown fields inside a known message are skipped too.
  pb::UpstreamMessage up;
  up.mutable_join_group_message()->set_group("g");
  std::string bytes = up.SerializeAsString();
  auto with_extra = DecodeProtobufClientMessage(bytes + std::string("\xf8\x07\x05", 3));
  ASSERT_TRUE(with_extra.ok());
  EXPECT_EQ(with_extra->type, ClientMessageType::kJoinGroup);
  // A known field with the wrong wire type is an unknown field to protobuf: skipped too.
  auto wrong_wire = DecodeProtobufClientMessage(std::string("\x30\x01", 2));
  ASSERT_TRUE(wrong_wire.ok());
  EXPECT_EQ(wrong_wire->type, ClientMessageType::kUnknown);
}

void ExpectMalformed(std::string_view bytes, const char* what) {
  auto m = DecodeProtobufClientMessage(bytes);
  EXPECT_FALSE(m.ok()) << what;
  if (!m.ok()) {
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << what;
  }
}

TEST(ProtobufCodec, MalformedFramesAreRefused) {
  ExpectMalformed(std::string("\x0a", 1), "a tag without its length");
  ExpectMalformed(std::string("\x0a\xff\xff\xff", 4), "a truncated length varint");
  ExpectMalformed(std::string("\x0a\x05\x0a\x01", 4), "a length past the end");
  ExpectMalformed(std::string("\x0a\x02\x0a\x80", 4), "a nested truncated varint");
  ExpectMalformed(std::string("\x0f", 1), "wire type 7");
  ExpectMalformed(std::string(11, '\xff'), "a varint longer than 10 bytes");
  pb::UpstreamMessage up;
  up.mutable_join_group_message()->set_group("ok");
  std::string bytes = up.SerializeAsString();
  bytes.back() = '\xff';  // "o\xff": not UTF-8 in a string field
  ExpectMalformed(bytes, "invalid UTF-8 in a string field");

  WsMessage text{WsOpcode::kText, "{}"};
  EXPECT_FALSE(CodecFor(ClientProtocol::kProtobuf).Decode(text).ok()) << "text frame";
}

TEST(ProtobufCodec, AHugeGroupNameDecodesAndIsLeftToValidation) {
  pb::UpstreamMessage up;
  up.mutable_join_group_message()->set_group(std::string(1 << 20, 'g'));
  up.mutable_join_group_message()->set_ack_id(1);
  ClientMessage m = Decode(up);
  EXPECT_EQ(m.group.size(), size_t{1} << 20);  // the connection answers BadRequest
}

TEST(ProtobufCodec, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  pb::UpstreamMessage up;
  up.mutable_send_to_group_message()->set_group("g");
  up.mutable_send_to_group_message()->mutable_data()->set_json_data("[1,2]");
  const std::string good = up.SerializeAsString();
  size_t refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = good;
    for (int f = 0, n = 1 + static_cast<int>(rng() % 3); f < n; ++f) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    if (rng() % 3 == 0) bytes.resize(rng() % bytes.size());
    auto m = DecodeProtobufClientMessage(bytes);
    if (!m.ok()) ++refused;
  }
  EXPECT_GT(refused, 0u);
}

TEST(ProtobufCodec, DataMessageFrameParsesWithTheSchema) {
  const auto& plain = CodecFor(ClientProtocol::kProtobuf);
  for (DataType type : {DataType::kText, DataType::kBinary, DataType::kJson, DataType::kProtobuf}) {
    std::string data = type == DataType::kJson       ? R"({"n":1})"
                       : type == DataType::kProtobuf ? AnyBytes("type.googleapis.com/a.B", "zz")
                                                     : "payload";
    EncodedMessage m;
    plain.Encode(GroupMessage(type, data), &m);
    pb::DownstreamMessage down = Parse(plain.Shared(m).view());
    ASSERT_TRUE(down.has_data_message());
    const auto& d = down.data_message();
    EXPECT_EQ(d.from(), "group");
    EXPECT_EQ(d.group(), "room");
    EXPECT_EQ(d.from_user_id(), "alice");
    EXPECT_FALSE(d.has_sequence_id());
    switch (type) {
      case DataType::kText:
        EXPECT_EQ(d.data().text_data(), data);
        break;
      case DataType::kBinary:
        EXPECT_EQ(d.data().binary_data(), data);
        break;
      case DataType::kJson:
        EXPECT_EQ(d.data().json_data(), data);
        break;
      case DataType::kProtobuf:
        EXPECT_EQ(d.data().protobuf_data().SerializeAsString(), data);
        EXPECT_EQ(d.data().protobuf_data().type_url(), "type.googleapis.com/a.B");
        break;
    }
  }
  storage::Entry server = GroupMessage(DataType::kText, "x");
  server.from = storage::MessageFrom::kServer;
  EncodedMessage m;
  plain.Encode(server, &m);
  pb::DownstreamMessage down = Parse(plain.Shared(m).view());
  EXPECT_EQ(down.data_message().from(), "server");
  EXPECT_FALSE(down.data_message().has_group());
  EXPECT_FALSE(down.data_message().has_from_user_id());
}

TEST(ProtobufCodec, ReliableHeadAddsTheSequenceIdToTheSharedBody) {
  const auto& plain = CodecFor(ClientProtocol::kProtobuf);
  const auto& reliable = CodecFor(ClientProtocol::kProtobufReliable);
  for (size_t size : {5u, 200u, 70000u}) {  // every WebSocket and varint length form
    EncodedMessage m;
    reliable.Encode(GroupMessage(DataType::kBinary, std::string(size, 'b')), &m);
    // Both subprotocols' bytes come from one encoding: the body is the frame's tail.
    std::string_view frame = plain.Shared(m).view(), body = reliable.Shared(m).view();
    EXPECT_EQ(frame.data() + frame.size(), body.data() + body.size());
    for (uint64_t seq : {uint64_t{1}, uint64_t{300}, UINT64_MAX}) {
      std::string whole = reliable.ReliableHead(seq, body.size());
      whole.append(body);
      pb::DownstreamMessage down = Parse(whole);
      ASSERT_TRUE(down.has_data_message());
      EXPECT_EQ(down.data_message().sequence_id(), seq);
      EXPECT_EQ(down.data_message().data().binary_data().size(), size);
    }
  }
  EXPECT_EQ(plain.ReliableHead(1, 10), "");
}

TEST(ProtobufCodec, StreamMessagesCarryTheirStreamInfo) {
  storage::Entry e = GroupMessage(DataType::kText, "");
  e.stream_id = "s1";
  e.stream_sequence_id = 11;
  e.stream_end = true;
  e.stream_error_name = "UserError";
  e.stream_error_message = "stopped";
  e.stream_user_error_code = "E7";
  EncodedMessage m;
  CodecFor(ClientProtocol::kProtobuf).Encode(e, &m);
  const pb::DownstreamMessage down = Parse(CodecFor(ClientProtocol::kProtobuf).Shared(m).view());
  const auto& d = down.data_message();
  EXPECT_EQ(d.stream().stream_id(), "s1");
  EXPECT_EQ(d.stream().stream_sequence_id(), 11u);
  EXPECT_TRUE(d.stream().end_of_stream());
  EXPECT_EQ(d.stream().error().name(), "UserError");
  EXPECT_EQ(d.stream().error().message(), "stopped");
  EXPECT_EQ(d.stream().error().user_error_code(), "E7");
  EXPECT_TRUE(d.data().has_text_data());  // an end carries empty text
}

TEST(ProtobufCodec, ServiceMessages) {
  const auto& c = CodecFor(ClientProtocol::kProtobufReliable);
  auto connected = Parse(c.Connected("u", "conn", std::string("tok")));
  EXPECT_EQ(connected.system_message().connected_message().connection_id(), "conn");
  EXPECT_EQ(connected.system_message().connected_message().user_id(), "u");
  EXPECT_EQ(connected.system_message().connected_message().reconnection_token(), "tok");
  EXPECT_EQ(Parse(c.Disconnected("bye")).system_message().disconnected_message().reason(), "bye");
  auto ok = Parse(c.Ack(5, Status::Ok()));
  EXPECT_EQ(ok.ack_message().ack_id(), 5u);
  EXPECT_TRUE(ok.ack_message().success());
  EXPECT_FALSE(ok.ack_message().has_error());
  auto dup = Parse(c.Ack(6, Status::Duplicate("again")));
  EXPECT_FALSE(dup.ack_message().success());
  EXPECT_EQ(dup.ack_message().error().name(), "Duplicate");
  EXPECT_TRUE(Parse(c.Pong()).has_pong_message());

  InvokeResult r;
  r.success = true;
  r.data_type = DataType::kJson;
  r.data = "[1]";
  auto invoke = Parse(c.InvokeResponse("i", r)).invoke_response_message();
  EXPECT_EQ(invoke.invocation_id(), "i");
  EXPECT_TRUE(invoke.success());
  EXPECT_EQ(invoke.data().json_data(), "[1]");
  auto failed = Parse(c.InvokeResponse("i", InvokeResult{false, {}, "", "Timeout", "slow"}));
  EXPECT_FALSE(failed.invoke_response_message().success());
  EXPECT_EQ(failed.invoke_response_message().error().name(), "Timeout");

  EXPECT_EQ(Parse(c.StreamAck("s", 9)).stream_ack_message().expected_sequence_id(), 9u);
  auto nack = Parse(c.StreamNack("s", 3, "InvalidSequenceId", "no")).stream_nack_message();
  EXPECT_EQ(nack.expected_sequence_id(), 3u);
  EXPECT_EQ(nack.name(), "InvalidSequenceId");
  auto closed = Parse(c.StreamClosed("s", StreamError{"IdleTimeout", "quiet"}));
  EXPECT_EQ(closed.stream_closed_message().error().name(), "IdleTimeout");
  EXPECT_FALSE(Parse(c.StreamClosed("s", std::nullopt)).stream_closed_message().has_error());

  std::vector<storage::GroupStateItem> items = {
      {"c1", std::string("u1"), GroupStateJson({{"k", "v"}}), 42}, {"c2", std::nullopt, {}, 43}};
  auto snapshot = Parse(c.GroupState(true, "g", items)).group_state_snapshot_message();
  ASSERT_EQ(snapshot.items_size(), 2);
  EXPECT_EQ(snapshot.group(), "g");
  EXPECT_EQ(snapshot.items(0).user_id(), "u1");
  EXPECT_EQ(snapshot.items(0).state().values().at("k"), "v");
  EXPECT_EQ(snapshot.items(0).updated_at(), 42);
  EXPECT_FALSE(snapshot.items(1).has_state());
  EXPECT_FALSE(snapshot.items(1).has_user_id());
  EXPECT_TRUE(Parse(c.GroupState(false, "g", items)).has_group_state_update_message());
}

TEST(ProtobufCodec, JsonClientsProtobufPayloadMustBeAnAny) {
  EXPECT_TRUE(IsProtobufAny(AnyBytes("t/x", "v")));
  EXPECT_TRUE(IsProtobufAny(""));
  EXPECT_FALSE(IsProtobufAny(std::string("\x0a\x05x", 3)));
  auto m = DecodeClientMessage(
      R"({"type":"sendToGroup","group":"g","dataType":"protobuf","data":"CgU="})");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->invalid_reason);
}

}  // namespace
}  // namespace hubcast::server
