// Store: a node's durable state in one RocksDB database (ARCHITECTURE.md: "nodes are RocksDB
// views of the log"). Column families:
//   meta     format version; per hub: epoch, applied position
//   log      hub \0 position(BE64) -> encoded entry (the hub log and its replay window)
//   outcome  hub \0 position(BE64) -> apply status code, only for entries that had no effect
//   conns    hub \0 connection id  -> encoded connection record (user, roles, permissions,
//            groups, reliable numbering and checkpoints)
//   members  hub \0 group \0 connection id -> "" (group membership index)
//   acks     hub \0 connection id \0 ackId(BE64) -> "" (processed ackIds, bounded history)
//   user_groups hub \0 user \0 group -> expiry(BE64 Unix ms) (remembered memberships)
// Everything an applied entry changes is written in one atomic WriteBatch together with the
// hub's applied position, so a crash never leaves a half-applied entry.
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
};

class Store {
 public:
  virtual ~Store() = default;

  // Opens or creates. Errors name the reason in one line: kUnavailable for a lock held by
  // another process, kInvalidArgument for corruption or a newer format, kInternal otherwise.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);

  // Hubs that have state, and each hub's epoch (created with `new_epoch` the first time).
  virtual std::vector<std::string> Hubs() const = 0;
  virtual Result<uint64_t> Epoch(const std::string& hub, uint64_t new_epoch) = 0;

  // The log. AppendLog is durable when it returns OK (kUnavailable when the disk is full).
  virtual Status AppendLog(const std::string& hub, uint64_t position, std::string_view entry) = 0;
  // 0 when the hub's log is empty.
  virtual uint64_t FirstLogPosition(const std::string& hub) const = 0;
  virtual uint64_t LastLogPosition(const std::string& hub) const = 0;
  // Entries in [from, to] in order until fn returns false.
  virtual Status ScanLog(const std::string& hub, uint64_t from, uint64_t to,
                         const std::function<bool(uint64_t, std::string_view)>& fn) const = 0;
  // Status of an applied entry that had no effect (OK otherwise).
  virtual StatusCode Outcome(const std::string& hub, uint64_t position) const = 0;
  // Drops log entries (and outcomes) below `position`. Bytes of log entries kept.
  virtual Status TrimLogBefore(const std::string& hub, uint64_t position) = 0;
  virtual uint64_t LogBytes(const std::string& hub) const = 0;

  // The view. CommitApply writes what applying `entry` at `position` changed. When the write
  // fails (a full disk) it returns kUnavailable but keeps the batch and writes it, before any
  // later one, on a later call: the caller never has to block or retry.
  virtual Status CommitApply(const std::string& hub, uint64_t position, const Entry& entry,
                             const ApplyResult& result) = 0;
  virtual uint64_t AppliedPosition(const std::string& hub) const = 0;
  virtual Status LoadUserGroups(
      const std::string& hub,
      const std::function<void(const std::string& user, const std::string& group,
                               int64_t expires_at_ms)>& fn) const = 0;
  // Every stored connection with its remembered ackIds (oldest first).
  virtual Status LoadConnections(
      const std::string& hub,
      const std::function<void(ConnectionRecord, std::vector<uint64_t>)>& fn) const = 0;
};

}  // namespace hubcast::storage
