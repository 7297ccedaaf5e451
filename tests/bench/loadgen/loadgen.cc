#include "tests/bench/loadgen/loadgen.h"

#include "tests/bench/ws_wire.h"
#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hubcast::bench {
namespace {

// epoll tags: the kind in the high 32 bits, the index in the low ones.
constexpr uint64_t kStdinTag = 0;
constexpr uint64_t kMemberKind = 1;
constexpr uint64_t kChannelKind = 2;
constexpr uint64_t Tag(uint64_t kind, int index) {
  return (kind << 32) | static_cast<uint32_t>(index);
}

constexpr int kMaxAttempts = 4;
constexpr uint64_t kMaxMessageBytes = 16ull * 1024 * 1024;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kGiveUpNs = 10 * kSecond;      // a closed-loop message stuck this long
constexpr int64_t kDrainQuietNs = 2 * kSecond;   // drain ends after this long without progress
constexpr int64_t kDrainLimitNs = 30 * kSecond;  // and in any case after this long
constexpr int kMaxLoggedProblems = 20;
constexpr std::string_view kMarker = "#B";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A non-blocking TCP connect to 127.0.0.1:port; -1 with *error on failure.
int StartConnect(int port, std::string* error) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // only ever 127.0.0.1
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS) {
    *error = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int SocketError(int fd) {
  int error = 0;
  socklen_t len = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return errno;
  return error;
}

// Writes as much of `out` as the socket takes; false with *error if the socket failed.
bool WriteSome(int fd, std::string& out, std::string* error) {
  size_t written = 0;
  while (written < out.size()) {
    ssize_t n = send(fd, out.data() + written, out.size() - written, MSG_NOSIGNAL);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    *error = std::string("send: ") + std::strerror(errno);
    return false;
  }
  out.erase(0, written);
  return true;
}

// One receive buffer for every socket: input is parsed in place and only an incomplete tail is
// copied into the connection's own buffer.
char g_receive_buffer[256 * 1024];

// Reads until the socket has nothing more (a read shorter than the buffer), handing every chunk
// to on_data, while alive() holds (on_data may close the socket, and its descriptor number may
// be reused at once). Returns kClosed or kError when the stream ended, else kAgain.
enum class ReadOutcome { kAgain, kClosed, kError };
template <typename OnData, typename Alive>
ReadOutcome ReadAvailable(int fd, OnData on_data, Alive alive, std::string* error) {
  while (alive()) {
    ssize_t n = recv(fd, g_receive_buffer, sizeof(g_receive_buffer), 0);
    if (n > 0) {
      on_data(std::string_view(g_receive_buffer, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) < sizeof(g_receive_buffer)) break;
      continue;
    }
    if (n == 0) return ReadOutcome::kClosed;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    *error = std::string("recv: ") + std::strerror(errno);
    return ReadOutcome::kError;
  }
  return ReadOutcome::kAgain;
}

// Case-insensitive search of an HTTP header's value in a response head; empty if absent.
std::string_view HeaderValue(std::string_view head, std::string_view lower_name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    if (head.size() - pos < lower_name.size() + 1) return {};
    bool match = true;
    for (size_t i = 0; i < lower_name.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(head[pos + i])) == lower_name[i];
    }
    if (!match || head[pos + lower_name.size()] != ':') continue;
    size_t end = head.find("\r\n", pos);
    return TrimSpaces(
        head.substr(pos + lower_name.size() + 1,
                    end == std::string_view::npos ? end : end - pos - lower_name.size() - 1));
  }
  return {};
}

}  // namespace

bool ParseInt(std::string_view text, long min, long max, long* out) {
  long value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    return false;
  }
  *out = value;
  return true;
}

