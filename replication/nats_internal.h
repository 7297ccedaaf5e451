// The nats.c side of NatsConnection, for the replication files that speak JetStream
// (nats_log.cc, snapshots.cc). Internal to replication/: nothing outside includes it, so no
// NATS type leaves this layer.
#pragma once

#include "base/status.h"
#include "replication/nats_connection.h"

#include <nats/nats.h>

#include <functional>
#include <string>

namespace hubcast::replication::nats {

class Connection : public NatsConnection {
 public:
  virtual natsConnection* raw() = 0;
  virtual jsCtx* js() = 0;
  // The asynchronous-publish acknowledgement handler (one per connection: nats_log.cc's).
  // Runs on a nats.c thread; must destroy `msg` (nats.c's contract).
  using AckHandler = std::function<void(natsMsg* msg, jsPubAck* ack, jsPubAckErr* error)>;
  virtual void SetAckHandler(AckHandler handler) = 0;
  virtual const NatsConnectionOptions& options() const = 0;
};

inline Connection& Internal(NatsConnection& c) { return static_cast<Connection&>(c); }

// A nats.c status (and JetStream error code) as ours: what went wrong, for `what`.
Status FromNats(natsStatus s, const std::string& what, jsErrCode code = static_cast<jsErrCode>(0));

// RAII for nats.c objects.
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;
struct StreamInfoDeleter {
  void operator()(jsStreamInfo* si) const { jsStreamInfo_Destroy(si); }
};
using StreamInfoPtr = std::unique_ptr<jsStreamInfo, StreamInfoDeleter>;

}  // namespace hubcast::replication::nats
