#include "replication/nats_log.h"

#include "base/log.h"
#include "base/random.h"
#include "replication/nats_internal.h"
#include "storage/entry_codec.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hubcast::replication {
namespace {

using nats::FromNats;
using nats::MsgPtr;
using nats::StreamInfoPtr;

constexpr const char* kStreamPrefix = "HUBCAST_";
constexpr const char* kSubjectPrefix = "hubcast.hub.";
constexpr const char* kMsgIdHeader = "Nats-Msg-Id";

// Letters, digits and '_' stay; anything else (hub names may hold .,[]`) becomes -XX. '-'
// never occurs in a hub name, so the mapping is one to one.
std::string Escape(const std::string& hub) {
  std::string out;
  for (unsigned char c : hub) {
    if (std::isalnum(c) || c == '_') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "-%02x", c);
      out += buf;
    }
  }
  return out;
}

class Provider;

// How a hub's log is consumed, and why this way (the repair of a consumer used to race
// nats.c's own reset of an ordered consumer: a use-after-free of the consumer's name):
//   1. Each subscription is a Feed: an explicit ephemeral push consumer (no acks, flow
//      control, idle heartbeats, one in-memory replica) that delivers from the entry after the
//      last one handed over. It is not an `Ordered` consumer, so nats.c never resets or
//      re-creates it behind our back: the consumer and its subscription change only here.
//   2. Every delivery carries its consumer sequence; the feed expects 1, 2, 3... A gap (the
//      client dropped messages) makes the feed broken: it hands over nothing more, and the
//      repair thread re-creates it. So do missed heartbeats, a slow consumer and a sequence
//      mismatch that nats.c reports for it.
//   3. Handing over is serialized (handle_mu_) and takes only the feed that is current and
//      not broken, and only the stream position after the last one handed over: an entry is
//      handed at most once and in order, and a replaced feed still finishing a callback hands
//      nothing.
//   4. Only the repair thread (Restart) and the log's own Stop tear a feed down; each takes
//      the feed out of `current_` under handle_mu_ first, so one teardown per feed. Restart
//      reads the position to resume from in the same step: nothing between is lost.
//   5. A feed's memory lives until nats.c reports that its last callback returned
//      (natsSubscription_SetOnCompleteCB); the log's destructor waits for that, so no
//      callback runs on a destroyed log. A feed that never got a subscription is reused by
//      the next attempt instead of freed.
class NatsLog final : public HubLog {
 public:
  NatsLog(Provider* provider, std::string hub, uint64_t epoch)
      : provider_(provider),
        hub_(std::move(hub)),
        stream_(StreamOfHub(hub_)),
        subject_(SubjectOfHub(hub_)),
        epoch_(epoch) {}
  ~NatsLog() override;

  void SetConsumer(Consumer consumer) override { consumer_ = std::move(consumer); }
  Status Start(uint64_t after) override;
  void Append(storage::EntryPtr entry, DurableFn durable, AppliedFn applied,
              const std::string& request_id) override;
  Result<uint64_t> Head() override;
  uint64_t epoch() const override { return epoch_; }
  std::optional<uint64_t> consumer_lag() const override {
    return lag_.load(std::memory_order_relaxed);
  }

  // Ends the current feed and deletes its consumer (shutdown).
  void Stop();
  // Replaces the current feed with one that starts after the last entry handed over. Repair
  // thread only.
  Status Restart();
  // Whether `sub` is the current feed's subscription (asynchronous errors name a sub).
  bool Owns(natsSubscription* sub) {
    std::lock_guard lock(sub_mu_);
    return sub != nullptr && live_sub_ == sub;
  }
  const std::string& hub() const { return hub_; }

