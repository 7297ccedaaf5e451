#include "tests/integration/process_util.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <regex>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace hubcast::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(20);

std::string ToLower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string Trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

ExitStatus FromWaitStatus(int status) {
  ExitStatus result;
  if (WIFEXITED(status)) {
    result.exited = true;
    result.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (exited) return "exit code " + std::to_string(code);
  if (signal != 0) return std::string("killed by signal ") + strsignal(signal);
  return "unknown";
}

ProcStatus ReadProcStatus(pid_t pid) {
  ProcStatus result;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return result;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      result.vm_rss_kb = std::strtol(line.c_str() + 6, nullptr, 10);
    } else if (line.rfind("Threads:", 0) == 0) {
      result.threads = static_cast<int>(std::strtol(line.c_str() + 8, nullptr, 10));
    }
  }
  std::error_code ec;
  int fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  if (!ec) result.fds = fds;
  result.ok = result.threads > 0;
  return result;
}

rlim_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return limit.rlim_cur;
}

std::unique_ptr<ChildProcess> ChildProcess::Spawn(const SpawnOptions& options, std::string* error) {
  std::vector<std::string> argv_storage;
  argv_storage.push_back(options.binary);
  argv_storage.insert(argv_storage.end(), options.args.begin(), options.args.end());

  std::vector<std::string> env_storage;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string item = *entry;
    if (options.env.count(item.substr(0, item.find('='))) == 0) env_storage.push_back(item);
  }
  for (const auto& [name, value] : options.env) env_storage.push_back(name + "=" + value);

  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& item : env_storage) envp.push_back(item.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);

  // The child starts with default dispositions and no blocked signals, whatever the test
  // runner did to its own (an ignored SIGPIPE or SIGTERM would otherwise be inherited).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all;
  sigfillset(&all);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, options.binary.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    if (error != nullptr) {
      *error = "posix_spawn " + options.binary + ": " + std::strerror(rc);
    }
    return nullptr;
  }
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, BaseName(options.binary), options.log_path));
}

ChildProcess::~ChildProcess() {
  if (!exit_status_) Stop();
}

bool ChildProcess::TryReap(bool block) {
  if (exit_status_) return true;
  while (true) {
    int status = 0;
    pid_t rc = waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (rc == pid_) {
      exit_status_ = FromWaitStatus(status);
      return true;
    }
    if (rc == 0) return false;
    if (errno == EINTR) continue;
    // ECHILD: somebody else reaped it; there is nothing left to wait for.
    exit_status_ = ExitStatus{};
    return true;
  }
}

bool ChildProcess::Running() { return !TryReap(false); }

std::optional<ExitStatus> ChildProcess::WaitForExit(std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!TryReap(false)) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_status_;
}

ExitStatus ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!TryReap(false)) {
    kill(pid_, SIGTERM);
    if (!WaitForExit(grace)) {
      kill(pid_, SIGKILL);
      TryReap(true);
    }
  }
  return *exit_status_;
}

std::string ChildProcess::ReadLog() const { return ReadFile(log_path_).value_or(""); }

