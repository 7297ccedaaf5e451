// Tests of the durable side of replication/hub.h: HubRegistry over a real RocksDB Store, with
// replay-log retention enforced by its background thread (tiny limits so it runs within the
// test), and a registry reopened on the same store (LoadAll) restoring connections, the
// applied position, continuing positions, and applying entries that were durable but not
// applied when the previous registry stopped.
#include "base/clock.h"
#include "base/names.h"
#include "base/status.h"
#include "replication/delivery_sink.h"
#include "replication/hub.h"
#include "storage/entry.h"
#include "storage/entry_codec.h"
#include "storage/hub_view.h"
#include "storage/replay.h"
#include "storage/store.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/test_util.h"
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hubcast::replication {
namespace {

using hubcast::testing::TempDir;

namespace fs = std::filesystem;
using storage::Entry;
using storage::EntryKind;
using storage::Scope;

// Records each delivery (position and the reliable numbers given), and can hold the applier
// inside Deliver for one position until released.
class RecordingSink : public DeliverySink {
 public:
  struct Delivery {
    uint64_t position = 0;
    std::string data;
    std::map<std::string, uint64_t> sequence_ids;  // recipient -> its number (0: unreliable)
  };

  void Deliver(Hub&, uint64_t position, const Entry& entry,
               const storage::ApplyResult& result) override {
    Delivery d;
    d.position = position;
    d.data = entry.data;
    for (size_t i = 0; i < result.recipients.size(); ++i) {
      d.sequence_ids[result.recipients[i]->id] = result.sequence_ids[i];
    }
    std::unique_lock lock(mu_);
    deliveries_.push_back(std::move(d));
    if (block_at_ && *block_at_ == position) {
      blocked_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !block_at_; });
    }
  }

  void BlockAt(uint64_t position) {
    std::lock_guard lock(mu_);
    block_at_ = position;
  }
  bool WaitBlocked(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return blocked_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    block_at_.reset();
    cv_.notify_all();
  }
  std::vector<Delivery> All() const {
    std::lock_guard lock(mu_);
    return deliveries_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<uint64_t> block_at_;
  bool blocked_ = false;
  std::vector<Delivery> deliveries_;
};

HubName Name(std::string_view text) {
  auto name = HubName::Parse(text);
  EXPECT_TRUE(name.ok()) << text;
  return std::move(name).value();
}

int64_t Now() { return SystemClock::Get().NowUnixMs(); }
constexpr int64_t kHourMs = 3600 * 1000;

Entry Open(const std::string& id, std::optional<std::string> user, std::vector<std::string> groups,
           bool reliable, int64_t ts) {
  Entry e;
  e.kind = EntryKind::kConnectionOpen;
  e.timestamp_ms = ts;
  e.origin_connection = id;
  e.user_id = std::move(user);
  e.groups = std::move(groups);
  e.reliable = reliable;
  e.subprotocol = reliable ? "json.reliable.webpubsub.azure.v1" : "json.webpubsub.azure.v1";
  e.node_id = "node-1";
  return e;
}

Entry SendToAll(std::string data, int64_t ts) {
  Entry e;
  e.kind = EntryKind::kSend;
  e.timestamp_ms = ts;
  e.scope = Scope::kAll;
  e.data = std::move(data);
  return e;
}

Entry AddToGroup(const std::string& connection, const std::string& group, int64_t ts) {
  Entry e;
  e.kind = EntryKind::kAddToGroups;
  e.timestamp_ms = ts;
  e.scope = Scope::kConnection;
  e.target = connection;
  e.groups = {group};
  return e;
}

Entry CheckpointOf(std::vector<std::pair<std::string, uint64_t>> acks, int64_t ts) {
  Entry e;
  e.kind = EntryKind::kCheckpoint;
  e.timestamp_ms = ts;
  e.acks = std::move(acks);
  return e;
}

// Polls `done` until true or the timeout passes.
bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

uint64_t Append(Hub& hub, Entry e) {
  auto pos = hub.AppendAndWaitDurable(std::move(e));
  EXPECT_TRUE(pos.ok()) << pos.status().message();
  return pos.ok() ? *pos : 0;
}

class Retention : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  void OpenStore() {
    auto opened = storage::Store::Open(storage::StoreOptions{dir_.path(), false});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened).value();
  }

  HubRegistryOptions Options(int64_t max_age_ms, uint64_t max_bytes, int64_t interval_ms = 10) {
    HubRegistryOptions o;
    o.node_id = "node-1";
    o.store = store_.get();
    o.replay_max_age_ms = max_age_ms;
    o.replay_max_bytes = max_bytes;
    o.retention_interval_ms = interval_ms;
    return o;
  }

  // The sum of the sizes of the entries left in the log, and their positions.
  std::pair<uint64_t, std::vector<uint64_t>> LogContents(const std::string& hub) {
    uint64_t bytes = 0;
    std::vector<uint64_t> positions;
    Status s = store_->ScanLog(hub, 0, UINT64_MAX, [&](uint64_t pos, std::string_view v) {
      bytes += v.size();
      positions.push_back(pos);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.message();
    return {bytes, positions};
  }

  TempDir dir_;
  std::unique_ptr<storage::Store> store_;
};

// --- retention ----------------------------------------------------------------------------

TEST_F(Retention, OldEntriesAreTrimmedInTheBackground) {
  RecordingSink sink;
  HubRegistry registry(Options(/*max_age_ms=*/1000, /*max_bytes=*/1ull << 40), &sink);
  auto hub = (*registry.Get(Name("chat")));
  const int64_t old = Now() - kHourMs;
  const int64_t fresh = Now() + kHourMs;  // stays "young" for the whole test
  for (int i = 1; i <= 20; ++i) Append(*hub, SendToAll("old " + std::to_string(i), old));
  for (int i = 1; i <= 5; ++i) Append(*hub, SendToAll("new " + std::to_string(i), fresh));
  EXPECT_TRUE(hub->Barrier().ok());

  ASSERT_TRUE(WaitFor([&] { return store_->FirstLogPosition("chat").value() == 21; }))
      << "first position " << store_->FirstLogPosition("chat").value();
  // Give the retention thread a few more rounds: the young entries stay.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto [bytes, positions] = LogContents("chat");
  EXPECT_EQ(positions, (std::vector<uint64_t>{21, 22, 23, 24, 25}));
  EXPECT_EQ(store_->LastLogPosition("chat").value(), 25u);
  EXPECT_GT(bytes, 0u);
  // Trimming the log does not touch the view or its applied position.
  // Committed lazily after the barrier (a position-only batch waits up to 100 ms).
  EXPECT_TRUE(WaitFor([&] { return store_->AppliedPosition("chat").value() == 25u; }));
  EXPECT_EQ(hub->applied_position(), 25u);
}

TEST_F(Retention, TrimmingStopsAtTheFirstYoungEntry) {
  RecordingSink sink;
  HubRegistry registry(Options(1000, 1ull << 40), &sink);
  auto hub = (*registry.Get(Name("chat")));
  const int64_t old = Now() - kHourMs;
  const int64_t fresh = Now() + kHourMs;
  for (int i = 0; i < 3; ++i) Append(*hub, SendToAll("old", old));
  Append(*hub, SendToAll("young", fresh));                                // 4
  for (int i = 0; i < 3; ++i) Append(*hub, SendToAll("old again", old));  // 5..7
  EXPECT_TRUE(hub->Barrier().ok());
  ASSERT_TRUE(WaitFor([&] { return store_->FirstLogPosition("chat").value() == 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Retention keeps a contiguous suffix: nothing after the young entry is dropped.
  EXPECT_EQ(LogContents("chat").second, (std::vector<uint64_t>{4, 5, 6, 7}));
}

TEST_F(Retention, EntriesNotAppliedYetAreNeverTrimmed) {
  RecordingSink sink;
  sink.BlockAt(5);  // the applier stops inside Deliver(5): 5 is not applied yet
  HubRegistry registry(Options(1000, 1ull << 40), &sink);
  auto hub = (*registry.Get(Name("chat")));
  const int64_t old = Now() - kHourMs;
  for (int i = 1; i <= 10; ++i) Append(*hub, SendToAll("old " + std::to_string(i), old));
  ASSERT_TRUE(sink.WaitBlocked(std::chrono::seconds(10)));
  EXPECT_EQ(hub->applied_position(), 4u);

  // Retention may drop only what a restart would not re-apply: applied entries whose applied
  // position is committed (the blocked run's batch is not committed yet, so perhaps none).
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // many retention rounds
  uint64_t first = store_->FirstLogPosition("chat").value();
  EXPECT_GE(first, 1u);
  EXPECT_LE(first, hub->committed_position() + 1);
  EXPECT_LE(first, 5u);
  auto kept = LogContents("chat").second;
  ASSERT_GE(kept.size(), 6u);
  EXPECT_EQ(std::vector<uint64_t>(kept.end() - 6, kept.end()),
            (std::vector<uint64_t>{5, 6, 7, 8, 9, 10}));

  sink.Release();
  EXPECT_TRUE(hub->Barrier().ok());
  // Once applied, the (old) entries go too.
  ASSERT_TRUE(WaitFor([&] { return store_->FirstLogPosition("chat").value() == 0; }))
      << "first position " << store_->FirstLogPosition("chat").value();
  // Positions continue after a fully trimmed log.
  EXPECT_EQ(Append(*hub, SendToAll("next", Now() + kHourMs)), 11u);
}

TEST_F(Retention, SizeLimitIsEnforcedOnTheOldestEntries) {
  constexpr uint64_t kMaxBytes = 2000;
  RecordingSink sink;
  HubRegistry registry(Options(/*max_age_ms=*/kHourMs * 24, kMaxBytes), &sink);
  auto hub = (*registry.Get(Name("chat")));
  const int64_t ts = Now();
  const std::string payload(100, 'p');
  uint64_t entry_size = storage::EncodeEntry(SendToAll(payload, ts)).size();
  for (int i = 0; i < 100; ++i) Append(*hub, SendToAll(payload, ts));
  EXPECT_TRUE(hub->Barrier().ok());

  const uint64_t kept = kMaxBytes / entry_size;  // every entry has the same size
  ASSERT_TRUE(WaitFor([&] { return LogContents("chat").first <= kMaxBytes; }))
      << "log bytes on disk " << LogContents("chat").first;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto [bytes, positions] = LogContents("chat");
  EXPECT_LE(bytes, kMaxBytes);
  EXPECT_EQ(store_->LogBytes("chat"), bytes) << "the store's byte count drifted from the log";
  // Only as much as needed goes, from the oldest end.
  EXPECT_EQ(positions.size(), kept) << "entry size " << entry_size;
  ASSERT_FALSE(positions.empty());
  EXPECT_EQ(positions.back(), 100u);
  EXPECT_EQ(positions.front(), 100u - positions.size() + 1);
}

// --- reopening ----------------------------------------------------------------------------

class RetentionReopen : public Retention {
 protected:
  // The first registry's history: two connections, one reliable, groups, sends, a checkpoint.
  void WriteHistory() {
    RecordingSink sink;
    HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
    auto hub = (*registry.Get(Name("chat")));
    epoch_ = hub->epoch();
    const int64_t ts = Now();
    Append(*hub, Open("c1", "alice", {"g1"}, /*reliable=*/true, ts));  // 1
    Append(*hub, Open("c2", std::nullopt, {}, false, ts));             // 2
    Append(*hub, AddToGroup("c2", "g2", ts));                          // 3
    for (int i = 0; i < 5; ++i) Append(*hub, SendToAll("m", ts));      // 4..8 c1: 1..5
    Append(*hub, CheckpointOf({{"c1", 2}}, ts));                       // 9
    for (int i = 0; i < 3; ++i) Append(*hub, SendToAll("n", ts));      // 10..12 c1: 6..8
    head_ = Append(*hub, SendToAll("last", ts));                       // 13 c1: 9
    EXPECT_TRUE(hub->Barrier().ok());
    ASSERT_EQ(head_, 13u);
    registry.Stop();
  }

  uint64_t epoch_ = 0;
  uint64_t head_ = 0;
};

TEST_F(RetentionReopen, LoadAllRestoresConnectionsAndAppliedPosition) {
  WriteHistory();
  RecordingSink sink;
  HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
  ASSERT_TRUE(registry.LoadAll().ok());
  auto hubs = registry.AllHubs();
  ASSERT_EQ(hubs.size(), 1u);
  auto hub = hubs.front();
  EXPECT_EQ(hub->name().str(), "chat");
  EXPECT_EQ(hub->epoch(), epoch_);
  EXPECT_EQ(hub->applied_position(), head_);
  EXPECT_EQ(hub->view().applied_position(), head_);
  EXPECT_EQ(hub->view().connection_count(), 2u);
  EXPECT_TRUE(hub->view().GroupExists("g1"));
  EXPECT_TRUE(hub->view().GroupExists("g2"));
  EXPECT_TRUE(hub->view().UserExists("alice"));
  auto c1 = hub->view().GetConnection("c1");
  ASSERT_TRUE(c1.has_value());
  EXPECT_TRUE(c1->reliable);
  EXPECT_EQ(c1->groups, (std::set<std::string>{"g1"}));
  // The stored record was last written at the checkpoint (seq 5); the count is brought
  // forward through the log to where the view stands.
  EXPECT_EQ(c1->seq, 9u);
  EXPECT_EQ(c1->acked, 2u);
  auto c2 = hub->view().GetConnection("c2");
  ASSERT_TRUE(c2.has_value());
  EXPECT_EQ(c2->groups, (std::set<std::string>{"g2"}));
  EXPECT_TRUE(sink.All().empty());  // nothing was re-applied
  // Get returns the loaded hub, not a new one.
  EXPECT_EQ((*registry.Get(Name("chat"))).get(), hub.get());
}

TEST_F(RetentionReopen, PositionsAndNumberingContinueAfterTheHead) {
  WriteHistory();
  RecordingSink sink;
  HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
  ASSERT_TRUE(registry.LoadAll().ok());
  auto hub = (*registry.Get(Name("chat")));
  EXPECT_EQ(Append(*hub, SendToAll("after restart", Now())), head_ + 1);
  EXPECT_EQ(Append(*hub, AddToGroup("c1", "g3", Now())), head_ + 2);
  EXPECT_TRUE(hub->Barrier().ok());
  auto ds = sink.All();
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds[0].position, head_ + 1);
  EXPECT_EQ(ds[0].sequence_ids, (std::map<std::string, uint64_t>{{"c1", 10}, {"c2", 0}}));
  // Committed lazily after the barrier (a position-only batch waits up to 100 ms).
  EXPECT_TRUE(WaitFor([&] { return store_->AppliedPosition("chat").value() == head_ + 2; }));
  EXPECT_EQ(store_->LastLogPosition("chat").value(), head_ + 2);
}

TEST_F(RetentionReopen, UnappliedTailEntriesAreAppliedByLoadAll) {
  WriteHistory();
  // Durable in the log but never applied (as if the process died between the two).
  const int64_t ts = Now();
  ASSERT_TRUE(
      store_->AppendLog("chat", head_ + 1, storage::EncodeEntry(Open("c3", "carol", {}, true, ts)))
          .ok());
  ASSERT_TRUE(
      store_->AppendLog("chat", head_ + 2, storage::EncodeEntry(SendToAll("tail", ts))).ok());
  ASSERT_TRUE(
      store_->AppendLog("chat", head_ + 3, storage::EncodeEntry(AddToGroup("c3", "g9", ts))).ok());
  // Committed lazily after the barrier (a position-only batch waits up to 100 ms).
  EXPECT_TRUE(WaitFor([&] { return store_->AppliedPosition("chat").value() == head_; }));

  RecordingSink sink;
  HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
  ASSERT_TRUE(registry.LoadAll().ok());
  auto ds = sink.All();  // delivered during LoadAll, in order
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds[0].position, head_ + 1);
  EXPECT_EQ(ds[1].position, head_ + 2);
  EXPECT_EQ(ds[1].data, "tail");
  EXPECT_EQ(ds[1].sequence_ids,
            (std::map<std::string, uint64_t>{{"c1", 10}, {"c2", 0}, {"c3", 1}}));
  EXPECT_EQ(ds[2].position, head_ + 3);

  auto hub = (*registry.Get(Name("chat")));
  EXPECT_EQ(hub->applied_position(), head_ + 3);
  // Committed lazily after the barrier (a position-only batch waits up to 100 ms).
  EXPECT_TRUE(WaitFor([&] { return store_->AppliedPosition("chat").value() == head_ + 3; }));
  EXPECT_TRUE(hub->view().GroupExists("g9"));
  EXPECT_EQ(Append(*hub, SendToAll("next", Now())), head_ + 4);
  EXPECT_TRUE(hub->Barrier().ok());
}

TEST_F(RetentionReopen, ARestoredReliableConnectionWhoseCheckpointLeftRetentionCannotReplay) {
  // c1's only checkpoint is its open; retention then drops the entries after it.
  {
    RecordingSink sink;
    HubRegistry registry(Options(1000, 1ull << 40, 10), &sink);
    auto hub = (*registry.Get(Name("chat")));
    const int64_t old = Now() - kHourMs;
    Append(*hub, Open("c1", "alice", {}, true, old));                 // 1
    for (int i = 0; i < 4; ++i) Append(*hub, SendToAll("old", old));  // 2..5: c1 1..4
    Append(*hub, SendToAll("young", Now() + kHourMs));                // 6: c1 5
    EXPECT_TRUE(hub->Barrier().ok());
    ASSERT_TRUE(WaitFor([&] { return store_->FirstLogPosition("chat").value() == 6; }));
    registry.Stop();
  }
  RecordingSink sink;
  HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
  ASSERT_TRUE(registry.LoadAll().ok());
  auto hub = (*registry.Get(Name("chat")));
  auto c1 = hub->view().GetConnection("c1");
  ASSERT_TRUE(c1.has_value());
  ASSERT_FALSE(c1->checkpoints.empty());
  // Recovery from its checkpoint is refused rather than numbering from a wrong base (the
  // gateway then ends the session instead of holding it).
  auto replay = storage::ReplayConnection(*store_, "chat", *c1, c1->checkpoints.front(),
                                          hub->applied_position(), c1->acked,
                                          [](uint64_t, uint64_t, const Entry&) {});
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.status().code(), StatusCode::kNotFound);
}

TEST_F(RetentionReopen, PositionsContinueAfterAFullyTrimmedLog) {
  {
    RecordingSink sink;
    HubRegistry registry(Options(1000, 1ull << 40, 10), &sink);
    auto hub = (*registry.Get(Name("chat")));
    for (int i = 0; i < 5; ++i) Append(*hub, SendToAll("old", Now() - kHourMs));
    EXPECT_TRUE(hub->Barrier().ok());
    ASSERT_TRUE(WaitFor([&] { return store_->FirstLogPosition("chat").value() == 0; }));
    registry.Stop();
  }
  EXPECT_EQ(store_->LastLogPosition("chat").value(), 0u);
  // Committed lazily after the barrier (a position-only batch waits up to 100 ms).
  EXPECT_TRUE(WaitFor([&] { return store_->AppliedPosition("chat").value() == 5u; }));
  RecordingSink sink;
  HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
  ASSERT_TRUE(registry.LoadAll().ok());
  auto hub = (*registry.Get(Name("chat")));
  EXPECT_EQ(hub->applied_position(), 5u);
  EXPECT_EQ(Append(*hub, SendToAll("next", Now())), 6u);
  EXPECT_TRUE(hub->Barrier().ok());
  // Committed lazily after the barrier (a position-only batch waits up to 100 ms).
  EXPECT_TRUE(WaitFor([&] { return store_->AppliedPosition("chat").value() == 6u; }));
}

TEST_F(RetentionReopen, TwoHubsReloadIndependently) {
  {
    RecordingSink sink;
    HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
    auto a = (*registry.Get(Name("alpha")));
    auto b = (*registry.Get(Name("beta")));
    for (int i = 0; i < 3; ++i) Append(*a, SendToAll("a", Now()));
    Append(*b, Open("b1", std::nullopt, {"g"}, false, Now()));
    EXPECT_TRUE(a->Barrier().ok());
    EXPECT_TRUE(b->Barrier().ok());
  }
  RecordingSink sink;
  HubRegistry registry(Options(kHourMs, 1ull << 40, 1000), &sink);
  ASSERT_TRUE(registry.LoadAll().ok());
  EXPECT_EQ(registry.AllHubs().size(), 2u);
  EXPECT_EQ((*registry.Get(Name("alpha")))->applied_position(), 3u);
  EXPECT_EQ((*registry.Get(Name("beta")))->applied_position(), 1u);
  EXPECT_TRUE((*registry.Get(Name("beta")))->view().ConnectionExists("b1"));
  EXPECT_FALSE((*registry.Get(Name("alpha")))->view().ConnectionExists("b1"));
}

}  // namespace
}  // namespace hubcast::replication
