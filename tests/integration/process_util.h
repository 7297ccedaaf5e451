// Helpers for integration tests that run real processes (hubcast, nats-server, ws_loadgen):
// spawning a child with its output in a log file, waiting for files it writes (ports files,
// ready files) with deadlines, stopping it by pid, reading its /proc status, a minimal
// blocking HTTP/1.1 client for 127.0.0.1, and a reporter that prints the children's logs when
// a test fails.
//
// Nothing here sleeps for a fixed time to "let things settle": every wait polls a condition
// against a deadline and gives up early when the child it depends on has exited.
// Not thread-safe: a ChildProcess is used by the thread that created it.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <sys/resource.h>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace hubcast::testing {

struct SpawnOptions {
  std::string binary;                      // path of the executable (not searched in PATH)
  std::vector<std::string> args;           // argv[1..]
  std::map<std::string, std::string> env;  // set on top of this process's environment
  std::string log_path;                    // stdout and stderr both go here (truncated first)
};

// How a child ended.
struct ExitStatus {
  bool exited = false;  // exited normally with `code`
  int code = -1;
  int signal = 0;  // killed by this signal when !exited
  bool Success() const { return exited && code == 0; }
  std::string ToString() const;
};

struct ProcStatus {
  bool ok = false;      // false if /proc/<pid>/status could not be read
  long vm_rss_kb = -1;  // VmRSS
  int threads = -1;     // Threads
  int fds = -1;         // entries in /proc/<pid>/fd (-1 if it could not be listed)
};

// Reads VmRSS and Threads from /proc/<pid>/status and counts /proc/<pid>/fd.
ProcStatus ReadProcStatus(pid_t pid);

// Raises this process's RLIMIT_NOFILE soft limit to the hard one (children inherit it, so tests
// that open thousands of connections do this before starting them). Returns the soft limit now
// in force (RLIM_INFINITY when unlimited), 0 when it cannot be read.
rlim_t RaiseOpenFileLimit();

// A spawned child process. The destructor stops it (SIGTERM, then SIGKILL) if it still runs and
// always reaps it, so a failing test never leaves a process or a zombie behind.
class ChildProcess {
 public:
  // Spawns with posix_spawn. On failure returns nullptr and sets *error.
  static std::unique_ptr<ChildProcess> Spawn(const SpawnOptions& options, std::string* error);

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }

  // True while the child has not exited (reaps it without blocking if it has).
  bool Running();
  // The exit status once the child was reaped.
  const std::optional<ExitStatus>& exit_status() const { return exit_status_; }

  // Waits up to `timeout` for the child to exit by itself.
  std::optional<ExitStatus> WaitForExit(std::chrono::milliseconds timeout);

  // Sends SIGTERM, waits up to `grace`, then SIGKILLs and waits. Returns how it ended.
  ExitStatus Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  std::string ReadLog() const;
  // Writes the child's log, framed with its name and pid, to `out`.
  void DumpLog(std::ostream& out) const;

 private:
  ChildProcess(pid_t pid, std::string name, std::string log_path)
      : pid_(pid), name_(std::move(name)), log_path_(std::move(log_path)) {}
  bool TryReap(bool block);

  pid_t pid_;
  std::string name_;
  std::string log_path_;
  std::optional<ExitStatus> exit_status_;
};

// Reads a whole file; nullopt if it cannot be opened.
std::optional<std::string> ReadFile(const std::string& path);

// Polls until `path` exists, for up to `timeout`. Returns false on timeout, or early when
// `watch` is given and that child exits.
bool WaitForFile(const std::string& path, std::chrono::milliseconds timeout,
                 ChildProcess* watch = nullptr);

// Parses a ports file holding one decimal port and a newline (hubcast --ports-file). Returns
// nullopt while the line is incomplete or malformed.
std::optional<int> ReadPortFile(const std::string& path);

// WaitForFile + ReadPortFile: waits until a complete port line is there.
std::optional<int> WaitForPortFile(const std::string& path, std::chrono::milliseconds timeout,
                                   ChildProcess* watch = nullptr);

struct HttpResponse {
  int status = 0;  // 0 when the request failed at the transport level (see `error`)
  std::string error;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;
  // First value of a header (name compared case-insensitively), or "".
  std::string Header(const std::string& name) const;
};

// One request to http://127.0.0.1:<port><target> on a fresh blocking connection
// ("Connection: close"). Adds Host and Content-Length; `headers` are sent as given. Reads
// Content-Length, chunked and until-close bodies.
HttpResponse HttpRequest(int port, const std::string& method, const std::string& target,
                         const std::vector<std::pair<std::string, std::string>>& headers = {},
                         const std::string& body = "",
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The hubcast binary under test: $HUBCAST_BINARY, else the one this build made.
std::string HubcastBinary();

// A `hubcast serve` on a free port with its own data dir under `work_dir`, started and
// waited for (its ports file); stopped by pid when the object goes. The log is printed by
// DumpLog (tests do it on failure).
class HubcastServer {
 public:
  // `extra`: more `serve` flags. On failure returns nullptr and sets *error (with the log).
  static std::unique_ptr<HubcastServer> Start(const std::string& work_dir,
                                              const std::string& access_key,
                                              const std::vector<std::string>& extra,
                                              std::string* error,
                                              const std::string& name = "hubcast");
  int port() const { return port_; }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

// The nats-server to run: $NATS_SERVER, else the first in PATH (or /usr/sbin, /usr/local/sbin),
// else "nats-server".
std::string FindNatsServer();

// The client port in a nats-server ports file ({"nats":["nats://127.0.0.1:PORT"],...}), once
// it is complete.
std::optional<int> NatsClientPort(const std::string& ports_file);

// One JetStream nats-server on 127.0.0.1 (client port chosen by the kernel, store under
// `work_dir`/`name`), started and waited for; stopped by pid when the object goes.
class NatsServer {
 public:
  static std::unique_ptr<NatsServer> Start(const std::string& work_dir, std::string* error,
                                           const std::string& name = "nats");
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

// A test's work directory and the logs of the children it ran. If the test failed, the
// destructor prints every log and keeps the directory; otherwise it removes the directory.
// Declared before the children, it runs after they were stopped, so the logs are complete.
class FailureReporter {
 public:
  explicit FailureReporter(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~FailureReporter();
  FailureReporter(const FailureReporter&) = delete;
  FailureReporter& operator=(const FailureReporter&) = delete;
  void Add(std::string name, std::string log_path) {
    logs_.emplace_back(std::move(name), std::move(log_path));
  }

 private:
  std::filesystem::path dir_;
  std::vector<std::pair<std::string, std::string>> logs_;
};

}  // namespace hubcast::testing
