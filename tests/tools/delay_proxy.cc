// delay_proxy: a TCP proxy on 127.0.0.1 that delays every byte by a fixed time, to simulate a
// WAN link between "regions" on one machine (the kernel here has no netem).
//
//   delay_proxy --listen-port P --to 127.0.0.1:PORT --delay-ms D [--ports-file F]
//               [--max-pending-kib K]
//
// Every accepted connection gets its own connection to --to. Each chunk read from one side is
// written to the other side D ms after it was read: a round trip through the proxy costs 2*D.
// Per direction the byte order is kept; the two directions are independent (a stalled reader on
// one side never holds up the other direction). A FIN (read returns 0) is forwarded, D ms later,
// as shutdown(SHUT_WR) on the other side, so half-closed connections keep working; a reset or a
// failed connect to --to closes both sides. Buffering is bounded: a direction holding more than
// --max-pending-kib (default 1024) bytes not yet written stops reading its source until the
// backlog drains below that, so a slow receiver pushes back on the sender through TCP.
//
// One thread, one epoll set, level-triggered. Timers need no heap: every chunk waits the same D,
// so chunks become due in the order they were read, and one FIFO of (due time, direction) for the
// whole process is already sorted.
//
// --listen-port 0 picks a free port; --ports-file F receives "PORT\n" (written atomically) once
// the proxy listens, like `hubcast --ports-file`. Bad arguments: one line on stderr, exit 2.
// SIGTERM or SIGINT stop it.

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 64 * 1024;
constexpr uint64_t kListenerTag = 0;  // epoll data of the listening socket; sessions start at 1

struct Options {
  int listen_port = -1;
  std::string ports_file;
  sockaddr_in to{};
  std::chrono::milliseconds delay{0};
  size_t max_pending = 1024 * 1024;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr,
               "delay_proxy: %s\n"
               "usage: delay_proxy --listen-port P --to 127.0.0.1:PORT --delay-ms D "
               "[--ports-file F] [--max-pending-kib K]\n",
               problem.c_str());
  std::exit(2);
}

std::optional<long> ParseNumber(const std::string& text, long min, long max) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || value < min || value > max) return std::nullopt;
  return value;
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  bool have_to = false, have_delay = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage(flag + " needs a value");
    std::string value = argv[++i];
    if (flag == "--listen-port") {
      auto port = ParseNumber(value, 0, 65535);
      if (!port) Usage("--listen-port must be 0..65535, not '" + value + "'");
      options.listen_port = static_cast<int>(*port);
    } else if (flag == "--ports-file") {
      options.ports_file = value;
    } else if (flag == "--to") {
      size_t colon = value.rfind(':');
      auto port = colon == std::string::npos ? std::nullopt
                                             : ParseNumber(value.substr(colon + 1), 1, 65535);
      options.to.sin_family = AF_INET;
      if (!port || inet_pton(AF_INET, value.substr(0, colon).c_str(), &options.to.sin_addr) != 1) {
        Usage("--to must be IPV4:PORT (e.g. 127.0.0.1:4222), not '" + value + "'");
      }
      options.to.sin_port = htons(static_cast<uint16_t>(*port));
      have_to = true;
    } else if (flag == "--delay-ms") {
      auto delay = ParseNumber(value, 0, 60000);
      if (!delay) Usage("--delay-ms must be 0..60000, not '" + value + "'");
      options.delay = std::chrono::milliseconds(*delay);
      have_delay = true;
    } else if (flag == "--max-pending-kib") {
      auto kib = ParseNumber(value, 1, 1024 * 1024);
      if (!kib) Usage("--max-pending-kib must be 1..1048576, not '" + value + "'");
      options.max_pending = static_cast<size_t>(*kib) * 1024;
    } else {
      Usage("unknown option " + flag);
    }
  }
  if (options.listen_port < 0) Usage("--listen-port is required");
  if (!have_to) Usage("--to is required");
  if (!have_delay) Usage("--delay-ms is required");
  return options;
}

// A chunk on its way from one side to the other; an empty `bytes` with `fin` is the FIN.
struct Chunk {
  Clock::time_point due;
  std::string bytes;
  size_t written = 0;
  bool fin = false;
};

// One direction of a session: bytes read from sides[from], written to the other side.
struct Direction {
  std::deque<Chunk> chunks;
  size_t pending = 0;       // bytes read and not yet written
  bool source_eof = false;  // no more reads from the source (FIN or error)
  bool finished = false;    // FIN written to the destination
};

struct Side {
  int fd = -1;
  uint32_t events = 0;  // what epoll watches now; 0: not in the epoll set at all
};

