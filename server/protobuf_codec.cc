#include "server/protobuf_codec.h"

#include "base/json.h"
#include "base/log.h"
#include "server/json_codec.h"
#include "server/proto/webpubsub.pb.h"
#include "server/ws_frame.h"
#include "storage/entry_codec.h"

#include <cstring>
#include <google/protobuf/any.pb.h>
#include <google/protobuf/stubs/logging.h>
#include <mutex>

namespace hubcast::server {
namespace {

namespace pb = ::azure::webpubsub;
using Up = pb::UpstreamMessage;
using Down = pb::DownstreamMessage;

// The library logs a rejected frame (invalid UTF-8 in a string field, say) at ERROR: a client
// could fill the log with that. A rejected frame is the connection's business (close 1003);
// the library's own words go to the debug log.
void QuietLibraryLog() {
  static std::once_flag once;
  std::call_once(once, [] {
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string& message) {
          Logger("protobuf").Debug(message);
        });
  });
}

// --- hand encoding of data messages ------------------------------------------------------

enum : uint32_t { kVarint = 0, kBytes = 2 };

void Tag(std::string& out, uint32_t field, uint32_t wire) {
  storage::PutVarint64(&out, (uint64_t{field} << 3) | wire);
}
void BytesField(std::string& out, uint32_t field, std::string_view value) {
  Tag(out, field, kBytes);
  storage::PutVarint64(&out, value.size());
  out.append(value);
}
void VarintField(std::string& out, uint32_t field, uint64_t value) {
  Tag(out, field, kVarint);
  storage::PutVarint64(&out, value);
}

// Field numbers of webpubsub.proto used by the hand encoder (the generated code is the
// reference: tests/unit/server/protobuf_codec_test.cc parses what this writes).
constexpr uint32_t kDownDataMessage = 2;
constexpr uint32_t kDataFrom = 1, kDataGroup = 2, kDataData = 3, kDataSequenceId = 4,
                   kDataStream = 100, kDataFromUserId = 101;
constexpr uint32_t kStreamId = 1, kStreamSequenceId = 2, kStreamEnd = 3, kStreamError = 4;
constexpr uint32_t kErrorName = 1, kErrorMessage = 2, kErrorUserCode = 3;

// MessageData's oneof member for each data type.
uint32_t MessageDataField(storage::DataType t) {
  switch (t) {
    case storage::DataType::kText:
      return 1;  // text_data
    case storage::DataType::kBinary:
      return 2;  // binary_data
    case storage::DataType::kProtobuf:
      return 3;  // protobuf_data: the serialized Any, as sent
    case storage::DataType::kJson:
      return 4;  // json_data
  }
  return 2;
}

// The DataMessage's fields without sequence_id (the body reliable recipients share).
void AppendDataMessageBody(std::string& out, const storage::Entry& e) {
  const bool group = e.from == storage::MessageFrom::kGroup;
  BytesField(out, kDataFrom, group ? "group" : "server");
  if (group) BytesField(out, kDataGroup, e.target);
  std::string data;
  data.reserve(e.data.size() + 6);
  BytesField(data, MessageDataField(e.data_type), e.data);
  BytesField(out, kDataData, data);
  if (!e.stream_id.empty()) {
    std::string stream;
    BytesField(stream, kStreamId, e.stream_id);
    VarintField(stream, kStreamSequenceId, e.stream_sequence_id);
    if (e.stream_end) VarintField(stream, kStreamEnd, 1);
    if (e.stream_error_name) {
      std::string error;
      BytesField(error, kErrorName, *e.stream_error_name);
      BytesField(error, kErrorMessage, e.stream_error_message);
      if (!e.stream_user_error_code.empty()) {
        BytesField(error, kErrorUserCode, e.stream_user_error_code);
      }
      BytesField(stream, kStreamError, error);
    }
    BytesField(out, kDataStream, stream);
  }
  if (group && !e.from_user_id.empty()) BytesField(out, kDataFromUserId, e.from_user_id);
}

// Room before the body: the WebSocket header, DownstreamMessage's tag and a 10-byte length.
constexpr size_t kRoom = kWsHeaderRoom + 1 + 10;

