// Tests of replication/hub.h: Hub and HubRegistry over LocalLog (in memory and over RocksDB)
// and MemoryView, with a DeliverySink that records what the appliers hand it, and a HubLog
// fake that holds appends until the test completes them.
#include "replication/hub.h"

#include "base/names.h"
#include "base/status.h"
#include "replication/delivery_sink.h"
#include "replication/local_log.h"
#include "storage/entry.h"
#include "storage/hub_view.h"
#include "storage/store.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/forwarding_store.h"
#include "tests/unit/testing/test_util.h"
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace hubcast::replication {
namespace {

using storage::Entry;
using storage::EntryKind;
using storage::Scope;

// What one Deliver call saw (copied: the result's pointers are valid only during the call).
struct Delivery {
  std::string hub;
  uint64_t position = 0;
  EntryKind kind = EntryKind::kSend;
  std::string data;
  std::string origin;
  StatusCode status = StatusCode::kOk;
  std::set<std::string> recipients;
  std::vector<std::string> closed;
  std::optional<std::string> opened;
  std::thread::id thread;
};

class RecordingSink : public DeliverySink {
 public:
  void Deliver(Hub& hub, uint64_t position, const Entry& entry,
               const storage::ApplyResult& result) override {
    Delivery d;
    d.hub = hub.name().str();
    d.position = position;
    d.kind = entry.kind;
    d.data = entry.data;
    d.origin = entry.origin_connection;
    d.status = result.status.code();
    for (const storage::ConnectionRecord* r : result.recipients) d.recipients.insert(r->id);
    d.closed = result.closed;
    if (result.opened != nullptr) d.opened = result.opened->id;
    d.thread = std::this_thread::get_id();
    std::lock_guard lock(mu_);
    deliveries_.push_back(std::move(d));
  }

  std::vector<Delivery> All() const {
    std::lock_guard lock(mu_);
    return deliveries_;
  }

  std::vector<Delivery> ForHub(const std::string& hub) const {
    std::vector<Delivery> out;
    for (auto& d : All()) {
      if (d.hub == hub) out.push_back(d);
    }
    return out;
  }

  size_t size() const {
    std::lock_guard lock(mu_);
    return deliveries_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Delivery> deliveries_;
};

HubName Name(std::string_view text) {
  auto name = HubName::Parse(text);
  EXPECT_TRUE(name.ok()) << text;
  return std::move(name).value();
}

Entry Open(const std::string& id, std::optional<std::string> user = std::nullopt) {
  Entry e;
  e.kind = EntryKind::kConnectionOpen;
  e.origin_connection = id;
  e.user_id = std::move(user);
  return e;
}

Entry SendToAll(std::string data) {
  Entry e;
  e.kind = EntryKind::kSend;
  e.scope = Scope::kAll;
  e.data = std::move(data);
  return e;
}

Entry AddToGroup(const std::string& connection, const std::string& group) {
  Entry e;
  e.kind = EntryKind::kAddToGroups;
  e.scope = Scope::kConnection;
  e.target = connection;
  e.groups = {group};
  return e;
}

std::vector<uint64_t> Positions(const std::vector<Delivery>& ds) {
  std::vector<uint64_t> out;
  for (const auto& d : ds) out.push_back(d.position);
  return out;
}

std::vector<uint64_t> OneTo(uint64_t n) {
  std::vector<uint64_t> out;
  for (uint64_t i = 1; i <= n; ++i) out.push_back(i);
  return out;
}

// An executor the test drains by hand, recording on which thread tasks ran.
class ManualExecutor : public Executor {
 public:
  void Execute(std::function<void()> task) override {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  size_t RunAll() {
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard lock(mu_);
      tasks.swap(tasks_);
    }
    for (auto& t : tasks) t();
    return tasks.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
};

// Logs that assign positions in memory but hold every append until the test releases them:
// the stand-in for a remote log whose acknowledgement takes a round trip.
class HeldLogs : public LogProvider {
 public:
  class Log : public HubLog {
   public:
    explicit Log(HeldLogs* owner) : owner_(owner) {}
    void SetConsumer(Consumer c) override { consumer_ = std::move(c); }
    Status Start(uint64_t) override { return Status::Ok(); }
    void Append(storage::EntryPtr e, DurableFn d, AppliedFn a, const std::string&) override {
      std::lock_guard lock(owner_->mu_);
      owner_->held_.push_back({this, std::move(e), std::move(d), std::move(a)});
    }
    Result<uint64_t> Head() override { return head_.load(); }
    uint64_t epoch() const override { return 42; }

   private:
    friend class HeldLogs;
    HeldLogs* owner_;
    Consumer consumer_;
    std::atomic<uint64_t> head_{0};
  };

  Result<std::vector<std::string>> Hubs() override { return std::vector<std::string>{}; }
  Result<std::unique_ptr<HubLog>> Open(const HubName&, bool) override {
    return std::unique_ptr<HubLog>(std::make_unique<Log>(this));
  }
  void Stop() override { Release(); }

  size_t held() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  // Acknowledges every held append, in order.
  void Release() {
    std::vector<Held> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& h : held) {
      uint64_t pos = h.log->head_.load() + 1;
      h.log->head_.store(pos);
      h.durable(pos);
      h.log->consumer_(LogRecord{pos, std::move(h.entry), {}, std::move(h.applied)});
    }
  }

 private:
  struct Held {
    Log* log;
    storage::EntryPtr entry;
    DurableFn durable;
    AppliedFn applied;
  };
  std::mutex mu_;
  std::vector<Held> held_;
};

uint64_t AppendOk(Hub& hub, Entry e) {
  auto pos = hub.AppendAndWaitDurable(std::move(e));
  EXPECT_TRUE(pos.ok()) << pos.status().message();
  return pos.ok() ? *pos : 0;
}

class HubAppend : public ::testing::Test {
 protected:
  std::shared_ptr<Hub> GetHub(std::string_view name) {
    auto hub = registry_.Get(Name(name));
    EXPECT_TRUE(hub.ok()) << hub.status().message();
    return hub.ok() ? *hub : nullptr;
  }

  RecordingSink sink_;  // declared first: outlives the registry's appliers
  HubRegistry registry_{HubRegistryOptions{"node-1"}, &sink_};
};

TEST_F(HubAppend, PositionsIncreaseStrictlyFromOne) {
  auto hub = GetHub("chat");
  for (uint64_t i = 1; i <= 20; ++i)
    EXPECT_EQ(AppendOk(*hub, SendToAll("m" + std::to_string(i))), i);
  ASSERT_TRUE(hub->Barrier().ok());
  EXPECT_EQ(hub->view().applied_position(), 20u);
}

TEST_F(HubAppend, DeliverIsCalledOncePerEntryInOrderWithTheApplyResult) {
  auto hub = GetHub("chat");
  hub->Append(Open("c1", "alice"));
  hub->Append(Open("c2"));
  hub->Append(SendToAll("hello"));
  hub->Append(AddToGroup("nope", "g"));
  Entry close;
  close.kind = EntryKind::kConnectionClose;
  close.origin_connection = "c2";
  hub->Append(close);
  AppendOk(*hub, SendToAll("after"));
  ASSERT_TRUE(hub->Barrier().ok());

  auto ds = sink_.All();
  ASSERT_EQ(ds.size(), 6u);
  EXPECT_EQ(Positions(ds), OneTo(6));
  for (const auto& d : ds) {
    EXPECT_EQ(d.hub, "chat");
    EXPECT_NE(d.thread, std::this_thread::get_id());
  }
  EXPECT_EQ(ds[0].kind, EntryKind::kConnectionOpen);
  EXPECT_EQ(ds[0].opened, std::optional<std::string>("c1"));
  EXPECT_EQ(ds[1].opened, std::optional<std::string>("c2"));
  EXPECT_EQ(ds[2].kind, EntryKind::kSend);
  EXPECT_EQ(ds[2].data, "hello");
  EXPECT_EQ(ds[2].status, StatusCode::kOk);
  EXPECT_EQ(ds[2].recipients, std::set<std::string>({"c1", "c2"}));
  EXPECT_EQ(ds[3].status, StatusCode::kNotFound);
  EXPECT_EQ(ds[4].closed, std::vector<std::string>({"c2"}));
  EXPECT_EQ(ds[5].recipients, std::set<std::string>({"c1"}));
}

TEST(HubAppliers, AHubStaysOnOneApplierAndHubsSpreadOverThePool) {
  RecordingSink sink;
  HubRegistryOptions options{"n"};
  options.appliers = 4;
  HubRegistry registry(options, &sink);
  std::vector<std::shared_ptr<Hub>> hubs;
  for (int h = 0; h < 8; ++h) hubs.push_back(*registry.Get(Name("hub" + std::to_string(h))));
  for (int i = 0; i < 50; ++i) {
    for (auto& hub : hubs) hub->Append(SendToAll("x"));
  }
  // A barrier covers what was acknowledged: wait for the last append of each hub.
  for (auto& hub : hubs) AppendOk(*hub, SendToAll("last"));
  for (auto& hub : hubs) ASSERT_TRUE(hub->Barrier().ok());
  std::map<std::string, std::set<std::thread::id>> threads_of_hub;
  std::set<std::thread::id> all;
  for (const auto& d : sink.All()) {
    threads_of_hub[d.hub].insert(d.thread);
    all.insert(d.thread);
  }
  ASSERT_EQ(threads_of_hub.size(), 8u);
  for (const auto& [hub, threads] : threads_of_hub) EXPECT_EQ(threads.size(), 1u) << hub;
  EXPECT_EQ(all.size(), 4u);
}

TEST_F(HubAppend, AppendAndWaitReturnsTheApplyStatus) {
  auto hub = GetHub("chat");
  EXPECT_TRUE(hub->AppendAndWait(Open("c1")).ok());
  EXPECT_EQ(hub->AppendAndWait(AddToGroup("unknown", "g")).code(), StatusCode::kNotFound);
  EXPECT_TRUE(hub->AppendAndWait(AddToGroup("c1", "g")).ok());
  EXPECT_EQ(hub->AppendAndWait(Open("c1")).code(), StatusCode::kInvalidArgument);

  Entry grant;
  grant.kind = EntryKind::kGrant;
  grant.target = "unknown";
  EXPECT_EQ(hub->AppendAndWait(grant).code(), StatusCode::kNotFound);

  Entry join = AddToGroup("c1", "secret");
  join.origin_connection = "c1";
  join.ack_id = 1;
  join.required_permission = storage::Permission::kJoinLeaveGroup;
  join.permission_target = "secret";
  EXPECT_EQ(hub->AppendAndWait(join).code(), StatusCode::kForbidden);
}

TEST_F(HubAppend, AppendAndWaitReturnsAfterTheChangeIsVisible) {
  auto hub = GetHub("chat");
  ASSERT_TRUE(hub->AppendAndWait(Open("c1", "alice")).ok());
  EXPECT_TRUE(hub->view().ConnectionExists("c1"));
  EXPECT_TRUE(hub->view().UserExists("alice"));
  ASSERT_TRUE(hub->AppendAndWait(AddToGroup("c1", "g")).ok());
  EXPECT_TRUE(hub->view().GroupExists("g"));
}

TEST_F(HubAppend, AppliedRunsOnTheApplierAfterDeliverWithTheStatus) {
  auto hub = GetHub("chat");
  std::promise<std::pair<StatusCode, size_t>> seen;
  std::promise<std::thread::id> thread;
  AppendCallbacks cb;
  cb.applied = [&](uint64_t, const Status& s) {
    seen.set_value({s.code(), sink_.size()});
    thread.set_value(std::this_thread::get_id());
  };
  hub->Append(AddToGroup("nope", "g"), std::move(cb));
  auto [code, delivered] = seen.get_future().get();
  EXPECT_EQ(code, StatusCode::kNotFound);
  EXPECT_EQ(delivered, 1u);  // Deliver ran before the completion
  EXPECT_NE(thread.get_future().get(), std::this_thread::get_id());
}

TEST_F(HubAppend, BarrierMakesAQuerySeeAJustAppendedChange) {
  auto hub = GetHub("chat");
  for (int i = 0; i < 200; ++i) {
    const std::string id = "c" + std::to_string(i);
    uint64_t pos = AppendOk(*hub, Open(id));
    ASSERT_TRUE(hub->Barrier().ok());
    ASSERT_TRUE(hub->view().ConnectionExists(id)) << id;
    ASSERT_GE(hub->view().applied_position(), pos);
  }
  EXPECT_EQ(hub->view().connection_count(), 200u);
}

TEST_F(HubAppend, BarrierOnAnEmptyHubReturns) {
  auto hub = GetHub("empty");
  EXPECT_TRUE(hub->Barrier().ok());
  EXPECT_EQ(hub->view().applied_position(), 0u);
}

TEST_F(HubAppend, ConcurrentAppendsAreAppliedExactlyOnceInPositionOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  auto a = GetHub("alpha");
  auto b = GetHub("beta");
  std::atomic<bool> go{false};
  std::atomic<int> applied_calls{0};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::map<std::string, std::map<uint64_t, std::string>> data_at;  // hub -> position -> data

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        const std::string data = "t" + std::to_string(t) + "-" + std::to_string(i);
        // Alternate hubs so both logs see interleaved appends from every thread.
        Hub& hub = (i + t) % 2 == 0 ? *a : *b;
        AppendCallbacks cb;
        cb.durable = [&, data, name = hub.name().str()](Result<uint64_t> pos) {
          if (!pos.ok()) {
            failures.fetch_add(1);
            return;
          }
          std::lock_guard lock(mu);
          if (!data_at[name].emplace(*pos, data).second) failures.fetch_add(1);
        };
        cb.applied = [&](uint64_t, const Status& s) {
          if (!s.ok()) failures.fetch_add(1);
          applied_calls.fetch_add(1);
        };
        hub.Append(SendToAll(data), std::move(cb));
      }
    });
  }
  go.store(true);
  for (auto& th : threads) th.join();
  // Every append was accepted (the bounds are far away); wait until all are applied.
  while (applied_calls.load() + failures.load() < kThreads * kPerThread) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(applied_calls.load(), kThreads * kPerThread);

  for (const char* name : {"alpha", "beta"}) {
    SCOPED_TRACE(name);
    const auto& expected = data_at[name];
    const uint64_t n = expected.size();
    EXPECT_EQ(n, static_cast<uint64_t>(kThreads * kPerThread / 2));
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(expected.begin()->first, 1u);
    EXPECT_EQ(expected.rbegin()->first, n);
    auto ds = sink_.ForHub(name);
    ASSERT_EQ(ds.size(), n);
    EXPECT_EQ(Positions(ds), OneTo(n));
    for (const auto& d : ds) EXPECT_EQ(d.data, expected.at(d.position)) << d.position;
  }
}

