// ws_loadgen: opens many WebSocket client connections to a server on 127.0.0.1 and counts the
// data messages each one receives. Used by the many-connections integration test and by hand
// for load experiments. Standalone on purpose (no Hubcast libraries; the handshake and masking
// come from tests/bench/ws_wire.h), so that a bug in our own frame code cannot hide the same
// bug in the server.
//
// One thread, one epoll set, non-blocking sockets. At most --max-handshakes connections are
// between connect() and the 101 response at any time, so the server's listen backlog is never
// overrun. Server frames (unmasked) are parsed incrementally: text and binary messages
// (fragmented or not) are counted, pings are answered with masked pongs, a close is answered
// and ends the connection.
//
// Exit status: 0 when every connection has received --expect-messages data messages (or, with
// 0, when every connection is upgraded); 1 on any connection failure, on timeout, or on a bad
// flag. --ready-file is written once all connections are upgraded, --report-file when the run
// ends; both are written to a temporary name and renamed, so a reader never sees half a file.

#include "tests/bench/ws_wire.h"
#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <random>
#include <signal.h>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

namespace bench = hubcast::bench;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxResponseHeaderBytes = 16 * 1024;
constexpr uint64_t kMaxMessageBytes = 64ull * 1024 * 1024;
constexpr int kMaxLoggedFailures = 10;

struct Options {
  int port = 0;
  std::string path = "/";
  int connections = 1;
  std::string subprotocol;
  int expect_messages = 0;
  int timeout_seconds = 60;
  int max_handshakes = 500;
  bool skip_connected = false;
  std::string match;
  std::string ready_file;
  std::string report_file;
};

void PrintUsage() {
  std::fprintf(stderr,
               "usage: ws_loadgen --port P [--path /client/hubs/h?access_token=T]\n"
               "  [--connections N] [--subprotocol S] [--expect-messages K]\n"
               "  [--skip-connected] [--match TEXT] [--timeout-seconds T] [--max-handshakes M]\n"
               "  [--ready-file F] [--report-file F]\n"
               "Connects N WebSocket clients to ws://127.0.0.1:P<path>; exits 0 once each has\n"
               "received K data messages (--skip-connected: a first text message containing\n"
               "\"event\":\"connected\" is not counted; --match: a counted message not\n"
               "containing TEXT fails its connection), 1 on failure or timeout.\n");
}

bool ParseInt(const std::string& text, int min, int max, int* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || value < min || value > max) return false;
  *out = static_cast<int>(value);
  return true;
}

// Accepts "--flag value" and "--flag=value".
bool ParseOptions(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_inline_value = true;
    }
    if (arg == "--skip-connected") {
      if (has_inline_value) return false;
      options->skip_connected = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") return false;
    if (!has_inline_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ws_loadgen: %s needs a value\n", arg.c_str());
        return false;
      }
      value = argv[++i];
    }
    bool ok = true;
    if (arg == "--port") {
      ok = ParseInt(value, 1, 65535, &options->port);
    } else if (arg == "--path") {
      ok = !value.empty() && value[0] == '/';
      options->path = value;
    } else if (arg == "--connections") {
      ok = ParseInt(value, 1, 1000000, &options->connections);
    } else if (arg == "--subprotocol") {
      options->subprotocol = value;
    } else if (arg == "--expect-messages") {
      ok = ParseInt(value, 0, 1000000000, &options->expect_messages);
    } else if (arg == "--timeout-seconds") {
      ok = ParseInt(value, 1, 86400, &options->timeout_seconds);
    } else if (arg == "--max-handshakes") {
      ok = ParseInt(value, 1, 100000, &options->max_handshakes);
    } else if (arg == "--match") {
      options->match = value;
    } else if (arg == "--ready-file") {
      options->ready_file = value;
    } else if (arg == "--report-file") {
      options->report_file = value;
    } else {
      std::fprintf(stderr, "ws_loadgen: unknown flag %s\n", arg.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "ws_loadgen: bad value for %s: '%s'\n", arg.c_str(), value.c_str());
      return false;
    }
  }
  if (options->port == 0) {
    std::fprintf(stderr, "ws_loadgen: --port is required\n");
    return false;
  }
  return true;
}

enum class State {
  kIdle,         // not started yet
  kConnecting,   // connect() in progress
  kHandshaking,  // request sent (or being sent), waiting for the 101
  kOpen,         // upgraded
  kClosed,       // ended after completing (server closed, or we are done)
  kFailed,
};

struct Connection {
  int fd = -1;
  State state = State::kIdle;
  std::string key;
  std::string in;
  std::string out;
  bool want_write = false;
  // Reassembly of a fragmented data message.
  bool in_fragmented = false;
  uint8_t fragmented_opcode = 0;
  std::string fragments;
  bool seen_first_data = false;
  int messages = 0;
  bool complete = false;
};

