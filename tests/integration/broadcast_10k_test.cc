// Ten thousand WebSocket clients on one real hubcast process all receive one REST broadcast.
//
// Two ws_loadgen processes hold 5,000 connections each: one with the JSON subprotocol (whose
// clients first get a `connected` system frame, not counted), one raw. Once both report every
// connection upgraded, one SendToAll goes out over REST. The test asserts correctness only:
// every connection gets exactly the broadcast, and the server's thread count does not grow
// with connections (ARCHITECTURE.md "Threads": no thread per connection). Memory and times are
// logged as figures, never asserted.
//
// The thread bound: hubcast's HTTP workers (REST and WebSocket handshakes) are a fixed-size
// POCO pool and its socket event loops are fixed too, so the count with 10,000 connections is
// the idle count (+-2 for transient helper threads). The test passes --http-threads
// explicitly to make that bound its own; a thread per connection would add
// 10,000.
//
// Needs RLIMIT_NOFILE >= 11000 (run under `ulimit -n 20000`); skipped otherwise.

#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdlib.h>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace hubcast::testing {
namespace {

using std::chrono::seconds;

constexpr char kAccessKey[] = "hubcast-integration-test-access-key-0123456789";
constexpr char kHub[] = "bench";
constexpr char kApiVersion[] = "2024-12-01";
constexpr char kJsonSubprotocol[] = "json.webpubsub.azure.v1";
constexpr char kMessage[] = "hello";
constexpr int kConnectionsPerLoadgen = 5000;
constexpr int kHttpThreads = 16;  // hubcast's default, passed explicitly for the thread bound
constexpr rlim_t kRequiredFiles = 2 * kConnectionsPerLoadgen + 1000;

// The env var wins, so a test binary can be pointed at another build.
std::string BinaryPath(const char* env_name, const char* compiled_default) {
  const char* value = std::getenv(env_name);
  return value != nullptr && *value != '\0' ? value : compiled_default;
}

#ifndef HUBCAST_BINARY_PATH
#define HUBCAST_BINARY_PATH "hubcast"
#endif
#ifndef HUBCAST_LOADGEN_PATH
#define HUBCAST_LOADGEN_PATH "ws_loadgen"
#endif

// Reads one integer field from ws_loadgen's one-line JSON report; -1 if absent.
long ReportField(const std::string& report, const std::string& name) {
  const std::string needle = "\"" + name + "\":";
  size_t pos = report.find(needle);
  if (pos == std::string::npos) return -1;
  return std::strtol(report.c_str() + pos + needle.size(), nullptr, 10);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void LogFigure(const std::string& name, long value) {
  std::cout << "[ FIGURE   ] " << name << " = " << value << std::endl;
  ::testing::Test::RecordProperty(name, std::to_string(value));
}

TEST(ManyConnections, TenThousandClientsAllReceiveOneBroadcast) {
  // Children inherit the limit: hubcast needs one descriptor per connection.
  const rlim_t files = RaiseOpenFileLimit();
  ASSERT_NE(files, 0u);
  if (files != RLIM_INFINITY && files < kRequiredFiles) {
    GTEST_SKIP() << "RLIMIT_NOFILE is " << files << ", need " << kRequiredFiles
                 << ": run under `ulimit -n 20000`";
  }

  const std::string hubcast_binary = BinaryPath("HUBCAST_BINARY", HUBCAST_BINARY_PATH);
  const std::string loadgen_binary = BinaryPath("HUBCAST_LOADGEN", HUBCAST_LOADGEN_PATH);
  const char* tmp_root = std::getenv("TMPDIR");
  std::string dir_template =
      std::string(tmp_root != nullptr && *tmp_root != '\0' ? tmp_root : "/tmp") +
      "/hubcast-broadcast-10k-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template.data()), nullptr) << "mkdtemp " << dir_template;
  const std::filesystem::path dir = dir_template;
  FailureReporter reporter(dir);

  // 1. Server on port 0; the bound port comes back through the ports file.
  SpawnOptions server_options;
  server_options.binary = hubcast_binary;
  server_options.args = {"serve",
                         "--port",
                         "0",
                         "--ports-file",
                         dir / "port",
                         "--data-dir",
                         dir / "data",
                         "--access-key",
                         kAccessKey,
                         "--log-level",
                         "warn",
                         "--http-threads",
                         std::to_string(kHttpThreads)};
  server_options.log_path = dir / "hubcast.log";
  std::string error;
  reporter.Add("hubcast", server_options.log_path);
  std::unique_ptr<ChildProcess> server = ChildProcess::Spawn(server_options, &error);
  ASSERT_NE(server, nullptr) << error;
  std::optional<int> port = WaitForPortFile(dir / "port", seconds(60), server.get());
  ASSERT_TRUE(port.has_value()) << "hubcast did not write its port ("
                                << (server->Running() ? "still running"
                                                      : server->exit_status()->ToString())
                                << ")";
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(*port);
  std::cout << "hubcast pid " << server->pid() << " listening at " << endpoint << std::endl;

  // Informational: lets a lazily built HTTP stack finish starting before the idle figures.
  HttpResponse health =
      HttpRequest(*port, "HEAD", "/api/health?api-version=" + std::string(kApiVersion));
  std::cout << "HEAD /api/health -> " << health.status << " " << health.error << std::endl;

  const ProcStatus idle = ReadProcStatus(server->pid());
  ASSERT_TRUE(idle.ok) << "cannot read /proc/" << server->pid() << "/status";

  // 2. Two load generators, 5,000 connections each.
  const std::string client_path = std::string("/client/hubs/") + kHub;
  const std::string client_token = MintJwt(kAccessKey, endpoint + client_path);
  struct Loadgen {
    std::string name;
    std::string subprotocol;
    std::filesystem::path ready_file;
    std::filesystem::path report_file;
    std::unique_ptr<ChildProcess> process;
  };
  std::vector<Loadgen> loadgens(2);
  loadgens[0].name = "loadgen-json";
  loadgens[0].subprotocol = kJsonSubprotocol;
  loadgens[1].name = "loadgen-raw";
  const auto connect_start = std::chrono::steady_clock::now();
  for (Loadgen& loadgen : loadgens) {
    loadgen.ready_file = dir / (loadgen.name + ".ready");
    loadgen.report_file = dir / (loadgen.name + ".report");
    SpawnOptions options;
    options.binary = loadgen_binary;
    options.args = {"--port",
                    std::to_string(*port),
                    "--path",
                    client_path + "?access_token=" + client_token,
                    "--connections",
                    std::to_string(kConnectionsPerLoadgen),
                    "--expect-messages",
                    "1",
                    "--match",
                    kMessage,
                    "--timeout-seconds",
                    "500",
                    "--ready-file",
                    loadgen.ready_file,
                    "--report-file",
                    loadgen.report_file};
    if (!loadgen.subprotocol.empty()) {
      options.args.insert(options.args.end(),
                          {"--subprotocol", loadgen.subprotocol, "--skip-connected"});
    }
    options.log_path = dir / (loadgen.name + ".log");
    reporter.Add(loadgen.name, options.log_path);
    loadgen.process = ChildProcess::Spawn(options, &error);
    ASSERT_NE(loadgen.process, nullptr) << error;
  }
  for (Loadgen& loadgen : loadgens) {
    ASSERT_TRUE(WaitForFile(loadgen.ready_file, seconds(240), loadgen.process.get()))
        << loadgen.name << " did not get all connections upgraded: "
        << ReadFile(loadgen.report_file).value_or("(no report)");
  }
  const double connect_seconds = SecondsSince(connect_start);
  ASSERT_TRUE(server->Running()) << server->exit_status()->ToString();
  const ProcStatus loaded = ReadProcStatus(server->pid());
  ASSERT_TRUE(loaded.ok);
  // A loadgen that already finished counted something other than the broadcast.
  for (Loadgen& loadgen : loadgens) {
    ASSERT_TRUE(loadgen.process->Running())
        << loadgen.name << " finished before the broadcast: "
        << ReadFile(loadgen.report_file).value_or("(no report)");
  }

  // 3. One broadcast over REST; the token's audience is the full request URL.
  const std::string send_target =
      std::string("/api/hubs/") + kHub + "/:send?api-version=" + kApiVersion;
  const std::string rest_token = MintJwt(kAccessKey, endpoint + send_target);
  const auto send_start = std::chrono::steady_clock::now();
  HttpResponse sent = HttpRequest(
      *port, "POST", send_target,
      {{"Content-Type", "text/plain"}, {"Authorization", "Bearer " + rest_token}}, kMessage);
  ASSERT_EQ(sent.status, 202) << sent.error << " " << sent.body;

  // 4. Every connection gets it: each loadgen exits 0 once all of its connections have.
  for (Loadgen& loadgen : loadgens) {
    std::optional<ExitStatus> status = loadgen.process->WaitForExit(seconds(240));
    std::string report = ReadFile(loadgen.report_file).value_or("(no report)");
    std::cout << loadgen.name << " report: " << report;
    ASSERT_TRUE(status.has_value()) << loadgen.name << " still waiting for messages";
    EXPECT_TRUE(status->Success()) << loadgen.name << " " << status->ToString();
    EXPECT_EQ(ReportField(report, "connections_complete"), kConnectionsPerLoadgen);
    EXPECT_EQ(ReportField(report, "failed"), 0);
  }
  const double delivery_seconds = SecondsSince(send_start);
  const ProcStatus after = ReadProcStatus(server->pid());

  // Figures: logged, never asserted (except the structural thread count below).
  LogFigure("server_rss_kb_idle", idle.vm_rss_kb);
  LogFigure("server_rss_kb_10k_connections", loaded.vm_rss_kb);
  LogFigure("server_rss_kb_after", after.vm_rss_kb);
  LogFigure("server_threads_idle", idle.threads);
  LogFigure("server_threads_10k_connections", loaded.threads);
  LogFigure("server_threads_after", after.threads);
  LogFigure("connect_10k_ms", static_cast<long>(connect_seconds * 1000));
  LogFigure("broadcast_delivered_to_10k_ms", static_cast<long>(delivery_seconds * 1000));
  if (loaded.vm_rss_kb > idle.vm_rss_kb) {
    LogFigure("server_rss_bytes_per_connection",
              (loaded.vm_rss_kb - idle.vm_rss_kb) * 1024 / (2 * kConnectionsPerLoadgen));
  }

  // No thread per connection: the count with 10,000 connections is the idle count.
  EXPECT_LE(loaded.threads, idle.threads + 2);
  EXPECT_GE(loaded.threads, idle.threads - 2);

  // 5. SIGTERM ends the server cleanly.
  ExitStatus server_exit = server->Stop(seconds(30));
  EXPECT_TRUE(server_exit.Success()) << "hubcast after SIGTERM: " << server_exit.ToString();
}

}  // namespace
}  // namespace hubcast::testing
