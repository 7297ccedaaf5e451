// The four dialects of dialect.h. Parsing is by prefix and key search, not a JSON parser: the
// servers' messages have fixed shapes, and the generator must stay cheaper than the servers it
// measures. Anything unexpected is reported through DialectHost::Broken, never ignored.

#include "tests/bench/loadgen/dialect.h"
#include "tests/integration/jwt_util.h"
#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_map>

namespace hubcast::bench {
namespace {

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr char kApiVersion[] = "2024-01-01";
// The official client acknowledges at once when more than this many messages are unacked,
// else once a second (PROTOCOL.md 3.6); the generator does the same.
constexpr uint64_t kSequenceAckGap = 300;

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// The string value after "key":" (ids and names here carry no escapes).
std::string_view StringAfter(std::string_view text, std::string_view quoted_key) {
  size_t at = text.find(quoted_key);
  if (at == std::string_view::npos) return {};
  size_t start = text.find('"', at + quoted_key.size());
  if (start == std::string_view::npos) return {};
  size_t end = text.find('"', start + 1);
  if (end == std::string_view::npos) return {};
  return text.substr(start + 1, end - start - 1);
}

// The unsigned number after "key":; nullopt if absent or malformed.
std::optional<uint64_t> NumberAfter(std::string_view text, std::string_view quoted_key) {
  size_t at = text.find(quoted_key);
  if (at == std::string_view::npos) return std::nullopt;
  const char* begin = text.data() + at + quoted_key.size();
  const char* end = text.data() + text.size();
  while (begin < end && (*begin == ':' || *begin == ' ')) ++begin;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin) return std::nullopt;
  return value;
}

std::string JoinedGroups(const std::vector<int>& sizes, int global, char separator, bool quoted) {
  std::string out;
  for (int size : sizes) {
    if (!out.empty()) out += separator;
    if (quoted) out += '"';
    out += GroupName(size, global);
    if (quoted) out += '"';
  }
  return out;
}

std::string HttpPost(int port, std::string_view path, std::string_view authorization,
                     std::string_view body) {
  std::string out;
  out.reserve(path.size() + authorization.size() + body.size() + 160);
  out.append("POST ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1:");
  out.append(std::to_string(port)).append("\r\nAuthorization: Bearer ").append(authorization);
  out.append("\r\nContent-Type: text/plain\r\nContent-Length: ");
  out.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
  return out;
}

// Hubcast and the ws peer answer a JSON sendToGroup with {"type":"ack","ackId":N,...}.
void JsonAck(Member& member, std::string_view text, bool check_success, DialectHost& host) {
  std::optional<uint64_t> ack_id = NumberAfter(text, R"("ackId")");
  if (!ack_id) return host.Broken(member, "ack without ackId");
  host.Acked(member, *ack_id,
             !check_success || text.find(R"("success":true)") != std::string_view::npos);
}

// ... and confirm a connection with its "connectionId".
void JsonConnected(Member& member, std::string_view text, DialectHost& host) {
  std::string_view id = StringAfter(text, R"("connectionId")");
  if (id.empty()) return host.Broken(member, "connected without connectionId");
  host.Ready(member, std::string(id));
}

// {"type":"sendToGroup","group":G,"ackId":N[,"dataType":"text"],"data":"D"}
void JsonSendToGroup(std::string_view group, uint64_t ack_id, std::string_view data, bool data_type,
                     std::string& frame) {
  frame.assign(R"({"type":"sendToGroup","group":")").append(group);
  frame.append(R"(","ackId":)").append(std::to_string(ack_id));
  if (data_type) frame.append(R"(,"dataType":"text")");
  frame.append(R"(,"data":")").append(data).append("\"}");
}

// Hubcast: the official client's JSON subprotocols; REST sends with a JWT per request URL.
class HubcastDialect : public Dialect {
 public:
  explicit HubcastDialect(const DialectOptions& options) : options_(options) {}