bool ParsePhase(std::string_view text, PhaseSpec* spec, std::string* error) {
  PhaseSpec parsed;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      *error = "expected key=value, got '" + std::string(item) + "'";
      return false;
    }
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    long number = 0;
    bool ok = true;
    if (key == "to") {
      ok = value == "group" || value == "connection" || value == "user";
      parsed.addressing = value == "group"        ? Addressing::kGroup
                          : value == "connection" ? Addressing::kConnection
                                                  : Addressing::kUser;
    } else if (key == "pub") {
      ok = value == "rest" || value == "client";
      parsed.client = value == "client";
    } else if (key == "mode") {
      ok = value == "closed" || value == "overload" || value == "rate";
      parsed.rate_mode = value == "rate";
      parsed.overload = value == "overload";
    } else if (key == "size") {
      ok = ParseInt(value, 1, 1'000'000, &number);
      parsed.group_size = static_cast<int>(number);
    } else if (key == "bytes") {
      ok = ParseInt(value, 1, 1'000'000, &number);
      parsed.bytes = static_cast<int>(number);
    } else if (key == "window") {
      ok = ParseInt(value, 1, 100'000, &number);
      parsed.window = static_cast<int>(number);
    } else if (key == "rate") {
      ok = ParseInt(value, 1, 10'000'000, &number);
      parsed.rate = static_cast<double>(number);
    } else {
      *error = "unknown phase key '" + std::string(key) + "'";
      return false;
    }
    if (!ok) {
      *error = "bad value for " + std::string(key) + ": '" + std::string(value) + "'";
      return false;
    }
  }
  if (parsed.client && parsed.addressing != Addressing::kGroup) {
    *error = "pub=client publishes to groups only";
    return false;
  }
  *spec = parsed;
  return true;
}

LoadGen::LoadGen(LoadGenOptions options, std::unique_ptr<Dialect> dialect)
    : options_(std::move(options)),
      dialect_(std::move(dialect)),
      members_(options_.count),
      channels_(options_.channels),
      rng_(std::random_device{}()) {
  for (int i = 0; i < options_.count; ++i) {
    members_[i].local = i;
    members_[i].global = options_.first + i;
  }
  for (int i = options_.channels - 1; i >= 0; --i) down_channels_.push_back(i);
}

LoadGen::~LoadGen() {
  for (Member& member : members_) CloseMember(member);
  for (Channel& channel : channels_) CloseChannel(channel);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

int LoadGen::Run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    Emit(std::string("fatal epoll_create1: ") + std::strerror(errno));
    return 1;
  }
  epoll_event stdin_event{};
  stdin_event.events = EPOLLIN;
  stdin_event.data.u64 = kStdinTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, STDIN_FILENO, &stdin_event) != 0) {
    Emit(std::string("fatal stdin: ") + std::strerror(errno));
    return 1;
  }
  start_ns_ = NowNs();
  int64_t next_second = start_ns_ + kSecond;
  int64_t next_sweep = start_ns_;
  std::vector<epoll_event> events(1024);
  while (!quit_) {
    int64_t now = NowNs();
    if (!announced_ready_) {
      StartConnections();
      if (ready_ == options_.count) {
        announced_ready_ = true;
        Emit("ready {\"connected\":" + std::to_string(ready_) + ",\"seconds\":" +
             std::to_string(static_cast<double>(now - start_ns_) / kSecond) + "}");
      } else if (now - start_ns_ > options_.connect_timeout_seconds * kSecond) {
        Emit("fatal only " + std::to_string(ready_) + " of " + std::to_string(options_.count) +
             " members ready after " + std::to_string(options_.connect_timeout_seconds) + " s");
        return 1;
      }
    }
    if (publishing_ && spec_.rate_mode) PublishDue(now);
    if (now >= next_sweep) {
      if (phase_active_) SweepStuck(now);
      if (draining_) CheckDrain(now);
      next_sweep = now + kSecond / 10;
    }
    if (now >= next_second) {
      dialect_->OnSecond(members_, *this);
      next_second = now + kSecond;
    }
    int64_t wait_ns = std::min(next_sweep, next_second) - now;
    if (publishing_ && spec_.rate_mode) wait_ns = std::min(wait_ns, next_due_ns_ - now);
    int timeout_ms = wait_ns <= 0 ? 0 : static_cast<int>((wait_ns + 999'999) / 1'000'000);
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      Emit(std::string("fatal epoll_wait: ") + std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n && !quit_; ++i) {
      const uint64_t tag = events[i].data.u64;
      const uint64_t kind = tag >> 32;
      const int index = static_cast<int>(tag & 0xffffffffu);
      if (tag == kStdinTag) {
        OnStdin();
      } else if (kind == kMemberKind) {
        OnMemberEvent(members_[index], events[i].events);
      } else if (kind == kChannelKind) {
        OnChannelEvent(index, events[i].events);
      }
    }
  }
  return 0;
}

void LoadGen::Emit(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// ---- Members ----

void LoadGen::StartConnections() {
  while (connecting_ < options_.max_handshakes) {
    if (!retry_queue_.empty()) {
      int index = retry_queue_.back();
      retry_queue_.pop_back();
      StartMember(members_[index]);
    } else if (next_to_start_ < options_.count) {
      StartMember(members_[next_to_start_++]);
    } else {
      break;
    }
  }
}

void LoadGen::StartMember(Member& member) {
  ++connecting_;
  ++member.attempts;
  std::string error;
  member.fd = StartConnect(options_.dialect.port, &error);
  if (member.fd < 0) return RetryMember(member, error);
  member.state = Member::State::kConnecting;
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.u64 = Tag(kMemberKind, member.local);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, member.fd, &event) != 0) {
    return RetryMember(member, std::string("epoll_ctl: ") + std::strerror(errno));
  }
  member.want_write = true;
}

