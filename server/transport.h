// Transport: the byte stream under an HTTP connection and, after an upgrade, under the
// WebSocket ClientConnection: a plain TCP socket, or TLS over one (server/tls.h). The socket
// is non-blocking; no call waits.
//
// Contract for users (an IoHandler on an EventLoop):
//   1. Read returns kAgain when nothing can be read now. A TLS transport may hold decrypted
//      bytes that epoll does not report: keep reading while HasBufferedInput().
//   2. Writev accepts a prefix of the data (IoResult::bytes) or kAgain. Bytes a transport
//      accepted may still sit inside it (TLS records): while HasPendingOutput(), watch
//      EPOLLOUT and call Flush() when writable; "all sent" means the caller's queue is empty
//      and !HasPendingOutput(). A read may also produce output (TLS handshake, key update).
//   3. ShutdownWrite ends the sending direction (TLS: close_notify first); the destructor
//      closes the socket.
// A transport may be handed from one loop to another, but is used by one thread at a time.
#pragma once

#include "base/status.h"

#include <cstddef>
#include <memory>
#include <string>
#include <sys/uio.h>

namespace hubcast::server {

// A listening TCP socket on host:port (port 0: a free one), SO_REUSEADDR, CLOEXEC and, when
// `nonblocking`, O_NONBLOCK; the first address of `host` that binds wins.
struct Listening {
  int fd = -1;
  int port = 0;  // the bound port
};
Result<Listening> ListenTcp(const std::string& host, int port, int backlog, bool nonblocking);

enum class IoStatus {
  kOk,      // `bytes` were read or accepted (for Read, bytes > 0)
  kAgain,   // try again when epoll says so
  kClosed,  // the peer ended the stream (EOF, TLS close_notify)
  kError,   // reset, TLS failure, ...: Transport::error() says what
};

struct IoResult {
  IoStatus status = IoStatus::kOk;
  size_t bytes = 0;
};

class Transport {
 public:
  explicit Transport(int fd) : fd_(fd) {}
  virtual ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  int fd() const { return fd_; }
  virtual bool secure() const { return false; }
  // False while a TLS handshake is still in progress: nothing can be written yet.
  virtual bool established() const { return true; }
  virtual IoResult Read(char* buffer, size_t size) = 0;
  virtual IoResult Writev(const iovec* iov, int count) = 0;
  IoResult Write(const char* data, size_t size) {
    iovec v{const_cast<char*>(data), size};
    return Writev(&v, 1);
  }
  virtual bool HasPendingOutput() const { return false; }
  virtual IoResult Flush() { return {}; }
  virtual bool HasBufferedInput() const { return false; }
  virtual void ShutdownWrite() = 0;
  const std::string& error() const { return error_; }

 protected:
  IoResult Failed(std::string why) {
    error_ = std::move(why);
    return {IoStatus::kError, 0};
  }
  int fd_;
  std::string error_;
};

// A plain TCP socket (takes ownership of fd).
std::unique_ptr<Transport> NewPlainTransport(int fd);

// The socket's local address as "host:port" (IPv6 in brackets); "" if unknown.
std::string LocalAddress(int fd);

}  // namespace hubcast::server
