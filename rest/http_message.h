// HTTP requests and responses as plain values, independent of any server library: the front
// (server/http_connection.h) parses a complete request - head and whole body in memory - and
// hands it to a handler (the REST API, the WebSocket handshake), which answers with a
// response value the front serialises. Framing (Content-Length, chunked, keep-alive) is the
// front's business; these types only carry what a handler reads and writes.
//
// Plain values: copyable, no internal synchronisation.
#pragma once

#include "base/strings.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcast::rest {

// Header fields in the order received; names compared case-insensitively. A name may repeat.
class HttpHeaders {
 public:
  using Field = std::pair<std::string, std::string>;

  void Add(std::string name, std::string value) {
    fields_.emplace_back(std::move(name), std::move(value));
  }
  // Replaces every field of that name with one.
  void Set(std::string_view name, std::string value) {
    Remove(name);
    Add(std::string(name), std::move(value));
  }
  void Remove(std::string_view name) {
    std::erase_if(fields_, [&](const Field& f) { return EqualsIgnoreCase(f.first, name); });
  }
  // The first value of `name`, or nullptr.
  const std::string* Find(std::string_view name) const {
    for (const auto& [n, v] : fields_) {
      if (EqualsIgnoreCase(n, name)) return &v;
    }
    return nullptr;
  }
  // The first value of `name`, or `fallback`.
  std::string Get(std::string_view name, std::string_view fallback = {}) const {
    const std::string* v = Find(name);
    return v ? *v : std::string(fallback);
  }
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
  size_t Count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields_) n += EqualsIgnoreCase(f.first, name) ? 1 : 0;
    return n;
  }

  const std::vector<Field>& fields() const { return fields_; }
  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }
  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }

 private:
  std::vector<Field> fields_;
};

struct HttpRequest {
  std::string method;     // case-sensitive token, e.g. "GET"
  std::string target;     // request-target as on the wire: "/api/hubs/h/:send?api-version=..."
  int version_minor = 1;  // HTTP/1.<minor>
  HttpHeaders headers;
  std::string body;     // complete, chunked coding removed
  bool secure = false;  // arrived over TLS
  // The Host header, or the local address the request arrived on when it had none
  // (HTTP/1.0); used for links and token audiences.
  std::string host;
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;  // Content-Length, Date and Connection are added by the front
  std::string body;     // not sent for HEAD requests (Content-Length still says its size)
};

// {"code":"<code>","message":"<message>"}: the body of every error the service answers.
std::string ErrorJson(std::string_view code, std::string_view message);
// An error response with that body, Content-Type application/json and x-ms-error-code.
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);
// The reason phrase of a status code ("Not Found"); "Unknown" for codes we never send.
const char* ReasonPhrase(int status);

}  // namespace hubcast::rest