TEST_F(HubAppend, ConcurrentAppendAndWaitAllSucceed) {
  auto hub = GetHub("chat");
  ASSERT_TRUE(hub->AppendAndWait(Open("c1")).ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (hub->AppendAndWait(SendToAll(std::to_string(t))).ok()) ok.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(hub->view().applied_position(), 201u);
  auto ds = sink_.All();
  ASSERT_EQ(ds.size(), 201u);
  for (size_t i = 1; i < ds.size(); ++i) {
    EXPECT_EQ(ds[i].recipients, std::set<std::string>({"c1"}));
  }
}

TEST_F(HubAppend, TwoHubsAreIndependent) {
  auto a = GetHub("alpha");
  auto b = GetHub("beta");
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->name().str(), "alpha");
  EXPECT_EQ(b->name().str(), "beta");

  EXPECT_EQ(AppendOk(*a, Open("c1")), 1u);
  EXPECT_EQ(AppendOk(*a, AddToGroup("c1", "g")), 2u);
  EXPECT_EQ(AppendOk(*b, Open("c2")), 1u);  // each hub numbers from 1
  ASSERT_TRUE(a->Barrier().ok());
  ASSERT_TRUE(b->Barrier().ok());

  EXPECT_TRUE(a->view().ConnectionExists("c1"));
  EXPECT_FALSE(a->view().ConnectionExists("c2"));
  EXPECT_TRUE(b->view().ConnectionExists("c2"));
  EXPECT_FALSE(b->view().ConnectionExists("c1"));
  EXPECT_TRUE(a->view().GroupExists("g"));
  EXPECT_FALSE(b->view().GroupExists("g"));
  EXPECT_EQ(a->view().applied_position(), 2u);
  EXPECT_EQ(b->view().applied_position(), 1u);

  // The same connection id in another hub is another connection.
  EXPECT_TRUE(b->AppendAndWait(Open("c1")).ok());
  EXPECT_EQ(Positions(sink_.ForHub("alpha")), OneTo(2));
  EXPECT_EQ(Positions(sink_.ForHub("beta")), OneTo(2));
}

