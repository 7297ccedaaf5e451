#include "storage/replay.h"

#include "storage/entry_codec.h"
#include "storage/targeting.h"

namespace hubcast::storage {

Result<ReplayResult> ReplayConnection(
    const Store& store, const std::string& hub, const ConnectionRecord& connection,
    const Checkpoint& from, uint64_t to, uint64_t after_seq,
    const std::function<void(uint64_t, uint64_t, const Entry&)>& on_message) {
  ConnectionRecord state;
  state.id = connection.id;
  state.user_id = connection.user_id;
  state.subprotocol = connection.subprotocol;
  state.reliable = true;
  state.groups = {from.groups.begin(), from.groups.end()};
  ReplayResult out;
  out.seq = from.seq;
  if (to <= from.position) {
    out.groups = state.groups;
    return out;
  }
  uint64_t expected = from.position + 1;
  Status failure;
  Status scan = store.ScanLog(hub, expected, to, [&](uint64_t pos, std::string_view bytes) {
    if (pos != expected) {
      failure = Status::NotFound("log entry " + std::to_string(expected) + " has left retention");
      return false;
    }
    ++expected;
    auto decoded = DecodeEntry(bytes);
    if (!decoded.ok()) {
      failure = decoded.status();
      return false;
    }
    const Entry& e = *decoded;
    auto outcome = store.Outcome(hub, pos);
    if (!outcome.ok()) {
      failure = outcome.status();
      return false;
    }
    if (*outcome != StatusCode::kOk) return true;  // it changed nothing
    switch (e.kind) {
      case EntryKind::kConnectionClose:
        if (e.origin_connection == state.id) out.closed = true;
        break;
      case EntryKind::kCloseConnections:
        if (EntrySelects(e, state)) out.closed = true;
        break;
      case EntryKind::kAddToGroups:
        if (EntrySelects(e, state)) state.groups.insert(e.groups.begin(), e.groups.end());
        break;
      case EntryKind::kRemoveFromGroups:
        if (EntrySelects(e, state)) {
          if (e.groups.empty()) {
            state.groups.clear();
          } else {
            for (const auto& g : e.groups) state.groups.erase(g);
          }
        }
        break;
      case EntryKind::kSend:
        if (SendTargets(e, state)) {
          ++out.seq;
          if (out.seq > after_seq) on_message(out.seq, pos, e);
        }
        break;
      default:
        break;
    }
    return !out.closed;
  });
  if (!failure.ok()) return failure;
  if (!scan.ok()) return scan;
  if (!out.closed && expected <= to) {
    return Status::NotFound("log entry " + std::to_string(expected) + " has left retention");
  }
  out.groups = state.groups;
  return out;
}

Result<ViewState> LoadViewForStart(const Store& store, const std::string& hub,
                                   std::vector<std::string>* uncountable) {
  auto state = store.LoadViewState(hub);
  if (!state.ok()) return state.status();
  for (ConnectionState& cs : state->connections) {
    ConnectionRecord& rec = cs.record;
    if (!rec.reliable || rec.checkpoints.empty()) continue;
    auto counted = ReplayConnection(store, hub, rec, rec.checkpoints.back(),
                                    state->applied_position, UINT64_MAX,
                                    [](uint64_t, uint64_t, const Entry&) {});
    if (counted.status().code() == StatusCode::kNotFound) {
      uncountable->push_back(rec.id);
      continue;
    }
    if (!counted.ok()) {
      return Status(counted.status().code(), "hub " + hub + ": recounting connection " + rec.id +
                                                 ": " + counted.status().message());
    }
    rec.seq = counted->seq;
  }
  return state;
}

}  // namespace hubcast::storage
