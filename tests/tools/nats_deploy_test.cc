// The nats-server configurations in deploy/nats/ and the NATS half of deploy/local-cluster.sh,
// run for real on loopback: the one-region cluster forms and replicates a hub stream three
// times; the three-region cluster puts one replica of every R3 hub stream in each region (with
// two servers per region, so a placement that ignored the regions would be caught); and
// local-cluster.sh brings three regions up across delaying routes (an append then waits at least
// one inter-region round trip), and `down` stops them by pid and removes its state.
//
// Each server runs from the shipped files, copied with only the store dir changed; flags move its
// ports to 127.0.0.1 (chosen at run time) and, for the second server of a region, its name.

#include <gtest/gtest.h>
#include <nats/nats.h>

#include "tests/integration/process_util.h"
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const fs::path kNatsConfigs = fs::path(HUBCAST_SOURCE_DIR) / "deploy" / "nats";

std::string FindNatsServer() {
  if (const char* env = std::getenv("NATS_SERVER"); env != nullptr && *env != '\0') return env;
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  std::stringstream dirs(path + ":/usr/sbin:/usr/local/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    fs::path candidate = fs::path(dir) / "nats-server";
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "nats-server";
}

std::string DelayProxyBinary() {
  const char* value = std::getenv("DELAY_PROXY");
  return value != nullptr && *value != '\0' ? value : DELAY_PROXY_PATH;
}

// Free ports of 127.0.0.1 below the kernel's ephemeral range, so that nothing bound to port 0
// meanwhile (the servers' own client and monitoring ports) can take them first.
std::vector<int> FreeRoutePorts(size_t count) {
  int low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low;
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(std::max(1024, low - 12000), low - 1);
  std::vector<int> ports;
  while (ports.size() < count) {
    int port = pick(random);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free && std::find(ports.begin(), ports.end(), port) == ports.end()) ports.push_back(port);
  }
  return ports;
}

// Copies a topology's files into `dir`, pointing the JetStream store at `dir`/store.
bool CopyConfigs(const fs::path& topology, const fs::path& dir, std::string* error) {
  std::error_code ec;
  fs::create_directories(dir / "store", ec);
  for (const auto& entry : fs::directory_iterator(topology, ec)) {
    auto text = ReadFile(entry.path().string());
    if (!text) {
      *error = "cannot read " + entry.path().string();
      return false;
    }
    if (entry.path().filename() == "cluster.conf") {
      static const std::regex kStoreDir(R"((^|\n)([ \t]*store_dir:)[^\n]*)");
      std::string replaced =
          std::regex_replace(*text, kStoreDir, "$1$2 \"" + (dir / "store").string() + "\"");
      if (replaced == *text) {
        *error = entry.path().string() + " has no store_dir line";
        return false;
      }
      *text = replaced;
    }
    std::ofstream(dir / entry.path().filename()) << *text;
  }
  if (ec) *error = ec.message();
  return !ec;
}