 private:
  struct Feed {
    explicit Feed(NatsLog* log) : log(log) {}
    NatsLog* const log;
    natsSubscription* sub = nullptr;  // once js_Subscribe returned
    uint64_t next_delivery = 1;       // the consumer sequence the next message must carry
    bool broken = false;              // hands over nothing more; a repair replaces it
    bool subscribing = false;         // inside js_Subscribe
    bool completing = false;          // nats.c will run OnComplete once it is closed
    bool complete = false;            // ... and it has: no callback of it runs any more
  };

  static void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  static void OnComplete(void* closure);
  void Handle(Feed* feed, natsMsg* msg);
  Status Subscribe(uint64_t after);
  // Takes the current feed out (no message of it is handed over after this) and the position
  // to resume from.
  Feed* Detach(uint64_t* after);
  // Closes a detached feed's subscription; `delete_consumer` also deletes its consumer (a
  // JetStream request: not on the repair path, where the server may be unreachable - the
  // server drops an ephemeral consumer without interest after its inactive threshold).
  void Close(Feed* feed, bool delete_consumer);

  Provider* const provider_;
  const std::string hub_, stream_, subject_;
  const uint64_t epoch_;
  Consumer consumer_;
  std::mutex handle_mu_;  // the feeds and the hand-over
  std::condition_variable complete_cv_;
  std::vector<std::unique_ptr<Feed>> feeds_;  // every feed whose memory a callback may use
  Feed* current_ = nullptr;
  uint64_t last_handed_ = 0;
  std::atomic<uint64_t> lag_{0};  // the consumer's pending count at the last message
  std::mutex sub_mu_;  // a leaf: taken under the provider's mutex
  natsSubscription* live_sub_ = nullptr;
};

class Provider final : public NatsLogProvider {
 public:
  Provider(NatsConnection* connection, storage::Store* store, NatsLogOptions options)
      : conn_(nats::Internal(*connection)), store_(store), options_(std::move(options)) {
    conn_.SetAckHandler(
        [this](natsMsg* msg, jsPubAck* ack, jsPubAckErr* error) { OnAck(msg, ack, error); });
    conn_.SetSubscriptionErrorHandler(
        [this](natsSubscription* sub, natsStatus error) { OnSubscriptionError(sub, error); });
    repair_ = std::thread([this] { RunRepairs(); });
  }
  ~Provider() override {
    Stop();
    conn_.SetAckHandler({});
    conn_.SetSubscriptionErrorHandler({});
  }

  Result<std::vector<std::string>> Hubs() override {
    jsStreamNamesList* list = nullptr;
    jsErrCode code{};
    jsOptions o;
    jsOptions_Init(&o);
    natsStatus s = js_StreamNames(&list, conn_.js(), &o, &code);
    if (s == NATS_NOT_FOUND) return std::vector<std::string>{};
    if (s != NATS_OK) return FromNats(s, "listing the hub streams", code);
    std::vector<std::string> hubs;
    for (int i = 0; i < list->Count; ++i) {
      if (auto hub = HubOfStream(list->List[i])) hubs.push_back(*hub);
    }
    jsStreamNamesList_Destroy(list);
    return hubs;
  }

