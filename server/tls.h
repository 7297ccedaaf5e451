// TlsContext: the server side of TLS (OpenSSL) for the one port that serves https:// and
// wss://. It holds the certificate chain and key read from PEM files, and makes a
// non-blocking TLS Transport (server/transport.h) for every accepted socket.
//
// Settings: TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE key exchange with AEAD ciphers
// (AES-GCM, ChaCha20-Poly1305); no compression, no renegotiation; ALPN selects http/1.1
// (a client that offers only other protocols gets no ALPN answer and may carry on with
// HTTP/1.1). A key file with a passphrase is refused (no prompt on the terminal).
//
// The TLS transport reads records straight from the socket (so epoll stays accurate) and
// encrypts into memory, sending from there; see Transport's contract for HasPendingOutput.
//
// Thread-safety: Reload and NewTransport may be called from any thread. Reload swaps the
// certificate for new connections; connections already established keep theirs.
#pragma once

#include "base/status.h"
#include "server/transport.h"

#include <memory>
#include <mutex>
#include <string>

struct ssl_ctx_st;

namespace hubcast::server {

class TlsContext {
 public:
  // Reads and checks the files (the key must match the certificate); the error names the
  // file and OpenSSL's reason.
  static Result<std::shared_ptr<TlsContext>> Load(const std::string& cert_file,
                                                  const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Reads the files again (SIGHUP). On failure the current certificate stays in use.
  Status Reload();
  // A TLS transport over an accepted, non-blocking socket; takes ownership of fd (closed
  // when OpenSSL cannot make a connection: nullptr). The handshake happens in its first Reads.
  std::unique_ptr<Transport> NewTransport(int fd);

 private:
  TlsContext(std::string cert_file, std::string key_file, ssl_ctx_st* ctx);

  const std::string cert_file_;
  const std::string key_file_;
  std::mutex mu_;
  ssl_ctx_st* ctx_;  // guarded by mu_; each connection holds its own reference
};

}  // namespace hubcast::server
