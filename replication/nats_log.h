// NatsLog: the cluster's HubLog (hub_log.h): one NATS JetStream stream per hub is the log,
// the stream sequence is the position, and every node consumes every stream it serves in
// order into its own view (ARCHITECTURE.md, "Cluster and regions").
//
// Append, in numbered steps:
//   1. Refused at once (kUnavailable) while NATS is unreachable: nothing is queued behind a
//      reconnect.
//   2. The encoded entry is published asynchronously with a Nats-Msg-Id unique to this node
//      and append (a retried publish never makes a second entry); the request id keeps the
//      appender's completions.
//   3. JetStream's acknowledgement (a quorum of the stream's replicas) runs `durable` with the
//      stream sequence; a timeout or an error runs it with kUnavailable and forgets `applied`.
//   4. The hub's JetStream consumer (this node's own, sequence-checked: nats_log.cc) hands
//      every message, this node's and every other node's, to the consumer in sequence
//      order; one carrying a pending request id takes its `applied` along (and counts as
//      durable if it overtook its acknowledgement).
// Entries from the stream are untrusted input: one that does not decode or breaks the limits
// (storage::CheckEntry) is applied as a no-op and logged, never crashes this node.
//
// The log's epoch is the stream's creation time: the same on every node, and new when the
// stream is recreated (then the node's stored state of the hub is dropped).
//
// Thread-safety: Append from any thread; consumers run on nats.c delivery threads.
#pragma once

#include "replication/hub_log.h"
#include "replication/nats_connection.h"
#include "storage/store.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace hubcast::replication {

struct NatsLogOptions {
  std::string node_id;  // part of every request id (Nats-Msg-Id)
  int replicas = 3;
  std::string placement_tag;  // empty: no placement constraint
  // The streams' retention: how long a node may be away and still catch up from the log (a
  // node that was away longer loads a snapshot).
  int64_t max_age_ms = 24 * 3600 * 1000;
  int64_t max_bytes = -1;  // per stream; -1: unlimited
  std::chrono::milliseconds publish_timeout{5000};
  size_t max_message_bytes = 1 << 20;  // what a valid entry's payload may hold
};

// Stream and subject names of a hub (hub names may hold characters NATS names may not).
std::string NatsTokenOfHub(const std::string& hub);  // letters, digits, _ and -XX escapes
std::string StreamOfHub(const std::string& hub);
std::string SubjectOfHub(const std::string& hub);
// The hub of a stream name, or nullopt for a stream that is not a hub's.
std::optional<std::string> HubOfStream(std::string_view stream);

class NatsLogProvider : public LogProvider {
 public:
  // `store` holds each hub's epoch; `connection` outlives the provider.
  static std::unique_ptr<NatsLogProvider> New(NatsConnection* connection, storage::Store* store,
                                              NatsLogOptions options);
  // Requests whose JetStream acknowledgement has not come yet.
  virtual size_t pending() const = 0;
};

}  // namespace hubcast::replication
