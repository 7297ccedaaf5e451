// AdminServer: the small HTTP/1.1 listener of the admin port (`--admin-bind`), apart from the
// client port so that scrapes, probes and the dashboard never compete with clients for the
// event loops, and so that the port can stay on loopback while the client port is public.
//
// Deliberately plain: one accept thread, and one thread per admin connection (at most
// kMaxConnections; one more is answered 503 and closed). A connection serves one request
// (Connection: close), parsed with the front's parser (server/http_parser.h, same limits and
// errors); a request must arrive within 10 s. An answer is either a whole response or a
// stream (Server-Sent Events) that a handler writes on the connection's thread until the
// client goes or the server stops.
//
// Thread-safety: Start and Stop from one control thread; the handler runs on connection
// threads, several at once.
#pragma once

#include "base/status.h"
#include "rest/http_message.h"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>

namespace hubcast::server {

// A streamed answer's writer (connection thread only).
class AdminStream {
 public:
  virtual ~AdminStream() = default;
  // Writes bytes; false once the client is gone or the server stops (stop writing then).
  virtual bool Write(std::string_view bytes) = 0;
  virtual bool stopping() const = 0;
};

struct AdminAnswer {
  rest::HttpResponse response;  // the whole answer, or the head of a stream
  // Set: the answer is a stream of unknown length; runs after the head was written.
  std::function<void(AdminStream&)> stream;
};

using AdminHandler = std::function<AdminAnswer(const rest::HttpRequest&)>;

class AdminServer {
 public:
  static constexpr int kMaxConnections = 32;

  explicit AdminServer(AdminHandler handler);
  ~AdminServer();  // Stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Listens on host:port (port 0: a free one); the bound port.
  Result<int> Start(const std::string& host, int port);
  // Stops accepting, ends every connection (streams see stopping()) and waits for them.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd);

  const AdminHandler handler_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::set<int> open_;  // connection sockets being served
};

}  // namespace hubcast::server