  Result<std::unique_ptr<HubLog>> Open(const HubName& name, bool create) override {
    const std::string& hub = name.str();
    if (stopping_.load()) return Status::Unavailable("The service is shutting down.");
    auto info = StreamInfo(hub);
    if (!info.ok() && info.status().code() == StatusCode::kNotFound) {
      if (!create) return info.status();
      info = CreateStream(hub);
    }
    if (!info.ok()) return info.status();
    // The stream's creation is the log's identity, the same on every node.
    uint64_t epoch = static_cast<uint64_t>((*info)->Created);
    if (store_) {
      auto stored = store_->Epoch(hub, epoch);
      if (!stored.ok()) return stored.status();
      if (*stored != epoch) {
        // The stream was recreated: what this node holds of the hub belongs to another log.
        Logger("nats").Warn("hub ", hub, ": its stream was recreated; dropping the local state");
        if (Status s = store_->InstallViewState(hub, epoch, storage::ViewState{}); !s.ok()) {
          return s;
        }
      }
    }
    auto log = std::make_unique<NatsLog>(this, hub, epoch);
    std::lock_guard lock(mu_);
    logs_.push_back(log.get());
    return std::unique_ptr<HubLog>(std::move(log));
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    repair_cv_.notify_all();
    if (repair_.joinable()) repair_.join();
    std::vector<NatsLog*> logs;
    {
      std::lock_guard lock(mu_);
      logs = logs_;
    }
    // Acknowledgements in flight get a short while to arrive; the rest fail.
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 2000;
    if (conn_.js()) (void)js_PublishAsyncComplete(conn_.js(), &po);
    std::unordered_map<std::string, Pending> left;
    {
      std::lock_guard lock(mu_);
      left.swap(pending_);
    }
    for (auto& [id, p] : left) {
      if (!p.durable_done) p.durable(Status::Unavailable("The service is shutting down."));
    }
    for (NatsLog* log : logs) log->Stop();
  }

  size_t pending() const override {
    std::lock_guard lock(mu_);
    return pending_.size();
  }

