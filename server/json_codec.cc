#include "server/json_codec.h"

#include "base/base64.h"
#include "base/json.h"
#include "server/protobuf_codec.h"
#include "server/ws_frame.h"

namespace hubcast::server {
namespace {

std::optional<storage::DataType> ParseDataType(std::string_view s) {
  if (s == "json") return storage::DataType::kJson;
  if (s == "text") return storage::DataType::kText;
  if (s == "binary") return storage::DataType::kBinary;
  if (s == "protobuf") return storage::DataType::kProtobuf;
  return std::nullopt;
}

// The members DecodeClientMessage reads; everything else in a frame is validated and dropped,
// so a frame's memory cost is bounded by these fields, not by the size of its JSON tree.
enum Field : size_t {
  kType,
  kAckId,
  kGroup,
  kEvent,
  kNoEcho,
  kDataType,
  kData,
  kSequenceId,
  kInvocationId,
  kTarget,
  kStream,
  kStreamId,
  kStreamSequenceId,
  kError,
  kState,
  kFieldCount
};
constexpr json::MemberSpec kFields[kFieldCount] = {
    {"type"},
    {"ackId"},
    {"group"},
    {"event"},
    {"noEcho"},
    {"dataType"},
    {"data", json::Capture::kCompactJson},
    {"sequenceId"},
    {"invocationId"},
    {"target"},
    {"stream", json::Capture::kCompactJson},
    {"streamId"},
    {"streamSequenceId"},
    {"error", json::Capture::kCompactJson},
    {"state", json::Capture::kCompactJson},
};

// The nested objects (a stream start, a stream's error, a group state) are small by contract;
// one larger than this is refused before it is turned into a tree.
constexpr size_t kMaxNestedObjectJson = 8 * 1024;

class Fields {
 public:
  explicit Fields(json::Extracted extracted) : extracted_(std::move(extracted)) {}
  // The member as Value::Find on the whole message would return it (containers are empty).
  const json::Value* Find(Field f) const {
    const json::ExtractedMember& m = extracted_.members[f];
    return m.present ? &m.value : nullptr;
  }
  // The compact JSON text of a present member captured with kCompactJson.
  std::string& Json(Field f) { return extracted_.members[f].json; }
  bool root_is_object() const { return extracted_.root == json::Value::Kind::kObject; }

