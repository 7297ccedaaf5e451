// Tests of server/codec.h: negotiation, encoding once per subprotocol (the JSON frame and the
// reliable body share one buffer), reliable heads, service frames and decoding per codec.
#include "server/codec.h"

#include "base/json.h"
#include "server/ws_frame.h"

#include <gtest/gtest.h>

#include <string>

namespace hubcast::server {
namespace {

storage::Entry GroupMessage(std::string data, storage::DataType type) {
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.scope = storage::Scope::kGroup;
  e.target = "room";
  e.from = storage::MessageFrom::kGroup;
  e.from_user_id = "alice";
  e.data_type = type;
  e.data = std::move(data);
  return e;
}

// Reads one whole server frame back with the project's own reader (server frames are
// unmasked: the reader wants masked client frames, so decode the header here).
std::pair<WsOpcode, std::string> Unframe(std::string_view frame) {
  EXPECT_GE(frame.size(), 2u);
  auto opcode = static_cast<WsOpcode>(static_cast<uint8_t>(frame[0]) & 0x0f);
  size_t len = static_cast<uint8_t>(frame[1]) & 0x7f, at = 2;
  if (len == 126) {
    len = (size_t(uint8_t(frame[2])) << 8) | uint8_t(frame[3]);
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | uint8_t(frame[2 + i]);
    at = 10;
  }
  EXPECT_EQ(frame.size(), at + len);
  return {opcode, std::string(frame.substr(at))};
}

TEST(Codec, NegotiationPicksTheFirstOfferedSubprotocolTheServiceSpeaks) {
  const SubprotocolCodec* c = Negotiate({"mqtt", kJsonReliableProtocol, kJsonProtocol});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->protocol(), ClientProtocol::kJsonReliable);
  EXPECT_EQ(Negotiate({"protobuf.webpubsub.azure.v1x", "custom"}), nullptr);
  EXPECT_EQ(CodecByName("custom").protocol(), ClientProtocol::kRaw);  // a handler's choice
  EXPECT_EQ(CodecByName("").protocol(), ClientProtocol::kRaw);
  EXPECT_EQ(CodecByName(kJsonProtocol).protocol(), ClientProtocol::kJson);
  for (ClientProtocol p :
       {ClientProtocol::kRaw, ClientProtocol::kJson, ClientProtocol::kJsonReliable}) {
    EXPECT_EQ(CodecFor(p).protocol(), p);
  }
}

TEST(Codec, JsonFrameAndReliableBodyAreEncodedOnceIntoOneBuffer) {
  const auto& json = CodecFor(ClientProtocol::kJson);
  const auto& reliable = CodecFor(ClientProtocol::kJsonReliable);
  EncodedMessage m;
  reliable.Encode(GroupMessage("hi", storage::DataType::kText), &m);
  ASSERT_TRUE(json.Shared(m));
  ASSERT_TRUE(reliable.Shared(m));
  // The body is the tail of the frame: the same bytes, not a copy.
  std::string_view frame = json.Shared(m).view(), body = reliable.Shared(m).view();
  EXPECT_EQ(frame.data() + frame.size(), body.data() + body.size());
  auto [op, text] = Unframe(frame);
  EXPECT_EQ(op, WsOpcode::kText);
  auto parsed = json::Parse(text);
  ASSERT_TRUE(parsed.ok()) << text;
  EXPECT_EQ(parsed->Find("type")->str(), "message");
  EXPECT_EQ(parsed->Find("group")->str(), "room");
  EXPECT_EQ(parsed->Find("fromUserId")->str(), "alice");
  EXPECT_EQ(parsed->Find("data")->str(), "hi");
  EXPECT_EQ(parsed->Find("sequenceId"), nullptr);

  // A second Encode (another recipient's codec) changes nothing.
  const char* before = frame.data();
  json.Encode(GroupMessage("other", storage::DataType::kText), &m);
  EXPECT_EQ(json.Shared(m).view().data(), before);
}

TEST(Codec, ReliableHeadMakesAWholeFrameWithTheSequenceId) {
  const auto& reliable = CodecFor(ClientProtocol::kJsonReliable);
  for (size_t size : {10u, 200u, 70000u}) {  // all three WebSocket length forms
    EncodedMessage m;
    reliable.Encode(GroupMessage(std::string(size, 'x'), storage::DataType::kText), &m);
    std::string whole = reliable.ReliableHead(7, reliable.Shared(m).size());
    whole.append(reliable.Shared(m).view());
    auto [op, text] = Unframe(whole);
    auto parsed = json::Parse(text);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed->Find("sequenceId")->as_uint64(), 7u);
    EXPECT_EQ(parsed->Find("data")->str().size(), size);
  }
  EXPECT_EQ(CodecFor(ClientProtocol::kJson).ReliableHead(7, 10), "");
}

TEST(Codec, RawClientsGetTheDataAsIsAndNoServiceMessages) {
  const auto& raw = CodecFor(ClientProtocol::kRaw);
  EncodedMessage m;
  raw.Encode(GroupMessage(std::string("\x00\xff", 2), storage::DataType::kBinary), &m);
  auto [op, payload] = Unframe(raw.Shared(m).view());
  EXPECT_EQ(op, WsOpcode::kBinary);
  EXPECT_EQ(payload, std::string("\x00\xff", 2));
  EncodedMessage t;
  raw.Encode(GroupMessage("{\"a\":1}", storage::DataType::kJson), &t);
  EXPECT_EQ(Unframe(raw.Shared(t).view()).first, WsOpcode::kText);
  EXPECT_EQ(raw.Connected("u", "c", std::nullopt), "");
  EXPECT_EQ(raw.Ack(1, Status::Ok()), "");
  EXPECT_EQ(raw.Pong(), "");
  EXPECT_EQ(raw.Disconnected("bye"), "");
}

TEST(Codec, DecodingFollowsTheSubprotocol) {
  WsMessage text{WsOpcode::kText, R"({"type":"joinGroup","group":"g","ackId":3})"};
  auto m = CodecFor(ClientProtocol::kJson).Decode(text);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->type, ClientMessageType::kJoinGroup);
  EXPECT_EQ(m->group, "g");

  WsMessage binary{WsOpcode::kBinary, "\x01\x02"};
  auto refused = CodecFor(ClientProtocol::kJsonReliable).Decode(binary);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);

  WsMessage raw_binary{WsOpcode::kBinary, "\x01\x02"};
  auto data = CodecFor(ClientProtocol::kRaw).Decode(raw_binary);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->type, ClientMessageType::kRawData);
  EXPECT_EQ(data->data_type, storage::DataType::kBinary);
  EXPECT_EQ(data->data, "\x01\x02");
}

TEST(Codec, ServiceFramesAreWholeTextFrames) {
  const auto& json = CodecFor(ClientProtocol::kJsonReliable);
  auto [op, text] = Unframe(json.Connected("u", "conn", std::string("tok")));
  EXPECT_EQ(op, WsOpcode::kText);
  auto parsed = json::Parse(text);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Find("event")->str(), "connected");
  EXPECT_EQ(parsed->Find("reconnectionToken")->str(), "tok");
  EXPECT_NE(Unframe(json.Ack(9, Status::Forbidden("no"))).second.find("\"Forbidden\""),
            std::string::npos);
  EXPECT_EQ(Unframe(json.Pong()).second, R"({"type":"pong"})");
}

}  // namespace
}  // namespace hubcast::server
