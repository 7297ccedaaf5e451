// Tests of HubRegistry::Get when a hub's log cannot be created (a full disk, an unreadable
// store): the hub is refused, never served from a log that is not durable, and nothing of it is
// left behind (no registered hub, no hub in the store's list, no view). A Store decorator
// over real RocksDB injects the failures.
#include "base/names.h"
#include "base/status.h"
#include "replication/hub.h"
#include "storage/store.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/forwarding_store.h"
#include "tests/unit/testing/test_util.h"
#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace hubcast::replication {
namespace {

// Forwards to a real store; the flags make single calls fail as a full disk would.
class FailingStore final : public testing::ForwardingStore {
 public:
  explicit FailingStore(std::unique_ptr<storage::Store> inner)
      : ForwardingStore(inner.get()), owned_(std::move(inner)) {}

  std::atomic<bool> fail_epoch{false};     // creating a hub's epoch (its first write)
  std::atomic<bool> fail_last_log{false};  // reading where a hub's log ends
  std::atomic<bool> fail_append{false};    // every log append

  Result<uint64_t> Epoch(const std::string& hub, uint64_t new_epoch) override {
    if (fail_epoch) return Status::Unavailable("injected: no space left on device");
    return ForwardingStore::Epoch(hub, new_epoch);
  }
  Status AppendLog(const std::vector<LogAppend>& entries) override {
    if (fail_append) return Status::Unavailable("injected: no space left on device");
    return ForwardingStore::AppendLog(entries);
  }
  Result<uint64_t> LastLogPosition(const std::string& hub) const override {
    if (fail_last_log) return Status::Internal("injected: read error");
    return ForwardingStore::LastLogPosition(hub);
  }

 private:
  std::unique_ptr<storage::Store> owned_;
};

class HubCreation : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = storage::Store::Open({dir_.path() + "/db", false});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::make_unique<FailingStore>(std::move(opened).value());
    HubRegistryOptions options{"n"};
    options.store = store_.get();
    registry_ = std::make_unique<HubRegistry>(options, nullptr);
  }
  void TearDown() override {
    if (registry_) registry_->Stop();
  }
  static HubName Name(const char* text) { return HubName::Parse(text).value(); }

  // Nothing of `hub` anywhere: not served, not in the store's hub list, no view.
  void ExpectNoTrace(const char* hub) {
    EXPECT_EQ(registry_->Find(Name(hub)), nullptr);
    EXPECT_TRUE(registry_->AllHubs().empty());
    ASSERT_TRUE(store_->Hubs().ok());
    EXPECT_TRUE(store_->Hubs()->empty());
    auto view = store_->LoadViewState(hub);
    ASSERT_TRUE(view.ok()) << view.status().message();
    EXPECT_TRUE(view->connections.empty());
    EXPECT_EQ(view->applied_position, 0u);
  }

  testing::TempDir dir_;
  std::unique_ptr<FailingStore> store_;
  std::unique_ptr<HubRegistry> registry_;
};

TEST_F(HubCreation, AHubWhoseLogCannotBeCreatedIsRefusedAndLeavesNothing) {
  store_->fail_epoch = true;
  auto hub = registry_->Get(Name("chat"));
  ASSERT_FALSE(hub.ok()) << "a hub was served without a durable log";
  EXPECT_EQ(hub.status().code(), StatusCode::kUnavailable);
  ExpectNoTrace("chat");
  // Asking again fails again: no in-memory hub was kept from the first attempt.
  EXPECT_FALSE(registry_->Get(Name("chat")).ok());
  ExpectNoTrace("chat");

  // Once the store can write, the hub is created, durable, and its appends work.
  store_->fail_epoch = false;
  auto created = registry_->Get(Name("chat"));
  ASSERT_TRUE(created.ok()) << created.status().message();
  ASSERT_TRUE(store_->Hubs().ok());
  EXPECT_EQ(*store_->Hubs(), std::vector<std::string>{"chat"});
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.scope = storage::Scope::kAll;
  EXPECT_TRUE((*created)->AppendAndWait(e).ok());
  auto last = store_->LastLogPosition("chat");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 1u) << "the append did not reach the durable log";
}

TEST_F(HubCreation, AFailedLogOpenDoesNotLeaveAHalfCreatedHubInTheStore) {
  // The failure comes after the point where the old code had already written the epoch.
  store_->fail_last_log = true;
  auto hub = registry_->Get(Name("chat"));
  ASSERT_FALSE(hub.ok());
  EXPECT_EQ(hub.status().code(), StatusCode::kUnavailable);
  ExpectNoTrace("chat");
}

TEST_F(HubCreation, AnAppendThatCannotBeWrittenFailsInsteadOfBeingServedFromMemory) {
  auto hub = registry_->Get(Name("chat"));
  ASSERT_TRUE(hub.ok()) << hub.status().message();
  store_->fail_append = true;
  storage::Entry e;
  e.kind = storage::EntryKind::kSend;
  e.scope = storage::Scope::kAll;
  EXPECT_EQ((*hub)->AppendAndWait(e).code(), StatusCode::kUnavailable);
  store_->fail_append = false;
  EXPECT_TRUE((*hub)->AppendAndWait(e).ok());
  auto last = store_->LastLogPosition("chat");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 1u) << "the refused append consumed a position";
}

}  // namespace
}  // namespace hubcast::replication
