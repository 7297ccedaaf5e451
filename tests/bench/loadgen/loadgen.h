// The generator core of bench_loadgen: one thread, one epoll set, non-blocking sockets. It
// holds `count` member WebSockets (global indexes first .. first+count-1) and `channels`
// app-server publisher connections (keep-alive HTTP, or native NATS TCP), and runs the phases
// the driver (tests/bench/compare.py) asks for on stdin. Everything it measures is about its
// own members: a process only publishes to groups it holds entirely, so several processes can
// share a run without talking to each other (the driver picks `first` and `count` as multiples
// of the largest group size).
//
// Driver protocol (one line each way; the generator flushes every line it writes):
//   (start-up)                    -> "ready {json}" once every member is ready, or
//                                    "fatal <why>" and exit status 1
//   "phase key=value ..."         -> "started" (publishing begins; see PhaseSpec for the keys)
//   "measure"                     -> "measuring" (the measurement window opens)
//   "stop"                        -> "result {json}" after the drain (window closed, publishing
//                                    stopped, then waiting until every message is complete or
//                                    nothing has moved for 2 s)
//   "quit" or end of stdin        -> exit status 0
// A bad command answers "error <why>" and changes nothing.
//
// A member is ready when its server confirmed it (Hubcast: `connected`; NATS: PONG after the
// SUBs; Socket.IO: the namespace connect; ws: `connected`). Connection attempts are paced
// (at most `max_handshakes` at once) and a failed one is retried up to three times.
//
// Thread-safety: none. Run() owns the calling thread until the driver says quit.
#pragma once