struct Session {
  uint64_t id = 0;
  Side sides[2];            // 0: the accepted client, 1: the connection to --to
  Direction directions[2];  // 0: client -> target, 1: target -> client
  bool connected = false;   // sides[1]'s connect finished
};

class Proxy {
 public:
  explicit Proxy(Options options) : options_(std::move(options)) {}

  int Run() {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return Fatal("epoll_create1");
    int port = Listen();
    if (port < 0) return 1;
    if (!options_.ports_file.empty() && !WritePortsFile(port)) return 1;
    char to[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &options_.to.sin_addr, to, sizeof to);
    std::fprintf(stderr, "delay_proxy: 127.0.0.1:%d -> %s:%d, %lld ms each way\n", port, to,
                 ntohs(options_.to.sin_port), static_cast<long long>(options_.delay.count()));
    std::vector<epoll_event> events(64);
    for (;;) {
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), TimeoutMs());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fatal("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        uint64_t tag = events[i].data.u64;
        if (tag == kListenerTag) {
          Accept();
        } else {
          OnSocket(tag >> 1, static_cast<int>(tag & 1), events[i].events);
        }
      }
      FlushDue();
    }
  }

 private:
  static int Fatal(const char* what) {
    std::fprintf(stderr, "delay_proxy: %s: %s\n", what, std::strerror(errno));
    return 1;
  }

  int Listen() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(options_.listen_port));
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return Fatal("bind"), -1;
    }
    if (listen(listener_, 128) != 0) return Fatal("listen"), -1;
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerTag;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, listener_, &ev);
    return ntohs(addr.sin_port);
  }

  bool WritePortsFile(int port) {
    std::string tmp = options_.ports_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << port << "\n";
      if (!out.flush()) {
        std::fprintf(stderr, "delay_proxy: cannot write %s\n", tmp.c_str());
        return false;
      }
    }
    if (std::rename(tmp.c_str(), options_.ports_file.c_str()) != 0) {
      return Fatal("rename ports file"), false;
    }
    return true;
  }

  // Milliseconds until the earliest due chunk (rounded up, so a wake-up is never early), or -1.
  int TimeoutMs() const {
    if (timers_.empty()) return -1;
    auto wait = timers_.front().due - Clock::now();
    if (wait <= Clock::duration::zero()) return 0;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
  }

  void Accept() {
    for (;;) {
      int client = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) return;  // EAGAIN, or a connection that died in the backlog
      int upstream = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      int rc =
          connect(upstream, reinterpret_cast<const sockaddr*>(&options_.to), sizeof options_.to);
      if (rc != 0 && errno != EINPROGRESS) {
        Reset(client);
        close(upstream);
        continue;
      }
      auto session = std::make_unique<Session>();
      session->id = next_id_++;
      session->sides[0].fd = client;
      session->sides[1].fd = upstream;
      session->connected = rc == 0;
      for (int side = 0; side < 2; ++side) {
        int one = 1;
        setsockopt(session->sides[side].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      Session* s = session.get();
      sessions_.emplace(s->id, std::move(session));
      UpdateInterest(*s);
    }
  }

  static uint64_t Tag(uint64_t id, int side) { return (id << 1) | static_cast<uint64_t>(side); }

  // What each socket should be watched for: reads while its outgoing direction has room and no
  // EOF, writes while a due chunk waits for it (or its connect is in progress). A socket with
  // nothing to watch leaves the epoll set: epoll reports hang-ups and errors whatever the mask,
  // and a paused socket whose peer hung up would otherwise wake the loop on every turn.
  void UpdateInterest(Session& s) {
    for (int side = 0; side < 2; ++side) {
      const Direction& out = s.directions[side];  // read from this side
      uint32_t events = 0;
      bool usable = side == 0 || s.connected;
      if (usable && !out.source_eof && out.pending < options_.max_pending) events |= EPOLLIN;
      if (!usable || blocked_.count(Tag(s.id, side)) != 0) events |= EPOLLOUT;
      uint32_t before = s.sides[side].events;
      if (events == before) continue;
      epoll_event ev{};
      ev.events = events;
      ev.data.u64 = Tag(s.id, side);
      int op = events == 0 ? EPOLL_CTL_DEL : before == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      epoll_ctl(epoll_, op, s.sides[side].fd, &ev);
      s.sides[side].events = events;
    }
  }

  Session* Find(uint64_t id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
  }

  void OnSocket(uint64_t id, int side, uint32_t events) {
    Session* s = Find(id);
    if (s == nullptr) return;
    constexpr uint32_t kWritableOrBroken = EPOLLOUT | EPOLLHUP | EPOLLERR;
    if (side == 1 && !s->connected) {
      int error = 0;
      socklen_t len = sizeof error;
      getsockopt(s->sides[1].fd, SOL_SOCKET, SO_ERROR, &error, &len);
      if (error != 0 || (events & (EPOLLHUP | EPOLLERR)) != 0) return Close(*s, /*reset=*/true);
      if ((events & EPOLLOUT) == 0) return;
      s->connected = true;
      // Chunks that came due while connecting were left for now.
      if (!Flush(*s, 0)) return;
    } else if ((events & kWritableOrBroken) != 0 && blocked_.erase(Tag(id, side)) > 0) {
      // A send that fails on a broken socket closes the session here.
      if (!Flush(*s, 1 - side)) return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) Read(*s, side);
    UpdateInterest(*s);
  }

  // Reads what `side` has, up to the bound, into its direction.
  void Read(Session& s, int side) {
    Direction& dir = s.directions[side];
    while (!dir.source_eof && dir.pending < options_.max_pending) {
      ssize_t n = recv(s.sides[side].fd, read_buffer_.data(), read_buffer_.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        // FIN (0) or reset (< 0): the other side learns of it D ms later, the same way. An
        // empty chunk without `fin` stands for the reset.
        dir.source_eof = true;
        Enqueue(s, side, Chunk{Clock::now() + options_.delay, {}, 0, /*fin=*/n == 0});
        return;
      }
      std::string bytes(read_buffer_.data(), static_cast<size_t>(n));
      dir.pending += bytes.size();
      Enqueue(s, side, Chunk{Clock::now() + options_.delay, std::move(bytes), 0, false});
    }
  }

  void Enqueue(Session& s, int direction, Chunk chunk) {
    timers_.push_back(Timer{chunk.due, s.id, direction});
    s.directions[direction].chunks.push_back(std::move(chunk));
  }

  // Writes the due chunks of direction `d` to its destination. False if the session closed.
  bool Flush(Session& s, int d) {
    Direction& dir = s.directions[d];
    int dest = 1 - d;
    if (dest == 1 && !s.connected) return true;
    if (blocked_.count(Tag(s.id, dest)) != 0) return true;
    Clock::time_point now = Clock::now();
    while (!dir.chunks.empty() && dir.chunks.front().due <= now) {
      Chunk& chunk = dir.chunks.front();
      if (chunk.fin) {
        shutdown(s.sides[dest].fd, SHUT_WR);
        dir.finished = true;
        dir.chunks.pop_front();
        if (s.directions[0].finished && s.directions[1].finished) {
          Close(s, /*reset=*/false);
          return false;
        }
        continue;
      }
      if (chunk.bytes.empty()) {  // the source was reset
        Close(s, /*reset=*/true);
        return false;
      }
      while (chunk.written < chunk.bytes.size()) {
        ssize_t n = send(s.sides[dest].fd, chunk.bytes.data() + chunk.written,
                         chunk.bytes.size() - chunk.written, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
          blocked_.insert(Tag(s.id, dest));
          return true;
        }
        if (n < 0) {
          Close(s, /*reset=*/true);
          return false;
        }
        chunk.written += static_cast<size_t>(n);
        dir.pending -= static_cast<size_t>(n);
      }
      dir.chunks.pop_front();
    }
    return true;
  }

  // Writes every direction whose head chunk has come due.
  void FlushDue() {
    Clock::time_point now = Clock::now();
    while (!timers_.empty() && timers_.front().due <= now) {
      Timer timer = timers_.front();
      timers_.pop_front();
      Session* s = Find(timer.session);
      if (s == nullptr) continue;
      if (Flush(*s, timer.direction)) UpdateInterest(*s);
    }
  }

  static void Reset(int fd) {
    linger abort{1, 0};  // close() then sends RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    close(fd);
  }

  void Close(Session& s, bool reset) {
    for (int side = 0; side < 2; ++side) {
      if (s.sides[side].events != 0) epoll_ctl(epoll_, EPOLL_CTL_DEL, s.sides[side].fd, nullptr);
      blocked_.erase(Tag(s.id, side));
      if (reset) {
        Reset(s.sides[side].fd);
      } else {
        close(s.sides[side].fd);
      }
    }
    sessions_.erase(s.id);  // `s` is gone from here on
  }

  struct Timer {
    Clock::time_point due;
    uint64_t session;
    int direction;
  };

  Options options_;
  int epoll_ = -1;
  int listener_ = -1;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::deque<Timer> timers_;              // sorted by `due`: every chunk waits the same delay
  std::unordered_set<uint64_t> blocked_;  // sockets (Tag) whose last send hit EAGAIN
  std::vector<char> read_buffer_ = std::vector<char>(kReadChunk);
};

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  return Proxy(std::move(options)).Run();
}
