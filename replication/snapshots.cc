#include "replication/snapshots.h"

#include "base/log.h"
#include "base/random.h"
#include "replication/nats_internal.h"
#include "replication/nats_log.h"

#include <sstream>
#include <vector>

namespace hubcast::replication {
namespace {

using nats::FromNats;
using nats::MsgPtr;

// Not "HUBCAST_...": that prefix names hub streams.
constexpr const char* kStream = "HUBCAST-SNAPSHOTS";
constexpr const char* kHeader = "Hubcast-Snapshot";
constexpr size_t kChunk = 256 * 1024;

std::string ChunkSubject(const std::string& hub, size_t i) {
  return "hubcast.snapshot." + NatsTokenOfHub(hub) + "." + std::to_string(i);
}

struct ChunkHeader {
  std::string id;
  uint64_t chunks = 0, position = 0, epoch = 0;
};

std::optional<ChunkHeader> ParseHeader(natsMsg* msg) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(msg, kHeader, &v) != NATS_OK || v == nullptr) return std::nullopt;
  std::istringstream in(v);
  ChunkHeader h;
  if (!(in >> h.id >> h.chunks >> h.position >> h.epoch) || h.chunks == 0 ||
      h.chunks > (uint64_t{1} << 20)) {
    return std::nullopt;
  }
  return h;
}

class JetStreamSnapshots final : public SnapshotStore {
 public:
  explicit JetStreamSnapshots(NatsConnection* connection)
      : conn_(nats::Internal(*connection)) {}

  Status Init(const JetStreamSnapshotOptions& options) {
    const char* subjects[] = {"hubcast.snapshot.>"};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = kStream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.MaxMsgsPerSubject = 1;
    cfg.Replicas = options.replicas;
    cfg.AllowDirect = true;
    jsPlacement placement;
    const char* tags[1];
    if (!options.placement_tag.empty()) {
      jsPlacement_Init(&placement);
      tags[0] = options.placement_tag.c_str();
      placement.Tags = tags;
      placement.TagsLen = 1;
      cfg.Placement = &placement;
    }
    jsStreamInfo* si = nullptr;
    jsErrCode code{};
    jsOptions o;
    jsOptions_Init(&o);
    natsStatus s = js_GetStreamInfo(&si, conn_.js(), kStream, &o, &code);
    if (si) jsStreamInfo_Destroy(si);
    if (s != NATS_NOT_FOUND) return FromNats(s, "reading the snapshot stream", code);
    si = nullptr;
    jsErrCode add_code{};
    s = js_AddStream(&si, conn_.js(), &cfg, &o, &add_code);
    if (si) jsStreamInfo_Destroy(si);
    if (s == NATS_OK) return Status::Ok();
    // Created concurrently by another node: fine.
    si = nullptr;
    if (js_GetStreamInfo(&si, conn_.js(), kStream, &o, &code) == NATS_OK) {
      jsStreamInfo_Destroy(si);
      return Status::Ok();
    }
    const char* why = nats_GetLastError(nullptr);
    return FromNats(s, std::string("creating the snapshot stream") + (why ? ": " : "") +
                           (why ? why : ""),
                    add_code);
  }

  Status Save(const std::string& hub, const Snapshot& snap) override {
    std::string id = RandomHex(8);
    size_t chunks = std::max<size_t>(1, (snap.bytes.size() + kChunk - 1) / kChunk);
    std::string header = id + " " + std::to_string(chunks) + " " + std::to_string(snap.position) +
                         " " + std::to_string(snap.epoch);
    // Chunk 0 last: once it is there, the whole snapshot is.
    for (size_t k = 0; k < chunks; ++k) {
      size_t i = (k + 1) % chunks;
      size_t off = i * kChunk;
      size_t len = std::min(kChunk, snap.bytes.size() - std::min(off, snap.bytes.size()));
      std::string subject = ChunkSubject(hub, i);
      natsMsg* raw = nullptr;
      natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, snap.bytes.data() + off,
                                    static_cast<int>(len));
      MsgPtr msg(raw);
      if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), kHeader, header.c_str());
      jsPubAck* ack = nullptr;
      jsErrCode code{};
      if (s == NATS_OK) s = js_PublishMsg(&ack, conn_.js(), msg.get(), nullptr, &code);
      if (ack) jsPubAck_Destroy(ack);
      if (s != NATS_OK) return FromNats(s, "hub " + hub + ": writing a snapshot", code);
    }
    return Status::Ok();
  }

  Result<std::optional<Snapshot>> Latest(const std::string& hub) override {
    // A snapshot being overwritten while it is read shows as chunks of two ids: read again.
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto first = Chunk(hub, 0);
      if (!first.ok()) {
        if (first.status().code() == StatusCode::kNotFound) return std::optional<Snapshot>();
        return first.status();
      }
      auto h0 = ParseHeader(first->get());
      if (!h0) return Status::InvalidArgument("hub " + hub + ": a snapshot chunk is malformed");
      Snapshot snap{h0->epoch, h0->position, Data(first->get())};
      bool complete = true;
      for (uint64_t i = 1; i < h0->chunks && complete; ++i) {
        auto chunk = Chunk(hub, i);
        if (!chunk.ok() && chunk.status().code() != StatusCode::kNotFound) return chunk.status();
        auto h = chunk.ok() ? ParseHeader(chunk->get()) : std::nullopt;
        if (!h || h->id != h0->id) {
          complete = false;
          break;
        }
        snap.bytes += Data(chunk->get());
      }
      if (complete) {
        return std::optional<Snapshot>(std::move(snap));
      }
    }
    return Status::Unavailable("hub " + hub + ": the snapshot kept changing while it was read");
  }

 private:
  static std::string Data(natsMsg* m) {
    const char* d = natsMsg_GetData(m);
    return std::string(d ? d : "", static_cast<size_t>(natsMsg_GetDataLength(m)));
  }

  Result<MsgPtr> Chunk(const std::string& hub, uint64_t i) {
    natsMsg* raw = nullptr;
    jsErrCode code{};
    std::string subject = ChunkSubject(hub, i);
    natsStatus s = js_GetLastMsg(&raw, conn_.js(), kStream, subject.c_str(), nullptr, &code);
    if (s != NATS_OK) return FromNats(s, "hub " + hub + ": reading a snapshot", code);
    return MsgPtr(raw);
  }

  nats::Connection& conn_;
};

}  // namespace

Result<std::unique_ptr<SnapshotStore>> NewJetStreamSnapshots(NatsConnection* connection,
                                                             JetStreamSnapshotOptions options) {
  auto store = std::make_unique<JetStreamSnapshots>(connection);
  if (Status s = store->Init(options); !s.ok()) return s;
  return std::unique_ptr<SnapshotStore>(std::move(store));
}

}  // namespace hubcast::replication