  // --- for NatsLog ---
  void Publish(NatsLog* log, const std::string& subject, storage::EntryPtr entry, DurableFn durable,
               AppliedFn applied, const std::string& request_id) {
    if (stopping_.load()) {
      durable(Status::Unavailable("The service is shutting down."));
      return;
    }
    if (!conn_.connected()) {
      durable(Status::Unavailable("The cluster log is unreachable: no connection to NATS."));
      return;
    }
    std::string bytes = storage::EncodeEntry(*entry);
    std::string id =
        !request_id.empty() ? request_id : id_prefix_ + std::to_string(next_id_.fetch_add(1) + 1);
    bool added;
    {
      std::lock_guard lock(mu_);
      added = pending_.try_emplace(id, Pending{log, durable, std::move(applied), false}).second;
    }
    if (!added) {
      // The same command is already on its way from this node: one is enough.
      durable(Status::Duplicate("Command " + id + " is already being appended."));
      return;
    }
    natsMsg* raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, bytes.data(),
                                  static_cast<int>(bytes.size()));
    MsgPtr msg(raw);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    po.MaxWait = options_.publish_timeout.count();
    if (s == NATS_OK) {
      natsMsg* m = msg.get();
      s = js_PublishMsgAsync(conn_.js(), &m, &po);
      if (s == NATS_OK || m == nullptr) (void)msg.release();  // the library owns it now
    }
    if (s != NATS_OK) Fail(id, FromNats(s, "publishing to the hub's stream"));
  }

  // Consumer side: the pending request a consumed message answers, if it is ours. Runs
  // `durable` first if the acknowledgement has not come yet (the message is proof enough).
  AppliedFn Consumed(const std::string& id, uint64_t position) {
    Pending p;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return {};
      p = std::move(it->second);
      pending_.erase(it);
    }
    if (!p.durable_done) p.durable(position);
    return std::move(p.applied);
  }

  NatsConnection& connection() { return conn_; }
  storage::Store* store() const { return store_; }
  const NatsLogOptions& options() const { return options_; }
  // Before the log goes: waits out a repair of it in progress.
  void Forget(NatsLog* log) {
    std::lock_guard repairing(repair_mu_);
    std::lock_guard lock(mu_);
    logs_.erase(std::remove(logs_.begin(), logs_.end(), log), logs_.end());
    broken_.erase(log);
  }

 private:
  // A feed that stopped (its server died or lost the stream: missed heartbeats), fell behind
  // (slow consumer) or lost deliveries (mismatch, or a gap NatsLog saw) is re-created by the
  // repair thread, retrying every second, from the last entry handed over.
  void OnSubscriptionError(natsSubscription* sub, natsStatus error) {
    if (error != NATS_MISSED_HEARTBEAT && error != NATS_SLOW_CONSUMER && error != NATS_MISMATCH) {
      return;
    }
    std::lock_guard lock(mu_);
    for (NatsLog* log : logs_) {
      if (!log->Owns(sub)) continue;
      MarkBroken(log, natsStatus_GetText(error));
      return;
    }
  }

 public:
  // For NatsLog: its current feed lost deliveries. Not under the log's handle_mu_.
  void RequestRepair(NatsLog* log, const std::string& why) {
    std::lock_guard lock(mu_);
    if (std::find(logs_.begin(), logs_.end(), log) == logs_.end()) return;  // going away
    MarkBroken(log, why);
  }

 private:
  void MarkBroken(NatsLog* log, const std::string& why) {  // mu_ held
    if (broken_.insert(log).second) {
      Logger("nats").Warn("hub ", log->hub(), ": its consumer stopped (", why, "); re-creating it");
    }
    repair_cv_.notify_all();
  }

  void RunRepairs() {
    std::unique_lock lock(mu_);
    while (!stopping_.load()) {
      repair_cv_.wait_for(lock, std::chrono::seconds(1));
      std::vector<NatsLog*> broken(broken_.begin(), broken_.end());
      lock.unlock();
      for (NatsLog* log : broken) {
        if (stopping_.load()) break;
        std::lock_guard repairing(repair_mu_);
        {
          std::lock_guard still(mu_);
          if (!broken_.count(log)) continue;  // forgotten meanwhile
        }
        Status s = log->Restart();
        std::lock_guard still(mu_);
        if (s.ok()) {
          broken_.erase(log);
          Logger("nats").Info("hub ", log->hub(), ": consumer re-created");
        } else {
          Logger("nats").Debug("hub ", log->hub(), ": consumer not re-created yet: ", s.message());
        }
      }
      lock.lock();
    }
  }

  struct Pending {
    NatsLog* log = nullptr;
    DurableFn durable;
    AppliedFn applied;
    bool durable_done = false;
  };

  void OnAck(natsMsg* msg, jsPubAck* ack, jsPubAckErr* error) {
    MsgPtr owned(msg);
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, kMsgIdHeader, &id) != NATS_OK || id == nullptr) return;
    if (ack != nullptr) {
      DurableFn durable;
      {
        std::lock_guard lock(mu_);
        auto it = pending_.find(id);
        if (it == pending_.end() || it->second.durable_done) return;  // consumed already
        it->second.durable_done = true;
        durable = std::move(it->second.durable);
      }
      durable(ack->Sequence);
      return;
    }
    std::string why = error && error->ErrText ? error->ErrText
                      : error                 ? natsStatus_GetText(error->Err)
                                              : "no acknowledgement";
    Fail(id, Status::Unavailable("The cluster log did not acknowledge the command: " + why));
  }

  // The request failed before it was known durable: the appender hears so and its `applied`
  // is dropped (the entry may still land; then it is applied without a completion).
  void Fail(const std::string& id, const Status& why) {
    Pending p;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      p = std::move(it->second);
      pending_.erase(it);
    }
    if (!p.durable_done) p.durable(why);
  }

  Result<StreamInfoPtr> StreamInfo(const std::string& hub) {
    return nats::GetStreamInfo(conn_.js(), StreamOfHub(hub), "hub " + hub);
  }

  Result<StreamInfoPtr> CreateStream(const std::string& hub) {
    std::string name = StreamOfHub(hub), subject = SubjectOfHub(hub);
    const char* subjects[] = {subject.c_str()};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardOld;
    cfg.Replicas = options_.replicas;
    cfg.MaxAge = options_.max_age_ms * 1000000;  // ns
    cfg.MaxBytes = options_.max_bytes;
    cfg.MaxMsgSize = static_cast<int32_t>(options_.max_message_bytes + 64 * 1024);
    // The de-duplication window: 2 min, never longer than the retention (JetStream's rule).
    cfg.Duplicates = std::min<int64_t>(int64_t{2} * 60 * 1000000000, cfg.MaxAge);
    cfg.DenyDelete = true;
    cfg.AllowDirect = true;
    nats::StreamPlacement placement(options_.placement_tag);
    placement.ApplyTo(&cfg);
    jsStreamInfo* si = nullptr;
    jsErrCode code{};
    jsOptions o;
    jsOptions_Init(&o);
    natsStatus s = js_AddStream(&si, conn_.js(), &cfg, &o, &code);
    if (s == NATS_OK) {
      Logger("nats").Info("hub ", hub, ": created stream ", name, " (replicas ", options_.replicas,
                          ")");
      return StreamInfoPtr(si);
    }
    // Another node created it first (with another config, the add fails): use it.
    auto existing = StreamInfo(hub);
    if (existing.ok()) return existing;
    return FromNats(s, "hub " + hub + ": creating its stream", code);
  }

  nats::Connection& conn_;
  storage::Store* const store_;
  const NatsLogOptions options_;
  std::atomic<bool> stopping_{false};
  // Message ids are this process's: a restarted node that counted from 1 again under its old
  // prefix would have its new commands taken for duplicates of its old ones (acknowledged,
  // and never appended).
  const std::string id_prefix_ = options_.node_id + "-" + RandomHex(6) + "-";
  std::atomic<uint64_t> next_id_{0};
  mutable std::mutex mu_;
  std::unordered_map<std::string, Pending> pending_;
  std::vector<NatsLog*> logs_;
  std::set<NatsLog*> broken_;  // consumers to re-create (mu_)
  std::condition_variable repair_cv_;
  std::mutex repair_mu_;  // held while a consumer is re-created (Forget waits for it)
  std::thread repair_;
};

