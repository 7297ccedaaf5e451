// DeliverySink: how applied entries reach sockets. Declared here, implemented by the gateway
// in server/, so the lower layers never include it.
//
// Contract: Deliver is called on the applier thread, once per applied entry, in log order
// per hub, right after HubView::Apply. `result.recipients` points into the view and is valid
// only during the call. Implementations must not block (post to event loops and return).
#pragma once

#include "base/names.h"
#include "storage/entry.h"
#include "storage/hub_view.h"

#include <cstdint>

namespace hubcast::replication {

class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  virtual void Deliver(const HubName& hub, uint64_t position, const storage::Entry& entry,
                       const storage::ApplyResult& result) = 0;
};

}  // namespace hubcast::replication