TEST_F(HubAppend, GetReturnsTheSameHubForTheSameName) {
  auto a = GetHub("Chat");
  auto b = GetHub("chat");
  auto c = GetHub("CHAT");
  EXPECT_EQ(a.get(), b.get());  // hub names are case-insensitive
  EXPECT_EQ(a.get(), c.get());
  EXPECT_EQ(a->name().str(), "chat");
  EXPECT_EQ(a->epoch(), b->epoch());
  ASSERT_TRUE(a->AppendAndWait(Open("c1")).ok());
  EXPECT_TRUE(c->view().ConnectionExists("c1"));
}

TEST_F(HubAppend, FindNeverCreatesAHub) {
  EXPECT_EQ(registry_.Find(Name("ghost")), nullptr);
  EXPECT_TRUE(registry_.AllHubs().empty());
  auto hub = GetHub("ghost");
  EXPECT_EQ(registry_.Find(Name("ghost")), hub);
}

TEST(HubRegistryBounds, CreatingMoreThanMaxHubsIsRefused) {
  HubRegistryOptions options{"n"};
  options.max_hubs = 3;
  HubRegistry registry(options, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry.Get(Name("h" + std::to_string(i))).ok());
  auto fourth = registry.Get(Name("h3"));
  ASSERT_FALSE(fourth.ok());
  EXPECT_EQ(fourth.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(fourth.status().message().find("--max-hubs"), std::string::npos);
  EXPECT_TRUE(registry.Get(Name("h1")).ok());  // existing hubs stay reachable
  EXPECT_EQ(registry.AllHubs().size(), 3u);
}

TEST_F(HubAppend, RegistryKeepsItsNodeId) { EXPECT_EQ(registry_.node_id(), "node-1"); }

TEST_F(HubAppend, AppendAfterStopFailsUnavailable) {
  auto hub = GetHub("chat");
  ASSERT_TRUE(hub->AppendAndWait(Open("c1")).ok());
  EXPECT_FALSE(registry_.stopping());
  registry_.Stop();
  EXPECT_TRUE(registry_.stopping());

  bool applied = false;
  std::optional<Status> durable;
  AppendCallbacks cb;
  cb.durable = [&](Result<uint64_t> r) { durable = r.status(); };
  cb.applied = [&](uint64_t, const Status&) { applied = true; };
  hub->Append(Open("c2"), std::move(cb));
  ASSERT_TRUE(durable.has_value());
  EXPECT_EQ(durable->code(), StatusCode::kUnavailable);
  EXPECT_EQ(hub->AppendAndWait(Open("c3")).code(), StatusCode::kUnavailable);
  EXPECT_FALSE(applied);
  EXPECT_FALSE(hub->view().ConnectionExists("c2"));
  EXPECT_EQ(hub->view().applied_position(), 1u);
  EXPECT_EQ(sink_.size(), 1u);

  // No hub is created after Stop.
  EXPECT_EQ(registry_.Get(Name("late")).status().code(), StatusCode::kUnavailable);
  registry_.Stop();  // idempotent
}

TEST_F(HubAppend, StopAppliesEverythingAppendedBefore) {
  auto hub = GetHub("chat");
  std::atomic<int> applied{0};
  for (int i = 0; i < 500; ++i) {
    AppendCallbacks cb;
    cb.applied = [&](uint64_t, const Status&) { ++applied; };
    hub->Append(SendToAll(std::to_string(i)), std::move(cb));
  }
  registry_.Stop();
  EXPECT_EQ(applied.load(), 500);
  EXPECT_EQ(sink_.size(), 500u);
  EXPECT_EQ(hub->view().applied_position(), 500u);
}

// An Append racing Stop() is either refused (its `durable` says so) or applied: an accepted
// entry that is never applied would leave its caller waiting forever.
TEST_F(HubAppend, EveryAppendAcceptedDuringStopIsApplied) {
  int runs_with_lost_entries = 0;
  int64_t lost_entries = 0;
  constexpr int kRuns = 100;
  for (int run = 0; run < kRuns; ++run) {
    std::atomic<int64_t> accepted{0};
    std::atomic<int64_t> applied{0};
    std::atomic<bool> go{false};
    {
      HubRegistry registry(HubRegistryOptions{"n"}, nullptr);
      auto hub = *registry.Get(Name("chat"));
      std::vector<std::thread> threads;
      std::atomic<bool> refused{false};
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          while (!go.load()) std::this_thread::yield();
          while (!refused.load()) {
            AppendCallbacks cb;
            cb.durable = [&](Result<uint64_t> r) {
              if (r.ok()) {
                accepted.fetch_add(1);
              } else {
                refused.store(true);
              }
            };
            cb.applied = [&](uint64_t, const Status&) { applied.fetch_add(1); };
            hub->Append(SendToAll("x"), std::move(cb));
          }
        });
      }
      go.store(true);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      registry.Stop();  // joins the writer and the appliers: no callback runs after this
      refused.store(true);
      for (auto& th : threads) th.join();
      if (accepted.load() != applied.load()) {
        ++runs_with_lost_entries;
        lost_entries += accepted.load() - applied.load();
      }
    }
  }
  EXPECT_EQ(runs_with_lost_entries, 0)
      << lost_entries << " accepted entries were never applied, in " << runs_with_lost_entries
      << " of " << kRuns << " runs";
}