NatsLog::~NatsLog() {
  provider_->Forget(this);  // first: no repair re-subscribes it after Stop
  Stop();
  // Callbacks of closed feeds may still be running on delivery threads.
  std::unique_lock lock(handle_mu_);
  while (!complete_cv_.wait_for(lock, std::chrono::seconds(5), [this] {
    return std::all_of(feeds_.begin(), feeds_.end(),
                       [](const auto& f) { return !f->completing || f->complete; });
  })) {
    Logger("nats").Warn("hub ", hub_, ": still waiting for its consumer's last callback");
  }
}

NatsLog::Feed* NatsLog::Detach(uint64_t* after) {
  std::lock_guard lock(handle_mu_);
  Feed* feed = current_;
  current_ = nullptr;
  *after = last_handed_;
  std::lock_guard live(sub_mu_);
  live_sub_ = nullptr;
  return feed;
}

void NatsLog::Close(Feed* feed, bool delete_consumer) {
  if (feed == nullptr) return;
  natsSubscription* sub;
  {
    std::lock_guard lock(handle_mu_);
    sub = feed->sub;
  }
  if (sub == nullptr) return;
  // Safe now: no ordered-consumer reset in nats.c can free the consumer's name meanwhile.
  if (delete_consumer) (void)natsSubscription_Unsubscribe(sub);
  // Without an Unsubscribe first, this only removes the interest (nats.c >= 3.4).
  natsSubscription_Destroy(sub);
}

void NatsLog::Stop() {
  uint64_t after;
  Close(Detach(&after), /*delete_consumer=*/true);
}

Status NatsLog::Start(uint64_t after) {
  auto info =
      nats::GetStreamInfo(nats::Internal(provider_->connection()).js(), stream_, "hub " + hub_);
  if (!info.ok()) return info.status();
  uint64_t first = (*info)->State.FirstSeq, last = (*info)->State.LastSeq;
  if (last > after && first > after + 1) {
    return Status::NotFound("hub " + hub_ + ": entries " + std::to_string(after + 1) + ".." +
                            std::to_string(first - 1) + " have left the stream's retention");
  }
  {
    std::lock_guard lock(handle_mu_);
    last_handed_ = after;
  }
  return Subscribe(after);
}

