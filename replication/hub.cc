#include "replication/hub.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/random.h"
#include "storage/entry_codec.h"
#include "storage/replay.h"

#include <chrono>
#include <future>

namespace hubcast::replication {

Hub::Hub(HubName name, std::unique_ptr<HubLog> log, std::unique_ptr<storage::HubView> view,
         HubRegistry* registry)
    : name_(std::move(name)), log_(std::move(log)), view_(std::move(view)), registry_(registry) {
  log_->SetConsumer([this](uint64_t pos, storage::EntryPtr e) {
    return registry_->Enqueue({this, pos, std::move(e)});
  });
  applied_ = view_->applied_position();
}

storage::Store* Hub::store() const { return registry_->options_.store; }

uint64_t Hub::applied_position() const {
  std::lock_guard lock(applied_mu_);
  return applied_;
}

Result<uint64_t> Hub::Append(storage::Entry entry, Done done) {
  if (registry_->stopping()) return Status::Unavailable("The service is shutting down.");
  auto ptr = std::make_shared<const storage::Entry>(std::move(entry));
  // Holding pending_mu_ across the append means the applier cannot look for the callback
  // before it is registered.
  std::lock_guard lock(pending_mu_);
  auto pos = log_->Append(std::move(ptr));
  if (pos.ok() && done) pending_.emplace(*pos, std::move(done));
  return pos;
}

Status Hub::AppendAndWait(storage::Entry entry) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  auto pos = Append(std::move(entry), [promise](const Status& s) { promise->set_value(s); });
  if (!pos.ok()) return pos.status();
  return future.get();
}

void Hub::Barrier() {
  uint64_t target = log_->head();
  std::unique_lock lock(applied_mu_);
  applied_cv_.wait(lock, [&] { return applied_ >= target; });
}

void Hub::ApplyOne(uint64_t position, const storage::Entry& entry, DeliverySink* sink) {
  Status status;
  try {
    storage::ApplyResult result = view_->Apply(position, entry);
    if (storage::Store* store = this->store()) {
      // The entry is durable in the log already. If its effects cannot be written now (a full
      // disk), the store keeps them in order and writes them when it can; delivery and reads
      // go on meanwhile (appends fail with 503 until space returns).
      Status s = store->CommitApply(name_.str(), position, entry, result);
      if (!s.ok()) {
        auto now = std::chrono::steady_clock::now();
        if (now - last_commit_warning_ > std::chrono::seconds(5)) {
          last_commit_warning_ = now;
          Logger("applier").Error("hub ", name_.str(),
                                  ": the view is not written to disk: ", s.message());
        }
      }
    }
    if (sink) sink->Deliver(name_, position, entry, result);
    status = result.status;
  } catch (const std::exception& e) {
    // Apply and delivery are not supposed to throw; losing the process would lose every
    // connection, so log loudly and go on with the next entry.
    Logger("applier").Error("entry ", position, " of hub ", name_.str(),
                            " failed to apply: ", e.what());
    status = Status::Internal("The command could not be applied.");
  }
  Done done;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(position);
    if (it != pending_.end()) {
      done = std::move(it->second);
      pending_.erase(it);
    }
  }
  if (done) done(status);
  {
    std::lock_guard lock(applied_mu_);
    applied_ = position;
  }
  applied_cv_.notify_all();
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
    if (!Append(std::move(e)).ok()) return;
  }
}