void LoadGen::RetryMember(Member& member, const std::string& reason) {
  CloseMember(member);
  Member fresh;
  fresh.local = member.local;
  fresh.global = member.global;
  fresh.attempts = member.attempts;
  member = std::move(fresh);
  --connecting_;
  if (logged_problems_++ < kMaxLoggedProblems) {
    std::fprintf(stderr, "bench_loadgen: member %d attempt %d failed: %s\n", member.global,
                 member.attempts, reason.c_str());
  }
  if (member.attempts >= kMaxAttempts) {
    Emit("fatal member " + std::to_string(member.global) + " failed " +
         std::to_string(member.attempts) + " times, last: " + reason);
    std::exit(1);
  }
  retry_queue_.push_back(member.local);
}

void LoadGen::OnMemberEvent(Member& member, uint32_t events) {
  if (member.fd < 0) return;
  if (member.state == Member::State::kConnecting) {
    if (int error = SocketError(member.fd); error != 0) {
      return RetryMember(member, std::string("connect: ") + std::strerror(error));
    }
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    member.key = NewWebSocketKey(rng_);
    member.out = UpgradeRequest(options_.dialect.port, dialect_->Target(member), member.key,
                                dialect_->Subprotocol());
    member.state = Member::State::kHandshaking;
    FlushMember(member);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadMember(member);
  if (member.fd >= 0 && (events & EPOLLOUT)) FlushMember(member);
}

void LoadGen::ReadMember(Member& member) {
  std::string error;
  const int fd = member.fd;
  switch (ReadAvailable(
      fd, [&](std::string_view data) { ProcessMemberBytes(member, data); },
      [&] { return member.fd == fd; }, &error)) {
    case ReadOutcome::kAgain:
      return;
    case ReadOutcome::kClosed:
      return Broken(member, "server closed the TCP connection");
    case ReadOutcome::kError:
      return Broken(member, error);
  }
}

void LoadGen::ProcessMemberBytes(Member& member, std::string_view data) {
  if (member.state == Member::State::kHandshaking) {
    member.in.append(data);
    size_t end = member.in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (member.in.size() > 16 * 1024) RetryMember(member, "response header too large");
      return;
    }
    std::string error = CheckUpgradeResponse(std::string_view(member.in.data(), end), member.key,
                                             dialect_->Subprotocol());
    if (!error.empty()) return RetryMember(member, error);
    member.state = Member::State::kOpen;
    std::string rest = member.in.substr(end + 4);
    member.in.clear();
    if (!rest.empty()) ProcessMemberBytes(member, rest);
    return;
  }
  if (member.in.empty()) {
    size_t used = ParseFrames(member, data);
    if (member.fd >= 0) member.in.assign(data.substr(used));
    return;
  }
  member.in.append(data);
  size_t used = ParseFrames(member, member.in);
  if (member.fd >= 0) member.in.erase(0, used);
}

size_t LoadGen::ParseFrames(Member& member, std::string_view data) {
  size_t pos = 0;
  while (member.fd >= 0) {
    const size_t available = data.size() - pos;
    FrameHeader frame;
    if (!ParseFrameHeader(data.substr(pos), &frame)) break;
    const bool fin = frame.fin;
    const uint8_t opcode = frame.opcode;
    const uint64_t length = frame.payload_bytes;
    const size_t header = frame.header_bytes;
    if (frame.masked || frame.reserved != 0 || length > kMaxMessageBytes) {
      Broken(member, "bad frame from the server (masked, reserved bits or too large)");
      break;
    }
    if (available < header + length) break;
    std::string_view payload(data.data() + pos + header, static_cast<size_t>(length));
    pos += header + static_cast<size_t>(length);
    switch (opcode) {
      case 0x0:
        if (!member.in_fragment) {
          Broken(member, "continuation without a message");
          break;
        }
        member.fragments.append(payload);
        if (fin) {
          member.in_fragment = false;
          std::string message = std::move(member.fragments);
          member.fragments.clear();
          dialect_->OnMessage(member, member.fragment_opcode, message, *this);
        }
        break;
      case 0x1:
      case 0x2:
        if (fin) {
          dialect_->OnMessage(member, opcode, payload, *this);
        } else {
          member.in_fragment = true;
          member.fragment_opcode = opcode;
          member.fragments.assign(payload);
        }
        break;
      case 0x8:
        Broken(member, "server sent close");
        break;
      case 0x9:
        Send(member, 0xA, payload);
        break;
      case 0xA:
        break;
      default:
        Broken(member, "unknown opcode " + std::to_string(opcode));
        break;
    }
  }
  return pos;
}