 private:
  json::Extracted extracted_;
};

// Members are looked up the same way in the message (Fields) and in a nested object (Value).
const json::Value* Lookup(const Fields& fields, Field f) { return fields.Find(f); }
std::string_view KeyName(Field f) { return kFields[f].key; }
const json::Value* Lookup(const json::Value& obj, const char* key) { return obj.Find(key); }
std::string_view KeyName(const char* key) { return key; }

template <typename Obj, typename Key>
bool RequireString(const Obj& obj, Key key, std::string& out, ClientMessage& m) {
  const json::Value* v = Lookup(obj, key);
  if (v == nullptr || !v->is_string()) {
    m.invalid_reason = std::string(KeyName(key)) + " must be a string.";
    return false;
  }
  out = v->str();
  return true;
}

template <typename Obj, typename Key>
bool RequireNonEmpty(const Obj& obj, Key key, std::string& out, ClientMessage& m) {
  if (!RequireString(obj, key, out, m)) return false;
  if (!out.empty()) return true;
  m.invalid_reason = std::string(KeyName(key)) + " must not be empty.";
  return false;
}

// An optional unsigned member: absent or null leaves `out` unset; anything but a uint64 is
// invalid.
template <typename Obj, typename Key>
bool OptionalUint(const Obj& obj, Key key, std::optional<uint64_t>& out, ClientMessage& m) {
  const json::Value* v = Lookup(obj, key);
  if (v == nullptr || v->is_null()) return true;
  auto n = v->as_uint64();
  if (!n) {
    m.invalid_reason = std::string(KeyName(key)) + " must be an unsigned integer.";
    return false;
  }
  out = *n;
  return true;
}

bool HasMember(const Fields& fields, Field f) {
  const json::Value* v = fields.Find(f);
  return v != nullptr && !v->is_null();
}

// A present, non-null member that must be an object, as a tree of its own (bounded by
// kMaxNestedObjectJson); nullopt with `m.invalid_reason` set when it is not one.
std::optional<json::Value> NestedObject(Fields& fields, Field f, const char* what,
                                        ClientMessage& m) {
  if (!fields.Find(f)->is_object()) {
    m.invalid_reason = std::string(KeyName(f)) + " must be " + what + ".";
    return std::nullopt;
  }
  const std::string& text = fields.Json(f);
  if (text.size() > kMaxNestedObjectJson) {
    m.invalid_reason = std::string(KeyName(f)) + " is larger than " +
                       std::to_string(kMaxNestedObjectJson) + " bytes of JSON.";
    return std::nullopt;
  }
  auto parsed = json::Parse(text);
  if (!parsed.ok()) {  // cannot happen: the text is the serialization of a validated value
    m.invalid_reason = std::string(KeyName(f)) + ": " + parsed.status().message();
    return std::nullopt;
  }
  return std::move(*parsed);
}

// Fills data_type/data from the "dataType" and "data" members; false (with reason) if invalid.
bool DecodePayload(Fields& fields, ClientMessage& m) {
  const json::Value* dt = fields.Find(kDataType);
  if (dt != nullptr && !dt->is_null()) {
    if (!dt->is_string()) {
      m.invalid_reason = "dataType must be a string.";
      return false;
    }
    auto t = ParseDataType(dt->str());
    if (!t) {
      m.invalid_reason = "dataType must be json, text, binary or protobuf.";
      return false;
    }
    m.data_type = *t;
  }
  const json::Value* data = fields.Find(kData);
  switch (m.data_type) {
    case storage::DataType::kJson:
      // A missing data member forwards JSON null, like the service does for `data: undefined`.
      m.data = data ? std::move(fields.Json(kData)) : "null";
      return true;
    case storage::DataType::kText:
      if (data == nullptr || !data->is_string()) {
        m.invalid_reason = "data must be a string when dataType is text.";
        return false;
      }
      m.data = data->str();
      return true;
    case storage::DataType::kBinary:
    case storage::DataType::kProtobuf: {
      if (data == nullptr || !data->is_string()) {
        m.invalid_reason = "data must be a base64 string when dataType is binary or protobuf.";
        return false;
      }
      auto bytes = Base64Decode(data->str());
      if (!bytes) {
        m.invalid_reason = "data is not valid base64.";
        return false;
      }
      // Protobuf clients receive it inside their own message: it must parse there.
      if (m.data_type == storage::DataType::kProtobuf && !IsProtobufAny(*bytes)) {
        m.invalid_reason = "data is not a serialized google.protobuf.Any.";
        return false;
      }
      m.data = std::move(*bytes);
      return true;
    }
  }
  return true;
}

// sendToGroup with `stream` (client SDK 1.1): opens a group stream; it carries no data.
void DecodeStreamStart(Fields& fields, ClientMessage& m) {
  m.stream_start = true;
  auto stream = NestedObject(fields, kStream, "an object", m);
  if (!stream) return;
  if (!RequireNonEmpty(*stream, "streamId", m.stream_id, m)) return;
  OptionalUint(*stream, "idleTimeoutMs", m.idle_timeout_ms, m);
}

void DecodeStreamData(Fields& fields, ClientMessage& m) {
  if (!RequireNonEmpty(fields, kStreamId, m.stream_id, m)) return;
  if (!OptionalUint(fields, kStreamSequenceId, m.stream_sequence_id, m)) return;
  if (!m.stream_sequence_id) return;  // a keep-alive: any payload is ignored
  if (*m.stream_sequence_id == 0) {
    m.invalid_reason = "streamSequenceId starts at 1.";
    return;
  }
  if (!HasMember(fields, kDataType) || !HasMember(fields, kData)) {
    m.invalid_reason = "A stream message with a streamSequenceId needs dataType and data.";
    return;
  }
  DecodePayload(fields, m);
}

void DecodeStreamEnd(Fields& fields, ClientMessage& m) {
  if (!RequireNonEmpty(fields, kStreamId, m.stream_id, m)) return;
  if (!HasMember(fields, kError)) return;
  auto error = NestedObject(fields, kError, "an object", m);
  if (!error) return;
  m.stream_error = true;
  for (auto [key, out] : {std::pair{"message", &m.stream_error_message},
                          std::pair{"userErrorCode", &m.stream_user_error_code}}) {
    const json::Value* v = error->Find(key);
    if (v == nullptr || v->is_null()) continue;
    if (!v->is_string()) {
      m.invalid_reason = std::string("error.") + key + " must be a string.";
      return;
    }
    *out = v->str();
  }
}

// setGroupState: `state` absent or null clears; else an object of string values.
void DecodeGroupState(Fields& fields, ClientMessage& m) {
  if (!HasMember(fields, kState)) return;
  auto state = NestedObject(fields, kState, "an object of strings", m);
  if (!state) return;
  auto& out = m.group_state.emplace();
  for (const auto& [key, value] : state->members()) {
    if (!value.is_string()) {
      m.invalid_reason = "state must be an object of strings ('" + key + "' is not a string).";
      return;
    }
    out[key] = value.str();
  }
}

}  // namespace

Result<ClientMessage> DecodeClientMessage(std::string_view text) {
  auto extracted = json::ExtractMembers(text, kFields);
  if (!extracted.ok()) {
    return Status::InvalidArgument("Invalid JSON: " + extracted.status().message());
  }
  Fields fields(std::move(*extracted));
  if (!fields.root_is_object()) return Status::InvalidArgument("A message must be a JSON object.");
  const json::Value* type = fields.Find(kType);
  if (type == nullptr || !type->is_string()) {
    return Status::InvalidArgument("A message must have a string \"type\".");
  }
  ClientMessage m;
  m.type_name = type->str();
  if (const json::Value* ack = fields.Find(kAckId); ack != nullptr && !ack->is_null()) {
    auto id = ack->as_uint64();
    if (!id) return Status::InvalidArgument("ackId must be an unsigned 64-bit integer.");
    m.ack_id = *id;
  }
  const std::string& t = m.type_name;
  if (t == "joinGroup" || t == "leaveGroup") {
    m.type = t == "joinGroup" ? ClientMessageType::kJoinGroup : ClientMessageType::kLeaveGroup;
    RequireString(fields, kGroup, m.group, m);
  } else if (t == "sendToGroup") {
    m.type = ClientMessageType::kSendToGroup;
    // A stream start first: whatever else is wrong with it is answered about the stream.
    const bool starts_stream = HasMember(fields, kStream);
    if (starts_stream) DecodeStreamStart(fields, m);
    if (RequireString(fields, kGroup, m.group, m) && !m.invalid_reason) {
      if (const json::Value* ne = fields.Find(kNoEcho); ne != nullptr && !ne->is_null()) {
        if (!ne->is_bool()) {
          m.invalid_reason = "noEcho must be a boolean.";
        } else {
          m.no_echo = ne->as_bool();
        }
      }
      if (!starts_stream) {
        if (!m.invalid_reason) DecodePayload(fields, m);
      } else if (!m.invalid_reason && (HasMember(fields, kData) || HasMember(fields, kDataType))) {
        m.invalid_reason = "A stream start carries no data.";
      }
    }
  } else if (t == "event") {
    m.type = ClientMessageType::kEvent;
    if (RequireString(fields, kEvent, m.event, m)) {
      if (m.event.empty()) m.invalid_reason = "event must not be empty.";
      if (!m.invalid_reason) DecodePayload(fields, m);
    }
  } else if (t == "sequenceAck") {
    m.type = ClientMessageType::kSequenceAck;
    const json::Value* s = fields.Find(kSequenceId);
    auto id = s ? s->as_uint64() : std::nullopt;
    if (!id) {
      m.invalid_reason = "sequenceId must be an unsigned 64-bit integer.";
    } else {
      m.sequence_id = *id;
    }
  } else if (t == "ping") {
    m.type = ClientMessageType::kPing;
  } else if (t == "invoke") {
    m.type = ClientMessageType::kInvoke;
    if (!RequireNonEmpty(fields, kInvocationId, m.invocation_id, m)) return m;
    const json::Value* target = fields.Find(kTarget);
    if (target != nullptr && !target->is_null() &&
        !(target->is_string() && target->str() == "event")) {
      m.invalid_reason = "target must be \"event\".";
      return m;
    }
    if (RequireNonEmpty(fields, kEvent, m.event, m)) DecodePayload(fields, m);
  } else if (t == "cancelInvocation") {
    m.type = ClientMessageType::kCancelInvocation;
    RequireNonEmpty(fields, kInvocationId, m.invocation_id, m);
  } else if (t == "streamData") {
    m.type = ClientMessageType::kStreamData;
    DecodeStreamData(fields, m);
  } else if (t == "streamEnd") {
    m.type = ClientMessageType::kStreamEnd;
    DecodeStreamEnd(fields, m);
  } else if (t == "setGroupState" || t == "subscribeGroupState" || t == "unsubscribeGroupState") {
    m.type = t == "setGroupState"         ? ClientMessageType::kSetGroupState
             : t == "subscribeGroupState" ? ClientMessageType::kSubscribeGroupState
                                          : ClientMessageType::kUnsubscribeGroupState;
    if (RequireString(fields, kGroup, m.group, m) && m.type == ClientMessageType::kSetGroupState) {
      DecodeGroupState(fields, m);
    }
  } else {
    m.type = ClientMessageType::kUnknown;
    m.invalid_reason = "Unknown message type '" + t + "'.";
  }
  return m;
}

std::string EncodeConnected(const std::optional<std::string>& user_id,
                            std::string_view connection_id,
                            const std::optional<std::string>& reconnection_token) {
  std::string out = R"({"type":"system","event":"connected","userId":)";
  if (user_id) {
    json::AppendQuoted(out, *user_id);
  } else {
    out += "null";
  }
  out += ",\"connectionId\":";
  json::AppendQuoted(out, connection_id);
  if (reconnection_token) {
    out += ",\"reconnectionToken\":";
    json::AppendQuoted(out, *reconnection_token);
  }
  out += '}';
  return out;
}

std::string EncodeDisconnected(std::string_view reason) {
  std::string out = R"({"type":"system","event":"disconnected","message":)";
  json::AppendQuoted(out, reason);
  out += '}';
  return out;
}

const char* AckErrorName(StatusCode code) {
  switch (code) {
    case StatusCode::kForbidden:
      return "Forbidden";
    case StatusCode::kDuplicate:
      return "Duplicate";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kInvalidArgument:
    case StatusCode::kTooLarge:
    case StatusCode::kUnsupportedMedia:
      return "BadRequest";
    case StatusCode::kUnauthorized:
      return "Unauthorized";
    default:
      return "InternalServerError";
  }
}

std::string EncodeAck(uint64_t ack_id, const Status& status) {
  std::string out = R"({"type":"ack","ackId":)" + std::to_string(ack_id);
  if (status.ok()) {
    out += R"(,"success":true})";
    return out;
  }
  out += R"(,"success":false,"error":{"name":")";
  out += AckErrorName(status.code());
  out += "\",\"message\":";
  json::AppendQuoted(out, status.message());
  out += "}}";
  return out;
}

