#include "base/clock.h"
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
    // Asynchronous and unacknowledged: a lost checkpoint only means a longer replay after a
    // restart, and the connection queues a new one when its client acknowledges more.
    slot.first->Append(std::move(slot.second));
  }
}

}  // namespace hubcast::server