Status NatsLog::Restart() {
  uint64_t after;
  Close(Detach(&after), /*delete_consumer=*/false);
  return Subscribe(after);
}

Status NatsLog::Subscribe(uint64_t after) {
  Feed* feed = nullptr;
  {
    std::lock_guard lock(handle_mu_);
    std::erase_if(feeds_, [](const auto& f) { return f->complete; });
    for (auto& f : feeds_) {
      if (f->sub == nullptr && !f->subscribing) feed = f.get();  // never subscribed
    }
    if (feed == nullptr) feed = feeds_.emplace_back(std::make_unique<Feed>(this)).get();
    feed->next_delivery = 1;
    feed->broken = false;
    feed->subscribing = true;
    // Current before the subscription exists: its first messages may come before
    // js_Subscribe returns.
    current_ = feed;
  }
  auto& conn = nats::Internal(provider_->connection());
  jsOptions o;
  jsOptions_Init(&o);
  jsErrCode code{};
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  so.Config.AckPolicy = js_AckNone;
  so.Config.FlowControl = true;
  // Frequent idle heartbeats: a consumer lost with its server is noticed in seconds.
  so.Config.Heartbeat = int64_t{1000} * 1000000;
  // A consumer left behind by a repair (its server unreachable then) goes after this.
  so.Config.InactiveThreshold = int64_t{10} * 1000000000;
  so.Config.MemoryStorage = true;
  so.Config.Replicas = 1;
  if (after > 0) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = after + 1;
  } else {
    so.Config.DeliverPolicy = js_DeliverAll;
  }
  natsSubscription* sub = nullptr;
  natsStatus s =
      js_Subscribe(&sub, conn.js(), subject_.c_str(), &NatsLog::OnMsg, feed, &o, &so, &code);
  if (s == NATS_OK &&
      natsSubscription_SetOnCompleteCB(sub, &NatsLog::OnComplete, feed) != NATS_OK) {
    // Closed already (the connection is closing): it delivers nothing more.
    natsSubscription_Destroy(sub);
    s = NATS_CONNECTION_CLOSED;
  }
  {
    std::lock_guard lock(handle_mu_);
    feed->subscribing = false;
    if (s != NATS_OK) {
      if (current_ == feed) current_ = nullptr;
      return FromNats(s, "hub " + hub_ + ": consuming its stream", code);
    }
    feed->sub = sub;
    feed->completing = true;
    if (current_ == feed) {
      std::lock_guard live(sub_mu_);
      live_sub_ = sub;
      return Status::Ok();
    }
  }
  // Stopped meanwhile (Detach found no subscription to close): close it here.
  Close(feed, /*delete_consumer=*/true);
  return Status::Unavailable("hub " + hub_ + ": stopped while subscribing");
}

void NatsLog::Append(storage::EntryPtr entry, DurableFn durable, AppliedFn applied,
                     const std::string& request_id) {
  provider_->Publish(this, subject_, std::move(entry), std::move(durable), std::move(applied),
                     request_id);
}

Result<uint64_t> NatsLog::Head() {
  auto& conn = nats::Internal(provider_->connection());
  if (!conn.connected()) {
    return Status::Unavailable("The cluster log is unreachable: no connection to NATS.");
  }
  auto info = nats::GetStreamInfo(conn.js(), stream_, "hub " + hub_);
  if (!info.ok()) return info.status();
  return (*info)->State.LastSeq;
}

void NatsLog::OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  MsgPtr owned(msg);
  auto* feed = static_cast<Feed*>(closure);
  feed->log->Handle(feed, msg);
}

