// SubprotocolCodec: everything one WebSocket subprotocol decides about bytes on the wire, so
// the gateway knows none of their details (ARCHITECTURE.md, "Encoding once").
//
//   - Upstream: a client's data frame becomes a ClientMessage (client_message.h); a malformed
//     frame is an error the connection answers by closing with 1003.
//   - Downstream: a data message is encoded once per subprotocol into an EncodedMessage that
//     every recipient of that subprotocol shares; a reliable subprotocol adds only a small
//     per-recipient head (the WebSocket header and the sequence number) before the shared
//     body. Service messages (connected, disconnected, ack, pong) are whole frames; a
//     subprotocol without them (raw) returns empty strings.
//
// Implementations: JSON and reliable JSON (json_codec.cc), raw (raw_codec.cc). Codecs are
// stateless singletons: every method is const and thread-safe.
#pragma once

#include "base/shared_bytes.h"
#include "base/status.h"
#include "server/client_message.h"
#include "server/ws_frame.h"
#include "storage/entry.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::server {

// One value per codec; kept in connection handles (8 bits) and as an array index.
enum class ClientProtocol : uint8_t { kRaw = 0, kJson = 1, kJsonReliable = 2 };
inline constexpr size_t kProtocolCount = 3;

inline constexpr const char* kJsonProtocol = "json.webpubsub.azure.v1";
inline constexpr const char* kJsonReliableProtocol = "json.reliable.webpubsub.azure.v1";

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

  // A text or binary frame. kInvalidArgument: the frame is malformed (close 1003).
  virtual Result<ClientMessage> Decode(WsMessage& frame) const = 0;
};

const SubprotocolCodec& CodecFor(ClientProtocol protocol);
// The codec of a negotiated subprotocol name: raw for none or one the service does not know
// (a connect handler may choose a custom one; the client then speaks raw frames).
const SubprotocolCodec& CodecByName(std::string_view subprotocol);
// The first offered subprotocol the service speaks, if any.
const SubprotocolCodec* Negotiate(const std::vector<std::string>& offered);

}  // namespace hubcast::server
