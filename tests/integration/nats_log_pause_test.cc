// NatsLog's consumer repair against a real JetStream nats-server that stops answering: the
// server is paused (SIGSTOP) past the consumers' missed heartbeats, so every hub's repair
// thread re-creates its consumer - briefly (the connection survives, the old consumers are
// still there on resume), or until this process loses its connection - then resumed
// (SIGCONT). This is the path where nats.c's own reset of an ordered consumer raced the
// repair (a use-after-free of the consumer's name): run it in the sanitizer build too. The
// pause does not force that race - it needs the old consumer gone from the server (a delete
// answered "not found") while the library's re-created one is acknowledged - so the old
// code passed here; what this proves is the repair: every entry once, in order.
// Every entry of every hub must reach the consumer exactly once and in order: the positions
// handed over are 1..head with nothing missing or repeated, and no appended entry twice.
//
// The log runs in this process (NatsLogProvider over NatsConnection); the nats-server is a
// real child process, stopped by pid. Skipped when no nats-server is installed.

#include "replication/nats_connection.h"
#include "replication/nats_log.h"
#include "storage/entry.h"

#include <gtest/gtest.h>

#include "tests/integration/process_util.h"
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
namespace r = hubcast::replication;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

constexpr int kHubs = 8;
constexpr int kPauses = 2;
constexpr uint64_t kPerRound = 20;

// What one hub's consumer was handed, in order.
struct Handed {
  std::vector<uint64_t> positions;
  std::vector<uint64_t> ack_ids;  // the appends' tags (Entry::ack_id)
};

