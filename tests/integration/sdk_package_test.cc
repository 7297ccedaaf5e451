// The C++ service SDK as a user gets it. `cmake --install` puts this build's SDK component into
// a temporary prefix; then, with nothing from the source tree on any include path:
//   1. tests/integration/sdk_consumer is configured with find_package(Hubcast) and built, with
//      the example app server of deploy/examples/app_server beside it;
//   2. the README's five-line example is compiled with `pkg-config --cflags --libs hubcast`;
//   3. against a real `hubcast serve` on port 0: the consumer calls every operation of the SDK
//      and checks each effect on WebSocket clients, then the 404 / 400 / 401 / unreachable
//      errors; the README example sends to a client connected here; the example app server
//      hands out a client URL that connects and broadcasts what it is posted.
// Builds take most of the run time (about a minute on two cores).

#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/ws_client.h"
#include <arpa/inet.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#ifndef HUBCAST_BINARY_PATH
#define HUBCAST_BINARY_PATH "hubcast"
#endif

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr char kAccessKey[] = "hubcast-sdk-package-test-access-key-0123456789";
constexpr char kJson[] = "json.webpubsub.azure.v1";

// Every line the consumer prints after checking an operation (consumer.cc).
const std::vector<std::string> kConsumerChecks = {"GetClientAccessUrl",
                                                  "ConnectionExists",
                                                  "UserExists",
                                                  "SendToAll",
                                                  "SendToConnection",
                                                  "SendToUser",
                                                  "AddConnectionToGroup",
                                                  "GroupExists",
                                                  "SendToGroup",
                                                  "ListConnectionsInGroup",
                                                  "RemoveConnectionFromGroup",
                                                  "AddUserToGroup",
                                                  "ListUserGroups",
                                                  "ListGroups",
                                                  "RemoveUserFromGroup",
                                                  "RemoveUserFromAllGroups",
                                                  "AddConnectionsToGroups",
                                                  "RemoveConnectionsFromGroups",
                                                  "RemoveConnectionFromAllGroups",
                                                  "GrantPermission",
                                                  "HasPermission",
                                                  "RevokePermission",
                                                  "Async",
                                                  "CloseConnection",
                                                  "CloseUserConnections",
                                                  "CloseGroupConnections",
                                                  "CloseAllConnections",
                                                  "Error404",
                                                  "Error400",
                                                  "Error401",
                                                  "ErrorTransport"};

std::string HubcastBinary() {
  const char* value = std::getenv("HUBCAST_BINARY");
  return value != nullptr && *value != '\0' ? value : HUBCAST_BINARY_PATH;
}

// A loopback port nobody listens on right now (for the example app server, which cannot
// report a port it picked itself).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// The part of a ws:// URL after host:port ("/client/hubs/...?access_token=...").
std::string TargetOf(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t slash = scheme == std::string::npos ? std::string::npos : url.find('/', scheme + 3);
  return slash == std::string::npos ? "" : url.substr(slash);
}

class SdkPackage : public ::testing::Test {
 protected:
  SdkPackage() : dir_(MakeDir()), reporter_(dir_) {}