void LoadGen::Send(Member& member, uint8_t opcode, std::string_view payload) {
  if (member.fd < 0) return;
  AppendClientFrame(member.out, opcode, payload, static_cast<uint32_t>(rng_()));
  FlushMember(member);
}

void LoadGen::FlushMember(Member& member) {
  std::string error;
  if (!WriteSome(member.fd, member.out, &error)) return Broken(member, error);
  UpdateInterest(member.fd, Tag(kMemberKind, member.local), !member.out.empty(),
                 &member.want_write);
}

void LoadGen::UpdateInterest(int fd, uint64_t tag, bool want_write, bool* current) {
  if (want_write == *current) return;
  epoll_event event{};
  event.events = want_write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
  event.data.u64 = tag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) == 0) *current = want_write;
}

void LoadGen::CloseMember(Member& member) {
  if (member.fd < 0) return;
  close(member.fd);  // also leaves the epoll set
  member.fd = -1;
}

void LoadGen::Ready(Member& member, std::string id) {
  if (member.state == Member::State::kReady || member.fd < 0) return;
  member.id = std::move(id);
  member.state = Member::State::kReady;
  --connecting_;
  ++ready_;
}

void LoadGen::Broken(Member& member, std::string reason) {
  if (member.fd < 0) return;
  if (member.state != Member::State::kReady) return RetryMember(member, reason);
  if (logged_problems_++ < kMaxLoggedProblems) {
    std::fprintf(stderr, "bench_loadgen: member %d lost: %s\n", member.global, reason.c_str());
  }
  CloseMember(member);
  member.state = Member::State::kDead;
  ++disconnects_;
  // Its chat publishes will never be acknowledged.
  for (const auto& [ack_id, message] : member.pending) PublishResult(message, false);
  member.pending.clear();
}

// ---- Deliveries and acknowledgements ----

void LoadGen::Delivered(Member& member, std::string_view message) {
  const int64_t now = NowNs();
  size_t at = message.find(kMarker);
  if (at == std::string_view::npos) {
    ++corrupt_;
    return;
  }
  const char* p = message.data() + at + kMarker.size();
  const char* end = message.data() + message.size();
  uint64_t id = 0;
  int64_t stamp = 0;
  auto [after_id, ec1] = std::from_chars(p, end, id);
  if (ec1 != std::errc() || after_id >= end || *after_id != '.') {
    ++corrupt_;
    return;
  }
  auto [after_stamp, ec2] = std::from_chars(after_id + 1, end, stamp);
  if (ec2 != std::errc() || after_stamp >= end || *after_stamp != '#') {
    ++corrupt_;
    return;
  }
  Tracker::Message* tracked = nullptr;
  switch (tracker_.Arrive(id, member.local, &tracked)) {
    case Tracker::Arrival::kUnknown:
      ++late_;
      return;
    case Tracker::Arrival::kStray:
      ++strays_;
      return;
    case Tracker::Arrival::kDuplicate:
      ++duplicates_;
      return;
    case Tracker::Arrival::kNew:
      break;
  }
  // The filler after the header must be intact: exactly bytes - header 'x's.
  const size_t header = static_cast<size_t>(after_stamp + 1 - (message.data() + at));
  const size_t filler = static_cast<size_t>(spec_.bytes) > header ? spec_.bytes - header : 0;
  const char* fill = after_stamp + 1;
  if (static_cast<size_t>(end - fill) < filler || (filler > 0 && fill[filler - 1] != 'x') ||
      (fill + filler < end && *(fill + filler) == 'x')) {
    ++corrupt_;
  }
  last_progress_ns_ = now;
  ++total_.deliveries;
  if (measuring_) {
    ++window_.deliveries;
    latency_.Record(now - tracked->stamp_ns);
  }
  if (tracked->acked && tracked->received == tracked->count) Close(*tracked);
}