// The whole plain frame, and (*body) the DataMessage fields inside it.
SharedBytes EncodeProtobufFrame(const storage::Entry& e, SharedBytes* body) {
  std::string buf(kRoom, '\0');
  buf.reserve(kRoom + e.data.size() + e.target.size() + e.from_user_id.size() + 64);
  AppendDataMessageBody(buf, e);
  const size_t body_size = buf.size() - kRoom;
  std::string prefix;
  Tag(prefix, kDownDataMessage, kBytes);
  storage::PutVarint64(&prefix, body_size);
  const size_t message_start = kRoom - prefix.size();
  std::memcpy(buf.data() + message_start, prefix.data(), prefix.size());
  const size_t payload = buf.size() - message_start;
  const size_t header = WsPutFrameHeader(buf.data() + message_start, WsOpcode::kBinary, payload);
  auto shared = std::make_shared<const std::string>(std::move(buf));
  *body = SharedBytes(shared, kRoom, body_size);
  return SharedBytes(shared, message_start - header, header + payload);
}

// --- generated code for everything else --------------------------------------------------

std::string Frame(const Down& m) { return WsFrame(WsOpcode::kBinary, m.SerializeAsString()); }

void SetData(pb::MessageData* out, storage::DataType type, const std::string& data) {
  switch (type) {
    case storage::DataType::kText:
      out->set_text_data(data);
      return;
    case storage::DataType::kBinary:
      out->set_binary_data(data);
      return;
    case storage::DataType::kProtobuf:
      // Validated at the door (IsProtobufAny): JSON clients' payloads too.
      (void)out->mutable_protobuf_data()->ParseFromString(data);
      return;
    case storage::DataType::kJson:
      out->set_json_data(data);
      return;
  }
}

void SetState(pb::GroupState* out, std::string_view state_json) {
  for (auto& [key, value] : ParseGroupStateJson(state_json)) (*out->mutable_values())[key] = value;
}

class ProtobufCodecImpl final : public SubprotocolCodec {
 public:
  explicit ProtobufCodecImpl(bool reliable) : reliable_(reliable) {}
  ClientProtocol protocol() const override {
    return reliable_ ? ClientProtocol::kProtobufReliable : ClientProtocol::kProtobuf;
  }
  std::string_view name() const override {
    return reliable_ ? kProtobufReliableProtocol : kProtobufProtocol;
  }
  bool reliable() const override { return reliable_; }

  void Encode(const storage::Entry& e, EncodedMessage* m) const override {
    auto& frame = m->shared[static_cast<size_t>(ClientProtocol::kProtobuf)];
    auto& body = m->shared[static_cast<size_t>(ClientProtocol::kProtobufReliable)];
    if (!frame) frame = EncodeProtobufFrame(e, &body);
  }

  std::string ReliableHead(uint64_t seq, size_t body_size) const override {
    if (!reliable_) return {};
    std::string sequence;
    VarintField(sequence, kDataSequenceId, seq);
    std::string prefix;
    Tag(prefix, kDownDataMessage, kBytes);
    storage::PutVarint64(&prefix, sequence.size() + body_size);
    prefix += sequence;
    std::string head = WsFrameHeader(WsOpcode::kBinary, prefix.size() + body_size);
    head += prefix;
    return head;
  }

  std::string Connected(const std::optional<std::string>& user_id, std::string_view id,
                        const std::optional<std::string>& token) const override {
    Down m;
    auto* c = m.mutable_system_message()->mutable_connected_message();
    c->set_connection_id(std::string(id));
    if (user_id) c->set_user_id(*user_id);
    if (token) c->set_reconnection_token(*token);
    return Frame(m);
  }
  std::string Disconnected(std::string_view reason) const override {
    Down m;
    m.mutable_system_message()->mutable_disconnected_message()->set_reason(std::string(reason));
    return Frame(m);
  }
  std::string Ack(uint64_t ack_id, const Status& status) const override {
    Down m;
    auto* a = m.mutable_ack_message();
    a->set_ack_id(ack_id);
    a->set_success(status.ok());
    if (!status.ok()) {
      a->mutable_error()->set_name(AckErrorName(status.code()));
      a->mutable_error()->set_message(status.message());
    }
    return Frame(m);
  }
  std::string Pong() const override {
    Down m;
    m.mutable_pong_message();
    return Frame(m);
  }
  std::string InvokeResponse(std::string_view id, const InvokeResult& r) const override {
    Down m;
    auto* out = m.mutable_invoke_response_message();
    out->set_invocation_id(std::string(id));
    out->set_success(r.success);
    if (r.success && r.data_type) SetData(out->mutable_data(), *r.data_type, r.data);
    if (!r.success) {
      out->mutable_error()->set_name(r.error_name);
      out->mutable_error()->set_message(r.error_message);
    }
    return Frame(m);
  }
  std::string StreamAck(std::string_view id, uint64_t expected) const override {
    Down m;
    m.mutable_stream_ack_message()->set_stream_id(std::string(id));
    m.mutable_stream_ack_message()->set_expected_sequence_id(expected);
    return Frame(m);
  }
  std::string StreamNack(std::string_view id, uint64_t expected, std::string_view name,
                         std::string_view message) const override {
    Down m;
    auto* n = m.mutable_stream_nack_message();
    n->set_stream_id(std::string(id));
    n->set_expected_sequence_id(expected);
    n->set_name(std::string(name));
    n->set_message(std::string(message));
    return Frame(m);
  }
  std::string StreamClosed(std::string_view id,
                           const std::optional<StreamError>& error) const override {
    Down m;
    auto* c = m.mutable_stream_closed_message();
    c->set_stream_id(std::string(id));
    if (error) {
      c->mutable_error()->set_name(error->name);
      c->mutable_error()->set_message(error->message);
    }
    return Frame(m);
  }
  std::string GroupState(bool snapshot, std::string_view group,
                         const std::vector<storage::GroupStateItem>& items) const override {
    Down m;
    auto* g = snapshot ? m.mutable_group_state_snapshot_message()
                       : m.mutable_group_state_update_message();
    g->set_group(std::string(group));
    for (const auto& item : items) {
      auto* out = g->add_items();
      out->set_connection_id(item.connection_id);
      if (item.user_id) out->set_user_id(*item.user_id);
      if (item.state) SetState(out->mutable_state(), *item.state);
      out->set_updated_at(item.updated_at_ms);
    }
    return Frame(m);
  }

