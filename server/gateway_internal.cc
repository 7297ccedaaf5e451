#include "server/gateway_internal.h"

#include "base/base64.h"
#include "base/strings.h"
#include "server/ws_frame.h"

namespace hubcast::server {

void RefuseHandshake(const std::shared_ptr<HttpExchange>& exchange, int status, const char* code,
                     const std::string& message,
                     std::initializer_list<std::pair<const char*, const char*>> extra) {
  rest::HttpResponse r = rest::ErrorResponse(status, code, message);
  for (const auto& [name, value] : extra) r.headers.Set(name, value);
  exchange->Respond(std::move(r));
}

std::string AcceptUpgrade(const std::shared_ptr<HttpExchange>& exchange) {
  const rest::HttpRequest& req = exchange->request();
  if (!EqualsIgnoreCase(Trim(req.headers.Get("Upgrade")), "websocket")) {
    RefuseHandshake(exchange, 400, "BadRequest",
                    "The client endpoint expects a WebSocket upgrade request.");
    return "";
  }
  bool connection_upgrade = false;
  for (const auto& [name, value] : req.headers) {
    if (!EqualsIgnoreCase(name, "Connection")) continue;
    for (std::string_view token : Split(value, ',')) {
      if (EqualsIgnoreCase(Trim(token), "upgrade")) connection_upgrade = true;
    }
  }
  const std::string key(Trim(req.headers.Get("Sec-WebSocket-Key")));
  if (!connection_upgrade || !WsKeyIsValid(key) ||
      Trim(req.headers.Get("Sec-WebSocket-Version")) != "13") {
    RefuseHandshake(exchange, 400, "BadRequest",
                    "A WebSocket upgrade needs Connection: Upgrade, a Sec-WebSocket-Key and "
                    "Sec-WebSocket-Version: 13.",
                    {{"Sec-WebSocket-Version", "13"}});
    return "";
  }
  // Bytes after the head are WebSocket frames: a body would make them ambiguous.
  if (!req.body.empty() || req.headers.Has("Transfer-Encoding")) {
    RefuseHandshake(exchange, 400, "BadRequest", "A WebSocket upgrade request has no body.");
    return "";
  }
  return WsAcceptKey(key);
}

rest::HttpResponse SwitchingProtocols(const std::string& accept, const std::string& protocol) {
  rest::HttpResponse r;
  r.status = 101;
  r.headers.Add("Upgrade", "websocket");
  r.headers.Add("Connection", "Upgrade");
  r.headers.Add("Sec-WebSocket-Accept", accept);
  if (!protocol.empty()) r.headers.Add("Sec-WebSocket-Protocol", protocol);
  return r;
}

void WriteAndClose(std::unique_ptr<Transport> transport, const std::string& bytes) {
  if (!transport) return;
  (void)transport->Write(bytes.data(), bytes.size());
  (void)transport->Flush();
  transport->ShutdownWrite();
}

}  // namespace hubcast::server