// The client port from a nats-server ports file ({"nats":["nats://127.0.0.1:PORT"],...}).
std::optional<int> ClientPort(const fs::path& ports_file) {
  auto text = ReadFile(ports_file.string());
  std::smatch match;
  static const std::regex kNats(R"re("nats":\["nats://[^"]*:([0-9]+)")re");
  if (!text || !std::regex_search(*text, match, kNats)) return std::nullopt;
  return std::stoi(match[1]);
}

// One server of a cluster under test: its per-server file, its name and region.
struct ServerSpec {
  std::string file;    // e.g. "nats-eu-west.conf"
  std::string name;    // server name (given with -n when it differs from the file's)
  std::string region;  // what the test expects its tag to say; "" in one region
};

// nats-servers started from a topology's shipped files, stopped by pid when the object goes.
class NatsCluster {
 public:
  NatsCluster(fs::path work, FailureReporter* reporter)
      : work_(std::move(work)), reporter_(reporter) {}

  bool Start(const std::string& topology, const std::vector<ServerSpec>& specs,
             std::string* error) {
    std::vector<int> route_ports = FreeRoutePorts(specs.size());
    std::string routes;
    for (int port : route_ports) {
      routes += (routes.empty() ? "" : ",") + std::string("nats-route://127.0.0.1:") +
                std::to_string(port);
    }
    for (size_t i = 0; i < specs.size(); ++i) {
      fs::path dir = work_ / specs[i].name;
      if (!CopyConfigs(kNatsConfigs / topology, dir, error)) return false;
      SpawnOptions options;
      options.binary = FindNatsServer();
      options.args = {"-c",
                      (dir / specs[i].file).string(),
                      "-n",
                      specs[i].name,
                      "-a",
                      "127.0.0.1",
                      "-p",
                      "-1",
                      "-m",
                      "-1",
                      "--cluster",
                      "nats://127.0.0.1:" + std::to_string(route_ports[i]),
                      "--routes",
                      routes,
                      "--ports_file_dir",
                      dir.string()};
      options.log_path = (dir / "nats.log").string();
      auto child = ChildProcess::Spawn(options, error);
      if (child == nullptr) return false;
      reporter_->Add(specs[i].name, options.log_path);
      servers_.push_back(std::move(child));
    }
    for (size_t i = 0; i < specs.size(); ++i) {
      fs::path ports =
          work_ / specs[i].name / ("nats-server_" + std::to_string(servers_[i]->pid()) + ".ports");
      if (!WaitForFile(ports.string(), seconds(60), servers_[i].get())) {
        *error = specs[i].name + " did not start";
        return false;
      }
      std::optional<int> port;
      for (auto deadline = Clock::now() + seconds(5); !port && Clock::now() < deadline;) {
        port = ClientPort(ports);
        if (!port) std::this_thread::sleep_for(milliseconds(20));
      }
      if (!port) {
        *error = "no client port in " + ports.string();
        return false;
      }
      client_ports_.push_back(*port);
    }
    return true;
  }

  std::string Url(size_t server) const {
    return "nats://127.0.0.1:" + std::to_string(client_ports_.at(server));
  }

 private:
  fs::path work_;
  FailureReporter* reporter_;
  std::vector<std::unique_ptr<ChildProcess>> servers_;
  std::vector<int> client_ports_;
};

std::string Describe(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0') {
    text += std::string(": ") + last;
  }
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return text;
}

// A JetStream client on one server.
class JetStreamClient {
 public:
  ~JetStreamClient() {
    if (js_ != nullptr) jsCtx_Destroy(js_);
    if (nc_ != nullptr) natsConnection_Destroy(nc_);
  }

  bool Connect(const std::string& url, std::string* error) {
    natsStatus s = natsConnection_ConnectTo(&nc_, url.c_str());
    if (s == NATS_OK) {
      jsOptions options;
      jsOptions_Init(&options);
      options.Wait = 10000;
      s = natsConnection_JetStream(&js_, nc_, &options);
    }
    if (s != NATS_OK) *error = "connect " + url + ": " + Describe(s);
    return s == NATS_OK;
  }

  // Creates hub `hub`'s stream as Hubcast does (HUBCAST_<hub>, subject hubcast.hub.<hub>, file
  // storage, `replicas`), retrying while the JetStream cluster is still electing its leader.
  bool CreateHubStream(const std::string& hub, int replicas, std::string* error) {
    std::string name = "HUBCAST_" + hub, subject = "hubcast.hub." + hub;
    const char* subjects[] = {subject.c_str()};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = name.c_str();
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    config.Replicas = replicas;
    auto deadline = Clock::now() + seconds(90);
    for (;;) {
      jsStreamInfo* info = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      natsStatus s = js_AddStream(&info, js_, &config, nullptr, &code);
      if (info != nullptr) jsStreamInfo_Destroy(info);
      if (s == NATS_OK) return true;
      if (Clock::now() > deadline) {
        *error = "create stream " + name + ": " + Describe(s, code);
        return false;
      }
      std::this_thread::sleep_for(milliseconds(250));
    }
  }

