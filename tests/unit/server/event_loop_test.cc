#include "server/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

namespace hubcast::server {
namespace {

// Lowers the soft descriptor limit to the lowest free descriptor (no new one can be opened)
// for the scope; restores it after.
class NoFreeDescriptors {
 public:
  NoFreeDescriptors() {
    getrlimit(RLIMIT_NOFILE, &saved_);
    const int lowest_free = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ::close(lowest_free);
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(lowest_free);
    ok_ = lowest_free >= 0 && setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~NoFreeDescriptors() { setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

// The kernel refusing the loop's descriptors is a status for the caller (start-up stops with
// one line), never an exception across the module API (it used to throw from the constructor,
// which ended in std::terminate). Nothing leaks on the way.
TEST(EventLoopTest, CreateReportsExhaustedDescriptorsAsAStatus) {
  Status refused = Status::Ok();
  {
    NoFreeDescriptors exhausted;
    ASSERT_TRUE(exhausted.ok());
    auto loop = EventLoop::Create(0);
    if (!loop.ok()) refused = loop.status();
  }
  ASSERT_FALSE(refused.ok()) << "a loop was created with no free descriptor";
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.message().find("event loop"), std::string::npos) << refused.message();

  // With descriptors back, a loop is created, runs tasks and stops.
  auto loop = EventLoop::Create(0);
  ASSERT_TRUE(loop.ok()) << loop.status().message();
  (*loop)->Start();
  int ran = 0;
  (*loop)->RunAndWait([&] { ++ran; });
  EXPECT_EQ(ran, 1);
  (*loop)->Stop();
}

// Deliveries wait for room: a loop's inbox never holds more than max_inbox bounded posts (a
// slow loop slows the appliers down instead of growing). The loop is not started, so the
// inbox stays full until it is.
TEST(EventLoopTest, PostBoundedWaitsWhileTheInboxIsFull) {
  auto created = EventLoop::Create(0, /*max_inbox=*/4);
  ASSERT_TRUE(created.ok()) << created.status().message();
  EventLoop& loop = **created;
  std::atomic<int> ran{0};
  for (int i = 0; i < 4; ++i) loop.PostBounded([&] { ++ran; });
  std::atomic<bool> fifth_posted{false};
  std::thread poster([&] {
    loop.PostBounded([&] { ++ran; });
    fifth_posted = true;
  });
  // However long this waits, the fifth post cannot get in before the loop runs.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(fifth_posted.load()) << "a fifth task entered an inbox bounded to four";
  loop.Start();
  poster.join();
  EXPECT_TRUE(fifth_posted.load());
  loop.RunAndWait([] {});
  EXPECT_EQ(ran.load(), 5);
  loop.Stop();
}

// The inbox is bounded by the bytes its deliveries hold too: 65,536 tasks of a megabyte each
// would be 64 GiB. One message larger than the bound still gets into an empty inbox.
TEST(EventLoopTest, PostBoundedWaitsWhileTheInboxHoldsTooManyBytes) {
  auto created = EventLoop::Create(0, /*max_inbox=*/1000, /*max_inbox_bytes=*/100);
  ASSERT_TRUE(created.ok()) << created.status().message();
  EventLoop& loop = **created;
  std::atomic<int> ran{0};
  loop.PostBounded([&] { ++ran; }, 500);  // larger than the bound, into an empty inbox
  std::atomic<bool> second_posted{false};
  std::thread poster([&] {
    loop.PostBounded([&] { ++ran; }, 1);
    second_posted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(second_posted.load()) << "a task entered an inbox already past its bytes";
  loop.Start();
  poster.join();
  loop.RunAndWait([] {});
  EXPECT_EQ(ran.load(), 2);
  // Drained: the bytes were given back, so posts within the bound pass at once.
  for (int i = 0; i < 3; ++i) loop.PostBounded([&] { ++ran; }, 30);
  loop.RunAndWait([] {});
  EXPECT_EQ(ran.load(), 5);
  loop.Stop();
}

}  // namespace
}  // namespace hubcast::server