#include "tests/bench/loadgen/dialect.h"
#include "tests/bench/loadgen/histogram.h"
#include "tests/bench/loadgen/tracker.h"
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::bench {

struct LoadGenOptions {
  DialectOptions dialect;
  int nats_port = 0;  // nats: the native TCP port app-server publishes go to
  int first = 0;
  int count = 1;
  int max_handshakes = 200;
  int channels = 64;  // app-server publisher connections (one request in flight each)
  int connect_timeout_seconds = 180;
};

// One phase. Keys of the "phase" command: to=group|connection|user, pub=rest|client,
// mode=closed|overload|rate, size=N (group size), bytes=N (payload), window=N (closed loop:
// messages in flight, each until acknowledged and delivered to every target; overload: each
// until acknowledged only, so nothing but the server's backpressure bounds what it has accepted
// and not yet delivered), rate=N (publishes per second).
struct PhaseSpec {
  Addressing addressing = Addressing::kGroup;
  bool client = false;  // members' sendToGroup with acks (chat) instead of app-server publishes
  bool rate_mode = false;
  bool overload = false;  // a window slot frees at the acknowledgement, not at the deliveries
  int group_size = 100;
  int bytes = 100;
  int window = 64;
  double rate = 1000;
};

// A whole decimal number in [min, max].
bool ParseInt(std::string_view text, long min, long max, long* out);

// Parses the key=value list after "phase"; false with *error on anything unknown or invalid.
bool ParsePhase(std::string_view text, PhaseSpec* spec, std::string* error);

class LoadGen : public DialectHost {
 public:
  LoadGen(LoadGenOptions options, std::unique_ptr<Dialect> dialect);
  ~LoadGen() override;
  LoadGen(const LoadGen&) = delete;
  LoadGen& operator=(const LoadGen&) = delete;

  // Runs until "quit" or the end of stdin; returns the exit status.
  int Run();

  // DialectHost.
  void Send(Member& member, uint8_t opcode, std::string_view payload) override;
  void Ready(Member& member, std::string id) override;
  void Delivered(Member& member, std::string_view message) override;
  void Acked(Member& member, std::optional<uint64_t> ack_id, bool success) override;
  void Broken(Member& member, std::string reason) override;

 private:
  // An app-server publisher connection: keep-alive HTTP, or NATS TCP (PUB + PING, then PONG).
  struct Channel {
    enum class State : uint8_t { kDown, kConnecting, kIdle, kBusy };
    int fd = -1;
    State state = State::kDown;
    bool want_write = false;
    bool got_bytes = false;  // some of the response to the current request has arrived
    int retries = 0;         // of the current request, after the connection was lost
    uint64_t message = 0;    // the message the current request publishes
    std::string request;
    std::string in;
    std::string out;
  };
  struct Backlogged {
    uint64_t message;
    std::string request;
  };

  // Members.
  void StartConnections();
  void StartMember(Member& member);
  void RetryMember(Member& member, const std::string& reason);
  void OnMemberEvent(Member& member, uint32_t events);
  void ReadMember(Member& member);
  void ProcessMemberBytes(Member& member, std::string_view data);
  // Parses frames from `data`; returns the bytes consumed (the rest is an incomplete frame).
  size_t ParseFrames(Member& member, std::string_view data);
  void FlushMember(Member& member);
  void CloseMember(Member& member);
  void UpdateInterest(int fd, uint64_t tag, bool want_write, bool* current);

  // Channels.
  void Dispatch(uint64_t message, std::string request);
  void StartRequest(Channel& channel, uint64_t message, std::string request);
  void ConnectChannel(Channel& channel);
  void OnChannelEvent(int index, uint32_t events);
  void ReadChannel(Channel& channel);
  // Parses a complete response from channel.in: 1 = success, 0 = error, -1 = incomplete;
  // *close: the server will close the connection after it.
  int ParseResponse(Channel& channel, bool* close);
  void FinishRequest(Channel& channel, bool success, bool close);
  void LoseChannel(Channel& channel, const std::string& reason);
  void CloseChannel(Channel& channel);
  void FlushChannel(Channel& channel);
  void ServeBacklog(Channel& channel);

  // Phases.
  void OnStdin();
  void HandleCommand(std::string_view line);
  void StartPhase(const PhaseSpec& spec);
  void PublishDue(int64_t now);
  void TopUp();
  void PublishOne();
  void PublishResult(uint64_t message, bool success);
  void Close(Tracker::Message& message);
  void FreeSlot(Tracker::Message& message);
  void SweepStuck(int64_t now);
  void CheckDrain(int64_t now);
  void ReportResult();
  void Emit(const std::string& line);
  int PickReady(int first, int count);

  LoadGenOptions options_;
  std::unique_ptr<Dialect> dialect_;
  std::vector<Member> members_;
  std::vector<Channel> channels_;
  std::vector<int> idle_channels_;  // a stack: the most recently used first
  std::vector<int> down_channels_;
  std::deque<Backlogged> backlog_;
  std::mt19937_64 rng_;
  int epoll_fd_ = -1;
  bool quit_ = false;
  std::string stdin_buffer_;

  // Start-up.
  int next_to_start_ = 0;
  std::vector<int> retry_queue_;
  int connecting_ = 0;
  int ready_ = 0;
  bool announced_ready_ = false;
  int64_t start_ns_ = 0;

  // The current phase.
  PhaseSpec spec_;
  bool phase_active_ = false;  // between "phase" and its result
  bool publishing_ = false;
  bool measuring_ = false;
  bool draining_ = false;
  Tracker tracker_;
  uint64_t next_message_id_ = 1;
  std::deque<uint64_t> open_ids_;  // published, oldest first (closed ones are skipped lazily)
  int open_ = 0;                   // messages not closed
  int slots_ = 0;                  // messages holding a window slot
  int64_t next_due_ns_ = 0;
  int64_t drain_start_ns_ = 0;
  int64_t last_progress_ns_ = 0;
  int64_t window_start_ns_ = 0;
  int64_t window_end_ns_ = 0;
  Histogram latency_;
  struct Counters {
    uint64_t sent = 0, acked = 0, errors = 0, deliveries = 0;
  } total_, window_;
  uint64_t duplicates_ = 0, strays_ = 0, late_ = 0, corrupt_ = 0, given_up_ = 0;
  uint64_t disconnects_ = 0, backlog_max_ = 0, channel_connects_ = 0;
  int logged_problems_ = 0;
};

}  // namespace hubcast::bench
