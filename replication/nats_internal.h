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
  // Asynchronous subscription errors (missed heartbeats, slow consumer): nats_log.cc repairs
  // the hub consumer they name. Runs on a nats.c thread.
  using SubscriptionErrorHandler = std::function<void(natsSubscription* sub, natsStatus error)>;
  virtual void SetSubscriptionErrorHandler(SubscriptionErrorHandler handler) = 0;
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

// The stream's info; `what` names it in errors ("hub chat", "the snapshot stream").
Result<StreamInfoPtr> GetStreamInfo(jsCtx* js, const std::string& stream, const std::string& what);

// A stream placement on one tag (none when the tag is empty), kept alive for the config that
// points at it.
class StreamPlacement {
 public:
  explicit StreamPlacement(const std::string& tag) : tag_(tag) { jsPlacement_Init(&placement_); }
  StreamPlacement(const StreamPlacement&) = delete;
  StreamPlacement& operator=(const StreamPlacement&) = delete;
  void ApplyTo(jsStreamConfig* cfg) {
    if (tag_.empty()) return;
    tags_[0] = tag_.c_str();
    placement_.Tags = tags_;
    placement_.TagsLen = 1;
    cfg->Placement = &placement_;
  }

 private:
  std::string tag_;
  const char* tags_[1] = {nullptr};
  jsPlacement placement_;
};

}  // namespace hubcast::replication::nats