void ChildProcess::DumpLog(std::ostream& out) const {
  out << "----- " << name_ << " (pid " << pid_ << ") log " << log_path_ << " -----\n"
      << ReadLog() << "\n----- end of " << name_ << " log -----" << std::endl;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

bool WaitForFile(const std::string& path, std::chrono::milliseconds timeout, ChildProcess* watch) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    struct stat info;
    if (stat(path.c_str(), &info) == 0) return true;
    if (watch != nullptr && !watch->Running()) return false;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::optional<int> ReadPortFile(const std::string& path) {
  std::optional<std::string> content = ReadFile(path);
  if (!content) return std::nullopt;
  size_t newline = content->find('\n');
  if (newline == std::string::npos) return std::nullopt;
  std::string line = Trim(content->substr(0, newline));
  if (line.empty() || line.size() > 5) return std::nullopt;
  for (char c : line) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int port = std::stoi(line);
  if (port < 1 || port > 65535) return std::nullopt;
  return port;
}

std::optional<int> WaitForPortFile(const std::string& path, std::chrono::milliseconds timeout,
                                   ChildProcess* watch) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (std::optional<int> port = ReadPortFile(path)) return port;
    if (watch != nullptr && !watch->Running()) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string HttpResponse::Header(const std::string& name) const {
  std::string wanted = ToLower(name);
  for (const auto& [key, value] : headers) {
    if (key == wanted) return value;
  }
  return "";
}

namespace {

enum class Parse { kIncomplete, kComplete, kError };

// Decodes a chunked body from `data`. kComplete once the terminating chunk and trailers are in.
Parse DecodeChunked(const std::string& data, std::string* body) {
  body->clear();
  size_t pos = 0;
  while (true) {
    size_t line_end = data.find("\r\n", pos);
    if (line_end == std::string::npos) return Parse::kIncomplete;
    std::string size_text = data.substr(pos, line_end - pos);
    size_text = size_text.substr(0, size_text.find(';'));
    char* end = nullptr;
    unsigned long long size = std::strtoull(size_text.c_str(), &end, 16);
    if (size_text.empty() || end == size_text.c_str()) return Parse::kError;
    pos = line_end + 2;
    if (size == 0) {
      // Trailers (usually none), then an empty line.
      while (true) {
        size_t trailer_end = data.find("\r\n", pos);
        if (trailer_end == std::string::npos) return Parse::kIncomplete;
        if (trailer_end == pos) return Parse::kComplete;
        pos = trailer_end + 2;
      }
    }
    if (data.size() < pos + size + 2) return Parse::kIncomplete;
    body->append(data, pos, size);
    pos += size + 2;
  }
}

// Parses the response in `buffer`. 1xx interim responses are dropped from the buffer.
Parse ParseResponse(std::string* buffer, bool eof, const std::string& method,
                    HttpResponse* response) {
  while (true) {
    size_t head_end = buffer->find("\r\n\r\n");
    if (head_end == std::string::npos) return eof ? Parse::kError : Parse::kIncomplete;
    std::istringstream head(buffer->substr(0, head_end));
    std::string status_line;
    std::getline(head, status_line);
    if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) return Parse::kError;
    int status = std::atoi(status_line.c_str() + 9);
    if (status >= 100 && status < 200) {
      buffer->erase(0, head_end + 4);
      continue;
    }
    response->status = status;
    response->headers.clear();
    std::string line;
    while (std::getline(head, line)) {
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      response->headers.emplace_back(ToLower(Trim(line.substr(0, colon))),
                                     Trim(line.substr(colon + 1)));
    }
    std::string rest = buffer->substr(head_end + 4);
    if (method == "HEAD" || status == 204 || status == 304) {
      response->body.clear();
      return Parse::kComplete;
    }
    if (ToLower(response->Header("transfer-encoding")).find("chunked") != std::string::npos) {
      Parse parse = DecodeChunked(rest, &response->body);
      return parse == Parse::kIncomplete && eof ? Parse::kError : parse;
    }
    std::string length = response->Header("content-length");
    if (!length.empty()) {
      char* end = nullptr;
      unsigned long long wanted = std::strtoull(length.c_str(), &end, 10);
      if (end == length.c_str()) return Parse::kError;
      if (rest.size() < wanted) return eof ? Parse::kError : Parse::kIncomplete;
      response->body = rest.substr(0, wanted);
      return Parse::kComplete;
    }
    response->body = rest;
    return eof ? Parse::kComplete : Parse::kIncomplete;
  }
}

}  // namespace

HttpResponse HttpRequest(int port, const std::string& method, const std::string& target,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         const std::string& body, std::chrono::milliseconds timeout) {
  HttpResponse response;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    response.error = std::string("socket: ") + std::strerror(errno);
    return response;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    response.error = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return response;
  }

  std::string request = method + " " + target + " HTTP/1.1\r\n";
  request += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  request += "Connection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n";
  request += body;

  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      response.error = std::string("send: ") + std::strerror(errno);
      close(fd);
      return response;
    }
    sent += static_cast<size_t>(n);
  }

  std::string buffer;
  char chunk[8192];
  while (true) {
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      response.error = std::string("recv: ") + std::strerror(errno);
      response.status = 0;
      break;
    }
    if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
    Parse parse = ParseResponse(&buffer, n == 0, method, &response);
    if (parse == Parse::kComplete) break;
    if (parse == Parse::kError) {
      response.error = "malformed or truncated response: " + buffer.substr(0, 200);
      response.status = 0;
      break;
    }
  }
  close(fd);
  return response;
}

