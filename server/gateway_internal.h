// Helpers shared by the gateway's files (handshake, session restore, fan-out): writing an HTTP
// answer on a socket that POCO no longer owns.
// Internal to server/; not part of any module API.
#pragma once

#include "server/client_connection.h"

#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <string>

namespace hubcast::server {

// Writes all of `data` to a blocking socket; false when the peer is gone.
bool WriteAll(int fd, const std::string& data);
// An error answer to a handshake whose socket was detached from POCO; closes the socket.
void WriteHttpError(int fd, int status, const char* code, const std::string& message);
// An error answer through POCO: JSON body {"code","message"} and x-ms-error-code.
void SendError(Poco::Net::HTTPServerResponse& resp, Poco::Net::HTTPResponse::HTTPStatus status,
               const char* code, const std::string& message);

}  // namespace hubcast::server
