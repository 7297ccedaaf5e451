// SubprotocolCodec: everything one WebSocket subprotocol decides about bytes on the wire, so
// the gateway knows none of their details (ARCHITECTURE.md, "Encoding once").
//
//   - Upstream: a client's data frame becomes a ClientMessage (client_message.h); a malformed
//     frame is an error the connection answers by closing with 1003.
//   - Downstream: a data message is encoded once per subprotocol into an EncodedMessage that
//     every recipient of that subprotocol shares; a reliable subprotocol adds only a small
//     per-recipient head (the WebSocket header and the sequence number) before the shared
//     body. Service messages (connected, disconnected, ack, pong, and client SDK 1.1's
//     invokeResponse, stream acks and group state) are whole frames; a subprotocol without
//     them (raw) returns empty strings.
//
// Implementations: JSON and reliable JSON, raw (codec.cc over json_codec.h), protobuf and
// reliable protobuf (protobuf_codec.cc). Codecs are stateless singletons: every method is const
// and thread-safe.
#pragma once

#include "base/shared_bytes.h"
#include "base/status.h"
#include "server/client_message.h"
#include "server/ws_frame.h"
#include "storage/entry.h"
#include "storage/hub_view.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::server {

// One value per codec; kept in connection handles (8 bits) and as an array index.
enum class ClientProtocol : uint8_t {
  kRaw = 0,
  kJson = 1,
  kJsonReliable = 2,
  kProtobuf = 3,
  kProtobufReliable = 4,
};
inline constexpr size_t kProtocolCount = 5;

inline constexpr const char* kJsonProtocol = "json.webpubsub.azure.v1";
inline constexpr const char* kJsonReliableProtocol = "json.reliable.webpubsub.azure.v1";
inline constexpr const char* kProtobufProtocol = "protobuf.webpubsub.azure.v1";
inline constexpr const char* kProtobufReliableProtocol = "protobuf.reliable.webpubsub.azure.v1";

// The answer to an invoke (client SDK 1.1 invokeEvent): the event handler's answer (data
// optional), or a failure with an error name.
struct InvokeResult {
  bool success = false;
  std::optional<storage::DataType> data_type;  // nullopt: no data
  std::string data;
  std::string error_name;
  std::string error_message;
};

// Why a group stream was closed, as its publisher is told (streamClosed).
struct StreamError {
  std::string name;
  std::string message;
};

// A data message as each subprotocol sends it, encoded once and shared by every recipient.
struct EncodedMessage {
  std::array<SharedBytes, kProtocolCount> shared;  // indexed by ClientProtocol
  int64_t expire_unix_ms = 0;                      // messageTtlSeconds; 0 = never
};

class SubprotocolCodec {
 public:
  virtual ~SubprotocolCodec() = default;
  virtual ClientProtocol protocol() const = 0;
  // The Sec-WebSocket-Protocol value; empty for raw clients.
  virtual std::string_view name() const = 0;
  // Numbers data messages (sequenceId), so a dropped connection can be recovered.
  virtual bool reliable() const = 0;

  // Fills m->shared[protocol()] (and may fill a sibling's slot from the same buffer).
  virtual void Encode(const storage::Entry& message, EncodedMessage* m) const = 0;
  // What a recipient queues: the whole frame, or for a reliable codec the body that follows
  // ReliableHead.
  const SharedBytes& Shared(const EncodedMessage& m) const {
    return m.shared[static_cast<size_t>(protocol())];
  }
  // Reliable codecs: the per-recipient bytes in front of a shared body of `body_size`.
  virtual std::string ReliableHead(uint64_t sequence_id, size_t body_size) const;

  virtual std::string Connected(const std::optional<std::string>& user_id,
                                std::string_view connection_id,
                                const std::optional<std::string>& reconnection_token) const = 0;
  virtual std::string Disconnected(std::string_view reason) const = 0;
  virtual std::string Ack(uint64_t ack_id, const Status& status) const = 0;
  virtual std::string Pong() const = 0;
  virtual std::string InvokeResponse(std::string_view invocation_id,
                                     const InvokeResult& result) const = 0;
  // To a stream's publisher: the next sequence id the service expects (everything before it
  // is durable), a refused message, or the stream's end (error: why, if it failed).
  virtual std::string StreamAck(std::string_view stream_id, uint64_t expected) const = 0;
  virtual std::string StreamNack(std::string_view stream_id, uint64_t expected,
                                 std::string_view name, std::string_view message) const = 0;
  virtual std::string StreamClosed(std::string_view stream_id,
                                   const std::optional<StreamError>& error) const = 0;
  // groupStateSnapshot (snapshot) or groupStateUpdate.
  virtual std::string GroupState(bool snapshot, std::string_view group,
                                 const std::vector<storage::GroupStateItem>& items) const = 0;

  // A text or binary frame. kInvalidArgument: the frame is malformed (close 1003).
  // `frame.payload` may be moved from.
  virtual Result<ClientMessage> Decode(WsMessage& frame) const = 0;
};

const SubprotocolCodec& CodecFor(ClientProtocol protocol);
// The codec of a negotiated subprotocol name: raw for none or one the service does not know
// (a connect handler may choose a custom one; the client then speaks raw frames).
const SubprotocolCodec& CodecByName(std::string_view subprotocol);
// The first offered subprotocol the service speaks, if any.
const SubprotocolCodec* Negotiate(const std::vector<std::string>& offered);

}  // namespace hubcast::server
