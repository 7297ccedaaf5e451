// Executor: where a completion runs. Lower layers finish work on their own threads (the log
// writer, an applier, a NATS callback) and hand the result back to the thread that asked
// through the Executor it named: an event loop runs it from its inbox, so a socket thread
// never waits for the disk or the network.
//
// Also the marker for threads that must never block (event loops): code that may wait
// (Hub::AppendAndWait, read barriers) asserts it is not on one in debug builds.
//
// Thread-safety: Execute may be called from any thread.
#pragma once

#include <functional>

namespace hubcast {

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `task` later on the executor's thread, in the order Execute was called. Never blocks
  // and never drops a task: a completion that is lost would leave its caller waiting forever.
  virtual void Execute(std::function<void()> task) = 0;
};

// Marks the calling thread as one that must never block (set once by each event loop).
void MarkNonBlockingThread();
bool OnNonBlockingThread();

}  // namespace hubcast
