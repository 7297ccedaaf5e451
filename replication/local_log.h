// LocalLog: the embedded, single-process HubLog (hub_log.h), one per hub, all sharing one
// writer thread owned by the LocalLogProvider.
//
// Group commit, in numbered steps (the writer thread):
//   1. Append encodes the entry on the caller's thread and queues it (a short lock, no I/O).
//   2. The writer takes everything queued, for every hub, assigns each entry the next
//      position of its hub, and writes them all in one Store::AppendLog (one fsync per round
//      with sync_writes).
//   3. On success it runs each entry's `durable` with its position, then hands the entries to
//      their logs' consumers in queue order (so per hub in position order). On failure (a full
//      disk) every entry of the round fails and no position is consumed.
// Without a store (tests, in-memory mode) step 2 only assigns positions.
//
// Thread-safety: Append may be called from any thread; the writer is the only thread that
// assigns positions and calls consumers.
#pragma once

#include "replication/hub_log.h"
#include "storage/store.h"

#include <cstdint>
#include <memory>

namespace hubcast::replication {

struct LocalLogStats {
  uint64_t rounds = 0;   // store writes (fsyncs with sync_writes)
  uint64_t entries = 0;  // entries written in them
};

class LocalLogProvider : public LogProvider {
 public:
  // `store` may be null: positions are then assigned in memory only.
  static std::unique_ptr<LocalLogProvider> New(storage::Store* store);
  virtual LocalLogStats stats() const = 0;
};

}  // namespace hubcast::replication
