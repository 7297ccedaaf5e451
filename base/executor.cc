#include "base/executor.h"

namespace hubcast {
namespace {
thread_local bool non_blocking = false;
}

void MarkNonBlockingThread() { non_blocking = true; }
bool OnNonBlockingThread() { return non_blocking; }

}  // namespace hubcast