class LoadGenerator {
 public:
  explicit LoadGenerator(Options options)
      : options_(std::move(options)),
        connections_(options_.connections),
        rng_(std::random_device{}()) {}

  // Runs to the end; returns the process exit status.
  int Run() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      std::perror("ws_loadgen: epoll_create1");
      return 1;
    }
    const Clock::time_point start = start_;
    const Clock::time_point deadline = start + std::chrono::seconds(options_.timeout_seconds);
    Clock::time_point next_progress = start + std::chrono::seconds(5);
    std::vector<epoll_event> events(1024);
    bool timed_out = false;
    while (true) {
      StartMoreConnections();
      if (!ready_written_ && upgraded_ == options_.connections) {
        ready_written_ = true;
        if (!options_.ready_file.empty() && !WriteFileAtomically(options_.ready_file, "ready\n")) {
          return Finish(1, "could not write the ready file");
        }
        std::fprintf(stderr, "ws_loadgen: all %d connections upgraded after %.1f s\n",
                     options_.connections, SecondsSince(start));
      }
      if (complete_ == options_.connections) return Finish(0, "every connection complete");
      if (failed_ > 0 && Settled()) return Finish(1, "connections failed");
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        timed_out = true;
        break;
      }
      if (now >= next_progress) {
        PrintProgress(SecondsSince(start));
        next_progress = now + std::chrono::seconds(5);
      }
      int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 100);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("ws_loadgen: epoll_wait");
        return Finish(1, "epoll_wait failed");
      }
      for (int i = 0; i < n; ++i) HandleEvent(events[i].data.u32, events[i].events);
    }
    return Finish(1, timed_out ? "timeout" : "stopped");
  }

 private:
  // True when waiting longer cannot change the outcome: every connection has completed or
  // failed, or a connection failed before all were upgraded (the ready file will never come,
  // so nobody will send the expected messages).
  bool Settled() const {
    if (complete_ + failed_ == options_.connections) return true;
    return !ready_written_ && upgraded_ + failed_ == options_.connections;
  }

  static double SecondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  void PrintProgress(double seconds) const {
    std::fprintf(stderr,
                 "ws_loadgen: %.0f s: upgraded %d/%d, handshaking %d, failed %d, complete %d, "
                 "received %lld\n",
                 seconds, upgraded_, options_.connections, in_flight_, failed_, complete_,
                 static_cast<long long>(received_total_));
  }

  int Finish(int status, const char* why) {
    PrintProgress(SecondsSince(start_));
    for (const auto& [reason, count] : failure_reasons_) {
      std::fprintf(stderr, "ws_loadgen: failure x%d: %s\n", count, reason.c_str());
    }
    std::fprintf(stderr, "ws_loadgen: exit %d (%s)\n", status, why);
    if (!options_.report_file.empty()) {
      char line[256];
      std::snprintf(line, sizeof(line),
                    "{\"connected\":%d,\"failed\":%d,\"received_total\":%lld,"
                    "\"connections_complete\":%d}\n",
                    upgraded_, failed_, static_cast<long long>(received_total_), complete_);
      if (!WriteFileAtomically(options_.report_file, line)) status = 1;
    }
    return status;
  }

  static bool WriteFileAtomically(const std::string& path, const std::string& content) {
    std::string tmp = path + ".tmp";
    FILE* file = std::fopen(tmp.c_str(), "w");
    if (file == nullptr) {
      std::perror(("ws_loadgen: " + tmp).c_str());
      return false;
    }
    bool ok = std::fwrite(content.data(), 1, content.size(), file) == content.size();
    ok = std::fclose(file) == 0 && ok;
    ok = ok && std::rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) std::perror(("ws_loadgen: " + path).c_str());
    return ok;
  }

  void StartMoreConnections() {
    while (next_to_start_ < options_.connections && in_flight_ < options_.max_handshakes) {
      StartConnection(next_to_start_++);
    }
  }

  void StartConnection(int index) {
    Connection& conn = connections_[index];
    conn.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (conn.fd < 0) {
      Fail(index, std::string("socket: ") + std::strerror(errno));
      return;
    }
    int one = 1;
    setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(options_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // only ever 127.0.0.1
    ++in_flight_;
    conn.state = State::kConnecting;
    epoll_event event{};
    event.events = EPOLLOUT;
    event.data.u32 = static_cast<uint32_t>(index);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conn.fd, &event) != 0) {
      Fail(index, std::string("epoll_ctl: ") + std::strerror(errno));
      return;
    }
    conn.want_write = true;
    if (connect(conn.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      Fail(index, std::string("connect: ") + std::strerror(errno));
      return;
    }
    // Completion (or failure) of connect() is reported as writability.
  }

  void SendHandshake(int index) {
    Connection& conn = connections_[index];
    conn.key = bench::NewWebSocketKey(rng_);
    conn.out += bench::UpgradeRequest(options_.port, options_.path, conn.key, options_.subprotocol);
    conn.state = State::kHandshaking;
  }

  void HandleEvent(uint32_t index, uint32_t events) {
    Connection& conn = connections_[index];
    if (conn.state == State::kFailed || conn.state == State::kClosed) return;
    if (conn.state == State::kConnecting) {
      int error = 0;
      socklen_t len = sizeof(error);
      if (getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
      if (error != 0) {
        Fail(index, std::string("connect: ") + std::strerror(error));
        return;
      }
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      SendHandshake(index);
      Flush(index);
      return;
    }
    if (events & EPOLLIN || events & EPOLLHUP || events & EPOLLERR) ReadAvailable(index);
    if (conn.state != State::kFailed && conn.state != State::kClosed && (events & EPOLLOUT)) {
      Flush(index);
    }
  }

  // Writes as much of the output buffer as the socket takes and keeps the epoll interest in
  // sync: EPOLLOUT only while bytes are pending.
  void Flush(int index) {
    Connection& conn = connections_[index];
    while (!conn.out.empty()) {
      ssize_t n = send(conn.fd, conn.out.data(), conn.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        conn.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      Fail(index, std::string("send: ") + std::strerror(errno));
      return;
    }
    bool want_write = !conn.out.empty();
    if (want_write == conn.want_write) return;
    epoll_event event{};
    event.events = want_write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    event.data.u32 = static_cast<uint32_t>(index);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &event) != 0) {
      Fail(index, std::string("epoll_ctl: ") + std::strerror(errno));
      return;
    }
    conn.want_write = want_write;
  }

  void ReadAvailable(int index) {
    Connection& conn = connections_[index];
    char buffer[16 * 1024];
    while (true) {
      ssize_t n = recv(conn.fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        conn.in.append(buffer, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof(buffer)) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      // Process what arrived before the end of the stream first: it may complete us.
      Process(index);
      if (conn.state == State::kFailed || conn.state == State::kClosed) return;
      if (n == 0) {
        EndStream(index, "server closed the TCP connection");
      } else {
        EndStream(index, std::string("recv: ") + std::strerror(errno));
      }
      return;
    }
    Process(index);
    if (conn.state != State::kFailed && conn.state != State::kClosed && !conn.out.empty()) {
      Flush(index);
    }
  }

  void Process(int index) {
    Connection& conn = connections_[index];
    if (conn.state == State::kHandshaking && !ProcessHandshakeResponse(index)) return;
    if (conn.state == State::kOpen) ProcessFrames(index);
  }

  // Returns true once upgraded (leftover bytes stay in conn.in as frames).
  bool ProcessHandshakeResponse(int index) {
    Connection& conn = connections_[index];
    size_t end = conn.in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (conn.in.size() > kMaxResponseHeaderBytes) Fail(index, "response header too large");
      return false;
    }
    std::string error = bench::CheckUpgradeResponse(std::string_view(conn.in.data(), end), conn.key,
                                                    options_.subprotocol);
    if (!error.empty()) {
      Fail(index, error);
      return false;
    }
    conn.in.erase(0, end + 4);
    conn.state = State::kOpen;
    --in_flight_;
    ++upgraded_;
    if (options_.expect_messages == 0) MarkComplete(index);
    return true;
  }

  void ProcessFrames(int index) {
    Connection& conn = connections_[index];
    size_t pos = 0;
    while (conn.state == State::kOpen) {
      const size_t available = conn.in.size() - pos;
      bench::FrameHeader frame;
      if (!bench::ParseFrameHeader(std::string_view(conn.in).substr(pos), &frame)) break;
      const bool fin = frame.fin;
      const uint8_t opcode = frame.opcode;
      const uint64_t length = frame.payload_bytes;
      const size_t header = frame.header_bytes;
      if (frame.masked) return Fail(index, "server sent a masked frame");
      if (frame.reserved != 0) return Fail(index, "server set reserved bits");
      if (length > kMaxMessageBytes) return Fail(index, "frame too large");
      if (available < header + length) break;
      std::string_view payload(conn.in.data() + pos + header, static_cast<size_t>(length));
      pos += header + static_cast<size_t>(length);
      if (opcode >= 0x8 && (!fin || length > 125)) {
        return Fail(index, "malformed control frame");
      }
      switch (opcode) {
        case 0x0:
          if (!conn.in_fragmented) return Fail(index, "continuation without a message");
          conn.fragments.append(payload);
          if (conn.fragments.size() > kMaxMessageBytes) return Fail(index, "message too large");
          if (fin) {
            conn.in_fragmented = false;
            std::string message = std::move(conn.fragments);
            conn.fragments.clear();
            OnMessage(index, conn.fragmented_opcode, message);
          }
          break;
        case 0x1:
        case 0x2:
          if (conn.in_fragmented) return Fail(index, "new message inside a fragmented one");
          if (fin) {
            OnMessage(index, opcode, payload);
          } else {
            conn.in_fragmented = true;
            conn.fragmented_opcode = opcode;
            conn.fragments.assign(payload);
          }
          break;
        case 0x8:
          OnClose(index, payload);
          break;
        case 0x9:
          QueueFrame(index, 0xA, payload);
          break;
        case 0xA:
          break;
        default:
          return Fail(index, "unknown opcode " + std::to_string(opcode));
      }
    }
    if (conn.state == State::kOpen) conn.in.erase(0, pos);
  }

  void OnMessage(int index, uint8_t opcode, std::string_view payload) {
    Connection& conn = connections_[index];
    const bool first = !conn.seen_first_data;
    conn.seen_first_data = true;
    if (first && options_.skip_connected && opcode == 0x1 &&
        payload.find("\"event\":\"connected\"") != std::string_view::npos) {
      return;
    }
    if (!options_.match.empty() && payload.find(options_.match) == std::string_view::npos) {
      return Fail(index, "unexpected message: " + std::string(payload.substr(0, 80)));
    }
    ++conn.messages;
    ++received_total_;
    if (conn.messages == options_.expect_messages) MarkComplete(index);
  }

  void OnClose(int index, std::string_view payload) {
    // Echo the status code, as RFC 6455 section 5.5.1 asks, then stop reading.
    QueueFrame(index, 0x8, payload.substr(0, std::min<size_t>(payload.size(), 2)));
    Flush(index);
    std::string reason = "server sent close";
    if (payload.size() >= 2) {
      int code = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
      reason += " " + std::to_string(code);
      if (payload.size() > 2) reason += " '" + std::string(payload.substr(2, 80)) + "'";
    }
    EndStream(index, reason);
  }

  // The server ended the connection: fine once the connection has what it expected.
  void EndStream(int index, const std::string& reason) {
    Connection& conn = connections_[index];
    if (conn.complete) {
      CloseFd(index);
      conn.state = State::kClosed;
      return;
    }
    Fail(index, reason);
  }

  // Client frames are masked (RFC 6455 section 5.3).
  void QueueFrame(int index, uint8_t opcode, std::string_view payload) {
    bench::AppendClientFrame(connections_[index].out, opcode, payload,
                             static_cast<uint32_t>(rng_()));
  }

  void MarkComplete(int index) {
    Connection& conn = connections_[index];
    if (conn.complete) return;
    conn.complete = true;
    ++complete_;
  }

  void Fail(int index, const std::string& reason) {
    Connection& conn = connections_[index];
    if (conn.state == State::kFailed || conn.state == State::kClosed) return;
    if (conn.complete) {
      // Whatever happens after a connection got its messages does not change the outcome.
      CloseFd(index);
      conn.state = State::kClosed;
      return;
    }
    if (conn.state == State::kConnecting || conn.state == State::kHandshaking) --in_flight_;
    conn.state = State::kFailed;
    CloseFd(index);
    ++failed_;
    if (failed_ <= kMaxLoggedFailures) {
      std::fprintf(stderr, "ws_loadgen: connection %d failed: %s\n", index, reason.c_str());
    }
    ++failure_reasons_[reason.substr(0, 120)];
  }

  void CloseFd(int index) {
    Connection& conn = connections_[index];
    if (conn.fd < 0) return;
    close(conn.fd);  // also removes it from the epoll set
    conn.fd = -1;
    conn.in.clear();
    conn.in.shrink_to_fit();
    conn.out.clear();
    conn.out.shrink_to_fit();
  }

  Options options_;
  Clock::time_point start_ = Clock::now();
  std::vector<Connection> connections_;
  std::mt19937_64 rng_;
  int epoll_fd_ = -1;
  int next_to_start_ = 0;
  int in_flight_ = 0;
  int upgraded_ = 0;
  int failed_ = 0;
  int complete_ = 0;
  int64_t received_total_ = 0;
  bool ready_written_ = false;
  std::map<std::string, int> failure_reasons_;
};

void RaiseFileLimit(int connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) std::perror("ws_loadgen: setrlimit");
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < static_cast<rlim_t>(connections) + 16) {
    std::fprintf(stderr, "ws_loadgen: warning: RLIMIT_NOFILE is %llu for %d connections\n",
                 static_cast<unsigned long long>(limit.rlim_cur), connections);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, &options)) {
    PrintUsage();
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit(options.connections);
  LoadGenerator generator(std::move(options));
  return generator.Run();
}
