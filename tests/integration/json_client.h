// Helpers for integration tests that speak the JSON subprotocols over ws_client.h: the next
// text frame as a JSON object, the `connected` message, a recovery attempt's outcome, and the
// client endpoint's target with an access token. Header-only; one thread per client.
#pragma once

#include "base/json.h"

#include "tests/integration/jwt_util.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace hubcast::testing {

inline constexpr char kJsonProtocol[] = "json.webpubsub.azure.v1";
inline constexpr char kReliableProtocol[] = "json.reliable.webpubsub.azure.v1";

// The next text message parsed as a JSON object; nullopt on timeout, close or EOF (`why` says
// which).
inline std::optional<json::Value> ReadJson(WsClient& client, std::chrono::milliseconds timeout,
                                           std::string* why = nullptr) {
  std::optional<WsMessage> message = client.Read(timeout);
  if (!message) {
    if (why) *why = "no message: " + client.error();
    return std::nullopt;
  }
  if (message->op != WsOp::kText) {
    if (why) {
      *why = message->op == WsOp::kClose
                 ? "close " + std::to_string(message->close_code) + " " + message->close_reason
                 : "non-text frame";
    }
    return std::nullopt;
  }
  Result<json::Value> parsed = json::Parse(message->payload);
  if (!parsed.ok() || !parsed->is_object()) {
    if (why) *why = "not a JSON object: " + message->payload.substr(0, 200);
    return std::nullopt;
  }
  return std::move(parsed).value();
}

inline std::string StringField(const json::Value& object, const char* name) {
  const json::Value* v = object.Find(name);
  return v != nullptr && v->is_string() ? v->str() : "";
}

inline std::optional<uint64_t> UintField(const json::Value& object, const char* name) {
  const json::Value* v = object.Find(name);
  return v != nullptr ? v->as_uint64() : std::nullopt;
}

struct Connected {
  std::string connection_id;
  std::string reconnection_token;  // reliable subprotocols only
};

// Reads the `connected` system message a JSON client gets first.
inline std::optional<Connected> ReadConnected(WsClient& client, std::string* why) {
  std::optional<json::Value> m = ReadJson(client, std::chrono::seconds(10), why);
  if (!m) return std::nullopt;
  if (StringField(*m, "type") != "system" || StringField(*m, "event") != "connected") {
    if (why) *why = "first message is not `connected`: " + json::Serialize(*m);
    return std::nullopt;
  }
  return Connected{StringField(*m, "connectionId"), StringField(*m, "reconnectionToken")};
}

// The client endpoint of `hub` with a token for `user` signed with `key`.
inline std::string ClientTarget(int port, const std::string& key, const std::string& hub,
                                const std::optional<std::string>& user) {
  JwtClaims claims;
  claims.audience = "http://127.0.0.1:" + std::to_string(port) + "/client/hubs/" + hub;
  claims.subject = user;
  claims.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"};
  return "/client/hubs/" + hub + "?access_token=" + MintJwt(key, claims);
}

// The recovery target of a reliable session.
inline std::string RecoveryTarget(const std::string& hub, const std::string& connection_id,
                                  const std::string& token) {
  return "/client/hubs/" + hub + "?awps_connection_id=" + connection_id +
         "&awps_reconnection_token=" + token;
}

// What a recovery attempt got: the fresh `connected` of a resumed session (`ok`), or how it was
// refused: `close_code` 1008 after the upgrade (PROTOCOL.md 3.6), or the HTTP status.
struct RecoveryOutcome {
  bool ok = false;
  Connected connected;
  int http_status = 0;
  uint16_t close_code = 0;
  std::string detail;
};

inline RecoveryOutcome TryRecover(WsClient& client, int port, const std::string& hub,
                                  const std::string& connection_id, const std::string& token) {
  RecoveryOutcome out;
  if (!client.Connect(port, RecoveryTarget(hub, connection_id, token), kReliableProtocol)) {
    out.http_status = client.http_status();
    out.detail = client.error();
    return out;
  }
  out.http_status = 101;
  for (int i = 0; i < 4; ++i) {
    std::optional<WsMessage> m = client.Read(std::chrono::seconds(10));
    if (!m) {
      out.detail = "no answer: " + client.error();
      return out;
    }
    if (m->op == WsOp::kClose) {
      out.close_code = m->close_code;
      out.detail = m->close_reason;
      return out;
    }
    Result<json::Value> parsed = json::Parse(m->payload);
    if (parsed.ok() && parsed->is_object() && StringField(*parsed, "event") == "connected") {
      out.ok = true;
      out.connected = {StringField(*parsed, "connectionId"),
                       StringField(*parsed, "reconnectionToken")};
      return out;
    }
    out.detail = m->payload;  // `disconnected` comes before the close
  }
  return out;
}

}  // namespace hubcast::testing