  std::string Target(const Member& member) override {
    testing::JwtClaims claims;
    claims.audience = Origin() + "/client/hubs/" + options_.hub;
    claims.subject = UserName(member.global);
    claims.roles = {"webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"};
    for (int size : options_.group_sizes) claims.groups.push_back(GroupName(size, member.global));
    return "/client/hubs/" + options_.hub +
           "?access_token=" + testing::MintJwt(options_.key, claims);
  }

  std::string_view Subprotocol() const override {
    return options_.reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  }

  void OnMessage(Member& member, uint8_t opcode, std::string_view text,
                 DialectHost& host) override {
    if (opcode != kText) return host.Broken(member, "binary frame on a JSON subprotocol");
    if (StartsWith(text, R"({"sequenceId":)")) {
      std::optional<uint64_t> sequence = NumberAfter(text, R"("sequenceId")");
      if (!sequence)
        return host.Broken(member, "bad sequenceId: " + std::string(text.substr(0, 80)));
      if (*sequence > member.last_sequence) member.last_sequence = *sequence;
      host.Delivered(member, text);
      if (member.last_sequence - member.acked_sequence > kSequenceAckGap) SendAck(member, host);
      return;
    }
    if (StartsWith(text, R"({"type":"message")")) return host.Delivered(member, text);
    if (StartsWith(text, R"({"type":"ack")")) return JsonAck(member, text, true, host);
    if (StartsWith(text, R"({"type":"system","event":"connected")")) {
      return JsonConnected(member, text, host);
    }
    if (StartsWith(text, R"({"type":"pong")")) return;
    host.Broken(member, "unexpected message: " + std::string(text.substr(0, 120)));
  }

  void EncodeGroupSend(std::string_view group, uint64_t ack_id, std::string_view data,
                       std::string& frame, uint8_t& opcode) override {
    opcode = kText;
    JsonSendToGroup(group, ack_id, data, true, frame);
  }

  void OnSecond(std::vector<Member>& members, DialectHost& host) override {
    if (!options_.reliable) return;
    for (Member& member : members) {
      if (member.state == Member::State::kReady && member.last_sequence > member.acked_sequence) {
        SendAck(member, host);
      }
    }
  }

  std::string PublishRequest(Addressing addressing, std::string_view name,
                             std::string_view body) override {
    std::string path = "/api/hubs/" + options_.hub;
    switch (addressing) {
      case Addressing::kGroup:
        path.append("/groups/");
        break;
      case Addressing::kConnection:
        path.append("/connections/");
        break;
      case Addressing::kUser:
        path.append("/users/");
        break;
    }
    path.append(name).append("/:send");
    auto [it, inserted] = tokens_.try_emplace(path);
    if (inserted) it->second = testing::MintJwt(options_.key, Origin() + path);
    return HttpPost(options_.port, path + "?api-version=" + kApiVersion, it->second, body);
  }

 private:
  std::string Origin() const { return "http://127.0.0.1:" + std::to_string(options_.port); }

  void SendAck(Member& member, DialectHost& host) {
    member.acked_sequence = member.last_sequence;
    host.Send(
        member, kText,
        R"({"type":"sequenceAck","sequenceId":)" + std::to_string(member.last_sequence) + "}");
  }

  DialectOptions options_;
  std::unordered_map<std::string, std::string> tokens_;  // REST path -> its bearer token
};

// nats-server's WebSocket listener: the NATS text protocol, with frames as a plain byte stream.
class NatsDialect : public Dialect {
 public:
  explicit NatsDialect(const DialectOptions& options) : options_(options) {}

  std::string Target(const Member&) override { return "/"; }

