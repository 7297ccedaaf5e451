#include "server/codec.h"

#include "server/json_codec.h"

namespace hubcast::server {

std::string SubprotocolCodec::ReliableHead(uint64_t, size_t) const { return {}; }

namespace {

std::string TextFrame(std::string_view text) { return WsFrame(WsOpcode::kText, text); }

// json.webpubsub.azure.v1 and its reliable sibling (PROTOCOL.md 3.2, 3.4): one wire format;
// the reliable one numbers data messages with a `"sequenceId":N,` prefix.
class JsonCodec final : public SubprotocolCodec {
 public:
  explicit JsonCodec(bool reliable) : reliable_(reliable) {}
  ClientProtocol protocol() const override {
    return reliable_ ? ClientProtocol::kJsonReliable : ClientProtocol::kJson;
  }
  std::string_view name() const override {
    return reliable_ ? kJsonReliableProtocol : kJsonProtocol;
  }
  bool reliable() const override { return reliable_; }

  void Encode(const storage::Entry& e, EncodedMessage* m) const override {
    auto& frame = m->shared[static_cast<size_t>(ClientProtocol::kJson)];
    auto& body = m->shared[static_cast<size_t>(ClientProtocol::kJsonReliable)];
    // Both from one buffer: the whole frame, and the body inside it after `{`.
    if (!frame) frame = EncodeJsonFrame(e, &body);
  }

  std::string ReliableHead(uint64_t seq, size_t body_size) const override {
    if (!reliable_) return {};
    std::string prefix = "{\"sequenceId\":" + std::to_string(seq) + ",";
    std::string head = WsFrameHeader(WsOpcode::kText, prefix.size() + body_size);
    head += prefix;
    return head;
  }

  std::string Connected(const std::optional<std::string>& user_id, std::string_view id,
                        const std::optional<std::string>& token) const override {
    return TextFrame(EncodeConnected(user_id, id, token));
  }
  std::string Disconnected(std::string_view reason) const override {
    return TextFrame(EncodeDisconnected(reason));
  }
  std::string Ack(uint64_t ack_id, const Status& status) const override {
    return TextFrame(EncodeAck(ack_id, status));
  }
  std::string Pong() const override { return TextFrame(EncodePong()); }

  Result<ClientMessage> Decode(WsMessage& frame) const override {
    if (frame.opcode != WsOpcode::kText) {
      return Status::InvalidArgument("Binary frames are not supported on a JSON subprotocol.");
    }
    return DecodeClientMessage(frame.payload);
  }

 private:
  const bool reliable_;
};

// No subprotocol (PROTOCOL.md 3.1): every frame is data, and the service sends nothing but
// the data messages themselves.
class RawCodec final : public SubprotocolCodec {
 public:
  ClientProtocol protocol() const override { return ClientProtocol::kRaw; }
  std::string_view name() const override { return {}; }
  bool reliable() const override { return false; }

  void Encode(const storage::Entry& e, EncodedMessage* m) const override {
    auto& frame = m->shared[static_cast<size_t>(ClientProtocol::kRaw)];
    if (!frame) frame = EncodeRawFrame(e);
  }
  std::string Connected(const std::optional<std::string>&, std::string_view,
                        const std::optional<std::string>&) const override {
    return {};
  }
  std::string Disconnected(std::string_view) const override { return {}; }
  std::string Ack(uint64_t, const Status&) const override { return {}; }
  std::string Pong() const override { return {}; }

  Result<ClientMessage> Decode(WsMessage& frame) const override {
    ClientMessage m;
    m.type = ClientMessageType::kRawData;
    m.data_type =
        frame.opcode == WsOpcode::kText ? storage::DataType::kText : storage::DataType::kBinary;
    m.data = std::move(frame.payload);
    return m;
  }
};

const JsonCodec kJson(false);
const JsonCodec kJsonReliable(true);
const RawCodec kRaw;

}  // namespace

const SubprotocolCodec& CodecFor(ClientProtocol protocol) {
  switch (protocol) {
    case ClientProtocol::kJson:
      return kJson;
    case ClientProtocol::kJsonReliable:
      return kJsonReliable;
    case ClientProtocol::kRaw:
      break;
  }
  return kRaw;
}

const SubprotocolCodec& CodecByName(std::string_view subprotocol) {
  const SubprotocolCodec* known = Negotiate({std::string(subprotocol)});
  return known ? *known : kRaw;
}

const SubprotocolCodec* Negotiate(const std::vector<std::string>& offered) {
  for (const auto& name : offered) {
    for (const SubprotocolCodec* c : {static_cast<const SubprotocolCodec*>(&kJson),
                                      static_cast<const SubprotocolCodec*>(&kJsonReliable)}) {
      if (c->name() == name) return c;
    }
  }
  return nullptr;
}

}  // namespace hubcast::server