  Result<ClientMessage> Decode(WsMessage& frame) const override {
    if (frame.opcode != WsOpcode::kBinary) {
      return Status::InvalidArgument("Text frames are not supported on a protobuf subprotocol.");
    }
    return DecodeProtobufClientMessage(frame.payload);
  }

 private:
  const bool reliable_;
};

const ProtobufCodecImpl kProtobuf(false);
const ProtobufCodecImpl kProtobufReliable(true);

// --- decoding ----------------------------------------------------------------------------

// MessageData to data_type/data, with the JSON protocol's rules: no data is JSON null; JSON
// text must parse (and travels compact, as JSON clients' data does).
void DecodeData(bool present, const pb::MessageData& d, ClientMessage& m) {
  m.data_type = storage::DataType::kJson;
  m.data = "null";
  if (!present) return;
  switch (d.data_case()) {
    case pb::MessageData::kTextData:
      m.data_type = storage::DataType::kText;
      m.data = d.text_data();
      return;
    case pb::MessageData::kBinaryData:
      m.data_type = storage::DataType::kBinary;
      m.data = d.binary_data();
      return;
    case pb::MessageData::kProtobufData:
      m.data_type = storage::DataType::kProtobuf;
      m.data = d.protobuf_data().SerializeAsString();
      return;
    case pb::MessageData::kJsonData: {
      auto parsed = json::Parse(d.json_data());
      if (!parsed.ok()) {
        m.invalid_reason = "json_data is not valid JSON: " + parsed.status().message();
        return;
      }
      m.data = json::Serialize(*parsed);
      return;
    }
    case pb::MessageData::DATA_NOT_SET:
      return;
  }
}

void Require(const std::string& value, const char* name, ClientMessage& m) {
  if (value.empty() && !m.invalid_reason)
    m.invalid_reason = std::string(name) + " must not be empty.";
}

template <typename T>
void Group(const T& in, ClientMessage& m) {
  m.group = in.group();
  if (in.has_ack_id()) m.ack_id = in.ack_id();
}

}  // namespace

const SubprotocolCodec& ProtobufCodec(bool reliable) {
  return reliable ? static_cast<const SubprotocolCodec&>(kProtobufReliable) : kProtobuf;
}

