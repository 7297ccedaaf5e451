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

}  // namespace hubcast::storage
