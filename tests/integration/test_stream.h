// A client byte stream to 127.0.0.1 for integration tests: plain TCP or TLS (OpenSSL, the
// server verified against a CA file the test generated), every wait bounded by a deadline;
// and reading HTTP/1.1 responses off such a stream byte-exactly, so tests can send anything
// (pipelined, malformed, trickled) and see exactly what comes back and when the server closes.
//
// Written from the RFCs, independent of the server's code. Header-only (integration_tests
// links OpenSSL::SSL). Not thread-safe: one thread per stream.
#pragma once

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace hubcast::testing {

struct TlsClientOptions {
  std::string ca_file;                    // PEM: the CA (or self-signed certificate) to trust
  std::string server_name = "localhost";  // SNI and the name verified
  std::vector<std::string> alpn = {"http/1.1"};
  int max_version = 0;  // e.g. TLS1_1_VERSION to check that old versions are refused
};

class TestStream {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Got { kData, kEof, kTimeout, kError };

  TestStream() = default;
  ~TestStream() { Close(); }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;

  bool Connect(int port) {
    Close();
    error_.clear();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Fail(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return Fail(std::string("connect: ") + std::strerror(errno));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    return true;
  }

  bool ConnectTls(int port, const TlsClientOptions& options,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!Connect(port)) return false;
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) return Fail("SSL_CTX_new");
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(ctx_, options.ca_file.c_str(), nullptr) != 1) {
      return Fail("cannot load CA " + options.ca_file);
    }
    if (options.max_version != 0) SSL_CTX_set_max_proto_version(ctx_, options.max_version);
    // TLS 1.0 and 1.1 need security level 0 in OpenSSL 3 to be offered at all.
    if (options.max_version != 0 && options.max_version < TLS1_2_VERSION) {
      SSL_CTX_set_security_level(ctx_, 0);
      SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, options.server_name.c_str());
    SSL_set1_host(ssl_, options.server_name.c_str());
    if (!options.alpn.empty()) {
      std::string wire;
      for (const std::string& p : options.alpn) {
        wire += static_cast<char>(p.size());
        wire += p;
      }
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned>(wire.size()));
    }
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_connect(ssl_);
      if (rc == 1) return true;
      const int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (!Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
          return Fail("TLS handshake: " + error_);
        }
        continue;
      }
      return Fail("TLS handshake failed: " + OpenSslErrors());
    }
  }

  bool open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

  // Negotiated ALPN protocol ("" for none), TLS version (e.g. TLS1_3_VERSION).
  std::string alpn() const {
    const unsigned char* data = nullptr;
    unsigned len = 0;
    if (ssl_) SSL_get0_alpn_selected(ssl_, &data, &len);
    return data ? std::string(reinterpret_cast<const char*>(data), len) : "";
  }
  int tls_version() const { return ssl_ ? SSL_version(ssl_) : 0; }
  // SHA-256 of the server's certificate (DER), hex; "" without TLS.
  std::string peer_fingerprint() const {
    if (!ssl_) return "";
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (!cert) return "";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    X509_digest(cert, EVP_sha256(), md, &len);
    X509_free(cert);
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += kHex[md[i] >> 4];
      out += kHex[md[i] & 15];
    }
    return out;
  }

  bool Send(std::string_view data, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    size_t sent = 0;
    while (sent < data.size()) {
      if (fd_ < 0) return false;
      if (ssl_) {
        ERR_clear_error();
        const int n = SSL_write(ssl_, data.data() + sent, static_cast<int>(data.size() - sent));
        if (n > 0) {
          sent += static_cast<size_t>(n);
          continue;
        }
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
          if (!Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) return false;
          continue;
        }
        error_ = "TLS write: " + OpenSslErrors();
        return false;  // still open: what the server answered may be read
      }
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!Wait(POLLOUT, deadline)) return false;
        continue;
      }
      error_ = std::string("send: ") + std::strerror(errno);
      return false;  // still open: what the server answered may be read
    }
    return true;
  }

  // Appends what arrives before `deadline` (at least one byte) to *out.
  Got Receive(std::string* out, Clock::time_point deadline) {
    char chunk[16384];
    for (;;) {
      if (fd_ < 0) return Got::kError;
      if (ssl_) {
        ERR_clear_error();
        const int n = SSL_read(ssl_, chunk, sizeof chunk);
        if (n > 0) {
          out->append(chunk, static_cast<size_t>(n));
          return Got::kData;
        }
        const int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) return Got::kEof;
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
          if (!Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            return error_ == "timeout" ? Got::kTimeout : Got::kError;
          }
          continue;
        }
        // An EOF without close_notify, or a reset: the server went away.
        if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL) {
          error_ = "TLS read: " + OpenSslErrors();
          return Got::kEof;
        }
        return Got::kError;
      }
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        out->append(chunk, static_cast<size_t>(n));
        return Got::kData;
      }
      if (n == 0) return Got::kEof;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!Wait(POLLIN, deadline)) return error_ == "timeout" ? Got::kTimeout : Got::kError;
        continue;
      }
      if (errno == ECONNRESET) return Got::kEof;
      error_ = std::string("recv: ") + std::strerror(errno);
      return Got::kError;
    }
  }

  void ShutdownWrite() {
    if (ssl_) SSL_shutdown(ssl_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  }

  void Close() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    ssl_ = nullptr;
    ctx_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool Fail(std::string message) {
    error_ = std::move(message);
    Close();
    return false;
  }

  static std::string OpenSslErrors() {
    std::string out;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      if (!out.empty()) out += "; ";
      out += buf;
    }
    return out.empty() ? std::string(std::strerror(errno)) : out;
  }

  // Waits for `events` on the socket until `deadline`; false with error_ "timeout" or why.
  bool Wait(short events, Clock::time_point deadline) {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        error_ = "timeout";
        return false;
      }
      pollfd p{fd_, events, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) {
        error_ = std::string("poll: ") + std::strerror(errno);
        return false;
      }
      if (ready > 0) return true;
    }
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string error_;
};