TEST(HubRegistryWithoutSink, AppliesWithoutDelivering) {
  HubRegistry registry(HubRegistryOptions{"n"}, nullptr);
  auto hub = *registry.Get(Name("chat"));
  EXPECT_TRUE(hub->AppendAndWait(Open("c1")).ok());
  EXPECT_EQ(hub->AppendAndWait(AddToGroup("c9", "g")).code(), StatusCode::kNotFound);
  EXPECT_TRUE(hub->view().ConnectionExists("c1"));
}

// --- Asynchronous appends: a log whose acknowledgement takes a round trip -------------------

class HeldLogAppend : public ::testing::Test {
 protected:
  HeldLogAppend() {
    options_.logs = &logs_;
    options_.max_pending_per_hub = 64;
    registry_ = std::make_unique<HubRegistry>(options_, &sink_);
    hub_ = *registry_->Get(Name("chat"));
  }
  ~HeldLogAppend() override { registry_->Stop(); }

  RecordingSink sink_;
  HeldLogs logs_;
  HubRegistryOptions options_{"n"};
  std::unique_ptr<HubRegistry> registry_;
  std::shared_ptr<Hub> hub_;
};

TEST_F(HeldLogAppend, AppendReturnsAtOnceAndCompletesOnTheCallersExecutorInOrder) {
  ManualExecutor executor;
  std::vector<std::string> events;
  AppendCallbacks cb;
  cb.executor = &executor;
  cb.durable = [&](Result<uint64_t> r) { events.push_back("durable " + std::to_string(*r)); };
  cb.applied = [&](uint64_t pos, const Status& s) {
    events.push_back("applied " + std::to_string(pos) + (s.ok() ? " ok" : " failed"));
  };
  hub_->Append(Open("c1"), std::move(cb));
  // The log holds the entry: nothing is durable, applied or run yet.
  EXPECT_EQ(logs_.held(), 1u);
  EXPECT_EQ(executor.RunAll(), 0u);
  EXPECT_TRUE(events.empty());
  EXPECT_FALSE(hub_->view().ConnectionExists("c1"));

  logs_.Release();
  ASSERT_TRUE(hub_->Barrier().ok());
  // The completions were posted to the executor, not run on the log's or applier's thread.
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(executor.RunAll(), 2u);
  EXPECT_EQ(events, std::vector<std::string>({"durable 1", "applied 1 ok"}));
  EXPECT_TRUE(hub_->view().ConnectionExists("c1"));
}