std::string EncodePong() { return R"({"type":"pong"})"; }

namespace {
void AppendError(std::string& out, std::string_view name, std::string_view message) {
  out += "\"error\":{\"name\":";
  json::AppendQuoted(out, name);
  out += ",\"message\":";
  json::AppendQuoted(out, message);
  out += '}';
}

// `{"type":"<type>","streamId":"<id>"`, the common start of the stream service messages.
std::string StreamMessageStart(const char* type, std::string_view stream_id) {
  std::string out = "{\"type\":\"";
  out += type;
  out += "\",\"streamId\":";
  json::AppendQuoted(out, stream_id);
  return out;
}
}  // namespace

std::string EncodeInvokeResponse(std::string_view invocation_id, const InvokeResult& r) {
  std::string out = R"({"type":"invokeResponse","invocationId":)";
  json::AppendQuoted(out, invocation_id);
  if (r.success) {
    out += ",\"success\":true";
    if (r.data_type) {
      out += ",\"dataType\":\"";
      out += storage::DataTypeName(*r.data_type);
      out += "\",\"data\":";
      AppendData(out, *r.data_type, r.data);
    }
  } else {
    out += ",\"success\":false,";
    AppendError(out, r.error_name, r.error_message);
  }
  out += '}';
  return out;
}

