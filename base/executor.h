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

// Wake-ups of other threads asked for by an event loop are batched per round of the loop: a
// wake asked for while the loop handles one round of events runs once the round is over
// (before the loop waits again). The appends a loop makes in one round (one REST request or
// client message each) then wake the log writer once instead of once each; on a 2-core
// machine every wake is a context switch. On any other thread the wake runs at once.
void WakeAfterThisRound(std::function<void()> wake);
// For event loops: from now on this thread's wakes wait for RunRoundWakes.
void DeferWakesToRoundEnd();
// For event loops, at the end of every round: runs the wakes asked for during it.
void RunRoundWakes();

}  // namespace hubcast
