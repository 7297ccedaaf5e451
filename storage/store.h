// Store: a node's durable state in one RocksDB database (ARCHITECTURE.md: "nodes are RocksDB
// views of the log"). Column families:
//   meta     format version; per hub: epoch, applied position and apply time
//   log      hub \0 position(BE64) -> encoded entry (the hub log and its replay window)
//   outcome  hub \0 position(BE64) -> apply status code, only for entries that had no effect
//   conns    hub \0 connection id  -> encoded connection record (user, roles, permissions,
//            groups, reliable numbering and checkpoints)
//   members  hub \0 group \0 connection id -> "" (group membership index)
//   acks     hub \0 connection id \0 ackId(BE64) -> position(BE64) of the entry that brought
//            it (processed ackIds, bounded history; the position keeps their arrival order)
//   user_groups hub \0 user \0 group -> expiry(BE64 Unix ms) (remembered memberships)
// What applied entries change is written in one atomic WriteBatch per applier run together
// with the hubs' applied positions, so a crash never leaves a half-applied entry: start-up
// re-applies from the last committed applied position.
//
// Durability: every write goes through RocksDB's WAL, which survives the process being
// killed; with sync_writes each write also fsyncs, which survives power loss.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include "base/status.h"
#include "storage/entry.h"
#include "storage/hub_view.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::storage {

inline constexpr uint32_t kStoreFormatVersion = 1;

struct StoreOptions {
  std::string path;
  bool sync_writes = false;
  // Space reserved beside the store (<path>.ballast, ballast.h) and released when the disk
  // fills up, so the store recovers once that much is free again; 0: none.
  uint64_t ballast_bytes = 0;
};

// What applying a run of entries changed, gathered for one write. Filled by one thread.
class ApplyBatch {
 public:
  virtual ~ApplyBatch() = default;
  // Adds what applying `entry` at `position` changed (`result` is read during the call only)
  // and the hub's new applied position. `log_entry`: the encoded entry, for a log that did not
  // write the node's replay log itself (a replicated log); empty when it is there already.
  virtual void Add(const std::string& hub, uint64_t position, const Entry& entry,
                   const ApplyResult& result, std::string_view log_entry = {}) = 0;
  // True when the batch holds more than applied positions (replay or queries need it).
  virtual bool changes_state() const = 0;
  virtual bool empty() const = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens or creates. Errors name the reason in one line: kUnavailable for a lock held by
  // another process, kInvalidArgument for corruption or a newer format, kInternal otherwise.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);

  // Hubs that have state, and each hub's epoch (created with `new_epoch` the first time).
  virtual Result<std::vector<std::string>> Hubs() const = 0;
  virtual Result<uint64_t> Epoch(const std::string& hub, uint64_t new_epoch) = 0;

  // The log. AppendLog writes every entry in one atomic write (group commit: one fsync with
  // sync_writes, however many hubs and entries) and is durable when it returns OK
  // (kUnavailable when the disk is full; then nothing was written).
  struct LogAppend {
    std::string_view hub;
    uint64_t position;
    std::string_view entry;
  };
  virtual Status AppendLog(const std::vector<LogAppend>& entries) = 0;
  Status AppendLog(const std::string& hub, uint64_t position, std::string_view entry) {
    return AppendLog({LogAppend{hub, position, entry}});
  }
  // 0 when the hub's log is empty.
  virtual Result<uint64_t> FirstLogPosition(const std::string& hub) const = 0;
  virtual Result<uint64_t> LastLogPosition(const std::string& hub) const = 0;
  // Entries in [from, to] in order until fn returns false.
  virtual Status ScanLog(const std::string& hub, uint64_t from, uint64_t to,
                         const std::function<bool(uint64_t, std::string_view)>& fn) const = 0;
  // Status of an applied entry that had no effect (kOk otherwise); an error when the store
  // cannot be read.
  virtual Result<StatusCode> Outcome(const std::string& hub, uint64_t position) const = 0;
  // Drops log entries (and outcomes) below `position`. Bytes of log entries kept.
  virtual Status TrimLogBefore(const std::string& hub, uint64_t position) = 0;
  virtual uint64_t LogBytes(const std::string& hub) const = 0;

  // The view. An applier gathers what a run of applied entries changed (of any hubs) into
  // one ApplyBatch and commits it in one write. Commit never fsyncs: the entries are durable
  // in the log, and start-up re-applies everything after the last committed applied position.
  // When the write fails (a full disk) Commit returns kUnavailable but keeps the batch and
  // writes it, before any later one, on a later call: the caller never has to block or retry.
  virtual std::unique_ptr<ApplyBatch> NewApplyBatch() = 0;
  virtual Status Commit(std::unique_ptr<ApplyBatch> batch) = 0;
  // One entry's changes in a batch of their own.
  Status CommitApply(const std::string& hub, uint64_t position, const Entry& entry,
                     const ApplyResult& result) {
    auto batch = NewApplyBatch();
    batch->Add(hub, position, entry, result);
    return Commit(std::move(batch));
  }
  virtual Result<uint64_t> AppliedPosition(const std::string& hub) const = 0;
  // The hub's whole view state as stored (connections with their ackIds in arrival order,
  // remembered memberships, the applied position and time).
  virtual Result<ViewState> LoadViewState(const std::string& hub) const = 0;
  // Replaces everything stored of `hub` (log, outcomes, view) with `state` at `epoch`, in
  // one write: a node that loads a snapshot, or finds its hub's log recreated.
  virtual Status InstallViewState(const std::string& hub, uint64_t epoch,
                                  const ViewState& state) = 0;

  // The engine's own state for monitoring, as (name, value) pairs: sizes in bytes, counts
  // (RocksStore: live data, SST files, memtables, pending compaction, background errors).
  virtual std::vector<std::pair<std::string, uint64_t>> EngineStats() const { return {}; }
};

}  // namespace hubcast::storage