bool IsProtobufAny(std::string_view bytes) {
  QuietLibraryLog();
  google::protobuf::Any any;
  return any.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

Result<ClientMessage> DecodeProtobufClientMessage(std::string_view bytes) {
  QuietLibraryLog();
  Up up;
  if (!up.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument("The frame is not a valid protobuf UpstreamMessage.");
  }
  ClientMessage m;
  switch (up.message_case()) {
    case Up::kSendToGroupMessage: {
      const auto& in = up.send_to_group_message();
      m.type = ClientMessageType::kSendToGroup;
      m.type_name = "sendToGroup";
      Group(in, m);
      m.no_echo = in.no_echo();
      if (in.has_stream()) {
        m.stream_start = true;
        m.stream_id = in.stream().stream_id();
        if (in.stream().has_idle_timeout_ms()) m.idle_timeout_ms = in.stream().idle_timeout_ms();
        Require(m.stream_id, "stream_id", m);
        if (in.has_data() && !m.invalid_reason)
          m.invalid_reason = "A stream start carries no data.";
      } else {
        DecodeData(in.has_data(), in.data(), m);
      }
      break;
    }
    case Up::kEventMessage: {
      const auto& in = up.event_message();
      m.type = ClientMessageType::kEvent;
      m.type_name = "event";
      m.event = in.event();
      if (in.has_ack_id()) m.ack_id = in.ack_id();
      Require(m.event, "event", m);
      if (!m.invalid_reason) DecodeData(in.has_data(), in.data(), m);
      break;
    }
    case Up::kJoinGroupMessage:
      m.type = ClientMessageType::kJoinGroup;
      m.type_name = "joinGroup";
      Group(up.join_group_message(), m);
      break;
    case Up::kLeaveGroupMessage:
      m.type = ClientMessageType::kLeaveGroup;
      m.type_name = "leaveGroup";
      Group(up.leave_group_message(), m);
      break;
    case Up::kSequenceAckMessage:
      m.type = ClientMessageType::kSequenceAck;
      m.type_name = "sequenceAck";
      m.sequence_id = up.sequence_ack_message().sequence_id();
      break;
    case Up::kPingMessage:
      m.type = ClientMessageType::kPing;
      m.type_name = "ping";
      break;
    case Up::kInvokeMessage: {
      const auto& in = up.invoke_message();
      m.type = ClientMessageType::kInvoke;
      m.type_name = "invoke";
      m.invocation_id = in.invocation_id();
      m.event = in.event();
      Require(m.invocation_id, "invocation_id", m);
      if (in.has_target() && in.target() != "event" && !m.invalid_reason) {
        m.invalid_reason = "target must be \"event\".";
      }
      Require(m.event, "event", m);
      if (!m.invalid_reason) DecodeData(in.has_data(), in.data(), m);
      break;
    }
    case Up::kCancelInvocationMessage:
      m.type = ClientMessageType::kCancelInvocation;
      m.type_name = "cancelInvocation";
      m.invocation_id = up.cancel_invocation_message().invocation_id();
      Require(m.invocation_id, "invocation_id", m);
      break;
    case Up::kStreamDataMessage: {
      const auto& in = up.stream_data_message();
      m.type = ClientMessageType::kStreamData;
      m.type_name = "streamData";
      m.stream_id = in.stream_id();
      Require(m.stream_id, "stream_id", m);
      if (in.has_stream_sequence_id() && !m.invalid_reason) {
        m.stream_sequence_id = in.stream_sequence_id();
        if (*m.stream_sequence_id == 0) {
          m.invalid_reason = "stream_sequence_id starts at 1.";
        } else if (!in.has_data() || in.data().data_case() == pb::MessageData::DATA_NOT_SET) {
          m.invalid_reason = "A stream message with a stream_sequence_id needs data.";
        } else {
          DecodeData(true, in.data(), m);
        }
      }
      break;
    }
    case Up::kStreamEndMessage: {
      const auto& in = up.stream_end_message();
      m.type = ClientMessageType::kStreamEnd;
      m.type_name = "streamEnd";
      m.stream_id = in.stream_id();
      Require(m.stream_id, "stream_id", m);
      if (in.has_error()) {
        m.stream_error = true;
        m.stream_error_message = in.error().message();
        m.stream_user_error_code = in.error().user_error_code();
      }
      break;
    }
    case Up::kSetGroupStateMessage: {
      const auto& in = up.set_group_state_message();
      m.type = ClientMessageType::kSetGroupState;
      m.type_name = "setGroupState";
      Group(in, m);
      if (in.has_state()) {
        auto& state = m.group_state.emplace();
        for (const auto& [key, value] : in.state().values()) state[key] = value;
      }
      break;
    }
    case Up::kSubscribeGroupStateMessage:
      m.type = ClientMessageType::kSubscribeGroupState;
      m.type_name = "subscribeGroupState";
      Group(up.subscribe_group_state_message(), m);
      break;
    case Up::kUnsubscribeGroupStateMessage:
      m.type = ClientMessageType::kUnsubscribeGroupState;
      m.type_name = "unsubscribeGroupState";
      Group(up.unsubscribe_group_state_message(), m);
      break;
    case Up::MESSAGE_NOT_SET:
      m.type = ClientMessageType::kUnknown;
      m.type_name = "(none of the known UpstreamMessage fields)";
      m.invalid_reason = "Unknown message type.";
      break;
  }
  return m;
}

}  // namespace hubcast::server
