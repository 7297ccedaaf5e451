// HubLog: the ordered, durable log of one hub's commands (ARCHITECTURE.md, "every hub is a
// replicated log"), and LogProvider, which opens the log of each hub. Positions are uint64,
// strictly increasing from 1 within one LogEpoch.
//
// Two implementations side by side: LocalLog (local_log.cc: embedded, one process; a writer
// thread commits whatever is queued, for every hub, in one store write per round) and NatsLog
// (nats_log.cc: one JetStream stream per hub; the stream sequence is the position).
//
// Contract:
//   1. Append never blocks and never waits for I/O. `durable` runs exactly once, on a log
//      thread: with the position once the entry is durable, or with why nothing was appended.
//      It must not block (post to an executor and return).
//   2. Every durable entry - this node's and, for a replicated log, every other node's - is
//      handed to the consumer exactly once, in position order, on a log thread, after its
//      `durable` ran. The consumer may block briefly (a full applier queue slows the log, not
//      a socket).
//   3. A record carries the appender's `applied` completion when this node appended it. The
//      completion travels with the record (LocalLog) or is matched by the append's request
//      id (NatsLog: the Nats-Msg-Id), never by position, which a remote log assigns.
//   4. Start(after) begins the hand-over with the first entry after `after` (the position
//      the node's view has applied); entries appended meanwhile follow in order. It fails
//      with kNotFound when entries after `after` have left the log's retention: the caller
//      loads a snapshot and starts from its position instead.
//   5. `request_id`, when given, identifies the command across appenders: a replicated log
//      keeps one entry for any number of appends with the same id within its de-duplication
//      window (NatsLog: the Nats-Msg-Id). Empty: the log makes one.
#pragma once

#include "base/names.h"
#include "base/status.h"
#include "storage/entry.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::replication {

using DurableFn = std::function<void(Result<uint64_t> position)>;
using AppliedFn = std::function<void(uint64_t position, const Status& applied)>;

// An entry in log order, as a log hands it to its consumer.
struct LogRecord {
  uint64_t position = 0;
  storage::EntryPtr entry;
  // The encoded entry when the node's replay log does not hold it yet (a replicated log):
  // apply writes it there. Empty when the log stored it itself (LocalLog).
  std::string encoded;
  // The appender's completion when this node appended the entry; empty otherwise.
  AppliedFn applied;
};

class HubLog {
 public:
  using Consumer = std::function<void(LogRecord record)>;
  virtual ~HubLog() = default;

  // Set once, before Start.
  virtual void SetConsumer(Consumer consumer) = 0;
  virtual Status Start(uint64_t after) = 0;
  virtual void Append(storage::EntryPtr entry, DurableFn durable, AppliedFn applied,
                      const std::string& request_id = {}) = 0;
  // The position of the last entry acknowledged as durable to anyone, anywhere: what a read
  // barrier waits for. May wait for a round trip (NatsLog): never call it on an event loop.
  virtual Result<uint64_t> Head() = 0;
  // Fixed when the log is created; a recreated log has a different epoch.
  virtual uint64_t epoch() const = 0;
  // Entries in the log not yet handed to this node's consumer, as last known (NatsLog: the
  // consumer's pending count); nullopt for a log without one (LocalLog). Any thread.
  virtual std::optional<uint64_t> consumer_lag() const { return std::nullopt; }
};

class LogProvider {
 public:
  virtual ~LogProvider() = default;
  // Hubs that have a log: every hub to load at start-up.
  virtual Result<std::vector<std::string>> Hubs() = 0;
  // The log of `hub`; created when `create`, else kNotFound for a hub without one.
  virtual Result<std::unique_ptr<HubLog>> Open(const HubName& hub, bool create) = 0;
  // After Stop, appends fail (kUnavailable); what was queued before is made durable (or
  // failed) and handed over first.
  virtual void Stop() = 0;
};

}  // namespace hubcast::replication