  void OnMessage(Member& member, uint8_t, std::string_view payload, DialectHost& host) override {
    member.stream.append(payload);
    size_t pos = 0;
    while (true) {
      size_t line_end = member.stream.find("\r\n", pos);
      if (line_end == std::string::npos) break;
      std::string_view line(member.stream.data() + pos, line_end - pos);
      if (StartsWith(line, "MSG ")) {
        size_t space = line.rfind(' ');
        size_t size = std::strtoul(std::string(line.substr(space + 1)).c_str(), nullptr, 10);
        if (line_end + 2 + size + 2 > member.stream.size()) break;  // payload not all here
        host.Delivered(member, std::string_view(member.stream.data() + line_end + 2, size));
        pos = line_end + 2 + size + 2;
        continue;
      }
      pos = line_end + 2;
      if (line == "PING") {
        host.Send(member, kBinary, "PONG\r\n");
      } else if (line == "PONG") {
        if (member.state == Member::State::kReady) {
          host.Acked(member, std::nullopt, true);
        } else {
          host.Ready(member, "c" + std::to_string(member.global));
        }
      } else if (StartsWith(line, "INFO ")) {
        if (!member.greeted) Greet(member, host);
      } else if (StartsWith(line, "-ERR")) {
        host.Broken(member, std::string(line));
      } else if (line != "+OK") {
        host.Broken(member, "unexpected NATS line: " + std::string(line.substr(0, 80)));
      }
      if (member.fd < 0) return;  // broken: the member's buffers are no longer ours
    }
    member.stream.erase(0, pos);
  }

  void EncodeGroupSend(std::string_view group, uint64_t, std::string_view data, std::string& frame,
                       uint8_t& opcode) override {
    opcode = kBinary;
    frame = Pub(group, data);
  }

  bool NatsPublisher() const override { return true; }

  // Groups, connections ("c<i>") and users ("u<i>") are all subjects.
  std::string PublishRequest(Addressing, std::string_view name, std::string_view body) override {
    return Pub(name, body);
  }

  std::string PublisherGreeting() const override { return Connect(); }

 private:
  static std::string Connect() {
    return R"(CONNECT {"verbose":false,"pedantic":false,"name":"bench_loadgen","lang":"cpp",)"
           R"("version":"0","protocol":1,"echo":true})"
           "\r\n";
  }

  // PUB, then PING: the server answers PONG once it has processed the PUB.
  static std::string Pub(std::string_view subject, std::string_view data) {
    std::string out;
    out.reserve(data.size() + subject.size() + 32);
    out.append("PUB ").append(subject).append(" ").append(std::to_string(data.size()));
    out.append("\r\n").append(data).append("\r\nPING\r\n");
    return out;
  }

  void Greet(Member& member, DialectHost& host) {
    member.greeted = true;
    std::string out = Connect();
    int sid = 1;
    for (int size : options_.group_sizes) {
      out.append("SUB ").append(GroupName(size, member.global)).append(" ");
      out.append(std::to_string(sid++)).append("\r\n");
    }
    out.append("SUB c").append(std::to_string(member.global)).append(" ");
    out.append(std::to_string(sid++)).append("\r\n");
    out.append("SUB ").append(UserName(member.global)).append(" ");
    out.append(std::to_string(sid++)).append("\r\nPING\r\n");
    host.Send(member, kBinary, out);
  }

  DialectOptions options_;
};

// Socket.IO 4: Engine.IO v4 packets over WebSocket, Socket.IO packets inside "4" messages.
class SocketIoDialect : public Dialect {
 public:
  explicit SocketIoDialect(const DialectOptions& options) : options_(options) {}

  std::string Target(const Member&) override { return "/socket.io/?EIO=4&transport=websocket"; }