void Hub::Trim(int64_t now_ms, int64_t max_age_ms, uint64_t max_bytes) {
  storage::Store* store = this->store();
  if (!store) return;
  const std::string& hub = name_.str();
  uint64_t first = store->FirstLogPosition(hub);
  if (first == 0) return;
  uint64_t limit = applied_position() + 1;  // never drop what is not applied yet
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
    : options_(std::move(options)), sink_(sink), applier_([this] { Run(); }) {
  retention_ = std::thread([this] { RunRetention(); });
}

HubRegistry::~HubRegistry() { Stop(); }

Result<std::shared_ptr<Hub>> HubRegistry::CreateHub(const HubName& name) {
  storage::Store* store = options_.store;
  auto view = storage::NewMemoryView();
  if (!store) {
    return std::make_shared<Hub>(name, NewLocalLog(RandomU64()), std::move(view), this);
  }
  const std::string& hub = name.str();
  auto epoch = store->Epoch(hub, RandomU64());
  if (!epoch.ok()) return epoch.status();
  uint64_t applied = store->AppliedPosition(hub);
  Status load =
      store->LoadConnections(hub, [&](storage::ConnectionRecord rec, std::vector<uint64_t> acks) {
        if (rec.reliable && !rec.checkpoints.empty()) {
          // The stored record's count is only as fresh as its last write: count forward from
          // the newest checkpoint to where the view stands.
          auto counted =
              storage::ReplayConnection(*store, hub, rec, rec.checkpoints.back(), applied,
                                        UINT64_MAX, [](uint64_t, uint64_t, auto&) {});
          if (counted.ok()) rec.seq = counted->seq;
        }
        view->Restore(std::move(rec), acks);
      });
  if (!load.ok()) return load;
  load = store->LoadUserGroups(
      hub, [&](const std::string& user, const std::string& group, int64_t expiry) {
        view->RestoreUserGroup(user, group, expiry);
      });
  if (!load.ok()) return load;
  view->RestoreAppliedPosition(applied);
  uint64_t head = store->LastLogPosition(hub);
  if (head < applied) head = applied;
  auto h =
      std::make_shared<Hub>(name, NewLocalLog(*epoch, store, hub, head), std::move(view), this);
  // Entries that were durable but not applied when the process stopped.
  Status bad;
  Status scan = store->ScanLog(hub, applied + 1, head, [&](uint64_t pos, std::string_view v) {
    auto e = storage::DecodeEntry(v);
    if (!e.ok()) {
      bad = Status::InvalidArgument("hub " + hub + " log entry " + std::to_string(pos) + ": " +
                                    e.status().message());
      return false;
    }
    h->ApplyOne(pos, *e, sink_);
    return true;
  });
  if (!bad.ok()) return bad;
  if (!scan.ok()) return scan;
  return h;
}

std::shared_ptr<Hub> HubRegistry::Get(const HubName& name) {
  std::lock_guard lock(hubs_mu_);
  auto& slot = hubs_[name.str()];
  if (!slot) {
    auto created = CreateHub(name);
    if (!created.ok()) {
      // Only reachable when the store fails under us; serve the hub from memory rather than
      // refuse it (its writes will fail with the store's error).
      Logger("registry").Error("hub ", name.str(), ": ", created.status().message());
      slot = std::make_shared<Hub>(name, NewLocalLog(RandomU64()), storage::NewMemoryView(), this);
    } else {
      slot = std::move(created).value();
    }
  }
  return slot;
}

Status HubRegistry::LoadAll() {
  if (!options_.store) return Status::Ok();
  for (const auto& text : options_.store->Hubs()) {
    auto name = HubName::Parse(text);
    if (!name.ok()) return Status::InvalidArgument("stored hub '" + text + "' has an invalid name");
    auto created = CreateHub(*name);
    if (!created.ok()) return created.status();
    std::lock_guard lock(hubs_mu_);
    hubs_[name->str()] = std::move(created).value();
  }
  return Status::Ok();
}

std::vector<std::shared_ptr<Hub>> HubRegistry::AllHubs() {
  std::lock_guard lock(hubs_mu_);
  std::vector<std::shared_ptr<Hub>> out;
  for (auto& [n, h] : hubs_) out.push_back(h);
  return out;
}

bool HubRegistry::stopping() const {
  std::lock_guard lock(q_mu_);
  return stopping_;
}

void HubRegistry::Stop() {
  {
    std::lock_guard lock(q_mu_);
    stopping_ = true;
  }
  q_cv_.notify_all();
  stop_cv_.notify_all();
  if (applier_.joinable()) applier_.join();
  if (retention_.joinable()) retention_.join();
}

bool HubRegistry::Enqueue(Item item) {
  {
    std::lock_guard lock(q_mu_);
    // Checked under the queue lock: the applier leaves only when stopping with an empty
    // queue, so an entry accepted here is always applied.
    if (stopping_) return false;
    queue_.push_back(std::move(item));
  }
  q_cv_.notify_one();
  return true;
}

void HubRegistry::Run() {
  std::deque<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(q_mu_);
      q_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    for (auto& item : batch) item.hub->ApplyOne(item.position, *item.entry, sink_);
    batch.clear();
  }
}

void HubRegistry::RunRetention() {
  for (;;) {
    {
      std::unique_lock lock(q_mu_);
      stop_cv_.wait_for(lock, std::chrono::milliseconds(options_.retention_interval_ms),
                        [&] { return stopping_; });
      if (stopping_) return;
    }
    int64_t now = SystemClock::Get().NowUnixMs();
    for (auto& h : AllHubs()) {
      h->Trim(now, options_.replay_max_age_ms, options_.replay_max_bytes);
      h->SweepExpiredMemberships(now);
    }
  }
}

}  // namespace hubcast::replication
