// Helpers shared by the gateway's files (handshake, session restore): answers to a WebSocket
// handshake through the HTTP front. Internal to server/; not part of any module API.
#pragma once

#include "rest/http_message.h"
#include "server/http_front.h"
#include "server/transport.h"

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

namespace hubcast::server {

// Refuses a handshake: the JSON error body and x-ms-error-code, plus `extra` fields.
void RefuseHandshake(const std::shared_ptr<HttpExchange>& exchange, int status, const char* code,
                     const std::string& message,
                     std::initializer_list<std::pair<const char*, const char*>> extra = {});
// The Sec-WebSocket-Accept of a valid upgrade request (RFC 6455 4.2.1: Upgrade: websocket,
// a Connection field with "upgrade", a Sec-WebSocket-Key of 16 bytes in base64, version 13,
// no body); otherwise refuses it (400) and returns "".
std::string AcceptUpgrade(const std::shared_ptr<HttpExchange>& exchange);
// The 101 answer, with the chosen subprotocol when there is one.
rest::HttpResponse SwitchingProtocols(const std::string& accept, const std::string& protocol);
// Best effort: `bytes` (close frames), then the connection ends.
void WriteAndClose(std::unique_ptr<Transport> transport, const std::string& bytes);

}  // namespace hubcast::server