  void OnMessage(Member& member, uint8_t opcode, std::string_view text,
                 DialectHost& host) override {
    if (opcode != kText || text.empty()) return host.Broken(member, "unexpected binary packet");
    if (StartsWith(text, "42")) return host.Delivered(member, text);
    if (StartsWith(text, "43")) {
      uint64_t ack_id = 0;
      auto [ptr, ec] = std::from_chars(text.data() + 2, text.data() + text.size(), ack_id);
      if (ec != std::errc()) return host.Broken(member, "bad ack packet");
      return host.Acked(member, ack_id, true);
    }
    if (text == "2") return host.Send(member, kText, "3");  // Engine.IO ping
    if (text[0] == '0') {                                   // Engine.IO open: connect
      member.greeted = true;
      return host.Send(member, kText,
                       R"(40{"user":")" + UserName(member.global) + R"(","groups":[)" +
                           JoinedGroups(options_.group_sizes, member.global, ',', true) + "]}");
    }
    if (StartsWith(text, "40")) {
      std::string_view sid = StringAfter(text, R"("sid")");
      if (sid.empty()) return host.Broken(member, "connect without sid");
      return host.Ready(member, std::string(sid));
    }
    host.Broken(member, "unexpected packet: " + std::string(text.substr(0, 80)));
  }

  void EncodeGroupSend(std::string_view group, uint64_t ack_id, std::string_view data,
                       std::string& frame, uint8_t& opcode) override {
    opcode = kText;
    frame.assign("42").append(std::to_string(ack_id)).append(R"(["send",")").append(group);
    frame.append(R"(",")").append(data).append("\"]");
  }

  std::string PublishRequest(Addressing addressing, std::string_view name,
                             std::string_view body) override {
    return HttpPost(options_.port, PeerPath(addressing, name), options_.key, body);
  }

  static std::string PeerPath(Addressing addressing, std::string_view name) {
    switch (addressing) {
      case Addressing::kGroup:
        return "/api/groups/" + std::string(name);
      case Addressing::kConnection:
        return "/api/connections/" + std::string(name);
      case Addressing::kUser:
        break;
    }
    return "/api/users/" + std::string(name);
  }

 private:
  DialectOptions options_;
};

// The `ws` peer (tests/bench/peers/ws_server.mjs): JSON text frames.
class WsDialect : public Dialect {
 public:
  explicit WsDialect(const DialectOptions& options) : options_(options) {}

  std::string Target(const Member& member) override {
    return "/?user=" + UserName(member.global) +
           "&groups=" + JoinedGroups(options_.group_sizes, member.global, ',', false);
  }

  void OnMessage(Member& member, uint8_t opcode, std::string_view text,
                 DialectHost& host) override {
    if (opcode != kText) return host.Broken(member, "unexpected binary frame");
    if (StartsWith(text, R"({"type":"message")")) return host.Delivered(member, text);
    if (StartsWith(text, R"({"type":"ack")")) return JsonAck(member, text, false, host);
    if (StartsWith(text, R"({"type":"connected")")) return JsonConnected(member, text, host);
    host.Broken(member, "unexpected message: " + std::string(text.substr(0, 80)));
  }

  void EncodeGroupSend(std::string_view group, uint64_t ack_id, std::string_view data,
                       std::string& frame, uint8_t& opcode) override {
    opcode = kText;
    JsonSendToGroup(group, ack_id, data, false, frame);
  }

  std::string PublishRequest(Addressing addressing, std::string_view name,
                             std::string_view body) override {
    return HttpPost(options_.port, SocketIoDialect::PeerPath(addressing, name), options_.key, body);
  }

 private:
  DialectOptions options_;
};

}  // namespace

std::string GroupName(int group_size, int global_index) {
  return "g" + std::to_string(group_size) + "-" + std::to_string(global_index / group_size);
}

std::string UserName(int global_index) { return "u" + std::to_string(global_index); }

std::unique_ptr<Dialect> MakeDialect(const DialectOptions& options, std::string* error) {
  if (options.key.empty()) {
    *error = "--key is required (Hubcast's access key, or the peers' bearer secret)";
    return nullptr;
  }
  if (options.server == "hubcast") return std::make_unique<HubcastDialect>(options);
  if (options.server == "nats") return std::make_unique<NatsDialect>(options);
  if (options.server == "socketio") return std::make_unique<SocketIoDialect>(options);
  if (options.server == "ws") return std::make_unique<WsDialect>(options);
  *error = "unknown server '" + options.server + "' (hubcast, nats, socketio or ws)";
  return nullptr;
}

}  // namespace hubcast::bench