TEST_F(HeldLogAppend, AFloodPastTheHubBoundIsRefusedAndEveryAcceptedEntryIsApplied) {
  std::atomic<int> refused{0}, accepted{0}, applied{0};
  for (int i = 0; i < 1000; ++i) {
    AppendCallbacks cb;
    cb.durable = [&](Result<uint64_t> r) {
      if (r.ok()) {
        accepted.fetch_add(1);
      } else {
        EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
        refused.fetch_add(1);
      }
    };
    cb.applied = [&](uint64_t, const Status&) { applied.fetch_add(1); };
    hub_->Append(SendToAll(std::to_string(i)), std::move(cb));
  }
  // Refusals are immediate; the 64 admitted wait in the log.
  EXPECT_EQ(refused.load(), 1000 - 64);
  EXPECT_EQ(logs_.held(), 64u);
  logs_.Release();
  ASSERT_TRUE(hub_->Barrier().ok());
  EXPECT_EQ(accepted.load(), 64);
  EXPECT_EQ(applied.load(), 64);
  EXPECT_EQ(sink_.size(), 64u);
  // Applied entries free their places.
  std::optional<Result<uint64_t>> next;
  AppendCallbacks cb;
  cb.durable = [&](Result<uint64_t> r) { next = r; };
  hub_->Append(SendToAll("again"), std::move(cb));
  logs_.Release();
  ASSERT_TRUE(next.has_value() && next->ok());
  EXPECT_EQ(**next, 65u);
}

