// SnapshotStore: hub views at known positions, kept where a node that joins late (or came
// back after the hub's stream dropped the entries it missed) can load one and consume the
// log from there. The cluster keeps them in JetStream itself, so they outlive every node's
// disk as long as the streams live.
//
// JetStream layout: stream HUBCAST-SNAPSHOTS, subjects hubcast.snapshot.<hub>.<chunk>, one
// message kept per subject. A snapshot is split into chunks of at most 256 KiB; each carries
// the header `Hubcast-Snapshot: <id> <chunks> <position> <epoch>`. Chunk 0 is written last,
// so a reader that finds chunk 0 finds the rest of that snapshot (or, if a newer one is being
// written over it, a chunk with another id: it reads again).
//
// Thread-safety: all methods may be called from any thread; they wait for round trips (never
// call them on an event loop).
#pragma once

#include "base/status.h"
#include "replication/nats_connection.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace hubcast::replication {

struct Snapshot {
  uint64_t epoch = 0;     // the hub log's epoch it belongs to
  uint64_t position = 0;  // the view as of this position
  std::string bytes;      // storage::EncodeViewState
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  virtual Status Save(const std::string& hub, const Snapshot& snapshot) = 0;
  // The newest complete snapshot of `hub`, or nullopt when there is none.
  virtual Result<std::optional<Snapshot>> Latest(const std::string& hub) = 0;
};

struct JetStreamSnapshotOptions {
  int replicas = 3;
  std::string placement_tag;
};

// Creates the snapshot stream if it does not exist yet.
Result<std::unique_ptr<SnapshotStore>> NewJetStreamSnapshots(NatsConnection* connection,
                                                             JetStreamSnapshotOptions options);

}  // namespace hubcast::replication
