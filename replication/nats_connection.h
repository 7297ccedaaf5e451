// NatsConnection: this node's connection to the NATS servers of a cluster (nats.c), shared by
// the hub logs (JetStream), the snapshots and the node heartbeats (core NATS).
//
// It connects even when no server answers yet and keeps reconnecting for ever; `connected()`
// says whether commands can reach the cluster now (appends fail fast while it is false).
// Messages the client would buffer while disconnected are not buffered: a command that
// cannot reach the log is refused, never delayed behind a reconnect.
//
// Thread-safety: every method may be called from any thread. Subscription callbacks run on
// nats.c's delivery threads (a bounded, shared pool).
#pragma once

#include "base/status.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::replication {

struct NatsConnectionOptions {
  std::vector<std::string> urls;  // nats://host:port, tls://host:port
  std::string credentials_file;   // a .creds file (JWT + NKey seed); empty: none
  std::string tls_ca_file;        // CA to verify TLS servers with; empty: system default
  std::string name;               // shown by the servers (the node id)
  // JetStream API requests (stream info, create) time out after this.
  std::chrono::milliseconds request_timeout{5000};
};

class NatsConnection {
 public:
  // Connects (without waiting for a server: see above). Fails only on bad options.
  static Result<std::unique_ptr<NatsConnection>> Connect(const NatsConnectionOptions& options);
  virtual ~NatsConnection() = default;

  virtual bool connected() const = 0;
  // Core NATS, fire and forget (no-op while disconnected).
  virtual void Publish(const std::string& subject, std::string_view data) = 0;
  using Handler = std::function<void(std::string_view subject, std::string_view data)>;
  // Keeps the subscription for the connection's lifetime.
  virtual Status Subscribe(const std::string& subject, Handler handler) = 0;
  // Runs `callback(true)` when the connection comes back and `(false)` when it is lost.
  virtual void OnConnectionChange(std::function<void(bool connected)> callback) = 0;
  // Stops every subscription and closes the connection; later calls fail.
  virtual void Close() = 0;
};

}  // namespace hubcast::replication