void NatsLog::OnComplete(void* closure) {
  auto* feed = static_cast<Feed*>(closure);
  NatsLog* log = feed->log;
  std::lock_guard lock(log->handle_mu_);
  feed->complete = true;
  // Under the lock: the destructor may free the log as soon as it sees this.
  log->complete_cv_.notify_all();
}

void NatsLog::Handle(Feed* feed, natsMsg* msg) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) return;  // not a stream message
  uint64_t position = meta->Sequence.Stream, delivery = meta->Sequence.Consumer;
  lag_.store(meta->NumPending, std::memory_order_relaxed);
  jsMsgMetaData_Destroy(meta);
  std::unique_lock lock(handle_mu_);
  if (feed != current_ || feed->broken) return;  // replaced, or waiting to be
  if (delivery != feed->next_delivery) {
    feed->broken = true;
    std::string why = "delivery " + std::to_string(delivery) + " where " +
                      std::to_string(feed->next_delivery) + " was due";
    lock.unlock();
    provider_->RequestRepair(this, why);
    return;
  }
  ++feed->next_delivery;
  if (position <= last_handed_) {  // a feed starts after last_handed_: not expected
    Logger("nats").Warn("hub ", hub_, ": stream position ", position, " again (at ", last_handed_,
                        ")");
    return;
  }
  if (position != last_handed_ + 1) {
    Logger("nats").Warn("hub ", hub_, ": stream position ", position, " follows ", last_handed_,
                        " (entries in between were removed from the stream)");
  }
  last_handed_ = position;
  std::string_view bytes(natsMsg_GetData(msg) ? natsMsg_GetData(msg) : "",
                         static_cast<size_t>(natsMsg_GetDataLength(msg)));
  LogRecord rec;
  rec.position = position;
  auto decoded = storage::DecodeEntry(bytes);
  Status valid = decoded.ok()
                     ? storage::CheckEntry(*decoded, provider_->options().max_message_bytes)
                     : decoded.status();
  if (valid.ok()) {
    rec.entry = std::make_shared<const storage::Entry>(std::move(decoded).value());
    rec.encoded.assign(bytes);
  } else {
    // Another node's bug must not crash this one: the position is kept with an entry that
    // changes nothing, and the replay log holds that entry instead.
    Logger("nats").Error("hub ", hub_, ": stream entry ", position,
                         " is not a valid entry and is skipped: ", valid.message());
    storage::Entry noop;
    noop.kind = storage::EntryKind::kClientAck;
    rec.encoded = storage::EncodeEntry(noop);
    rec.entry = std::make_shared<const storage::Entry>(std::move(noop));
  }
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, kMsgIdHeader, &id) == NATS_OK && id != nullptr) {
    rec.applied = provider_->Consumed(id, position);
  }
  consumer_(std::move(rec));
}

}  // namespace

std::string NatsTokenOfHub(const std::string& hub) { return Escape(hub); }
std::string StreamOfHub(const std::string& hub) { return kStreamPrefix + Escape(hub); }
std::string SubjectOfHub(const std::string& hub) { return kSubjectPrefix + Escape(hub); }

std::optional<std::string> HubOfStream(std::string_view stream) {
  std::string_view prefix(kStreamPrefix);
  if (stream.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string hub;
  for (size_t i = prefix.size(); i < stream.size(); ++i) {
    if (stream[i] != '-') {
      hub.push_back(stream[i]);
      continue;
    }
    if (i + 2 >= stream.size()) return std::nullopt;
    unsigned value = 0;
    if (std::sscanf(std::string(stream.substr(i + 1, 2)).c_str(), "%2x", &value) != 1) {
      return std::nullopt;
    }
    hub.push_back(static_cast<char>(value));
    i += 2;
  }
  return hub;
}

std::unique_ptr<NatsLogProvider> NatsLogProvider::New(NatsConnection* connection,
                                                      storage::Store* store,
                                                      NatsLogOptions options) {
  return std::make_unique<Provider>(connection, store, std::move(options));
}

}  // namespace hubcast::replication