  static fs::path MakeDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/hubcast-sdk-package-XXXXXX";
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    return pattern;
  }

  // Runs a command to its end; the output goes to <dir>/<name>.log, shown if the test fails.
  // Returns the output when it exited 0, nullopt (with a test failure) otherwise.
  std::optional<std::string> RunStep(const std::string& name, const std::string& binary,
                                     const std::vector<std::string>& args,
                                     const std::map<std::string, std::string>& env,
                                     std::chrono::seconds timeout) {
    SpawnOptions options;
    options.binary = binary;
    options.args = args;
    options.env = env;
    options.log_path = dir_ / (name + ".log");
    reporter_.Add(name, options.log_path);
    std::string error;
    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<ChildProcess> child = ChildProcess::Spawn(options, &error);
    if (child == nullptr) {
      ADD_FAILURE() << name << ": " << error;
      return std::nullopt;
    }
    std::optional<ExitStatus> status = child->WaitForExit(timeout);
    if (!status) status = child->Stop();
    std::cout << "[ STEP     ] " << name << ": " << status->ToString() << " after "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
              << " s" << std::endl;
    if (!status->Success()) {
      ADD_FAILURE() << name << " failed: " << status->ToString();
      return std::nullopt;
    }
    return child->ReadLog();
  }

  std::unique_ptr<ChildProcess> Start(const std::string& name, const std::string& binary,
                                      const std::vector<std::string>& args,
                                      const std::map<std::string, std::string>& env = {}) {
    SpawnOptions options{binary, args, env, (dir_ / (name + ".log")).string()};
    reporter_.Add(name, options.log_path);
    std::string error;
    std::unique_ptr<ChildProcess> child = ChildProcess::Spawn(options, &error);
    EXPECT_NE(child, nullptr) << name << ": " << error;
    return child;
  }

  // A JSON-subprotocol client of `hub` on `port` holding a token minted here (not by the SDK).
  static void ConnectClient(WsClient& client, int port, const std::string& hub) {
    const std::string path = "/client/hubs/" + hub;
    const std::string token =
        MintJwt(kAccessKey, "http://127.0.0.1:" + std::to_string(port) + path);
    ASSERT_TRUE(client.Connect(port, path + "?access_token=" + token, kJson)) << client.error();
    ReadConnected(client);
  }

  static void ReadConnected(WsClient& client) {
    std::optional<WsMessage> connected = client.Read(std::chrono::seconds(10));
    ASSERT_TRUE(connected.has_value()) << client.error();
    ASSERT_NE(connected->payload.find("\"event\":\"connected\""), std::string::npos)
        << connected->payload;
  }

  // The next frame must carry the text message `text` from the server.
  static void ExpectText(WsClient& client, const std::string& text) {
    std::optional<WsMessage> m = client.Read(std::chrono::seconds(10));
    ASSERT_TRUE(m.has_value()) << client.error();
    EXPECT_NE(m->payload.find("\"dataType\":\"text\""), std::string::npos) << m->payload;
    EXPECT_NE(m->payload.find("\"data\":\"" + text + "\""), std::string::npos) << m->payload;
  }

  const fs::path dir_;
  FailureReporter reporter_;  // after dir_: reports once the children (declared later) stopped
};