TEST(HubRegistryBounds, TheNodeBoundsCoverEveryHub) {
  HeldLogs logs;
  HubRegistryOptions options{"n"};
  options.logs = &logs;
  options.max_pending_per_node = 10;
  HubRegistry registry(options, nullptr);
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    AppendCallbacks cb;
    cb.durable = [&](Result<uint64_t> r) { refused += !r.ok(); };
    (*registry.Get(Name("h" + std::to_string(i % 4))))->Append(SendToAll("x"), std::move(cb));
  }
  EXPECT_EQ(refused, 10);
  EXPECT_EQ(logs.held(), 10u);

  // And the payload bytes: one large entry fills the budget.
  logs.Release();
  HubRegistryOptions bytes_options{"n"};
  HeldLogs logs2;
  bytes_options.logs = &logs2;
  bytes_options.max_pending_bytes = 1 << 20;
  HubRegistry by_bytes(bytes_options, nullptr);
  auto hub = *by_bytes.Get(Name("big"));
  int refused_bytes = 0;
  for (int i = 0; i < 3; ++i) {
    AppendCallbacks cb;
    cb.durable = [&](Result<uint64_t> r) { refused_bytes += !r.ok(); };
    hub->Append(SendToAll(std::string(600 << 10, 'x')), std::move(cb));
  }
  EXPECT_EQ(refused_bytes, 2);
  logs2.Release();
}

// --- Over RocksDB: group commit, order, durability ------------------------------------------

class DurableAppend : public ::testing::Test {
 protected:
  void Open(bool sync_writes) {
    storage::StoreOptions so;
    so.path = dir_.path() + "/db";
    so.sync_writes = sync_writes;
    auto store = storage::Store::Open(so);
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
    logs_ = LocalLogProvider::New(store_.get());
    HubRegistryOptions options{"n"};
    options.store = store_.get();
    options.logs = logs_.get();
    options.appliers = 2;
    registry_ = std::make_unique<HubRegistry>(options, &sink_);
  }
  void TearDown() override {
    if (registry_) registry_->Stop();
  }

  hubcast::testing::TempDir dir_;
  RecordingSink sink_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<LocalLogProvider> logs_;
  std::unique_ptr<HubRegistry> registry_;
};

