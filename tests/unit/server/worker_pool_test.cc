#include "server/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

namespace hubcast::server {
namespace {

TEST(WorkerPool, RunsSubmittedTasks) {
  WorkerPool pool(2, 16, "test");
  std::promise<int> done;
  ASSERT_TRUE(pool.TrySubmit([&] { done.set_value(7); }));
  EXPECT_EQ(done.get_future().get(), 7);
}

TEST(WorkerPool, RefusesTasksPastTheQueueBound) {
  WorkerPool pool(1, 2, "test");
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  ASSERT_TRUE(pool.TrySubmit([&, gate] {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();  // the only worker is busy now
  EXPECT_TRUE(pool.TrySubmit([] {}));
  EXPECT_TRUE(pool.TrySubmit([] {}));
  EXPECT_FALSE(pool.TrySubmit([] {}));  // two are waiting: the bound
  release.set_value();
}

TEST(WorkerPool, StopDropsQueuedTasksUnrunAndRefusesNewOnes) {
  auto pool = std::make_unique<WorkerPool>(1, size_t{1} << 24, "test");
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool->TrySubmit([&, gate] {
    started.set_value();
    gate.wait();
  }));
  started.get_future().wait();
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> weak = token;
  ASSERT_TRUE(pool->TrySubmit([&ran, token] { ++ran; }));
  token.reset();
  std::thread stopper([&] { pool->Stop(); });
  // Refused means Stop took the queue (it does both under one lock); only then let the busy
  // worker finish.
  while (pool->TrySubmit([] {})) {
  }
  release.set_value();
  stopper.join();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_TRUE(weak.expired());  // the dropped task's captures are gone
}

}  // namespace
}  // namespace hubcast::server