TEST_F(SdkPackage, InstalledPackageDrivesARealServer) {
  const fs::path prefix = dir_ / "prefix";
  const fs::path libdir = prefix / HUBCAST_INSTALL_LIBDIR;

  // 1. Install the SDK component.
  ASSERT_TRUE(RunStep("install", HUBCAST_CMAKE_COMMAND,
                      {"--install", HUBCAST_BUILD_DIR, "--prefix", prefix, "--component", "sdk"},
                      {}, seconds(120)));
  for (const fs::path& file :
       {prefix / "include/hubcast/service_client.h", libdir / "cmake/Hubcast/HubcastConfig.cmake",
        libdir / "cmake/Hubcast/HubcastConfigVersion.cmake", libdir / "pkgconfig/hubcast.pc",
        libdir / "libhubcast_service_client.a"}) {
    EXPECT_TRUE(fs::exists(file)) << file << " was not installed";
  }
  EXPECT_FALSE(fs::exists(prefix / "include/hubcast/base")) << "server headers were installed";

  // 2. A project of its own with find_package(Hubcast), and the example app server.
  const fs::path consumer_build = dir_ / "consumer-build";
  ASSERT_TRUE(RunStep("configure", HUBCAST_CMAKE_COMMAND,
                      {"-S", std::string(HUBCAST_SOURCE_DIR) + "/tests/integration/sdk_consumer",
                       "-B", consumer_build, "-DCMAKE_PREFIX_PATH=" + prefix.string(),
                       "-DCMAKE_CXX_COMPILER=" HUBCAST_CXX_COMPILER,
                       "-DHUBCAST_EXAMPLES_DIR=" HUBCAST_SOURCE_DIR "/deploy/examples/app_server"},
                      {}, seconds(300)));
  ASSERT_TRUE(RunStep("build", HUBCAST_CMAKE_COMMAND, {"--build", consumer_build, "-j2"}, {},
                      seconds(480)));

  // 3. One file with nothing but pkg-config's flags: the README's example, every line of it.
  const std::optional<std::string> readme = ReadFile(HUBCAST_SOURCE_DIR "/README.md");
  const std::optional<std::string> example =
      ReadFile(HUBCAST_SOURCE_DIR "/tests/integration/sdk_consumer/readme_example.cc");
  ASSERT_TRUE(readme && example);
  const size_t section = readme->find("## Use it from C++");
  const size_t block = readme->find("```cpp\n", section);
  ASSERT_NE(block, std::string::npos) << "README: no C++ example";
  std::istringstream lines(readme->substr(block + 7, readme->find("```", block + 7) - block - 7));
  int code_lines = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.rfind("#include", 0) == 0) continue;
    ++code_lines;
    EXPECT_NE(example->find(line), std::string::npos) << "README line not in the example: " << line;
  }
  EXPECT_EQ(code_lines, 5) << "the README's example is five lines";
  const fs::path readme_example = dir_ / "readme_example";
  ASSERT_TRUE(
      RunStep("pkg-config build", "/bin/sh",
              {"-c",
               "\"$CXX\" -std=c++20 -Wall -Wextra \"$SRC\" -o \"$OUT\" "
               "$(pkg-config --cflags --libs hubcast)"},
              {{"CXX", HUBCAST_CXX_COMPILER},
               {"SRC", HUBCAST_SOURCE_DIR "/tests/integration/sdk_consumer/readme_example.cc"},
               {"OUT", readme_example},
               {"PKG_CONFIG_PATH", (libdir / "pkgconfig").string()}},
              seconds(300)));

  // 4. A real server.
  std::unique_ptr<ChildProcess> server =
      Start("hubcast", HubcastBinary(),
            {"serve", "--port", "0", "--ports-file", dir_ / "port", "--data-dir", dir_ / "data",
             "--access-key", kAccessKey, "--log-level", "warn"});
  ASSERT_NE(server, nullptr);
  std::optional<int> port = WaitForPortFile(dir_ / "port", seconds(60), server.get());
  ASSERT_TRUE(port.has_value()) << "hubcast wrote no port";
  const std::map<std::string, std::string> env = {
      {"HUBCAST_CONNECTION_STRING", "Endpoint=http://127.0.0.1:" + std::to_string(*port) +
                                        ";AccessKey=" + kAccessKey + ";Version=1.0;"}};

  // 5. Every operation and the errors.
  std::optional<std::string> output =
      RunStep("consumer", consumer_build / "consumer", {}, env, seconds(120));
  ASSERT_TRUE(output.has_value());
  for (const std::string& check : kConsumerChecks) {
    EXPECT_NE(output->find("ok " + check + "\n"), std::string::npos) << check << " not checked";
  }
  EXPECT_NE(output->find("ALL OK"), std::string::npos);

  // 6. The README example: its hello reaches a client of hub chat; it prints alice's URL.
  WsClient chat;
  ASSERT_NO_FATAL_FAILURE(ConnectClient(chat, *port, "chat"));
  output = RunStep("readme example", readme_example, {}, env, seconds(60));
  ASSERT_TRUE(output.has_value());
  ASSERT_NO_FATAL_FAILURE(ExpectText(chat, "hello"));
  const std::string url_prefix =
      "ws://127.0.0.1:" + std::to_string(*port) + "/client/hubs/chat?access_token=";
  EXPECT_EQ(output->rfind(url_prefix, 0), 0u) << *output;
  WsClient alice;
  ASSERT_TRUE(alice.Connect(*port, TargetOf(output->substr(0, output->find('\n'))), kJson))
      << alice.error();
  ASSERT_NO_FATAL_FAILURE(ReadConnected(alice));

  // 7. The example app server: /negotiate's URL connects; /broadcast reaches that client.
  const int app_port = FreePort();
  ASSERT_GT(app_port, 0);
  std::unique_ptr<ChildProcess> app =
      Start("app_server", consumer_build / "examples/app_server",
            {"--port", std::to_string(app_port), "--hub", "app"}, env);
  ASSERT_NE(app, nullptr);
  HttpResponse negotiated;
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  do {
    negotiated = HttpRequest(app_port, "GET", "/negotiate?userId=bob");
    if (negotiated.status == 200 || !app->Running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(negotiated.status, 200) << negotiated.error << negotiated.body;
  const size_t url_at = negotiated.body.find("ws://");
  ASSERT_NE(url_at, std::string::npos) << negotiated.body;
  const std::string app_url =
      negotiated.body.substr(url_at, negotiated.body.find('"', url_at) - url_at);
  WsClient bob;
  ASSERT_TRUE(bob.Connect(*port, TargetOf(app_url), kJson)) << bob.error();
  ASSERT_NO_FATAL_FAILURE(ReadConnected(bob));
  HttpResponse broadcast =
      HttpRequest(app_port, "POST", "/broadcast", {{"Content-Type", "text/plain"}}, "hi bob");
  EXPECT_EQ(broadcast.status, 202) << broadcast.error << broadcast.body;
  ASSERT_NO_FATAL_FAILURE(ExpectText(bob, "hi bob"));
  EXPECT_TRUE(app->Stop().Success());
  EXPECT_TRUE(server->Stop().Success());
}

}  // namespace
}  // namespace hubcast::testing
