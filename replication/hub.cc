#include "replication/hub.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "replication/applier.h"
#include "replication/local_log.h"
#include "replication/snapshots.h"
#include "storage/entry_codec.h"
#include "storage/replay.h"
#include "storage/view_snapshot.h"

#include <cassert>
#include <cstdlib>
#include <future>

namespace hubcast::replication {
namespace {

// What an entry weighs against the node's pending-bytes bound.
size_t Weight(const storage::Entry& e) { return e.data.size() + 128; }

void RunOn(Executor* executor, std::function<void()> task) {
  if (executor) {
    executor->Execute(std::move(task));
  } else {
    task();
  }
}

}  // namespace

Hub::Hub(HubName name, std::unique_ptr<HubLog> log, std::unique_ptr<storage::HubView> view,
         HubRegistry* registry, int applier)
    : name_(std::move(name)),
      log_(std::move(log)),
      view_(std::move(view)),
      registry_(registry),
      applier_(applier) {
  applied_ = view_->applied_position();
  replayable_ = committed_ = applied_;
  log_->SetConsumer([this](LogRecord record) {
    // The log hands over only durable records; a stopped pool drops them, and start-up
    // re-applies them from the log.
    (void)registry_->appliers_->Push(applier_, this, std::move(record));
  });
}

storage::Store* Hub::store() const { return registry_->options_.store; }

uint64_t Hub::applied_position() const {
  std::lock_guard lock(applied_mu_);
  return applied_;
}

void Hub::Release(size_t bytes) {
  pending_.fetch_sub(1, std::memory_order_relaxed);
  registry_->Release(bytes);
}

void Hub::Append(storage::Entry entry, AppendCallbacks cb) {
  size_t bytes = Weight(entry);
  Executor* ex = cb.executor;
  if (registry_->stopping()) {
    if (cb.durable) {
      RunOn(ex, [d = std::move(cb.durable)] {
        d(Status::Unavailable("The service is shutting down."));
      });
    }
    return;
  }
  const char* busy = nullptr;
  const auto& backed_up = registry_->options_.deliveries_backed_up;
  if (entry.kind == storage::EntryKind::kSend && backed_up && backed_up()) {
    busy = "The service is busy: too many messages are waiting to be delivered. Retry later.";
  } else if (!registry_->Admit(this, bytes)) {
    busy = "The service is busy: too many commands are waiting to be applied. Retry later.";
  }
  if (busy) {
    if (cb.durable) {
      RunOn(ex, [d = std::move(cb.durable), busy] { d(Status::Unavailable(busy)); });
    }
    return;
  }
  DurableFn durable = [this, bytes, ex, d = std::move(cb.durable),
                       start = metrics::NowNs()](Result<uint64_t> r) {
    if (r.ok()) metrics::Observe("hubcast_append_seconds", {}, metrics::SecondsSince(start));
    if (!r.ok()) Release(bytes);
    if (d) RunOn(ex, [d, r = std::move(r)] { d(r); });
  };
  AppliedFn applied = [this, bytes, ex, a = std::move(cb.applied)](uint64_t pos, const Status& s) {
    Release(bytes);
    if (a) RunOn(ex, [a, pos, s] { a(pos, s); });
  };
  log_->Append(std::make_shared<const storage::Entry>(std::move(entry)), std::move(durable),
               std::move(applied), cb.request_id);
}

Result<uint64_t> Hub::AppendAndWaitDurable(storage::Entry entry) {
  assert(!OnNonBlockingThread() && "an event loop must never wait for the log");
  auto promise = std::make_shared<std::promise<Result<uint64_t>>>();
  auto future = promise->get_future();
  AppendCallbacks cb;
  cb.durable = [promise](Result<uint64_t> r) { promise->set_value(std::move(r)); };
  Append(std::move(entry), std::move(cb));
  return future.get();
}

Status Hub::AppendAndWait(storage::Entry entry) {
  assert(!OnNonBlockingThread() && "an event loop must never wait for the log");
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  AppendCallbacks cb;
  cb.durable = [promise](Result<uint64_t> r) {
    if (!r.ok()) promise->set_value(r.status());
  };
  cb.applied = [promise](uint64_t, const Status& s) { promise->set_value(s); };
  Append(std::move(entry), std::move(cb));
  return future.get();
}

const std::string& Hub::node_id() const { return registry_->node_id(); }

Status Hub::Barrier() {
  assert(!OnNonBlockingThread() && "an event loop must never wait for the log");
  auto head = log_->Head();
  if (!head.ok()) return head.status();
  std::unique_lock lock(applied_mu_);
  if (!applied_cv_.wait_for(lock, registry_->options_.barrier_timeout,
                            [&] { return applied_ >= *head; })) {
    return Status::Unavailable("The hub's state is catching up; retry later.");
  }
  return Status::Ok();
}

void Hub::AttachLocal(const std::string& connection_id, uint64_t handle) {
  view_->SetLocalHandle(connection_id, handle);
}

void Hub::Apply(LogRecord& rec, storage::ApplyBatch* batch, DeliverySink* sink) {
  const uint64_t position = rec.position;
  {
    std::lock_guard lock(applied_mu_);
    if (position <= applied_) {
      // A log that hands over an entry twice or out of order would make this node's view
      // differ from every other: stop, and let the restart re-apply from the store.
      Logger("applier").Error("hub ", name_.str(), ": entry ", position, " arrived after entry ",
                              applied_, "; stopping the node");
      std::abort();
    }
  }
  storage::ApplyResult result;
  try {
    const int64_t start = metrics::NowNs();
    result = view_->Apply(position, *rec.entry);
    if (batch) batch->Add(name_.str(), position, *rec.entry, result, rec.encoded);
    metrics::Observe("hubcast_apply_seconds", {}, metrics::SecondsSince(start));
  } catch (const std::exception& e) {
    // The view may be half-changed: serving it would answer from a state no log produced.
    Logger("applier").Error("hub ", name_.str(), ": entry ", position, " failed to apply (",
                            e.what(), "); stopping the node");
    std::abort();
  }
  try {
    if (sink) sink->Deliver(*this, position, *rec.entry, result);
  } catch (const std::exception& e) {
    // The view is right; only this entry's delivery is lost on this node.
    Logger("applier").Error("hub ", name_.str(), ": entry ", position,
                            " was applied but its delivery failed: ", e.what());
  }
  if (rec.applied) rec.applied(position, result.status);
  {
    std::lock_guard lock(applied_mu_);
    applied_ = position;
  }
  applied_cv_.notify_all();
}

void Hub::Committed(uint64_t position, bool /*state_written*/) {
  committed_.store(position, std::memory_order_release);
  replayable_.store(position, std::memory_order_release);
}

void Hub::SweepExpiredMemberships(int64_t now_ms) {
  // The clock only decides when to look; the removal itself is a log entry whose timestamp
  // decides, so every node removes the same memberships at the same position.
  for (const auto& [user, group] : view_->ExpiredUserGroups(now_ms, 1000)) {
    storage::Entry e;
    e.kind = storage::EntryKind::kRemoveFromGroups;
    e.timestamp_ms = now_ms;
    e.scope = storage::Scope::kUser;
    e.target = user;
    e.groups = {group};
    e.expiring = true;
    Append(std::move(e));
  }
}

void Hub::SweepExpiredHeld(int64_t now_ms) {
  for (const auto& id : view_->ExpiredHeld(now_ms, 1000)) {
    storage::Entry e;
    e.kind = storage::EntryKind::kConnectionClose;
    e.timestamp_ms = now_ms;
    e.origin_connection = id;
    e.node_id = registry_->node_id();  // this node fires `disconnected`
    e.expiring = true;
    e.reason = "The reliable session expired before the client came back.";
    Append(std::move(e));
  }
}

void Hub::AppendNodeDown(const std::string& node, const std::string& request_id, int64_t now_ms) {
  storage::Entry e;
  e.kind = storage::EntryKind::kNodeDown;
  e.timestamp_ms = now_ms;
  e.target = node;
  e.node_id = registry_->node_id();
  e.hold_until_ms = now_ms + registry_->options_.node_down_hold_ms;
  AppendCallbacks cb;
  cb.request_id = request_id;
  cb.durable = [node, name = name_.str()](Result<uint64_t> r) {
    if (!r.ok() && r.status().code() != StatusCode::kDuplicate) {
      Logger("cluster").Warn("hub ", name, ": could not report node ", node,
                             " down (the hub owner retries): ", r.status().message());
    }
  };
  Append(std::move(e), std::move(cb));
}

void Hub::SweepDeadNodes(int64_t now_ms) {
  const auto& is_dead = registry_->options_.is_dead;
  if (!is_dead) return;
  for (const auto& node : view_->ConnectionNodes()) {
    if (!is_dead(node)) continue;
    // Named after what the hub had applied: a retry while nothing changed is one entry, and a
    // later death of the same node is a new one.
    Logger("cluster").Info("hub ", name_.str(), ": node ", node,
                           " is dead and still serves connections here; reporting it down");
    AppendNodeDown(node,
                   "down-" + node + "-at-" + std::to_string(applied_position()) + "-" + name_.str(),
                   now_ms);
  }
}

void Hub::SaveSnapshot() {
  SnapshotStore* snapshots = registry_->options_.snapshots;
  if (!snapshots || applied_position() == snapshot_position_) return;
  storage::ViewState state = view_->ExportState();
  Snapshot snap{epoch(), state.applied_position, storage::EncodeViewState(state)};
  if (Status s = snapshots->Save(name_.str(), snap); !s.ok()) {
    Logger("snapshot").Warn("hub ", name_.str(), ": ", s.message());
    return;
  }
  snapshot_position_ = snap.position;
  Logger("snapshot")
      .Debug("hub ", name_.str(), ": saved at position ", snap.position, " (", snap.bytes.size(),
             " bytes)");
}

Status Hub::InstallState(storage::ViewState state) {
  if (storage::Store* store = this->store()) {
    if (Status s = store->InstallViewState(name_.str(), epoch(), state); !s.ok()) return s;
  }
  uint64_t position = state.applied_position;
  view_->ImportState(std::move(state));
  std::lock_guard lock(applied_mu_);
  applied_ = position;
  replayable_ = committed_ = position;
  return Status::Ok();
}

void Hub::Trim(int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes) {
  storage::Store* store = this->store();
  if (!store) return;
  const std::string& hub = name_.str();
  auto first_or = store->FirstLogPosition(hub);
  if (!first_or.ok() || *first_or == 0) return;
  uint64_t first = *first_or;
  // Never drop what a restart would have to re-apply.
  uint64_t limit = committed_position() + 1;
  uint64_t bytes = store->LogBytes(hub);
  uint64_t cut = first;
  (void)store->ScanLog(hub, first, limit - 1, [&](uint64_t pos, std::string_view v) {
    bool too_big = bytes > max_bytes;
    bool too_old = false;
    if (!too_big) {
      auto e = storage::DecodeEntry(v);
      too_old = e.ok() && e->timestamp_ms < now_ms - max_age_ms;
    }
    if (!too_big && !too_old) return false;
    bytes -= std::min<uint64_t>(bytes, v.size());
    cut = pos + 1;
    return true;
  });
  if (cut > first) {
    if (Status s = store->TrimLogBefore(hub, cut); !s.ok()) {
      Logger("retention").Warn("hub ", hub, ": ", s.message());
    }
  }
}

HubRegistry::HubRegistry(HubRegistryOptions options, DeliverySink* sink)
    : options_(std::move(options)), sink_(sink) {
  if (options_.logs) {
    logs_ = options_.logs;
  } else {
    owned_logs_ = LocalLogProvider::New(options_.store);
    logs_ = owned_logs_.get();
  }
  appliers_ =
      std::make_unique<ApplierPool>(options_.appliers, options_.store, sink_,
                                    options_.max_pending_per_node + 1024, options_.lazy_commit);
  retention_ = std::thread([this] { RunRetention(); });
}

HubRegistry::~HubRegistry() { Stop(); }

bool HubRegistry::Admit(Hub* hub, size_t bytes) {
  if (hub->pending_.fetch_add(1, std::memory_order_relaxed) >= options_.max_pending_per_hub) {
    hub->pending_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  size_t count = pending_.fetch_add(1, std::memory_order_relaxed);
  uint64_t weight = pending_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  if (count >= options_.max_pending_per_node || weight + bytes > options_.max_pending_bytes) {
    hub->Release(bytes);
    return false;
  }
  return true;
}

void HubRegistry::Release(size_t bytes) {
  pending_.fetch_sub(1, std::memory_order_relaxed);
  pending_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

Result<std::shared_ptr<Hub>> HubRegistry::CreateHub(const HubName& name, bool create) {
  storage::Store* store = options_.store;
  auto log = logs_->Open(name, create);
  if (!log.ok()) return log.status();
  auto view = storage::NewMemoryView();
  const std::string& hub = name.str();
  if (store) {
    std::vector<std::string> uncountable;
    auto state = storage::LoadViewForStart(*store, hub, &uncountable);
    if (!state.ok()) return state.status();
    for (const auto& id : uncountable) {
      // Its entries left retention: it cannot be recovered (start-up ends it).
      Logger("registry")
          .Warn("hub ", hub, ": connection ", id, " cannot be recounted; it will not be recovered");
    }
    view->ImportState(std::move(state).value());
  }
  int applier = next_applier_.fetch_add(1) % appliers_->size();
  auto h = std::make_shared<Hub>(name, std::move(log).value(), std::move(view), this, applier);
  Status started = h->log_->Start(h->applied_position());
  if (started.code() == StatusCode::kNotFound && options_.snapshots) {
    // The entries this node misses have left the log: start from a snapshot.
    auto snap = options_.snapshots->Latest(hub);
    if (!snap.ok()) return snap.status();
    if (!*snap || (*snap)->epoch != h->epoch()) {
      return Status::Unavailable("hub " + hub + ": " + started.message() +
                                 ", and there is no snapshot of this log to start from");
    }
    auto state = storage::DecodeViewState((*snap)->bytes);
    if (!state.ok()) return state.status();
    Logger("registry")
        .Info("hub ", hub, ": starting from the snapshot at position ", state->applied_position);
    if (Status s = h->InstallState(std::move(state).value()); !s.ok()) return s;
    started = h->log_->Start(h->applied_position());
  }
  if (!started.ok()) return started;
  // The catch-up is applied before the hub serves anything.
  if (Status s = h->Barrier(); !s.ok()) return s;
  return h;
}

Result<std::shared_ptr<Hub>> HubRegistry::Get(const HubName& name) {
  std::lock_guard lock(hubs_mu_);
  auto it = hubs_.find(name.str());
  if (it != hubs_.end()) return it->second;
  if (stopping()) return Status::Unavailable("The service is shutting down.");
  if (hubs_.size() >= options_.max_hubs) {
    return Status::Unavailable("This node serves at most " + std::to_string(options_.max_hubs) +
                               " hubs (--max-hubs).");
  }
  auto created = CreateHub(name, /*create=*/true);
  if (!created.ok()) {
    Logger("registry")
        .Error("hub ", name.str(), " cannot be created: ", created.status().message());
    return Status::Unavailable("The hub cannot be created: " + created.status().message());
  }
  hubs_.emplace(name.str(), *created);
  return created;
}

std::shared_ptr<Hub> HubRegistry::Find(const HubName& name) {
  auto hub = Open(name);
  return hub.ok() ? *hub : nullptr;
}

std::shared_ptr<Hub> HubRegistry::FindOpenNow(const HubName& name) {
  // Get and Open create hubs under hubs_mu_ (a RocksDB column family, a NATS stream): a
  // loop must not queue behind that.
  std::unique_lock lock(hubs_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return nullptr;
  auto it = hubs_.find(name.str());
  return it != hubs_.end() ? it->second : nullptr;
}

Result<std::shared_ptr<Hub>> HubRegistry::Open(const HubName& name) {
  std::lock_guard lock(hubs_mu_);
  auto it = hubs_.find(name.str());
  if (it != hubs_.end()) return it->second;
  if (stopping()) return Status::Unavailable("The service is shutting down.");
  if (hubs_.size() >= options_.max_hubs) {
    return Status::NotFound("Hub '" + name.str() + "' is not served here.");
  }
  // Another node may have created it: open it if its log exists, never create one.
  auto opened = CreateHub(name, /*create=*/false);
  if (!opened.ok()) {
    if (opened.status().code() != StatusCode::kNotFound) {
      Logger("registry").Warn("hub ", name.str(), ": ", opened.status().message());
      return Status::Unavailable(opened.status().message());
    }
    return opened.status();
  }
  hubs_.emplace(name.str(), *opened);
  return *opened;
}

void HubRegistry::ReportNodeDown(const std::string& node, uint64_t incarnation) {
  int64_t now = SystemClock::Get().NowUnixMs();
  for (auto& hub : AllHubs()) {
    hub->AppendNodeDown(
        node, "down-" + node + "-" + std::to_string(incarnation) + "-" + hub->name().str(), now);
  }
}

void HubRegistry::Discover() {
  auto hubs = logs_->Hubs();
  if (!hubs.ok()) return;
  for (const auto& text : *hubs) {
    auto name = HubName::Parse(text);
    if (name.ok()) (void)Find(*name);
  }
}

Status HubRegistry::LoadAll() {
  auto hubs = logs_->Hubs();
  if (!hubs.ok()) return hubs.status();
  for (const auto& text : *hubs) {
    auto name = HubName::Parse(text);
    if (!name.ok()) return Status::InvalidArgument("stored hub '" + text + "' has an invalid name");
    auto created = CreateHub(*name, /*create=*/false);
    if (!created.ok()) return created.status();
    std::lock_guard lock(hubs_mu_);
    hubs_[name->str()] = std::move(created).value();
  }
  return Status::Ok();
}

std::vector<std::shared_ptr<Hub>> HubRegistry::AllHubs() {
  std::lock_guard lock(hubs_mu_);
  std::vector<std::shared_ptr<Hub>> out;
  out.reserve(hubs_.size());
  for (auto& [n, h] : hubs_) out.push_back(h);
  return out;
}

void HubRegistry::Stop() {
  {
    std::lock_guard lock(retention_mu_);
    if (stopping_.exchange(true)) return;
  }
  retention_cv_.notify_all();
  if (retention_.joinable()) retention_.join();
  // Order matters: the logs hand what they accepted to the appliers, which apply it all.
  logs_->Stop();
  appliers_->Stop();
}

void HubRegistry::RunRetention() {
  auto next_discovery = std::chrono::steady_clock::now();
  auto next_snapshot = std::chrono::steady_clock::now() + options_.snapshot_interval;
  for (;;) {
    {
      std::unique_lock lock(retention_mu_);
      retention_cv_.wait_for(lock, std::chrono::milliseconds(options_.retention_interval_ms),
                             [&] { return stopping(); });
      if (stopping()) return;
    }
    auto steady = std::chrono::steady_clock::now();
    if (options_.discover_interval.count() > 0 && steady >= next_discovery) {
      next_discovery = steady + options_.discover_interval;
      Discover();
    }
    bool snapshot_round = options_.snapshots && steady >= next_snapshot;
    if (snapshot_round) next_snapshot = steady + options_.snapshot_interval;
    int64_t now = SystemClock::Get().NowUnixMs();
    for (auto& h : AllHubs()) {
      h->Trim(now, options_.replay_max_age_ms, options_.replay_max_bytes);
      // Time-driven commands come from one node per hub, not from every node.
      if (options_.is_owner && !options_.is_owner(h->name())) continue;
      h->SweepExpiredMemberships(now);
      h->SweepExpiredHeld(now);
      h->SweepDeadNodes(now);
      if (snapshot_round) h->SaveSnapshot();
    }
  }
}

}  // namespace hubcast::replication
