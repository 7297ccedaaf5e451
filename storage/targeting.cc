#include "storage/targeting.h"

#include <algorithm>

namespace hubcast::storage {

bool EntrySelects(const Entry& e, const ConnectionRecord& c) {
  switch (e.scope) {
    case Scope::kAll:
      break;
    case Scope::kGroup:
      if (!c.groups.count(e.target)) return false;
      break;
    case Scope::kUser:
      if (!c.user_id || *c.user_id != e.target) return false;
      break;
    case Scope::kConnection:
      if (c.id != e.target) return false;
      break;
  }
  if (!e.excluded.empty() &&
      std::find(e.excluded.begin(), e.excluded.end(), c.id) != e.excluded.end()) {
    return false;
  }
  if (e.filter) {
    FilterSubject s;
    s.connection_id = c.id;
    s.user_id = c.user_id ? &*c.user_id : nullptr;
    s.groups = &c.groups;
    s.protocol = c.subprotocol;
    if (!e.filter->Matches(s)) return false;
  }
  return true;
}

bool SendTargets(const Entry& e, const ConnectionRecord& c) {
  if (e.no_echo && c.id == e.origin_connection) return false;
  return EntrySelects(e, c);
}

}  // namespace hubcast::storage
