#include "server/json_codec.h"

#include "base/base64.h"
#include "base/json.h"
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
};

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
      m.data = std::move(*bytes);
      return true;
    }
  }
  return true;
}

bool RequireString(const Fields& fields, Field f, std::string& out, ClientMessage& m) {
  const json::Value* v = fields.Find(f);
  if (v == nullptr || !v->is_string()) {
    m.invalid_reason = std::string(kFields[f].key) + " must be a string.";
    return false;
  }
  out = v->str();
  return true;
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
    if (RequireString(fields, kGroup, m.group, m)) {
      if (const json::Value* ne = fields.Find(kNoEcho); ne != nullptr && !ne->is_null()) {
        if (!ne->is_bool()) {
          m.invalid_reason = "noEcho must be a boolean.";
        } else {
          m.no_echo = ne->as_bool();
        }
      }
      if (!m.invalid_reason) DecodePayload(fields, m);
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