std::string EncodeStreamAck(std::string_view stream_id, uint64_t expected) {
  std::string out = StreamMessageStart("streamAck", stream_id);
  out += ",\"expectedSequenceId\":" + std::to_string(expected) + "}";
  return out;
}

std::string EncodeStreamNack(std::string_view stream_id, uint64_t expected, std::string_view name,
                             std::string_view message) {
  std::string out = StreamMessageStart("streamNack", stream_id);
  out += ",\"expectedSequenceId\":" + std::to_string(expected) + ",\"name\":";
  json::AppendQuoted(out, name);
  out += ",\"message\":";
  json::AppendQuoted(out, message);
  out += '}';
  return out;
}

std::string EncodeStreamClosed(std::string_view stream_id,
                               const std::optional<StreamError>& error) {
  std::string out = StreamMessageStart("streamClosed", stream_id);
  if (error) {
    out += ',';
    AppendError(out, error->name, error->message);
  }
  out += '}';
  return out;
}

std::string EncodeGroupState(bool snapshot, std::string_view group,
                             const std::vector<storage::GroupStateItem>& items) {
  std::string out = snapshot ? R"({"type":"groupStateSnapshot","group":)"
                             : R"({"type":"groupStateUpdate","group":)";
  json::AppendQuoted(out, group);
  out += ",\"items\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    if (i) out += ',';
    out += "{\"connectionId\":";
    json::AppendQuoted(out, item.connection_id);
    if (item.user_id) {
      out += ",\"userId\":";
      json::AppendQuoted(out, *item.user_id);
    }
    if (item.state) {
      out += ",\"state\":";
      out += *item.state;  // canonical compact JSON (GroupStateJson)
    }
    out += ",\"updatedAt\":" + std::to_string(item.updated_at_ms) + "}";
  }
  out += "]}";
  return out;
}