std::string HubcastBinary() {
  const char* value = std::getenv("HUBCAST_BINARY");
  return value != nullptr && *value != '\0' ? value : HUBCAST_BINARY_PATH;
}

std::unique_ptr<HubcastServer> HubcastServer::Start(const std::string& work_dir,
                                                    const std::string& access_key,
                                                    const std::vector<std::string>& extra,
                                                    std::string* error, const std::string& name) {
  const std::string ports_file = work_dir + "/" + name + ".port";
  ::unlink(ports_file.c_str());
  SpawnOptions options;
  options.binary = HubcastBinary();
  options.args = {"serve",
                  "--port",
                  "0",
                  "--ports-file",
                  ports_file,
                  "--data-dir",
                  work_dir + "/" + name + "-data",
                  "--access-key",
                  access_key};
  options.args.insert(options.args.end(), extra.begin(), extra.end());
  options.log_path = work_dir + "/" + name + ".log";
  auto server = std::unique_ptr<HubcastServer>(new HubcastServer());
  server->process_ = ChildProcess::Spawn(options, error);
  if (!server->process_) return nullptr;
  std::optional<int> port =
      WaitForPortFile(ports_file, std::chrono::seconds(60), server->process_.get());
  if (!port) {
    *error = "hubcast did not start listening: " + server->process_->ReadLog();
    return nullptr;
  }
  server->port_ = *port;
  return server;
}

std::string FindNatsServer() {
  if (const char* env = std::getenv("NATS_SERVER"); env != nullptr && *env != '\0') return env;
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  std::stringstream dirs(path + ":/usr/sbin:/usr/local/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::filesystem::path candidate = std::filesystem::path(dir) / "nats-server";
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "nats-server";
}

std::optional<int> NatsClientPort(const std::string& ports_file) {
  auto text = ReadFile(ports_file);
  std::smatch match;
  static const std::regex kNats(R"re("nats":\["nats://[^"]*:([0-9]+)")re");
  if (!text || !std::regex_search(*text, match, kNats)) return std::nullopt;
  return std::stoi(match[1]);
}

std::unique_ptr<NatsServer> NatsServer::Start(const std::string& work_dir, std::string* error,
                                              const std::string& name) {
  const std::string dir = work_dir + "/" + name;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SpawnOptions options;
  options.binary = FindNatsServer();
  options.args = {"-js", "-sd", dir + "/store", "-a", "127.0.0.1",        "-p", "-1",
                  "-m",  "-1",  "-n",           name, "--ports_file_dir", dir};
  options.log_path = dir + "/nats.log";
  auto server = std::unique_ptr<NatsServer>(new NatsServer());
  server->process_ = ChildProcess::Spawn(options, error);
  if (!server->process_) return nullptr;
  const std::string ports =
      dir + "/nats-server_" + std::to_string(server->process_->pid()) + ".ports";
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(60);
  std::optional<int> port;
  while (!(port = NatsClientPort(ports))) {
    if (!server->process_->Running() || Clock::now() >= deadline) {
      *error = "nats-server did not start: " + server->process_->ReadLog();
      return nullptr;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  server->port_ = *port;
  return server;
}

FailureReporter::~FailureReporter() {
  if (!::testing::Test::HasFailure()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    return;
  }
  for (const auto& [name, path] : logs_) {
    std::cerr << "----- " << name << " log " << path << " -----\n"
              << ReadFile(path).value_or("(missing)") << "\n----- end of " << name << " log -----"
              << std::endl;
  }
  std::cerr << "work directory kept: " << dir_ << std::endl;
}

}  // namespace hubcast::testing
