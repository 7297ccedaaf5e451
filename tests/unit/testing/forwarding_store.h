// ForwardingStore: a storage::Store that passes every call to another store, for tests that
// inject a failure into one or two calls (override those, keep the rest). The inner store is
// not owned. Thread-safety: as the inner store's.
#pragma once

#include "storage/store.h"

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::testing {

class ForwardingStore : public storage::Store {
 public:
  explicit ForwardingStore(storage::Store* inner) : inner_(inner) {}

  Result<std::vector<std::string>> Hubs() const override { return inner_->Hubs(); }
  Result<uint64_t> Epoch(const std::string& hub, uint64_t new_epoch) override {
    return inner_->Epoch(hub, new_epoch);
  }
  Status AppendLog(const std::vector<LogAppend>& entries) override {
    return inner_->AppendLog(entries);
  }
  Result<uint64_t> FirstLogPosition(const std::string& hub) const override {
    return inner_->FirstLogPosition(hub);
  }
  Result<uint64_t> LastLogPosition(const std::string& hub) const override {
    return inner_->LastLogPosition(hub);
  }
  Status ScanLog(const std::string& hub, uint64_t from, uint64_t to,
                 const std::function<bool(uint64_t, std::string_view)>& fn) const override {
    return inner_->ScanLog(hub, from, to, fn);
  }
  Result<StatusCode> Outcome(const std::string& hub, uint64_t position) const override {
    return inner_->Outcome(hub, position);
  }
  Status TrimLogBefore(const std::string& hub, uint64_t position) override {
    return inner_->TrimLogBefore(hub, position);
  }
  uint64_t LogBytes(const std::string& hub) const override { return inner_->LogBytes(hub); }
  std::unique_ptr<storage::ApplyBatch> NewApplyBatch() override { return inner_->NewApplyBatch(); }
  Status Commit(std::unique_ptr<storage::ApplyBatch> batch) override {
    return inner_->Commit(std::move(batch));
  }
  Result<uint64_t> AppliedPosition(const std::string& hub) const override {
    return inner_->AppliedPosition(hub);
  }
  Result<storage::ViewState> LoadViewState(const std::string& hub) const override {
    return inner_->LoadViewState(hub);
  }
  Status InstallViewState(const std::string& hub, uint64_t epoch,
                          const storage::ViewState& state) override {
    return inner_->InstallViewState(hub, epoch, state);
  }
  std::vector<std::pair<std::string, uint64_t>> EngineStats() const override {
    return inner_->EngineStats();
  }

 protected:
  storage::Store* inner() const { return inner_; }

 private:
  storage::Store* const inner_;
};

}  // namespace hubcast::testing
