// Client SDK 1.1 group state (presence): setGroupState, subscribeGroupState and
// unsubscribeGroupState become log entries (the state must survive a restart and be the same on
// every node); the view decides and the fan-out delivers groupStateSnapshot / groupStateUpdate
// (storage/hub_view.h, docs/PROTOCOL-DECISIONS.md "Group state").
#include "base/clock.h"
#include "base/names.h"
#include "server/client_connection.h"
#include "server/json_codec.h"

namespace hubcast::server {
namespace {

// "A small state each": bounds on what one member may set in one group.
constexpr size_t kMaxStateKeys = 32;
constexpr size_t kMaxStateKeyBytes = 128;
constexpr size_t kMaxStateBytes = 4096;  // the whole state as compact JSON

Status ValidateState(const std::map<std::string, std::string>& state, const std::string& json) {
  if (state.size() > kMaxStateKeys) {
    return Status::InvalidArgument("A group state holds at most " + std::to_string(kMaxStateKeys) +
                                   " keys.");
  }
  for (const auto& [key, value] : state) {
    if (key.empty() || key.size() > kMaxStateKeyBytes) {
      return Status::InvalidArgument("A group state key is 1 to " +
                                     std::to_string(kMaxStateKeyBytes) + " bytes long.");
    }
  }
  if (json.size() > kMaxStateBytes) {
    return Status::InvalidArgument("A group state is at most " + std::to_string(kMaxStateBytes) +
                                   " bytes of JSON.");
  }
  return Status::Ok();
}

}  // namespace

void ClientConnection::HandleGroupState(ClientMessage& m) {
  auto reject = [&](const Status& s) {
    if (m.ack_id) {
      SendControl(codec_->Ack(*m.ack_id, s));
    } else {
      LogIgnored(m, s.message());
    }
  };
  if (Status s = ValidateGroupName(m.group); !s.ok()) return reject(s);
  storage::Entry e;
  e.timestamp_ms = SystemClock::Get().NowUnixMs();
  e.origin_connection = init_.id;
  e.ack_id = m.ack_id;
  e.target = m.group;
  if (m.type == ClientMessageType::kSetGroupState) {
    e.kind = storage::EntryKind::kGroupState;
    if (m.group_state) {
      std::string json = GroupStateJson(*m.group_state);
      if (Status s = ValidateState(*m.group_state, json); !s.ok()) return reject(s);
      e.group_state = std::move(json);
    }
  } else {
    e.kind = storage::EntryKind::kGroupStateSubscription;
    e.subscribe = m.type == ClientMessageType::kSubscribeGroupState;
  }
  AppendCommand(std::move(e));
}

}  // namespace hubcast::server
