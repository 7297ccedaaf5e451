#include "server/gateway_internal.h"

#include "base/json.h"

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace hubcast::server {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerResponse;

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void WriteHttpError(int fd, int status, const char* code, const std::string& message) {
  std::string body = "{\"code\":";
  json::AppendQuoted(body, code);
  body += ",\"message\":";
  json::AppendQuoted(body, message);
  body += "}";
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " +
      HTTPResponse::getReasonForStatus(static_cast<HTTPResponse::HTTPStatus>(status)) +
      "\r\nContent-Type: application/json; charset=utf-8\r\nx-ms-error-code: " + code +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  (void)WriteAll(fd, head + body);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
}

void SendError(HTTPServerResponse& resp, HTTPResponse::HTTPStatus status, const char* code,
               const std::string& message) {
  std::string body = "{\"code\":";
  json::AppendQuoted(body, code);
  body += ",\"message\":";
  json::AppendQuoted(body, message);
  body += "}";
  resp.setStatus(status);
  resp.set("x-ms-error-code", code);
  resp.setContentType("application/json; charset=utf-8");
  if (status == HTTPResponse::HTTP_UNAUTHORIZED) resp.set("WWW-Authenticate", "Bearer");
  resp.setContentLength(static_cast<std::streamsize>(body.size()));
  resp.send() << body;
}

}  // namespace hubcast::server
