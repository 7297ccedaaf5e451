// Fuzz target for the protobuf subprotocols' decoder (server/protobuf_codec.h): any bytes a
// client sends in a binary frame. Decoding must never crash, hang or read out of bounds; a
// frame it accepts must decode the same way twice, and a protobuf payload it accepts must be a
// google.protobuf.Any that protobuf recipients can parse. Seeds: corpus/protobuf_codec/.
#include "server/protobuf_codec.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hubcast::server::ClientMessageType;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto first = hubcast::server::DecodeProtobufClientMessage(bytes);
  auto second = hubcast::server::DecodeProtobufClientMessage(bytes);
  if (first.ok() != second.ok()) std::abort();
  if (!first.ok()) return 0;
  if (first->type != second->type || first->data != second->data) std::abort();
  if (first->data_type == hubcast::storage::DataType::kProtobuf && !first->invalid_reason &&
      !hubcast::server::IsProtobufAny(first->data)) {
    std::abort();
  }
  (void)hubcast::server::IsProtobufAny(bytes);
  return 0;
}