// One HTTP/1.1 response as read off a stream.
struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "";
  }
};

// Reads the next response from `stream`; `buffer` holds bytes already received and keeps any
// that follow the response. Bodies by Content-Length (none for 1xx, 204, 304 and HEAD).
// nullopt on timeout, EOF or a malformed response (*error says which).
inline std::optional<RawResponse> ReadResponse(TestStream& stream, std::string& buffer,
                                               std::chrono::milliseconds timeout,
                                               bool head_request = false,
                                               std::string* error = nullptr) {
  const auto deadline = TestStream::Clock::now() + timeout;
  auto fail = [&](const std::string& why) -> std::optional<RawResponse> {
    if (error) *error = why;
    return std::nullopt;
  };
  auto fill = [&]() -> bool {
    switch (stream.Receive(&buffer, deadline)) {
      case TestStream::Got::kData:
        return true;
      case TestStream::Got::kEof:
        if (error) *error = "eof";
        return false;
      case TestStream::Got::kTimeout:
        if (error) *error = "timeout";
        return false;
      default:
        if (error) *error = stream.error();
        return false;
    }
  };
  size_t end;
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return std::nullopt;
  }
  const std::string head = buffer.substr(0, end);
  buffer.erase(0, end + 4);
  if (head.rfind("HTTP/1.1 ", 0) != 0 || head.size() < 12) {
    return fail("not an HTTP/1.1 response: " + head.substr(0, 60));
  }
  RawResponse r;
  r.status = std::atoi(head.c_str() + 9);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos) {
    const size_t next = head.find("\r\n", pos + 2);
    const std::string line =
        head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    pos = next;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    r.headers.emplace_back(std::move(name), std::move(value));
  }
  const bool no_body =
      (r.status >= 100 && r.status < 200) || r.status == 204 || r.status == 304 || head_request;
  const std::string length = r.Header("content-length");
  if (!no_body && !length.empty()) {
    const size_t n = static_cast<size_t>(std::stoull(length));
    while (buffer.size() < n) {
      if (!fill()) return std::nullopt;
    }
    r.body = buffer.substr(0, n);
    buffer.erase(0, n);
  }
  return r;
}

// Whether the server ends the connection (EOF or reset) before `timeout`; data is discarded.
inline bool WaitForClose(TestStream& stream, std::chrono::milliseconds timeout) {
  const auto deadline = TestStream::Clock::now() + timeout;
  std::string sink;
  for (;;) {
    switch (stream.Receive(&sink, deadline)) {
      case TestStream::Got::kData:
        sink.clear();
        continue;
      case TestStream::Got::kEof:
        return true;
      default:
        return false;
    }
  }
}

}  // namespace hubcast::testing
