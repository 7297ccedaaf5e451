// Which connections an entry selects, decided for one connection from the entry and that
// connection's own state. HubView uses it when applying (after narrowing candidates by scope
// through its indexes) and replay uses it when it counts a reliable connection's sequence
// numbers forward from a checkpoint, so both always agree.
//
// Pure functions; thread-safe.
#pragma once

#include "storage/entry.h"
#include "storage/hub_view.h"

namespace hubcast::storage {

// Scope (all / group member / user / connection id), `excluded` and `filter`.
bool EntrySelects(const Entry& entry, const ConnectionRecord& connection);

// For kSend: EntrySelects and not the origin of a no-echo message.
bool SendTargets(const Entry& entry, const ConnectionRecord& connection);

}  // namespace hubcast::storage
