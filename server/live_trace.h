// LiveTrace: what happens in one hub, as it is applied on this node, for the dashboard's live
// trace (like Azure's live trace tool): connects, disconnects, group joins and leaves, and
// messages with their payload cut short. Every node applies every entry of a hub, so one
// node's trace shows the hub's whole activity, whichever node the clients are on.
//
// Cost when nobody watches: one relaxed load of an atomic that only changes when a watcher
// comes or goes (Record returns at once). With watchers, the applier formats a few hundred
// bytes of JSON per entry of a watched hub into each watcher's bounded queue; a watcher that
// does not keep up loses the oldest events (and is told how many), never slows the applier.
//
// Trace events carry payloads (cut to kPayloadBytes): they reach only holders of an access
// key, and are never logged.
//
// Thread-safety: Record on the appliers, Watch and Next on any thread (the admin listener's).
#pragma once

#include "storage/entry.h"
#include "storage/hub_view.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::server {

class LiveTrace {
 public:
  static constexpr size_t kPayloadBytes = 128;
  static constexpr size_t kMaxQueued = 1000;

  class Watcher {
   public:
    // The next event (a JSON object), waiting up to `wait`; nullopt when none came.
    std::optional<std::string> Next(std::chrono::milliseconds wait);

   private:
    friend class LiveTrace;
    std::string hub_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> events_;
    uint64_t lost_ = 0;
  };

  // Watches `hub` until the returned watcher is dropped.
  std::shared_ptr<Watcher> Watch(const std::string& hub);
  // Applier thread: one applied entry of `hub`.
  void Record(const std::string& hub, uint64_t position, const storage::Entry& entry,
              const storage::ApplyResult& result) {
    if (watching_.load(std::memory_order_relaxed) == 0) return;
    RecordSlow(hub, position, entry, result);
  }

 private:
  void RecordSlow(const std::string& hub, uint64_t position, const storage::Entry& entry,
                  const storage::ApplyResult& result);
  void Forget(Watcher* watcher);

  std::atomic<int> watching_{0};
  std::mutex mu_;
  std::vector<Watcher*> watchers_;
};

// The JSON events of one applied entry (exposed for tests): objects with "type" (connect,
// disconnect, join, leave, message), "position", "time" (the entry's, Unix ms) and details.
std::vector<std::string> TraceEvents(uint64_t position, const storage::Entry& entry,
                                     const storage::ApplyResult& result);

}  // namespace hubcast::server
