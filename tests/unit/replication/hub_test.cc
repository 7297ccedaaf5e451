// Tests of replication/hub.h: Hub and HubRegistry over LocalLog and MemoryView, with a
// DeliverySink that records what the applier hands it.
#include "replication/hub.h"

#include "base/names.h"
#include "base/status.h"
#include "replication/delivery_sink.h"
#include "storage/entry.h"
#include "storage/hub_view.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
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
  void Deliver(const HubName& hub, uint64_t position, const Entry& entry,
               const storage::ApplyResult& result) override {
    Delivery d;
    d.hub = hub.str();
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

class HubAppend : public ::testing::Test {
 protected:
  std::shared_ptr<Hub> GetHub(std::string_view name) { return registry_.Get(Name(name)); }

  RecordingSink sink_;  // declared first: outlives the registry's applier
  HubRegistry registry_{HubRegistryOptions{"node-1"}, &sink_};
};

TEST_F(HubAppend, PositionsIncreaseStrictlyFromOne) {
  auto hub = GetHub("chat");
  for (uint64_t i = 1; i <= 20; ++i) {
    auto pos = hub->Append(SendToAll("m" + std::to_string(i)));
    ASSERT_TRUE(pos.ok()) << pos.status().message();
    EXPECT_EQ(*pos, i);
  }
  hub->Barrier();
  EXPECT_EQ(hub->view().applied_position(), 20u);
}

TEST_F(HubAppend, DeliverIsCalledOncePerEntryInOrderWithTheApplyResult) {
  auto hub = GetHub("chat");
  ASSERT_TRUE(hub->Append(Open("c1", "alice")).ok());
  ASSERT_TRUE(hub->Append(Open("c2")).ok());
  ASSERT_TRUE(hub->Append(SendToAll("hello")).ok());
  ASSERT_TRUE(hub->Append(AddToGroup("nope", "g")).ok());
  Entry close;
  close.kind = EntryKind::kConnectionClose;
  close.origin_connection = "c2";
  ASSERT_TRUE(hub->Append(close).ok());
  ASSERT_TRUE(hub->Append(SendToAll("after")).ok());
  hub->Barrier();

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

TEST_F(HubAppend, DeliverRunsOnOneApplierThread) {
  auto a = GetHub("a");
  auto b = GetHub("b");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a->Append(SendToAll("a")).ok());
    ASSERT_TRUE(b->Append(SendToAll("b")).ok());
  }
  a->Barrier();
  b->Barrier();
  std::set<std::thread::id> threads;
  for (const auto& d : sink_.All()) threads.insert(d.thread);
  EXPECT_EQ(threads.size(), 1u);
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

TEST_F(HubAppend, DoneRunsOnTheApplierAfterDeliverWithTheStatus) {
  auto hub = GetHub("chat");
  std::promise<std::pair<StatusCode, size_t>> seen;
  std::promise<std::thread::id> thread;
  auto pos = hub->Append(AddToGroup("nope", "g"), [&](const Status& s) {
    seen.set_value({s.code(), sink_.size()});
    thread.set_value(std::this_thread::get_id());
  });
  ASSERT_TRUE(pos.ok());
  auto [code, delivered] = seen.get_future().get();
  EXPECT_EQ(code, StatusCode::kNotFound);
  EXPECT_EQ(delivered, 1u);  // Deliver ran before done
  EXPECT_NE(thread.get_future().get(), std::this_thread::get_id());
}

TEST_F(HubAppend, BarrierMakesAQuerySeeAJustAppendedChange) {
  auto hub = GetHub("chat");
  for (int i = 0; i < 200; ++i) {
    const std::string id = "c" + std::to_string(i);
    auto pos = hub->Append(Open(id));
    ASSERT_TRUE(pos.ok());
    hub->Barrier();
    ASSERT_TRUE(hub->view().ConnectionExists(id)) << id;
    ASSERT_GE(hub->view().applied_position(), *pos);
  }
  EXPECT_EQ(hub->view().connection_count(), 200u);
}

TEST_F(HubAppend, BarrierOnAnEmptyHubReturns) {
  auto hub = GetHub("empty");
  hub->Barrier();
  EXPECT_EQ(hub->view().applied_position(), 0u);
}

TEST_F(HubAppend, ConcurrentAppendsAreAppliedExactlyOnceInPositionOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  auto a = GetHub("alpha");
  auto b = GetHub("beta");
  std::atomic<bool> go{false};
  std::atomic<int> done_calls{0};
  std::atomic<int> failures{0};
  // positions[hub][thread]: the positions that thread got, in the order it appended.
  std::vector<std::vector<uint64_t>> positions_a(kThreads), positions_b(kThreads);
  std::vector<std::map<uint64_t, std::string>> data_a(kThreads), data_b(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        const std::string data = "t" + std::to_string(t) + "-" + std::to_string(i);
        // Alternate hubs so both logs see interleaved appends from every thread.
        const bool to_a = (i + t) % 2 == 0;
        Hub& hub = to_a ? *a : *b;
        auto pos = hub.Append(SendToAll(data), [&](const Status& s) {
          if (!s.ok()) failures.fetch_add(1);
          done_calls.fetch_add(1);
        });
        if (!pos.ok()) {
          failures.fetch_add(1);
          continue;
        }
        (to_a ? positions_a : positions_b)[t].push_back(*pos);
        (to_a ? data_a : data_b)[t][*pos] = data;
      }
    });
  }
  go.store(true);
  for (auto& th : threads) th.join();
  a->Barrier();
  b->Barrier();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(done_calls.load(), kThreads * kPerThread);

  for (const auto& [hub, positions, data] :
       {std::tuple{"alpha", &positions_a, &data_a}, std::tuple{"beta", &positions_b, &data_b}}) {
    SCOPED_TRACE(hub);
    std::map<uint64_t, std::string> expected;  // position -> data, over all threads
    for (int t = 0; t < kThreads; ++t) {
      const auto& ps = (*positions)[t];
      EXPECT_TRUE(std::is_sorted(ps.begin(), ps.end()));
      EXPECT_EQ(std::adjacent_find(ps.begin(), ps.end()), ps.end());
      for (const auto& [p, d] : (*data)[t]) {
        EXPECT_TRUE(expected.emplace(p, d).second) << "position " << p << " given twice";
      }
    }
    const uint64_t n = expected.size();
    EXPECT_EQ(n, static_cast<uint64_t>(kThreads * kPerThread / 2));
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(expected.begin()->first, 1u);
    EXPECT_EQ(expected.rbegin()->first, n);

    auto ds = sink_.ForHub(hub);
    ASSERT_EQ(ds.size(), n);
    EXPECT_EQ(Positions(ds), OneTo(n));
    std::set<std::string> seen;
    for (const auto& d : ds) {
      EXPECT_EQ(d.data, expected[d.position]) << "position " << d.position;
      EXPECT_TRUE(seen.insert(d.data).second) << d.data << " delivered twice";
    }
  }
  EXPECT_EQ(a->view().applied_position(), sink_.ForHub("alpha").size());
  EXPECT_EQ(b->view().applied_position(), sink_.ForHub("beta").size());
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

  EXPECT_EQ(*a->Append(Open("c1")), 1u);
  EXPECT_EQ(*a->Append(AddToGroup("c1", "g")), 2u);
  EXPECT_EQ(*b->Append(Open("c2")), 1u);  // each hub numbers from 1
  a->Barrier();
  b->Barrier();

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