TEST_F(DurableAppend, SixteenThreadsOnEightHubsApplyInOrderAndCompleteOnceAfterDurable) {
  Open(/*sync_writes=*/false);
  constexpr int kThreads = 16, kHubs = 8, kPerThread = 200;
  std::vector<std::shared_ptr<Hub>> hubs;
  for (int h = 0; h < kHubs; ++h) hubs.push_back(*registry_->Get(Name("h" + std::to_string(h))));
  std::atomic<int> durable_calls{0}, applied_calls{0}, problems{0};
  std::mutex mu;
  std::map<std::string, int> durable_count;  // "hub/data" -> durable callbacks
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        Hub& hub = *hubs[(t + i) % kHubs];
        std::string key = hub.name().str() + "/" + std::to_string(t) + "-" + std::to_string(i);
        auto was_durable = std::make_shared<std::atomic<bool>>(false);
        AppendCallbacks cb;
        cb.durable = [&, key, was_durable, name = hub.name().str()](Result<uint64_t> r) {
          durable_calls.fetch_add(1);
          if (!r.ok()) {
            problems.fetch_add(1);
            return;
          }
          // Durable means in the store when the caller hears of it.
          bool found = false;
          (void)store_->ScanLog(name, *r, *r, [&](uint64_t, std::string_view) {
            found = true;
            return false;
          });
          if (!found) problems.fetch_add(1);
          was_durable->store(true);
          std::lock_guard lock(mu);
          if (++durable_count[key] != 1) problems.fetch_add(1);
        };
        cb.applied = [&, was_durable](uint64_t, const Status& s) {
          if (!s.ok() || !was_durable->load()) problems.fetch_add(1);
          applied_calls.fetch_add(1);
        };
        hub.Append(SendToAll(key), std::move(cb));
      }
    });
  }
  go.store(true);
  for (auto& th : threads) th.join();
  for (auto& hub : hubs) ASSERT_TRUE(hub->Barrier().ok());
  while (applied_calls.load() < kThreads * kPerThread && problems.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(problems.load(), 0);
  EXPECT_EQ(durable_calls.load(), kThreads * kPerThread);
  EXPECT_EQ(applied_calls.load(), kThreads * kPerThread);
  for (auto& hub : hubs) {
    auto ds = sink_.ForHub(hub->name().str());
    EXPECT_EQ(Positions(ds), OneTo(kThreads * kPerThread / kHubs)) << hub->name().str();
  }
  // The writer shared its rounds among the concurrent appends.
  EXPECT_LT(logs_->stats().rounds, logs_->stats().entries);
}

// Closed-loop appenders: each completion issues the next append, so `in_flight` appends are
// always waiting. Returns the appends per second over `total` appends.
double RunClosedLoop(Hub& hub, int in_flight, int total) {
  std::atomic<int> issued{0};
  int finished = 0;  // callbacks that returned (guarded by mu): the locals outlive them all
  std::mutex mu;
  std::condition_variable cv;
  std::function<void()> issue = [&] {
    if (issued.fetch_add(1) >= total) return;
    AppendCallbacks cb;
    cb.durable = [&](Result<uint64_t> r) {
      EXPECT_TRUE(r.ok());
      issue();
      std::lock_guard lock(mu);
      if (++finished == total) cv.notify_all();
    };
    hub.Append(SendToAll("payload-payload-payload"), std::move(cb));
  };
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < in_flight; ++i) issue();
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return finished == total; });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return total / seconds;
}

TEST_F(DurableAppend, GroupCommitSharesOneFsyncAmongConcurrentAppends) {
  Open(/*sync_writes=*/true);
  auto hub = *registry_->Get(Name("chat"));
  constexpr int kSerial = 100, kConcurrent = 3000;
  auto before = logs_->stats();
  double serial_rate = RunClosedLoop(*hub, 1, kSerial);
  auto mid = logs_->stats();
  double concurrent_rate = RunClosedLoop(*hub, 64, kConcurrent);
  auto after = logs_->stats();
  uint64_t serial_rounds = mid.rounds - before.rounds;
  uint64_t concurrent_rounds = after.rounds - mid.rounds;
  // One appender: every entry waits for its own fsync.
  EXPECT_EQ(serial_rounds, static_cast<uint64_t>(kSerial));
  // 64 appenders: the entries queued during one fsync share the next (counted, not timed).
  EXPECT_LE(concurrent_rounds * 10, static_cast<uint64_t>(kConcurrent));
  std::printf(
      "[ group commit ] 1 appender: %.0f appends/s, %.0f fsyncs/s; 64 appenders: %.0f "
      "appends/s, %.0f fsyncs/s (%.1f entries per fsync), ratio %.1fx\n",
      serial_rate, serial_rate, concurrent_rate, concurrent_rate * concurrent_rounds / kConcurrent,
      double(kConcurrent) / concurrent_rounds, concurrent_rate / serial_rate);
  ASSERT_TRUE(hub->Barrier().ok());
  EXPECT_EQ(Positions(sink_.All()), OneTo(kSerial + kConcurrent));
}

}  // namespace
}  // namespace hubcast::replication

// --- An apply that fails halfway -------------------------------------------------------------

namespace hubcast::replication {
namespace {

// A store whose apply batches throw on the entry that carries `poison` (after the view applied
// it, before the batch took its changes): an apply that fails halfway.
class PoisonedStore final : public hubcast::testing::ForwardingStore {
 public:
  PoisonedStore(storage::Store* inner, std::string poison)
      : ForwardingStore(inner), poison_(std::move(poison)) {}

