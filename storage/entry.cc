#include "storage/entry.h"

namespace hubcast::storage {

const char* DataTypeName(DataType t) {
  switch (t) {
    case DataType::kJson:
      return "json";
    case DataType::kText:
      return "text";
    case DataType::kBinary:
      return "binary";
    case DataType::kProtobuf:
      return "protobuf";
  }
  return "binary";
}

bool IsKnownEntryKind(uint64_t value) {
  return (value >= static_cast<uint64_t>(EntryKind::kConnectionOpen) &&
          value <= static_cast<uint64_t>(EntryKind::kConnectionState)) ||
         value == static_cast<uint64_t>(EntryKind::kGroupState) ||
         value == static_cast<uint64_t>(EntryKind::kGroupStateSubscription);
}

}  // namespace hubcast::storage
