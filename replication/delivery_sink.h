// DeliverySink: how applied entries reach sockets. Declared here, implemented by the gateway
// in server/, so the lower layers never include it.
//
// Contract: Deliver is called on the hub's applier thread, once per applied entry, in log
// order per hub, right after HubView::Apply; different hubs' entries may be delivered
// concurrently from different appliers. `result.recipients` points into the view and is valid
// only during the call. Implementations must not wait for I/O; they may wait briefly for room
// in a bounded socket-thread inbox (that is how a slow socket layer slows the appliers).
// They may call hub.AttachLocal for a connection the entry opened on this node.
#pragma once

#include "storage/entry.h"
#include "storage/hub_view.h"

#include <cstdint>

namespace hubcast::replication {

class Hub;

class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  virtual void Deliver(Hub& hub, uint64_t position, const storage::Entry& entry,
                       const storage::ApplyResult& result) = 0;
};

}  // namespace hubcast::replication