  // The servers holding the stream's replicas (leader first), once all of them are known.
  std::vector<std::string> ReplicaServers(const std::string& hub, size_t replicas,
                                          std::string* error) {
    std::string name = "HUBCAST_" + hub;
    auto deadline = Clock::now() + seconds(60);
    for (;;) {
      jsStreamInfo* info = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      natsStatus s = js_GetStreamInfo(&info, js_, name.c_str(), nullptr, &code);
      std::vector<std::string> servers;
      if (s == NATS_OK && info->Cluster != nullptr && info->Cluster->Leader != nullptr) {
        servers.push_back(info->Cluster->Leader);
        for (int i = 0; i < info->Cluster->ReplicasLen; ++i) {
          servers.push_back(info->Cluster->Replicas[i]->Name);
        }
      }
      if (info != nullptr) jsStreamInfo_Destroy(info);
      if (servers.size() == replicas) return servers;
      if (Clock::now() > deadline) {
        *error = "stream " + name + " has " + std::to_string(servers.size()) + " of " +
                 std::to_string(replicas) + " replicas placed: " + Describe(s, code);
        return {};
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
  }

  // Publishes to the hub's subject and waits for the stream's acknowledgement; returns how long
  // that took, or nullopt on failure.
  std::optional<Clock::duration> Append(const std::string& hub, const std::string& payload,
                                        std::string* error) {
    std::string subject = "hubcast.hub." + hub;
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    Clock::time_point start = Clock::now();
    natsStatus s = js_Publish(&ack, js_, subject.c_str(), payload.data(),
                              static_cast<int>(payload.size()), nullptr, &code);
    Clock::duration took = Clock::now() - start;
    if (ack != nullptr) jsPubAck_Destroy(ack);
    if (s != NATS_OK) {
      *error = "publish to " + subject + ": " + Describe(s, code);
      return std::nullopt;
    }
    return took;
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

fs::path MakeWorkDir(const std::string& name) {
  std::string dir = (fs::temp_directory_path() / ("hubcast-" + name + "-XXXXXX")).string();
  if (::mkdtemp(dir.data()) == nullptr) return {};
  return dir;
}

TEST(NatsConfigs, OneRegionFormsAJetStreamClusterThatKeepsAStreamOnAllThreeServers) {
  fs::path work = MakeWorkDir("nats-one-region");
  ASSERT_FALSE(work.empty());
  FailureReporter reporter(work);
  NatsCluster cluster(work, &reporter);
  std::string error;
  ASSERT_TRUE(cluster.Start(
      "one-region",
      {{"nats-1.conf", "nats-1", ""}, {"nats-2.conf", "nats-2", ""}, {"nats-3.conf", "nats-3", ""}},
      &error))
      << error;

  JetStreamClient client;
  ASSERT_TRUE(client.Connect(cluster.Url(1), &error)) << error;
  ASSERT_TRUE(client.CreateHubStream("chat", 3, &error)) << error;
  std::vector<std::string> servers = client.ReplicaServers("chat", 3, &error);
  ASSERT_EQ(servers.size(), 3u) << error;
  EXPECT_EQ(std::set<std::string>(servers.begin(), servers.end()),
            (std::set<std::string>{"nats-1", "nats-2", "nats-3"}));
  EXPECT_TRUE(client.Append("chat", "hello", &error).has_value()) << error;
  // A message bigger than NATS's default 1 MB limit (a 1 MB client message plus its envelope).
  EXPECT_TRUE(client.Append("chat", std::string((1 << 20) + 4096, 'x'), &error).has_value())
      << error;
}

TEST(NatsConfigs, ThreeRegionsPutOneReplicaOfEveryR3StreamInEachRegion) {
  fs::path work = MakeWorkDir("nats-three-regions");
  ASSERT_FALSE(work.empty());
  FailureReporter reporter(work);
  NatsCluster cluster(work, &reporter);
  // Two servers per region (the second one renamed): a placement blind to the regions would put
  // two replicas of some stream in one region.
  std::vector<ServerSpec> specs;
  std::map<std::string, std::string> region_of;
  for (std::string region : {"eu-west", "us-east", "ap-south"}) {
    for (std::string suffix : {"", "-b"}) {
      specs.push_back({"nats-" + region + ".conf", "nats-" + region + suffix, region});
      region_of[specs.back().name] = region;
    }
  }
  std::string error;
  ASSERT_TRUE(cluster.Start("three-regions", specs, &error)) << error;

  JetStreamClient client;
  ASSERT_TRUE(client.Connect(cluster.Url(0), &error)) << error;
  for (int i = 0; i < 8; ++i) {
    std::string hub = "hub" + std::to_string(i);
    ASSERT_TRUE(client.CreateHubStream(hub, 3, &error)) << error;
    std::vector<std::string> servers = client.ReplicaServers(hub, 3, &error);
    ASSERT_EQ(servers.size(), 3u) << error;
    std::set<std::string> regions;
    for (const std::string& server : servers) regions.insert(region_of[server]);
    EXPECT_EQ(regions, (std::set<std::string>{"eu-west", "us-east", "ap-south"}))
        << hub << " is on " << servers[0] << ", " << servers[1] << ", " << servers[2];
    EXPECT_TRUE(client.Append(hub, "hello", &error).has_value()) << error;
  }
}

// Runs deploy/local-cluster.sh with `args`; returns its exit status (nullopt on a time-out).
std::optional<ExitStatus> RunLocalCluster(const fs::path& work, const std::string& log_name,
                                          const std::vector<std::string>& args,
                                          FailureReporter* reporter) {
  SpawnOptions options;
  options.binary = (fs::path(HUBCAST_SOURCE_DIR) / "deploy" / "local-cluster.sh").string();
  options.args = args;
  options.env = {{"DELAY_PROXY", DelayProxyBinary()}, {"NATS_SERVER", FindNatsServer()}};
  options.log_path = (work / log_name).string();
  reporter->Add(log_name, options.log_path);
  std::string error;
  auto child = ChildProcess::Spawn(options, &error);
  if (child == nullptr) {
    ADD_FAILURE() << error;
    return std::nullopt;
  }
  return child->WaitForExit(seconds(300));
}

struct Endpoint {
  std::string region, url, extra;
};

// Rows of STATE/endpoints.tsv (kind, name, region, url, extra) whose kind is `kind`, by name.
std::map<std::string, Endpoint> Endpoints(const fs::path& state, const std::string& kind) {
  std::map<std::string, Endpoint> rows;
  std::ifstream in(state / "endpoints.tsv");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream split(line);
    std::string field;
    while (std::getline(split, field, '\t')) fields.push_back(field);
    fields.resize(5);
    if (fields[0] == kind) rows[fields[1]] = {fields[2], fields[3], fields[4]};
  }
  return rows;
}

// The round-trip times of a nats-server's routes (its /routez), once every route has one.
std::vector<milliseconds> RouteRtts(const std::string& monitoring_url, size_t routes) {
  static const std::regex kPort(R"(:([0-9]+)$)");
  static const std::regex kRtt(R"re("rtt": *"([0-9.]+)(ms|s|µs|ns)")re");
  std::smatch port;
  if (!std::regex_search(monitoring_url, port, kPort)) return {};
  std::vector<milliseconds> rtts;
  for (auto deadline = Clock::now() + seconds(30); Clock::now() < deadline;) {
    HttpResponse response = HttpRequest(std::stoi(port[1]), "GET", "/routez");
    rtts.clear();
    for (auto it = std::sregex_iterator(response.body.begin(), response.body.end(), kRtt);
         it != std::sregex_iterator(); ++it) {
      double value = std::stod((*it)[1]);
      std::string unit = (*it)[2];
      double ms = unit == "s" ? value * 1000 : unit == "ms" ? value : 0;
      rtts.push_back(milliseconds(static_cast<long>(ms)));
    }
    // A route's rtt reads 0 until its first PING/PONG has been timed: wait for a measurement.
    bool measured =
        std::none_of(rtts.begin(), rtts.end(), [](milliseconds r) { return r.count() == 0; });
    if (rtts.size() == routes && measured) return rtts;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return rtts;
}

// `down` removes the state and the logs in it: after a failure, copy them out first, for the
// reporter to print.
void KeepLogsOnFailure(const fs::path& state, const fs::path& work, FailureReporter* reporter) {
  if (!::testing::Test::HasFailure()) return;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(state, ec)) {
    if (entry.path().extension() != ".log") continue;
    fs::path copy = work / (entry.path().parent_path().filename().string() + "-" +
                            entry.path().filename().string());
    fs::copy_file(entry.path(), copy, fs::copy_options::overwrite_existing, ec);
    reporter->Add(copy.filename(), copy);
  }
}

bool RunsBinary(pid_t pid, const std::string& binary) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  return !ec && exe == fs::canonical(binary, ec);
}

TEST(LocalCluster, NatsHalfComesUpAcrossDelayedRoutesAndGoesDownByPid) {
  constexpr int kDelayMs = 40;  // each way: a round trip between regions costs 80 ms
  fs::path work = MakeWorkDir("local-cluster");
  ASSERT_FALSE(work.empty());
  FailureReporter reporter(work);
  const fs::path state = work / "cluster";
  struct Down {  // whatever happens below, the cluster goes down
    fs::path work, state;
    FailureReporter* reporter;
    ~Down() {
      if (!fs::exists(state)) return;
      KeepLogsOnFailure(state, work, reporter);
      RunLocalCluster(work, "down-cleanup.log", {"down", "--state", state}, reporter);
    }
  } down{work, state, &reporter};

  auto up = RunLocalCluster(
      work, "up.log",
      {"up", "--nats-only", "--wan-delay-ms", std::to_string(kDelayMs), "--state", state.string()},
      &reporter);
  ASSERT_TRUE(up.has_value()) << "local-cluster.sh up did not finish";
  ASSERT_TRUE(up->Success()) << up->ToString();

  auto nats = Endpoints(state, "nats");
  ASSERT_EQ(nats.size(), 3u);
  EXPECT_EQ(Endpoints(state, "proxy").size(), 3u);
  const std::map<std::string, std::string> expected_region = {
      {"nats-eu-west", "eu-west"}, {"nats-us-east", "us-east"}, {"nats-ap-south", "ap-south"}};
  for (const auto& [name, row] : nats) {
    EXPECT_EQ(expected_region.at(name), row.region) << name;
    // Every route, configured or learnt through gossip, crosses a proxy.
    std::vector<milliseconds> rtts = RouteRtts(row.extra, 2);
    ASSERT_EQ(rtts.size(), 2u) << name << " does not have a route to each other region";
    for (milliseconds rtt : rtts) EXPECT_GE(rtt, milliseconds(2 * kDelayMs)) << name;
  }

  std::string error;
  JetStreamClient client;
  ASSERT_TRUE(client.Connect(nats["nats-eu-west"].url, &error)) << error;
  ASSERT_TRUE(client.CreateHubStream("chat", 3, &error)) << error;
  std::vector<std::string> servers = client.ReplicaServers("chat", 3, &error);
  ASSERT_EQ(servers.size(), 3u) << error;
  EXPECT_EQ(std::set<std::string>(servers.begin(), servers.end()),
            (std::set<std::string>{"nats-eu-west", "nats-us-east", "nats-ap-south"}));
  // The quorum of an R3 stream spanning the regions is in two of them: every acknowledged
  // append crossed the delayed routes at least once there and back.
  for (int i = 0; i < 5; ++i) {
    auto took = client.Append("chat", "message " + std::to_string(i), &error);
    ASSERT_TRUE(took.has_value()) << error;
    EXPECT_GE(*took, milliseconds(2 * kDelayMs)) << "append " << i << " did not cross a region";
    std::cout << "append " << i << " acknowledged after "
              << std::chrono::duration_cast<milliseconds>(*took).count() << " ms\n";
  }

  // `down` stops exactly the processes `up` recorded, and removes the state.
  std::vector<std::pair<pid_t, std::string>> started;
  {
    std::ifstream pids(state / "pids");
    pid_t pid;
    std::string start_time, name, binary;
    while (pids >> pid >> start_time >> name >> binary) started.emplace_back(pid, binary);
  }
  ASSERT_EQ(started.size(), 6u) << "three nats-servers and three proxies";
  KeepLogsOnFailure(state, work, &reporter);
  for (const auto& [pid, binary] : started) EXPECT_TRUE(RunsBinary(pid, binary)) << pid;
  auto stopped = RunLocalCluster(work, "down.log", {"down", "--state", state.string()}, &reporter);
  ASSERT_TRUE(stopped.has_value() && stopped->Success());
  for (const auto& [pid, binary] : started) EXPECT_FALSE(RunsBinary(pid, binary)) << pid;
  EXPECT_FALSE(fs::exists(state));
}

}  // namespace
}  // namespace hubcast::testing
