#include "replication/hub.h"

#include "base/log.h"
#include "base/random.h"

#include <future>

namespace hubcast::replication {

Hub::Hub(HubName name, std::unique_ptr<HubLog> log, std::unique_ptr<storage::HubView> view,
         HubRegistry* registry)
    : name_(std::move(name)), log_(std::move(log)), view_(std::move(view)), registry_(registry) {
  log_->SetConsumer([this](uint64_t pos, storage::EntryPtr e) {
    registry_->Enqueue({this, pos, std::move(e)});
  });
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
  storage::ApplyResult result = view_->Apply(position, entry);
  if (sink) sink->Deliver(name_, position, entry, result);
  Done done;
  {
    std::lock_guard lock(pending_mu_);
    auto it = pending_.find(position);
    if (it != pending_.end()) {
      done = std::move(it->second);
      pending_.erase(it);
    }
  }
  if (done) done(result.status);
  {
    std::lock_guard lock(applied_mu_);
    applied_ = position;
  }
  applied_cv_.notify_all();
}

HubRegistry::HubRegistry(HubRegistryOptions options, DeliverySink* sink)
    : options_(std::move(options)), sink_(sink), applier_([this] { Run(); }) {}

HubRegistry::~HubRegistry() { Stop(); }

std::shared_ptr<Hub> HubRegistry::Get(const HubName& name) {
  std::lock_guard lock(hubs_mu_);
  auto& slot = hubs_[name.str()];
  if (!slot) {
    slot = std::make_shared<Hub>(name, NewLocalLog(RandomU64()), storage::NewMemoryView(), this);
  }
  return slot;
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
  if (applier_.joinable()) applier_.join();
}

void HubRegistry::Enqueue(Item item) {
  {
    std::lock_guard lock(q_mu_);
    queue_.push_back(std::move(item));
  }
  q_cv_.notify_one();
}

void HubRegistry::Run() {
  Logger log("applier");
  std::deque<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(q_mu_);
      q_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      batch.swap(queue_);
    }
    for (auto& item : batch) {
      try {
        item.hub->ApplyOne(item.position, *item.entry, sink_);
      } catch (const std::exception& e) {
        // Apply and delivery are not supposed to throw; losing the process would lose every
        // connection, so log loudly and go on with the next entry.
        log.Error("entry ", item.position, " of hub ", item.hub->name().str(),
                  " failed to apply: ", e.what());
      }
    }
    batch.clear();
  }
}

}  // namespace hubcast::replication