void LoadGen::Acked(Member& member, std::optional<uint64_t> ack_id, bool success) {
  auto it = member.pending.begin();
  if (ack_id) {
    it = std::find_if(member.pending.begin(), member.pending.end(),
                      [&](const auto& entry) { return entry.first == *ack_id; });
  }
  if (it == member.pending.end()) {
    ++strays_;
    return;
  }
  uint64_t message = it->second;
  member.pending.erase(it);
  PublishResult(message, success);
}

void LoadGen::PublishResult(uint64_t message, bool success) {
  Tracker::Message* tracked = tracker_.Find(message);
  if (tracked == nullptr || tracked->acked || tracked->failed) return;
  last_progress_ns_ = NowNs();
  if (!success) {
    tracked->failed = true;
    ++total_.errors;
    if (measuring_) ++window_.errors;
    Close(*tracked);
    return;
  }
  tracked->acked = true;
  ++total_.acked;
  if (measuring_) ++window_.acked;
  if (tracked->received == tracked->count) {
    Close(*tracked);
  } else if (spec_.overload) {
    FreeSlot(*tracked);
  }
}

void LoadGen::Close(Tracker::Message& message) {
  if (message.closed) return;
  message.closed = true;
  --open_;
  FreeSlot(message);
  if (draining_ && open_ == 0) ReportResult();
}

void LoadGen::FreeSlot(Tracker::Message& message) {
  if (message.unslotted) return;
  message.unslotted = true;
  --slots_;
  if (publishing_ && !spec_.rate_mode) TopUp();
}

// ---- App-server publisher channels ----

void LoadGen::Dispatch(uint64_t message, std::string request) {
  if (!idle_channels_.empty()) {
    int index = idle_channels_.back();
    idle_channels_.pop_back();
    return StartRequest(channels_[index], message, std::move(request));
  }
  if (!down_channels_.empty()) {
    int index = down_channels_.back();
    down_channels_.pop_back();
    Channel& channel = channels_[index];
    channel.message = message;
    channel.request = std::move(request);
    channel.retries = 0;
    return ConnectChannel(channel);
  }
  backlog_.push_back({message, std::move(request)});
  backlog_max_ = std::max<uint64_t>(backlog_max_, backlog_.size());
}

void LoadGen::StartRequest(Channel& channel, uint64_t message, std::string request) {
  channel.message = message;
  channel.request = std::move(request);
  channel.retries = 0;
  channel.got_bytes = false;
  channel.state = Channel::State::kBusy;
  channel.out.append(channel.request);
  FlushChannel(channel);
}

void LoadGen::ConnectChannel(Channel& channel) {
  const int index = static_cast<int>(&channel - channels_.data());
  const bool nats = dialect_->NatsPublisher();
  std::string error;
  channel.fd = StartConnect(nats ? options_.nats_port : options_.dialect.port, &error);
  ++channel_connects_;
  if (channel.fd < 0) return LoseChannel(channel, error);
  channel.state = Channel::State::kConnecting;
  channel.in.clear();
  channel.out = dialect_->PublisherGreeting();
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT;
  event.data.u64 = Tag(kChannelKind, index);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, channel.fd, &event) != 0) {
    return LoseChannel(channel, std::string("epoll_ctl: ") + std::strerror(errno));
  }
  channel.want_write = true;
}