std::string GroupStateJson(const std::map<std::string, std::string>& state) {
  std::string out = "{";
  for (const auto& [key, value] : state) {
    if (out.size() > 1) out += ',';
    json::AppendQuoted(out, key);
    out += ':';
    json::AppendQuoted(out, value);
  }
  out += '}';
  return out;
}

std::map<std::string, std::string> ParseGroupStateJson(std::string_view text) {
  std::map<std::string, std::string> out;
  auto parsed = json::Parse(text);
  if (!parsed.ok() || !parsed->is_object()) return out;
  for (const auto& [key, value] : parsed->members()) {
    if (value.is_string()) out[key] = value.str();
  }
  return out;
}

void AppendData(std::string& out, storage::DataType type, std::string_view data) {
  switch (type) {
    case storage::DataType::kJson:
      out.append(data);  // validated JSON text, forwarded as is
      break;
    case storage::DataType::kText:
      json::AppendQuoted(out, data);
      break;
    case storage::DataType::kBinary:
    case storage::DataType::kProtobuf:
      out += '"';
      out += Base64Encode(data);
      out += '"';
      break;
  }
}

void AppendMessageBody(std::string& out, const storage::Entry& e) {
  out += R"("type":"message","from":)";
  if (e.from == storage::MessageFrom::kGroup) {
    out += R"("group","group":)";
    json::AppendQuoted(out, e.target);
    if (!e.from_user_id.empty()) {
      out += ",\"fromUserId\":";
      json::AppendQuoted(out, e.from_user_id);
    }
  } else {
    out += "\"server\"";
  }
  out += ",\"dataType\":\"";
  out += storage::DataTypeName(e.data_type);
  out += "\",\"data\":";
  AppendData(out, e.data_type, e.data);
  if (!e.stream_id.empty()) {
    out += ",\"stream\":{\"streamId\":";
    json::AppendQuoted(out, e.stream_id);
    out += ",\"streamSequenceId\":";
    out += std::to_string(e.stream_sequence_id);
    out += e.stream_end ? ",\"endOfStream\":true" : ",\"endOfStream\":false";
    if (e.stream_error_name) {
      out += ",\"error\":{\"name\":";
      json::AppendQuoted(out, *e.stream_error_name);
      out += ",\"message\":";
      json::AppendQuoted(out, e.stream_error_message);
      if (!e.stream_user_error_code.empty()) {
        out += ",\"userErrorCode\":";
        json::AppendQuoted(out, e.stream_user_error_code);
      }
      out += '}';
    }
    out += '}';
  }
  out += '}';
}

namespace {
size_t BodyReserve(const storage::Entry& e) {
  return e.data.size() + e.data.size() / 3 + 96 + e.target.size() + e.from_user_id.size();
}
}  // namespace

std::string EncodeMessageBody(const storage::Entry& e) {
  std::string out;
  out.reserve(BodyReserve(e));
  AppendMessageBody(out, e);
  return out;
}

SharedBytes EncodeJsonFrame(const storage::Entry& e, SharedBytes* body) {
  std::string buf(kWsHeaderRoom, '\0');
  buf.reserve(kWsHeaderRoom + 1 + BodyReserve(e));
  buf += '{';
  AppendMessageBody(buf, e);
  size_t body_size = buf.size() - kWsHeaderRoom - 1;
  SharedBytes frame = WsSharedFrame(std::move(buf), WsOpcode::kText);
  // The body is the frame's tail: everything after the header and the brace.
  *body = frame.Sub(frame.size() - body_size, body_size);
  return frame;
}

SharedBytes EncodeRawFrame(const storage::Entry& e) {
  bool binary =
      e.data_type == storage::DataType::kBinary || e.data_type == storage::DataType::kProtobuf;
  std::string buf(kWsHeaderRoom, '\0');
  buf.reserve(kWsHeaderRoom + e.data.size());
  buf += e.data;
  return WsSharedFrame(std::move(buf), binary ? WsOpcode::kBinary : WsOpcode::kText);
}

}  // namespace hubcast::server