TEST_F(HubAppend, RegistryKeepsItsNodeId) { EXPECT_EQ(registry_.node_id(), "node-1"); }

TEST_F(HubAppend, AppendAfterStopFailsUnavailable) {
  auto hub = GetHub("chat");
  ASSERT_TRUE(hub->AppendAndWait(Open("c1")).ok());
  EXPECT_FALSE(registry_.stopping());
  registry_.Stop();
  EXPECT_TRUE(registry_.stopping());

  bool called = false;
  auto pos = hub->Append(Open("c2"), [&](const Status&) { called = true; });
  EXPECT_FALSE(pos.ok());
  EXPECT_EQ(pos.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(hub->AppendAndWait(Open("c3")).code(), StatusCode::kUnavailable);
  EXPECT_FALSE(called);
  EXPECT_FALSE(hub->view().ConnectionExists("c2"));
  EXPECT_EQ(hub->view().applied_position(), 1u);
  EXPECT_EQ(sink_.size(), 1u);

  // A hub first used after Stop refuses too.
  EXPECT_EQ(GetHub("late")->Append(Open("c4")).status().code(), StatusCode::kUnavailable);
  registry_.Stop();  // idempotent
}

TEST_F(HubAppend, StopAppliesEverythingAppendedBefore) {
  auto hub = GetHub("chat");
  std::atomic<int> done{0};
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(hub->Append(SendToAll(std::to_string(i)), [&](const Status&) { ++done; }).ok());
  }
  registry_.Stop();
  EXPECT_EQ(done.load(), 500);
  EXPECT_EQ(sink_.size(), 500u);
  EXPECT_EQ(hub->view().applied_position(), 500u);
}

// Append checks stopping() and only then appends to the log, whose consumer enqueues for the
// applier. When Stop() lands in between, an Append can return a position after the applier has
// drained its queue and exited: that entry is never applied, its `done` never runs (so
// AppendAndWait would block forever) and Barrier() never returns. Every Append that succeeded
// must be applied.
TEST_F(HubAppend, EveryAppendThatSucceedsDuringStopIsApplied) {
  int runs_with_lost_entries = 0;
  int64_t lost_entries = 0;
  constexpr int kRuns = 100;
  for (int run = 0; run < kRuns; ++run) {
    std::atomic<int64_t> appended{0};
    std::atomic<int64_t> done{0};
    std::atomic<bool> go{false};
    {
      HubRegistry registry(HubRegistryOptions{"n"}, nullptr);
      auto hub = registry.Get(Name("chat"));
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          while (!go.load()) std::this_thread::yield();
          for (;;) {
            auto pos = hub->Append(SendToAll("x"), [&](const Status&) { done.fetch_add(1); });
            if (!pos.ok()) break;
            appended.fetch_add(1);
          }
        });
      }
      go.store(true);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      registry.Stop();  // joins the applier: no callback can run after this
      for (auto& th : threads) th.join();
      if (appended.load() != done.load()) {
        ++runs_with_lost_entries;
        lost_entries += appended.load() - done.load();
      }
    }
  }
  EXPECT_EQ(runs_with_lost_entries, 0)
      << lost_entries << " appended entries were never applied, in " << runs_with_lost_entries
      << " of " << kRuns << " runs";
}

TEST(HubRegistryWithoutSink, AppliesWithoutDelivering) {
  HubRegistry registry(HubRegistryOptions{"n"}, nullptr);
  auto hub = registry.Get(Name("chat"));
  EXPECT_TRUE(hub->AppendAndWait(Open("c1")).ok());
  EXPECT_EQ(hub->AppendAndWait(AddToGroup("c9", "g")).code(), StatusCode::kNotFound);
  EXPECT_TRUE(hub->view().ConnectionExists("c1"));
}

}  // namespace
}  // namespace hubcast::replication
