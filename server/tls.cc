#include "server/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace hubcast::server {
namespace {

// TLS 1.2 suites with forward secrecy and AEAD; TLS 1.3 uses OpenSSL's defaults (all AEAD).
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr size_t kRecord = 16 * 1024;  // plaintext per SSL_write: one full record
constexpr size_t kMaxAcceptPerCall = 64 * 1024;
constexpr size_t kMaxPendingCipher = 256 * 1024;  // past it Writev answers kAgain

std::string OpenSslError(const std::string& what) {
  std::string out = what;
  unsigned long e;
  bool first = true;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += first ? ": " : "; ";
    out += buf;
    first = false;
  }
  return out;
}

int SelectHttp11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                 unsigned int in_len, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_len, kHttp11, sizeof kHttp11, in, in_len) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int NoPassphrase(char*, int, int, void*) { return 0; }

Result<SSL_CTX*> NewServerContext(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return Status::Internal(OpenSslError("TLS: cannot create a context"));
  auto fail = [&](const std::string& what) -> Result<SSL_CTX*> {
    Status s = Status::InvalidArgument(OpenSslError(what));
    SSL_CTX_free(ctx);
    return s;
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Idle connections (thousands of WebSockets) hold no record buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) return fail("TLS: cipher list");
  SSL_CTX_set_default_passwd_cb(ctx, NoPassphrase);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return fail("TLS: cannot use the certificate chain in " + cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail("TLS: cannot use the private key in " + key_file + " (PEM, without a passphrase)");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail("TLS: the key in " + key_file + " does not match the certificate in " + cert_file);
  }
  SSL_CTX_set_alpn_select_cb(ctx, SelectHttp11, nullptr);
  return ctx;
}

class TlsTransport final : public Transport {
 public:
  TlsTransport(int fd, SSL* ssl) : Transport(fd), ssl_(ssl) {
    // Records are read straight from the socket (epoll stays accurate); output is encrypted
    // into memory and sent by Flush, so SSL_write never waits on the socket.
    BIO* rbio = BIO_new_socket(fd, BIO_NOCLOSE);
    wbio_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, rbio, wbio_);
    SSL_set_accept_state(ssl_);
  }
  ~TlsTransport() override { SSL_free(ssl_); }

  bool secure() const override { return true; }
  bool established() const override { return SSL_is_init_finished(ssl_) == 1; }

  IoResult Read(char* buffer, size_t size) override {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_read(ssl_, buffer, static_cast<int>(std::min<size_t>(size, INT_MAX)));
    const int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, n);
    // Handshake messages, session tickets and key updates are produced by reads.
    Collect();
    if (IoResult f = Flush(); f.status == IoStatus::kError) return f;
    if (n > 0) return {IoStatus::kOk, static_cast<size_t>(n)};
    switch (err) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return {IoStatus::kAgain, 0};
      case SSL_ERROR_ZERO_RETURN:
        return {IoStatus::kClosed, 0};
      case SSL_ERROR_SYSCALL:
        if (errno == 0) return {IoStatus::kClosed, 0};
        return Failed(std::string("TLS read: ") + std::strerror(errno));
      default:
        return Failed(OpenSslError("TLS"));
    }
  }

  IoResult Writev(const iovec* iov, int count) override {
    if (!established()) return Failed("TLS: write before the handshake finished");
    if (PendingBytes() > kMaxPendingCipher) {
      IoResult f = Flush();
      if (f.status == IoStatus::kError) return f;
      if (PendingBytes() > kMaxPendingCipher) return {IoStatus::kAgain, 0};
    }
    // Small pieces (a frame header, then its body) are gathered into full records.
    char stage[kRecord];
    size_t staged = 0, accepted = 0;
    auto seal = [&]() -> bool {
      if (staged == 0) return true;
      ERR_clear_error();
      if (SSL_write(ssl_, stage, static_cast<int>(staged)) != static_cast<int>(staged)) {
        return false;
      }
      accepted += staged;
      staged = 0;
      return true;
    };
    for (int i = 0; i < count && accepted + staged < kMaxAcceptPerCall; ++i) {
      const char* p = static_cast<const char*>(iov[i].iov_base);
      size_t left = iov[i].iov_len;
      while (left > 0 && accepted + staged < kMaxAcceptPerCall) {
        const size_t take = std::min(left, sizeof stage - staged);
        std::memcpy(stage + staged, p, take);
        staged += take;
        p += take;
        left -= take;
        if (staged == sizeof stage && !seal()) return Failed(OpenSslError("TLS write"));
      }
    }
    if (!seal()) return Failed(OpenSslError("TLS write"));
    Collect();
    if (IoResult f = Flush(); f.status == IoStatus::kError) return f;
    return {IoStatus::kOk, accepted};
  }

  bool HasPendingOutput() const override { return PendingBytes() > 0; }

  IoResult Flush() override {
    while (out_offset_ < out_.size()) {
      const ssize_t n =
          ::send(fd_, out_.data() + out_offset_, out_.size() - out_offset_, MSG_NOSIGNAL);
      if (n > 0) {
        out_offset_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {IoStatus::kAgain, 0};
      return Failed(std::string("TLS write: ") + std::strerror(errno));
    }
    if (out_.capacity() > 4 * kRecord) {
      out_ = std::string();
    } else {
      out_.clear();
    }
    out_offset_ = 0;
    return {};
  }

  bool HasBufferedInput() const override { return SSL_has_pending(ssl_) == 1; }

  void ShutdownWrite() override {
    if (established()) {
      ERR_clear_error();
      SSL_shutdown(ssl_);  // queues close_notify
      Collect();
      (void)Flush();
    }
    ::shutdown(fd_, SHUT_WR);
  }

 private:
  size_t PendingBytes() const { return out_.size() - out_offset_; }

  // Moves what OpenSSL encrypted into memory to out_.
  void Collect() {
    char* data = nullptr;
    const long len = BIO_get_mem_data(wbio_, &data);
    if (len <= 0) return;
    out_.append(data, static_cast<size_t>(len));
    (void)BIO_reset(wbio_);
  }

  SSL* ssl_;
  BIO* wbio_ = nullptr;  // owned by ssl_
  std::string out_;      // encrypted, not yet sent
  size_t out_offset_ = 0;
};

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::Load(const std::string& cert_file,
                                                     const std::string& key_file) {
  Result<SSL_CTX*> ctx = NewServerContext(cert_file, key_file);
  if (!ctx.ok()) return ctx.status();
  return std::shared_ptr<TlsContext>(new TlsContext(cert_file, key_file, *ctx));
}

TlsContext::TlsContext(std::string cert_file, std::string key_file, ssl_ctx_st* ctx)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), ctx_(ctx) {}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Status TlsContext::Reload() {
  Result<SSL_CTX*> fresh = NewServerContext(cert_file_, key_file_);
  if (!fresh.ok()) return fresh.status();
  SSL_CTX* old;
  {
    std::lock_guard lock(mu_);
    old = ctx_;
    ctx_ = *fresh;
  }
  SSL_CTX_free(old);  // connections made with it hold their own reference
  return Status::Ok();
}

std::unique_ptr<Transport> TlsContext::NewTransport(int fd) {
  SSL* ssl;
  {
    std::lock_guard lock(mu_);
    ssl = SSL_new(ctx_);
  }
  if (!ssl) {
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<TlsTransport>(fd, ssl);
}

}  // namespace hubcast::server
