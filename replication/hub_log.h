// HubLog: the ordered, durable log of one hub's commands (ARCHITECTURE.md, "every hub is a
// replicated log"). Positions are uint64, strictly increasing from 1 within one LogEpoch.
//
// Contract:
//   - Append returns only once the entry is durable (for LocalLog without a store: once it is
//     ordered in memory), with the position it got. Thread-safe.
//   - Every appended entry is handed to the consumer exactly once, in position order, on a
//     thread of the log's choosing. The consumer is set once, before the first Append.
//   - LocalLog orders in-process; NatsLog (cluster) orders through a JetStream stream and
//     also hands the consumer entries appended by other nodes.
#pragma once

#include "base/status.h"
#include "storage/entry.h"
#include "storage/store.h"

#include <cstdint>
#include <functional>
#include <memory>

namespace hubcast::replication {

class HubLog {
 public:
  // Returns false when it can no longer take entries (shutting down): Append then fails.
  using Consumer = std::function<bool(uint64_t position, storage::EntryPtr entry)>;
  virtual ~HubLog() = default;

  virtual void SetConsumer(Consumer consumer) = 0;
  virtual Result<uint64_t> Append(storage::EntryPtr entry) = 0;
  // Position of the last appended entry (0 when empty).
  virtual uint64_t head() const = 0;
  // Fixed when the log is created; a recreated log has a different epoch.
  virtual uint64_t epoch() const = 0;
};

// The embedded, single-process log. With a store, entries are written to its `log` column
// family before Append returns; `head` is the last position already stored. Without a store
// (tests, in-memory mode) entries live only in the view.
std::unique_ptr<HubLog> NewLocalLog(uint64_t epoch, storage::Store* store = nullptr,
                                    std::string hub = "", uint64_t head = 0);

}  // namespace hubcast::replication