  std::unique_ptr<storage::ApplyBatch> NewApplyBatch() override {
    return std::make_unique<Batch>(inner()->NewApplyBatch(), poison_);
  }
  Status Commit(std::unique_ptr<storage::ApplyBatch> batch) override {
    return inner()->Commit(std::move(static_cast<Batch&>(*batch).inner));
  }

 private:
  struct Batch final : storage::ApplyBatch {
    Batch(std::unique_ptr<storage::ApplyBatch> b, std::string p)
        : inner(std::move(b)), poison(std::move(p)) {}
    void Add(const std::string& hub, uint64_t position, const Entry& entry,
             const storage::ApplyResult& result, std::string_view log_entry) override {
      if (entry.data == poison) throw std::runtime_error("injected apply failure");
      inner->Add(hub, position, entry, result, log_entry);
    }
    bool changes_state() const override { return inner->changes_state(); }
    bool empty() const override { return inner->empty(); }
    std::unique_ptr<storage::ApplyBatch> inner;
    std::string poison;
  };

  std::string poison_;
};

// The node's store, log and registry over a data dir; the registry's store may be poisoned.
struct Node {
  explicit Node(const std::string& path, const std::string& poison = "") {
    storage::StoreOptions so;
    so.path = path;
    auto opened = storage::Store::Open(so);
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    if (!opened.ok()) return;
    real = std::move(opened).value();
    store = poison.empty() ? nullptr : std::make_unique<PoisonedStore>(real.get(), poison);
    storage::Store* used = store ? store.get() : real.get();
    logs = LocalLogProvider::New(used);
    HubRegistryOptions options{"n"};
    options.store = used;
    options.logs = logs.get();
    registry = std::make_unique<HubRegistry>(options, &sink);
  }
  ~Node() {
    if (registry) registry->Stop();
  }
  RecordingSink sink;
  std::unique_ptr<storage::Store> real;
  std::unique_ptr<PoisonedStore> store;
  std::unique_ptr<LocalLogProvider> logs;
  std::unique_ptr<HubRegistry> registry;
};

// An entry whose apply throws after the view changed stops the node (a half-applied view must
// never be served), with nothing of it committed; the restart re-applies it, and everything
// after the last committed position, from the log.
TEST(HubApplyFailure, ApplyThatFailsHalfwayStopsTheNodeAndTheRestartReappliesIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The death test's child re-runs this test up to EXPECT_DEATH: it must use the same dir.
  static constexpr char kDirVariable[] = "HUBCAST_APPLY_FAILURE_TEST_DIR";
  std::optional<hubcast::testing::TempDir> made;
  const char* given = std::getenv(kDirVariable);
  if (given == nullptr) {
    made.emplace();
    ::setenv(kDirVariable, made->path().c_str(), 1);
  }
  const std::string path = std::string(given ? given : made->path().c_str()) + "/db";

  EXPECT_DEATH(
      {
        Node node(path, "poison");
        auto hub = node.registry->Get(Name("chat"));
        if (!hub.ok()) std::exit(3);
        // Each changes the view's state, so each is committed before the next is applied.
        for (Entry e : {Open("c1"), AddToGroup("c1", "g1"), AddToGroup("c1", "g2")}) {
          if (!(*hub)->AppendAndWait(std::move(e)).ok()) std::exit(4);
        }
        // Nothing is appended after it: whether a later entry reaches the log before the
        // node stops is a race, and the checks below count the log's entries.
        (void)(*hub)->AppendAndWaitDurable(SendToAll("poison"));
        std::this_thread::sleep_for(std::chrono::seconds(20));
        std::exit(0);  // still running: the failure did not stop the node
      },
      "entry 4 failed to apply \\(injected apply failure\\); stopping the node");
  ::unsetenv(kDirVariable);

  Node node(path);
  ASSERT_TRUE(node.registry);
  // Durable in the log up to the poisoned entry; applied (committed) only before it.
  EXPECT_EQ(node.real->LastLogPosition("chat").value(), 4u);
  EXPECT_EQ(node.real->AppliedPosition("chat").value(), 3u);
  ASSERT_TRUE(node.registry->LoadAll().ok());
  auto hub = node.registry->Get(Name("chat"));
  ASSERT_TRUE(hub.ok());
  ASSERT_TRUE((*hub)->Barrier().ok());
  EXPECT_EQ((*hub)->view().applied_position(), 4u);
  std::vector<Delivery> delivered = node.sink.All();
  ASSERT_EQ(delivered.size(), 1u) << "only the entry after the committed position is re-applied";
  EXPECT_EQ(delivered[0].position, 4u);
  EXPECT_EQ(delivered[0].data, "poison");
  // The node goes on from there.
  EXPECT_TRUE((*hub)->view().GroupExists("g2"));
  EXPECT_TRUE((*hub)->AppendAndWait(SendToAll("m5")).ok());
  EXPECT_EQ((*hub)->view().applied_position(), 5u);
}

}  // namespace
}  // namespace hubcast::replication
