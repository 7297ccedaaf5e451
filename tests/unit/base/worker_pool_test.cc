#include "base/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

namespace hubcast {
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

TEST(WorkerPool, DestructorRunsWhatIsQueuedBeforeItJoins) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    pool.Execute([gate] { gate.wait(); });
    for (int i = 0; i < 5; ++i) pool.Execute([&ran] { ++ran; });
    release.set_value();
  }
  EXPECT_EQ(ran.load(), 5);  // an Executor never drops a completion
}

TEST(WorkerPool, ExecuteIsNotBoundedByTheQueueLimit) {
  WorkerPool pool(1, 1, "test");
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> started;
  pool.Execute([&, gate] {
    started.set_value();
    gate.wait();
  });
  started.get_future().wait();
  std::atomic<int> ran{0};
  std::promise<void> all_ran;
  for (int i = 0; i < 3; ++i) {
    pool.Execute([&] {
      if (++ran == 3) all_ran.set_value();
    });
  }
  EXPECT_FALSE(pool.TrySubmit([] {}));  // the bound is for TrySubmit only
  release.set_value();
  all_ran.get_future().wait();
  EXPECT_EQ(ran.load(), 3);
}

TEST(WorkerPool, ATaskThatThrowsDoesNotStopItsWorker) {
  WorkerPool pool(1, 16, "test");
  ASSERT_TRUE(pool.TrySubmit([] { throw std::runtime_error("boom"); }));
  std::promise<int> done;
  ASSERT_TRUE(pool.TrySubmit([&] { done.set_value(1); }));
  EXPECT_EQ(done.get_future().get(), 1);
}

}  // namespace
}  // namespace hubcast