class NatsLogPause : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(FindNatsServer().c_str(), X_OK) != 0) GTEST_SKIP() << "no nats-server";
    std::string dir = (fs::temp_directory_path() / "hubcast-nats-pause-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    reporter_ = std::make_unique<FailureReporter>(dir);
    std::string error;
    nats_ = NatsServer::Start(dir, &error);
    ASSERT_TRUE(nats_) << error;
    reporter_->Add("nats", nats_->process().log_path());

    r::NatsConnectionOptions co;
    co.urls = {nats_->url()};
    co.name = "pause-test";
    auto conn = r::NatsConnection::Connect(co);
    ASSERT_TRUE(conn.ok()) << conn.status().message();
    conn_ = std::move(conn).value();
    conn_->OnConnectionChange([this](bool up) {
      std::lock_guard lock(mu_);
      connected_ = up;
      cv_.notify_all();
    });
    const Clock::time_point deadline = Clock::now() + seconds(30);
    while (!conn_->connected()) {
      ASSERT_LT(Clock::now(), deadline) << "never connected";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    {
      std::lock_guard lock(mu_);
      connected_ = true;
    }

    r::NatsLogOptions lo;
    lo.node_id = "pause-test";
    lo.replicas = 1;
    lo.publish_timeout = std::chrono::milliseconds(2000);
    provider_ = r::NatsLogProvider::New(conn_.get(), nullptr, lo);
    for (int i = 0; i < kHubs; ++i) {
      auto name = HubName::Parse("pause" + std::to_string(i));
      ASSERT_TRUE(name.ok());
      auto log = provider_->Open(*name, /*create=*/true);
      ASSERT_TRUE(log.ok()) << log.status().message();
      Handed* handed = &handed_[i];
      (*log)->SetConsumer([this, handed](r::LogRecord record) {
        std::lock_guard lock(mu_);
        handed->positions.push_back(record.position);
        handed->ack_ids.push_back(record.entry && record.entry->ack_id ? *record.entry->ack_id : 0);
        cv_.notify_all();
      });
      ASSERT_TRUE((*log)->Start(0).ok());
      logs_.push_back(std::move(log).value());
    }
  }

  void TearDown() override {
    if (nats_) ::kill(nats_->process().pid(), SIGCONT);  // never leave it stopped
    logs_.clear();
    provider_.reset();
    if (conn_) conn_->Close();
    conn_.reset();
    nats_.reset();
    reporter_.reset();
  }

  // Waits for `pred`, evaluated under mu_.
  template <typename Pred>
  bool WaitFor(std::chrono::milliseconds timeout, Pred pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }

  bool Connected(bool up, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return connected_ == up; });
  }

  // Appends one tagged entry to hub `i` and waits for its outcome: true when it is durable.
  bool AppendOnce(int i, uint64_t tag) {
    auto entry = std::make_shared<storage::Entry>();
    entry->kind = storage::EntryKind::kClientAck;
    entry->ack_id = tag;
    auto done = std::make_shared<std::optional<bool>>();
    logs_[i]->Append(
        entry,
        [this, done](Result<uint64_t> position) {
          std::lock_guard lock(mu_);
          *done = position.ok();
          cv_.notify_all();
        },
        {}, "pause-" + std::to_string(i) + "-" + std::to_string(tag));
    return WaitFor(seconds(60), [&] { return done->has_value(); }) && **done;
  }

  // Appends `count` entries to every hub, each retried (same request id: one entry at most)
  // until durable.
  void AppendRound(uint64_t count) {
    for (int i = 0; i < kHubs; ++i) {
      for (uint64_t n = 0; n < count; ++n) {
        uint64_t tag = ++next_tag_[i];
        const Clock::time_point deadline = Clock::now() + seconds(60);
        while (!AppendOnce(i, tag)) {
          ASSERT_LT(Clock::now(), deadline) << "hub " << i << ": append " << tag << " failed";
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    }
  }

  // Waits until every hub's consumer was handed its stream's last entry.
  void WaitForAllHanded() {
    for (int i = 0; i < kHubs; ++i) {
      auto head = logs_[i]->Head();
      ASSERT_TRUE(head.ok()) << head.status().message();
      const uint64_t last = *head;
      bool handed = WaitFor(seconds(90), [&] {
        return !handed_[i].positions.empty() && handed_[i].positions.back() >= last;
      });
      ASSERT_TRUE(handed) << "hub " << i << ": not handed up to " << last;
    }
  }

  std::unique_ptr<FailureReporter> reporter_;
  std::unique_ptr<NatsServer> nats_;
  std::unique_ptr<r::NatsConnection> conn_;
  std::unique_ptr<r::NatsLogProvider> provider_;
  std::vector<std::unique_ptr<r::HubLog>> logs_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool connected_ = false;
  std::map<int, Handed> handed_;
  std::map<int, uint64_t> next_tag_;
};

TEST_F(NatsLogPause, HandsEveryEntryOnceInOrderAcrossAPausedServer) {
  ASSERT_NO_FATAL_FAILURE(AppendRound(kPerRound));
  ASSERT_NO_FATAL_FAILURE(WaitForAllHanded());
  const pid_t pid = nats_->process().pid();
  for (int pause = 0; pause < 2 * kPauses; ++pause) {
    // Appends the server will not answer while it is stopped: each may land or not.
    for (int i = 0; i < kHubs; ++i) {
      logs_[i]->Append(std::make_shared<storage::Entry>(), [](Result<uint64_t>) {}, {});
    }
    ASSERT_EQ(::kill(pid, SIGSTOP), 0);
    if (pause % 2 == 0) {
      // Short: 4 s holds a whole period of nats.c's heartbeat check (2 s), so the heartbeats
      // are missed and the consumers re-created, while the connection (pinged every 2 s,
      // given up after two unanswered pings) usually survives: the old consumers are still
      // there when the server resumes.
      std::this_thread::sleep_for(seconds(4));
    } else {
      // Long: until the client gives the connection up (two unanswered pings).
      EXPECT_TRUE(Connected(false, seconds(60))) << "the connection never noticed the pause";
    }
    ASSERT_EQ(::kill(pid, SIGCONT), 0);
    ASSERT_TRUE(Connected(true, seconds(60))) << "never reconnected";
    ASSERT_NO_FATAL_FAILURE(AppendRound(kPerRound));
    ASSERT_NO_FATAL_FAILURE(WaitForAllHanded());
  }

  std::lock_guard lock(mu_);
  for (int i = 0; i < kHubs; ++i) {
    const Handed& h = handed_[i];
    for (size_t k = 0; k < h.positions.size(); ++k) {
      ASSERT_EQ(h.positions[k], k + 1) << "hub " << i << ": entry " << k << " of "
                                       << h.positions.size() << " handed out of order";
    }
    std::set<uint64_t> tags;
    for (uint64_t tag : h.ack_ids) {
      if (tag == 0) continue;  // an append made during a pause
      EXPECT_TRUE(tags.insert(tag).second) << "hub " << i << ": tag " << tag << " twice";
    }
    // Every tagged append was durable, so each is in the stream once.
    EXPECT_EQ(tags.size(), next_tag_[i]) << "hub " << i;
  }
}

}  // namespace
}  // namespace hubcast::testing
