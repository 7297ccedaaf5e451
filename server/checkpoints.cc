#include "base/clock.h"
#include "base/log.h"
#include "server/gateway.h"

namespace hubcast::server {

void Gateway::QueueCheckpoint(int loop, const std::shared_ptr<replication::Hub>& hub,
                              const std::string& connection_id, uint64_t acked) {
  auto& slot = loops_[loop]->checkpoints[hub.get()];
  if (!slot.first) {
    slot.first = hub;
    slot.second.kind = storage::EntryKind::kCheckpoint;
  }
  slot.second.acks.emplace_back(connection_id, acked);
}

void Gateway::FlushCheckpoints(int loop) {
  auto pending = std::move(loops_[loop]->checkpoints);
  loops_[loop]->checkpoints.clear();
  for (auto& [key, slot] : pending) {
    slot.second.timestamp_ms = SystemClock::Get().NowUnixMs();
    // Asynchronous: nothing waits for it. A refused one (a full queue or disk) is queued again
    // for the next tick: a checkpoint left out would make a later recovery replay from an
    // older one, which the replay log may have trimmed by then.
    replication::AppendCallbacks cb;
    cb.executor = loops_[loop]->loop.get();
    cb.durable = [this, loop, hub = slot.first, acks = slot.second.acks](Result<uint64_t> r) {
      if (r.ok()) return;
      Logger("checkpoint")
          .With("hub", hub->name().str())
          .Warn("checkpoint of ", acks.size(),
                " connections not appended, retried: ", r.status().message());
      for (const auto& [id, acked] : acks) QueueCheckpoint(loop, hub, id, acked);
    };
    slot.first->Append(std::move(slot.second), std::move(cb));
  }
}

}  // namespace hubcast::server