void LoadGen::OnChannelEvent(int index, uint32_t events) {
  Channel& channel = channels_[index];
  if (channel.fd < 0) return;
  if (channel.state == Channel::State::kConnecting) {
    if (int error = SocketError(channel.fd); error != 0) {
      return LoseChannel(channel, std::string("connect: ") + std::strerror(error));
    }
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    channel.state = Channel::State::kBusy;
    channel.got_bytes = false;
    channel.out.append(channel.request);
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadChannel(channel);
  if (channel.fd >= 0 && (events & EPOLLOUT)) FlushChannel(channel);
}

void LoadGen::ReadChannel(Channel& channel) {
  std::string error;
  const int fd = channel.fd;
  auto on_data = [&](std::string_view data) {
    channel.in.append(data);
    while (channel.fd == fd) {
      bool close_after = false;
      int outcome = ParseResponse(channel, &close_after);
      if (outcome < 0) break;
      if (channel.state != Channel::State::kBusy) {
        return LoseChannel(channel, "a response nobody asked for");
      }
      FinishRequest(channel, outcome == 1, close_after);
    }
  };
  switch (ReadAvailable(
      fd, on_data, [&] { return channel.fd == fd; }, &error)) {
    case ReadOutcome::kAgain:
      return;
    case ReadOutcome::kClosed:
      return LoseChannel(channel, "server closed the connection");
    case ReadOutcome::kError:
      return LoseChannel(channel, error);
  }
}

int LoadGen::ParseResponse(Channel& channel, bool* close_after) {
  std::string& in = channel.in;
  if (!in.empty()) channel.got_bytes = true;
  if (dialect_->NatsPublisher()) {
    while (true) {
      size_t end = in.find("\r\n");
      if (end == std::string::npos) return -1;
      std::string line = in.substr(0, end);
      in.erase(0, end + 2);
      if (line == "PONG") return 1;
      if (line == "PING") {
        channel.out.append("PONG\r\n");
        FlushChannel(channel);
      } else if (line.rfind("-ERR", 0) == 0) {
        *close_after = true;
        return 0;
      }
      // INFO and +OK need nothing.
    }
  }
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return -1;
  std::string_view head(in.data(), head_end);
  if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) {
    *close_after = true;
    in.clear();
    return 0;
  }
  const int status = std::atoi(std::string(head.substr(9, 3)).c_str());
  size_t body_end = head_end + 4;
  if (std::string_view length = HeaderValue(head, "content-length"); !length.empty()) {
    body_end += std::strtoul(std::string(length).c_str(), nullptr, 10);
  } else if (HeaderValue(head, "transfer-encoding") == "chunked") {
    size_t last = in.find("\r\n0\r\n\r\n", head_end + 2);
    if (last == std::string::npos) return -1;
    body_end = last + 7;
  }
  if (in.size() < body_end) return -1;
  std::string connection = LowerAscii(HeaderValue(head, "connection"));
  *close_after = connection == "close";
  in.erase(0, body_end);
  return status >= 200 && status < 300 ? 1 : 0;
}

void LoadGen::FinishRequest(Channel& channel, bool success, bool close_after) {
  if (!success && logged_problems_++ < kMaxLoggedProblems) {
    std::fprintf(stderr, "bench_loadgen: publish refused: %s\n",
                 channel.request.substr(0, channel.request.find('\r')).c_str());
  }
  const uint64_t message = channel.message;
  channel.request.clear();
  if (close_after) {
    CloseChannel(channel);
  } else {
    channel.state = Channel::State::kIdle;
  }
  // The channel is free before the result can start another publish.
  ServeBacklog(channel);
  PublishResult(message, success);
}

void LoadGen::ServeBacklog(Channel& channel) {
  const int index = static_cast<int>(&channel - channels_.data());
  if (channel.state == Channel::State::kBusy || channel.state == Channel::State::kConnecting) {
    return;
  }
  if (backlog_.empty()) {
    (channel.state == Channel::State::kIdle ? idle_channels_ : down_channels_).push_back(index);
    return;
  }
  Backlogged next = std::move(backlog_.front());
  backlog_.pop_front();
  if (channel.state == Channel::State::kIdle) {
    return StartRequest(channel, next.message, std::move(next.request));
  }
  channel.message = next.message;
  channel.request = std::move(next.request);
  channel.retries = 0;
  ConnectChannel(channel);
}

// The connection ended. An idle one just goes down; a request that got no response byte is
// sent again once on a new connection (the server closed a keep-alive connection as we
// reused it); otherwise the publish failed.
void LoadGen::LoseChannel(Channel& channel, const std::string& reason) {
  const Channel::State state = channel.state;
  const bool retry = !channel.got_bytes && channel.retries == 0;
  CloseChannel(channel);
  if (state == Channel::State::kIdle) {
    auto it = std::find(idle_channels_.begin(), idle_channels_.end(),
                        static_cast<int>(&channel - channels_.data()));
    if (it != idle_channels_.end()) idle_channels_.erase(it);
    down_channels_.push_back(static_cast<int>(&channel - channels_.data()));
    return;
  }
  if (retry && !channel.request.empty()) {
    channel.retries = 1;
    ConnectChannel(channel);
    return;
  }
  if (logged_problems_++ < kMaxLoggedProblems) {
    std::fprintf(stderr, "bench_loadgen: publisher connection lost: %s\n", reason.c_str());
  }
  const uint64_t message = channel.message;
  channel.request.clear();
  ServeBacklog(channel);
  PublishResult(message, false);
}

void LoadGen::CloseChannel(Channel& channel) {
  if (channel.fd >= 0) close(channel.fd);
  channel.fd = -1;
  channel.state = Channel::State::kDown;
  channel.want_write = false;
  channel.got_bytes = false;
  channel.in.clear();
  channel.out.clear();
}

