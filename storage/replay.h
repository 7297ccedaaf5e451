// Replay: what the log sent to one reliable connection after a checkpoint, numbered exactly
// as it was first numbered (ARCHITECTURE.md, "Reliable subprotocol").
//
// Starting from checkpoint (P, S, groups), it walks the log entries in (P, to], tracks the
// connection's own state (groups; whether it was closed) with the same predicate apply uses
// (storage/targeting.h), skips entries whose apply had no effect (their stored outcome), and
// counts each message that targeted the connection: the k-th one after P is number S + k.
// A position missing from (P, to] means the entries left retention: replay fails (kNotFound)
// rather than skipping messages.
//
// Thread-safety: reads the store only; safe from any thread.
#pragma once

#include "base/status.h"
#include "storage/entry.h"
#include "storage/hub_view.h"
#include "storage/store.h"

#include <cstdint>
#include <functional>
#include <set>
#include <string>

namespace hubcast::storage {

struct ReplayResult {
  uint64_t seq = 0;              // the connection's last number at `to`
  bool closed = false;           // the connection was closed within (P, to]
  std::set<std::string> groups;  // its groups at `to` (or when it closed)
};

// Calls on_message(seq, position, entry) for every message numbered above `after_seq`.
Result<ReplayResult> ReplayConnection(
    const Store& store, const std::string& hub, const ConnectionRecord& connection,
    const Checkpoint& from, uint64_t to, uint64_t after_seq,
    const std::function<void(uint64_t seq, uint64_t position, const Entry& entry)>& on_message);

// A hub's view state as the store holds it, with each reliable connection's numbering
// counted forward from its newest checkpoint to the applied position (the stored record's
// count is only as fresh as its last write: plain sends do not write it). A connection whose
// entries left retention keeps its stored count and is reported in `*uncountable` (it can no
// longer be recovered); any other failure is an error.
Result<ViewState> LoadViewForStart(const Store& store, const std::string& hub,
                                   std::vector<std::string>* uncountable);

}  // namespace hubcast::storage