void LoadGen::FlushChannel(Channel& channel) {
  std::string error;
  if (!WriteSome(channel.fd, channel.out, &error)) return LoseChannel(channel, error);
  UpdateInterest(channel.fd, Tag(kChannelKind, static_cast<int>(&channel - channels_.data())),
                 !channel.out.empty(), &channel.want_write);
}

// ---- Phases ----

void LoadGen::OnStdin() {
  char buffer[4096];
  ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
  if (n <= 0) {
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    quit_ = true;  // the driver is gone
    return;
  }
  stdin_buffer_.append(buffer, static_cast<size_t>(n));
  size_t end;
  while ((end = stdin_buffer_.find('\n')) != std::string::npos) {
    std::string line = stdin_buffer_.substr(0, end);
    stdin_buffer_.erase(0, end + 1);
    HandleCommand(line);
  }
}

void LoadGen::HandleCommand(std::string_view line) {
  std::string_view verb = line.substr(0, line.find(' '));
  if (verb == "quit") {
    quit_ = true;
  } else if (verb == "phase") {
    if (!announced_ready_ || phase_active_) return Emit("error not ready for a phase");
    PhaseSpec spec;
    std::string error;
    std::string_view args = line.size() > 6 ? line.substr(6) : std::string_view();
    if (!ParsePhase(args, &spec, &error)) return Emit("error " + error);
    if (spec.addressing == Addressing::kGroup &&
        (options_.count % spec.group_size != 0 || options_.first % spec.group_size != 0)) {
      return Emit("error size=" + std::to_string(spec.group_size) +
                  " does not divide this process's members");
    }
    StartPhase(spec);
    Emit("started");
  } else if (verb == "measure") {
    if (!publishing_) return Emit("error no phase is publishing");
    measuring_ = true;
    window_ = {};
    latency_.Clear();
    window_start_ns_ = NowNs();
    Emit("measuring");
  } else if (verb == "stop") {
    if (!publishing_) return Emit("error no phase is publishing");
    window_end_ns_ = NowNs();
    measuring_ = false;
    publishing_ = false;
    draining_ = true;
    drain_start_ns_ = last_progress_ns_ = window_end_ns_;
    // Queued publishes were never sent: they are not part of the phase.
    for (const Backlogged& queued : backlog_) {
      if (Tracker::Message* m = tracker_.Find(queued.message)) {
        m->failed = true;
        Close(*m);
      }
    }
    backlog_.clear();
    if (open_ == 0) ReportResult();
  } else {
    Emit("error unknown command '" + std::string(verb) + "'");
  }
}

void LoadGen::StartPhase(const PhaseSpec& spec) {
  spec_ = spec;
  phase_active_ = publishing_ = true;
  measuring_ = draining_ = false;
  tracker_.Reset(next_message_id_);
  open_ids_.clear();
  open_ = 0;
  slots_ = 0;
  total_ = window_ = {};
  duplicates_ = strays_ = late_ = corrupt_ = given_up_ = disconnects_ = 0;
  backlog_max_ = channel_connects_ = 0;
  latency_.Clear();
  window_start_ns_ = window_end_ns_ = 0;
  next_due_ns_ = NowNs();
  if (!spec_.rate_mode) TopUp();
}

void LoadGen::PublishDue(int64_t now) {
  const int64_t interval = static_cast<int64_t>(kSecond / spec_.rate);
  // After a stall, do not burst more than 100 ms worth of publishes.
  next_due_ns_ = std::max(next_due_ns_, now - kSecond / 10);
  while (publishing_ && next_due_ns_ <= now) {
    PublishOne();
    next_due_ns_ += std::max<int64_t>(interval, 1);
  }
}

void LoadGen::TopUp() {
  while (publishing_ && slots_ < spec_.window) PublishOne();
}

int LoadGen::PickReady(int first, int count) {
  const int start = static_cast<int>(rng_() % static_cast<uint64_t>(count));
  for (int i = 0; i < count; ++i) {
    int local = first + (start + i) % count;
    if (members_[local].state == Member::State::kReady) return local;
  }
  return -1;
}

void LoadGen::PublishOne() {
  const int64_t now = NowNs();
  int first = 0;
  int count = 1;
  std::string name;
  switch (spec_.addressing) {
    case Addressing::kGroup: {
      const int groups = options_.count / spec_.group_size;
      first = static_cast<int>(rng_() % static_cast<uint64_t>(groups)) * spec_.group_size;
      count = spec_.group_size;
      name = GroupName(spec_.group_size, options_.first + first);
      break;
    }
    case Addressing::kConnection:
    case Addressing::kUser:
      first = PickReady(0, options_.count);
      if (first < 0) first = 0;
      name = spec_.addressing == Addressing::kUser ? UserName(options_.first + first)
                                                   : members_[first].id;
      break;
  }
  const uint64_t id = tracker_.Add(now, first, count);
  next_message_id_ = id + 1;
  open_ids_.push_back(id);
  ++open_;
  ++slots_;
  ++total_.sent;
  if (measuring_) ++window_.sent;

  std::string payload;
  payload.reserve(spec_.bytes + 32);
  payload.append(kMarker).append(std::to_string(id)).append(".").append(std::to_string(now));
  payload.append("#");
  if (payload.size() < static_cast<size_t>(spec_.bytes)) {
    payload.append(static_cast<size_t>(spec_.bytes) - payload.size(), 'x');
  }

  if (!spec_.client) {
    return Dispatch(id, dialect_->PublishRequest(spec_.addressing, name, payload));
  }
  const int sender = PickReady(first, count);
  if (sender < 0) return PublishResult(id, false);
  Member& member = members_[sender];
  const uint64_t ack_id = member.next_ack_id++;
  member.pending.emplace_back(ack_id, id);
  std::string frame;
  uint8_t opcode = 0x1;
  dialect_->EncodeGroupSend(name, ack_id, payload, frame, opcode);
  Send(member, opcode, frame);
}

// Closed loop: a message stuck for kGiveUpNs frees its slot, so a lost one cannot stall the
// window (it still counts as lost).
void LoadGen::SweepStuck(int64_t now) {
  while (!open_ids_.empty()) {
    Tracker::Message* m = tracker_.Find(open_ids_.front());
    if (m != nullptr && !m->closed) {
      if (now - m->stamp_ns < kGiveUpNs || spec_.rate_mode || draining_) return;
      ++given_up_;
      Close(*m);
    }
    open_ids_.pop_front();
  }
}

void LoadGen::CheckDrain(int64_t now) {
  if (now - last_progress_ns_ > kDrainQuietNs || now - drain_start_ns_ > kDrainLimitNs) {
    ReportResult();
  }
}

void LoadGen::ReportResult() {
  if (!draining_) return;
  draining_ = false;
  phase_active_ = false;
  uint64_t expected = 0, received = 0;
  for (const Tracker::Message& m : tracker_.messages()) {
    if (m.failed) continue;
    expected += static_cast<uint64_t>(m.count);
    received += static_cast<uint64_t>(m.received);
  }
  const double window_seconds = static_cast<double>(window_end_ns_ - window_start_ns_) / kSecond;
  char numbers[1024];
  std::snprintf(
      numbers, sizeof(numbers),
      "\"window_seconds\":%.6f,\"sent\":%llu,\"acked\":%llu,\"errors\":%llu,"
      "\"deliveries\":%llu,\"window_sent\":%llu,\"window_acked\":%llu,\"window_errors\":%llu,"
      "\"window_deliveries\":%llu,\"expected\":%llu,\"received\":%llu,\"lost\":%llu,"
      "\"duplicates\":%llu,\"strays\":%llu,\"late\":%llu,\"corrupt\":%llu,\"given_up\":%llu,"
      "\"disconnects\":%llu,\"backlog_max\":%llu,\"channel_connects\":%llu,"
      "\"drain_seconds\":%.3f",
      window_seconds, static_cast<unsigned long long>(total_.sent),
      static_cast<unsigned long long>(total_.acked), static_cast<unsigned long long>(total_.errors),
      static_cast<unsigned long long>(total_.deliveries),
      static_cast<unsigned long long>(window_.sent), static_cast<unsigned long long>(window_.acked),
      static_cast<unsigned long long>(window_.errors),
      static_cast<unsigned long long>(window_.deliveries),
      static_cast<unsigned long long>(expected), static_cast<unsigned long long>(received),
      static_cast<unsigned long long>(expected - received),
      static_cast<unsigned long long>(duplicates_), static_cast<unsigned long long>(strays_),
      static_cast<unsigned long long>(late_), static_cast<unsigned long long>(corrupt_),
      static_cast<unsigned long long>(given_up_), static_cast<unsigned long long>(disconnects_),
      static_cast<unsigned long long>(backlog_max_),
      static_cast<unsigned long long>(channel_connects_),
      static_cast<double>(NowNs() - drain_start_ns_) / kSecond);
  Emit(std::string("result {") + numbers + ",\"latency_ns\":\"" + latency_.Sparse() + "\"}");
}

}  // namespace hubcast::bench
