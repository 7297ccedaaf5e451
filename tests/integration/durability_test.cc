// Durability of `hubcast serve` against its data dir (RocksDB under <data-dir>/db): what was
// acknowledged before a kill -9 is there after a restart, reliable sessions are held across it
// and resume, held sessions past their window close exactly once, start-up refuses (exit 2,
// one line on stderr) a data dir it must not use and leaves it untouched, and a full disk
// fails writes with 503 without taking the server down, which recovers once space returns.
//
// Every test starts its own server(s) on its own temporary data dir; every process is stopped
// by pid (ChildProcess) and the logs are printed when a test fails. Clients are raw sockets
// (ws_client.h) so that nothing here shares code with the server's WebSocket stack.

#include "base/json.h"
#include "storage/entry.h"
#include "storage/entry_codec.h"
#include "storage/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "tests/integration/json_client.h"
#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/ws_client.h"
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

#ifndef HUBCAST_BINARY_PATH
#define HUBCAST_BINARY_PATH "hubcast"
#endif

constexpr char kAccessKey[] = "hubcast-durability-test-access-key-0123456789";
constexpr char kHub[] = "h";
constexpr char kJson[] = "json.webpubsub.azure.v1";
constexpr char kReliable[] = "json.reliable.webpubsub.azure.v1";

// ---------------------------------------------------------------------------------------------
// Client-side helpers.

// ReadJson, StringField, UintField and ReadConnected: tests/integration/json_client.h.

// A file tree's regular files and their contents, keyed by path relative to `root`. RocksDB's
// informational logs (db/LOG, db/LOG.old.*) are left out: any open, even a failed or read-only
// one, writes them.
std::map<std::string, std::string> SnapshotFiles(const fs::path& root) {
  std::map<std::string, std::string> files;
  std::error_code ec;
  if (fs::is_regular_file(root, ec)) {
    files[""] = ReadFile(root).value_or("<unreadable>");
    return files;
  }
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string name = it->path().filename().string();
    if (name.rfind("LOG", 0) == 0) continue;
    files[fs::relative(it->path(), root).string()] = ReadFile(it->path()).value_or("<unreadable>");
  }
  return files;
}

// Which files differ between two snapshots ("" when none).
std::string DescribeDifferences(const std::map<std::string, std::string>& before,
                                const std::map<std::string, std::string>& after) {
  std::ostringstream out;
  for (const auto& [name, content] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      out << " removed:" << name;
    } else if (it->second != content) {
      out << " changed:" << name;
    }
  }
  for (const auto& [name, content] : after) {
    if (before.count(name) == 0) out << " added:" << name;
  }
  return out.str();
}

// Every key and value of every column family, read through RocksDB read-only: the store's
// logical content, independent of how RocksDB lays it out in files.
std::optional<std::map<std::string, std::string>> DumpRocksDb(const std::string& path,
                                                              std::string* error) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names);
  if (!s.ok()) {
    *error = "ListColumnFamilies: " + s.ToString();
    return std::nullopt;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, descriptors, &handles, &raw);
  if (!s.ok()) {
    *error = "OpenForReadOnly: " + s.ToString();
    return std::nullopt;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::map<std::string, std::string> content;
  for (size_t i = 0; i < handles.size(); ++i) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[i]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      content[names[i] + '\x01' + it->key().ToString()] = it->value().ToString();
    }
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  db->Close();
  return content;
}

// Writes meta["format"] = `value` with RocksDB directly (the Store interface has no setter).
bool SetStoreFormat(const std::string& path, const std::string& value, std::string* error) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names);
  if (!s.ok()) {
    *error = "ListColumnFamilies: " + s.ToString();
    return false;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::Open(rocksdb::DBOptions(), path, descriptors, &handles, &raw);
  if (!s.ok()) {
    *error = "Open: " + s.ToString();
    return false;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  auto meta = std::find(names.begin(), names.end(), "meta");
  if (meta == names.end()) {
    *error = "no `meta` column family in " + path;
  } else {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = db->Put(sync, handles[static_cast<size_t>(meta - names.begin())], "format", value);
    if (!s.ok()) *error = "Put: " + s.ToString();
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  db->Close();
  return error->empty();
}

// Non-empty lines of a log.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------

class Durability : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp_root = std::getenv("TMPDIR");
    std::string dir_template =
        std::string(tmp_root != nullptr && *tmp_root != '\0' ? tmp_root : "/tmp") +
        "/hubcast-durability-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr) << "mkdtemp: " << std::strerror(errno);
    dir_ = dir_template;
    data_dir_ = dir_ / "data";
  }

  void TearDown() override {
    // Stop by pid first: logs are complete then, and a tmpfs has no user left.
    for (auto& server : servers_) {
      if (server) server->Stop(seconds(10));
    }
    if (HasFailure()) {
      for (auto& server : servers_) {
        if (server) server->DumpLog(std::cerr);
      }
    }
    for (const fs::path& mount_point : mounts_) {
      if (::umount2(mount_point.c_str(), 0) != 0) ::umount2(mount_point.c_str(), MNT_DETACH);
    }
    std::error_code ec;
    if (HasFailure()) {
      std::cerr << "work directory kept: " << dir_ << std::endl;
    } else {
      fs::permissions(data_dir_, fs::perms::owner_all, fs::perm_options::add, ec);
      fs::remove_all(dir_, ec);
    }
  }

  std::vector<std::string> ServeArgs(int port, const std::string& ports_file,
                                     const std::vector<std::string>& extra,
                                     const std::string& log_level = "info") const {
    std::vector<std::string> args = {"serve",
                                     "--port",
                                     std::to_string(port),
                                     "--ports-file",
                                     ports_file,
                                     "--data-dir",
                                     data_dir_,
                                     "--access-key",
                                     kAccessKey,
                                     "--log-level",
                                     log_level,
                                     "--event-loops",
                                     "2",
                                     "--http-threads",
                                     "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Starts `hubcast serve` on data_dir_ and port_ (any free port the first time) and waits
  // until it listens. nullptr (with a test failure) when it does not come up. With
  // `stopped_at_start`, the process is stopped (SIGSTOP) right after it was spawned, for that
  // long: a start-up that takes that much longer.
  ChildProcess* StartServer(const std::vector<std::string>& extra = {},
                            milliseconds stopped_at_start = milliseconds(0)) {
    const fs::path ports_file = dir_ / "port";
    std::error_code ec;
    fs::remove(ports_file, ec);
    SpawnOptions options;
    options.binary = HubcastBinary();
    options.args = ServeArgs(port_, ports_file, extra);
    options.log_path = dir_ / ("hubcast-" + std::to_string(servers_.size() + 1) + ".log");
    std::string error;
    std::unique_ptr<ChildProcess> server = ChildProcess::Spawn(options, &error);
    if (!server) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    ChildProcess* raw = server.get();
    servers_.push_back(std::move(server));
    if (stopped_at_start.count() > 0) {
      EXPECT_EQ(::kill(raw->pid(), SIGSTOP), 0) << std::strerror(errno);
      std::this_thread::sleep_for(stopped_at_start);
      EXPECT_EQ(::kill(raw->pid(), SIGCONT), 0) << std::strerror(errno);
    }
    std::optional<int> port = WaitForPortFile(ports_file, seconds(30), raw);
    if (!port) {
      ADD_FAILURE() << "hubcast did not start listening ("
                    << (raw->Running() ? "still running" : raw->exit_status()->ToString())
                    << "): " << raw->ReadLog();
      return nullptr;
    }
    if (port_ != 0 && *port != port_) {
      ADD_FAILURE() << "restarted on port " << *port << ", asked for " << port_;
    }
    port_ = *port;
    return raw;
  }

  struct Refusal {
    std::string log;  // stderr
    std::string out;  // stdout, expected empty
    // Set when the server started instead of refusing: it is left running (for the caller to
    // probe what it serves) and stopped by TearDown.
    std::optional<int> started_port;
  };

  // Runs `hubcast serve` with `args` (through `prefix`, e.g. setpriv, when given), expecting
  // it to refuse to start: exit code 2 and one line on stderr naming the reason. A shell
  // splits stderr from stdout (ChildProcess writes both to one log).
  Refusal RunExpectingStartupFailure(const std::vector<std::string>& args,
                                     const std::vector<std::string>& prefix = {}) {
    const std::string name = "refused-" + std::to_string(servers_.size() + 1);
    const fs::path stderr_path = dir_ / (name + ".stderr");
    SpawnOptions options;
    options.binary = "/bin/sh";
    options.args = {"-c", "exec \"$@\" 2>\"$DURABILITY_TEST_STDERR\"", "sh"};
    options.args.insert(options.args.end(), prefix.begin(), prefix.end());
    options.args.push_back(HubcastBinary());
    options.args.insert(options.args.end(), args.begin(), args.end());
    options.env["DURABILITY_TEST_STDERR"] = stderr_path.string();
    options.log_path = dir_ / (name + ".stdout");
    auto ports_arg = std::find(args.begin(), args.end(), "--ports-file");
    const std::string ports_file = ports_arg != args.end() ? *(ports_arg + 1) : "";
    std::string error;
    std::unique_ptr<ChildProcess> server = ChildProcess::Spawn(options, &error);
    Refusal refusal;
    if (!server) {
      ADD_FAILURE() << error;
      return refusal;
    }
    ChildProcess* raw = server.get();
    servers_.push_back(std::move(server));
    // Either it exits, or it comes up (writes its port): no need to wait out a timeout then.
    const auto deadline = Clock::now() + seconds(30);
    while (raw->Running() && Clock::now() < deadline) {
      if (!ports_file.empty()) {
        if ((refusal.started_port = ReadPortFile(ports_file))) break;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    refusal.log = ReadFile(stderr_path).value_or("");
    refusal.out = raw->ReadLog();
    if (raw->Running()) {
      ADD_FAILURE() << "hubcast started instead of refusing the data dir"
                    << (refusal.started_port
                            ? " (listening on " + std::to_string(*refusal.started_port) + ")"
                            : "")
                    << ": " << refusal.out << refusal.log;
      return refusal;
    }
    const ExitStatus status = *raw->exit_status();
    EXPECT_TRUE(status.exited && status.code == 2)
        << "expected exit code 2, got " << status.ToString() << ": " << refusal.log;
    std::vector<std::string> lines = Lines(refusal.log);
    EXPECT_EQ(lines.size(), 1u) << "expected one line on stderr naming the reason, got:\n"
                                << refusal.log;
    EXPECT_EQ(refusal.out, "") << "stdout of a refused start";
    return refusal;
  }

  void Kill9(ChildProcess* server) {
    ASSERT_NE(server, nullptr);
    ASSERT_TRUE(server->Running()) << server->exit_status()->ToString();
    ASSERT_EQ(::kill(server->pid(), SIGKILL), 0) << std::strerror(errno);
    std::optional<ExitStatus> status = server->WaitForExit(seconds(10));
    ASSERT_TRUE(status.has_value()) << "pid " << server->pid() << " survived SIGKILL";
    EXPECT_EQ(status->signal, SIGKILL) << status->ToString();
  }

  std::string Endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // A REST call signed for its path. `path_and_query` starts with "/api/".
  HttpResponse Rest(const std::string& method, const std::string& path_and_query,
                    const std::string& body = "", const std::string& content_type = "",
                    milliseconds timeout = seconds(10)) const {
    const std::string path = path_and_query.substr(0, path_and_query.find('?'));
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer " + MintJwt(kAccessKey, Endpoint() + path)}};
    if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
    return HttpRequest(port_, method, path_and_query, headers, body, timeout);
  }

  std::string HubPath(const std::string& rest) const {
    return std::string("/api/hubs/") + kHub + rest;
  }

  // REST: HEAD .../connections/{id}; the status (0 on a transport failure).
  int ConnectionExists(const std::string& id, milliseconds timeout = seconds(10)) const {
    return Rest("HEAD", HubPath("/connections/" + id), "", "", timeout).status;
  }

  HttpResponse SendToConnection(const std::string& id, const std::string& text) const {
    return Rest("POST", HubPath("/connections/" + id + "/:send"), text, "text/plain");
  }

  // The client endpoint with an access token for `user`.
  std::string ClientTarget(const std::string& user,
                           const std::vector<std::string>& roles = {}) const {
    JwtClaims claims;
    claims.audience = Endpoint() + "/client/hubs/" + kHub;
    claims.subject = user;
    claims.roles = roles;
    return std::string("/client/hubs/") + kHub + "?access_token=" + MintJwt(kAccessKey, claims);
  }

  // Connects a JSON client and reads its `connected` message.
  std::optional<Connected> ConnectJson(WsClient& client, const std::string& user,
                                       const std::string& subprotocol,
                                       const std::vector<std::string>& roles = {}) {
    if (!client.Connect(port_, ClientTarget(user, roles), subprotocol)) {
      ADD_FAILURE() << "connect " << user << ": " << client.error();
      return std::nullopt;
    }
    EXPECT_EQ(client.protocol(), subprotocol);
    std::string why;
    std::optional<Connected> connected = ReadConnected(client, &why);
    if (!connected) ADD_FAILURE() << user << ": " << why;
    return connected;
  }

  fs::path dir_;
  fs::path data_dir_;
  int port_ = 0;
  std::vector<std::unique_ptr<ChildProcess>> servers_;
  std::vector<fs::path> mounts_;
};

// ---------------------------------------------------------------------------------------------
// 1. What REST acknowledged before kill -9 is there after the restart.

TEST_F(Durability, StateWrittenBeforeKill9IsThereAfterRestart) {
  ChildProcess* server = StartServer();
  ASSERT_NE(server, nullptr);

  WsClient reliable;
  std::optional<Connected> u1 = ConnectJson(reliable, "u1", kReliable);
  ASSERT_TRUE(u1.has_value());
  EXPECT_FALSE(u1->reconnection_token.empty());
  WsClient plain;
  std::optional<Connected> u2 = ConnectJson(plain, "u2", kJson);
  ASSERT_TRUE(u2.has_value());

  HttpResponse added = Rest("PUT", HubPath("/groups/g1/connections/" + u1->connection_id));
  ASSERT_EQ(added.status, 200) << added.error << added.body;
  HttpResponse granted =
      Rest("PUT", HubPath("/permissions/joinLeaveGroup/connections/" + u2->connection_id) +
                      "?targetName=g2");
  ASSERT_EQ(granted.status, 200) << granted.error << granted.body;
  const std::string u1_permission =
      HubPath("/permissions/sendToGroup/connections/" + u1->connection_id) + "?targetName=g7";
  ASSERT_EQ(Rest("PUT", u1_permission).status, 200);
  // Persistent membership (Hubcast extension): u3's later connections join g9.
  HttpResponse persistent = Rest("PUT", HubPath("/users/u3/groups/g9?ttl=-1"));
  EXPECT_EQ(persistent.status, 200)
      << "PUT users/u3/groups/g9?ttl=-1: " << persistent.error << persistent.body;
  // All of it is acknowledged, hence durable; the view agrees before the kill.
  EXPECT_EQ(Rest("HEAD", HubPath("/groups/g1")).status, 200);
  EXPECT_EQ(Rest("HEAD", HubPath("/permissions/joinLeaveGroup/connections/" + u2->connection_id) +
                             "?targetName=g2")
                .status,
            200);

  ASSERT_NO_FATAL_FAILURE(Kill9(server));
  server = StartServer();
  ASSERT_NE(server, nullptr);

  // Within the hold window (30 s by default) the reliable session is still there, with its
  // group; the plain JSON connection could not survive its socket.
  EXPECT_EQ(ConnectionExists(u1->connection_id), 200) << "reliable connection after restart";
  EXPECT_EQ(Rest("HEAD", u1_permission).status, 200) << "the reliable connection's grant";
  EXPECT_EQ(Rest("HEAD", HubPath("/groups/g1")).status, 200) << "group g1 after restart";
  EXPECT_EQ(ConnectionExists(u2->connection_id), 404) << "json connection after restart";
  EXPECT_EQ(Rest("HEAD", HubPath("/permissions/joinLeaveGroup/connections/" + u2->connection_id) +
                             "?targetName=g2")
                .status,
            404)
      << "the grant went with the json connection";

  // A new connection of u3 joins g9 on connect: a message to g9 reaches it.
  WsClient u3_client;
  std::optional<Connected> u3 = ConnectJson(u3_client, "u3", kJson);
  ASSERT_TRUE(u3.has_value());
  EXPECT_EQ(Rest("HEAD", HubPath("/groups/g9")).status, 200) << "g9 after u3 connected";
  HttpResponse sent = Rest("POST", HubPath("/groups/g9/:send"), "to-g9", "text/plain");
  ASSERT_EQ(sent.status, 202) << sent.error << sent.body;
  std::string why;
  std::optional<json::Value> message = ReadJson(u3_client, seconds(5), &why);
  ASSERT_TRUE(message.has_value()) << "u3 got no message sent to g9: " << why;
  EXPECT_EQ(StringField(*message, "type"), "message") << json::Serialize(*message);
  EXPECT_EQ(StringField(*message, "data"), "to-g9") << json::Serialize(*message);

  EXPECT_TRUE(server->Stop(seconds(15)).Success());
}

// ---------------------------------------------------------------------------------------------
// 2. A reliable session is held across kill -9 and resumes with its numbering.

TEST_F(Durability, ReliableSessionIsHeldAcrossRestartAndResumes) {
  ChildProcess* server = StartServer();
  ASSERT_NE(server, nullptr);

  WsClient client;
  std::optional<Connected> connected = ConnectJson(client, "u1", kReliable);
  ASSERT_TRUE(connected.has_value());
  ASSERT_FALSE(connected->reconnection_token.empty());
  const std::string id = connected->connection_id;

  for (int k = 1; k <= 5; ++k) {
    HttpResponse sent = SendToConnection(id, "m" + std::to_string(k));
    ASSERT_EQ(sent.status, 202) << sent.error << sent.body;
  }
  for (uint64_t k = 1; k <= 5; ++k) {
    std::string why;
    std::optional<json::Value> m = ReadJson(client, seconds(5), &why);
    ASSERT_TRUE(m.has_value()) << "message " << k << ": " << why;
    EXPECT_EQ(UintField(*m, "sequenceId"), k) << json::Serialize(*m);
    EXPECT_EQ(StringField(*m, "data"), "m" + std::to_string(k)) << json::Serialize(*m);
  }
  ASSERT_TRUE(client.SendText(R"({"type":"sequenceAck","sequenceId":3})"));

  ASSERT_NO_FATAL_FAILURE(Kill9(server));
  client.Close();
  server = StartServer();
  ASSERT_NE(server, nullptr);

  EXPECT_EQ(ConnectionExists(id), 200) << "the held session after the restart";
  for (int k = 6; k <= 7; ++k) {
    HttpResponse sent = SendToConnection(id, "m" + std::to_string(k));
    ASSERT_EQ(sent.status, 202) << sent.error << sent.body;
  }

  WsClient resumed;
  const std::string target = std::string("/client/hubs/") + kHub + "?awps_connection_id=" + id +
                             "&awps_reconnection_token=" + connected->reconnection_token;
  ASSERT_TRUE(resumed.Connect(port_, target, kReliable)) << resumed.error();
  std::vector<uint64_t> ids;
  std::string why;
  while (ids.empty() || ids.back() < 7) {
    std::optional<json::Value> m = ReadJson(resumed, seconds(5), &why);
    if (!m) break;
    // A recovered session starts with a fresh `connected` (same id, a new token).
    if (ids.empty() && StringField(*m, "type") == "system") {
      EXPECT_EQ(StringField(*m, "event"), "connected") << json::Serialize(*m);
      EXPECT_EQ(StringField(*m, "connectionId"), id) << json::Serialize(*m);
      continue;
    }
    ASSERT_EQ(StringField(*m, "type"), "message") << json::Serialize(*m);
    std::optional<uint64_t> seq = UintField(*m, "sequenceId");
    ASSERT_TRUE(seq.has_value()) << json::Serialize(*m);
    EXPECT_EQ(StringField(*m, "data"), "m" + std::to_string(*seq)) << json::Serialize(*m);
    ids.push_back(*seq);
  }
  std::ostringstream received;
  for (uint64_t seq : ids) received << seq << " ";
  std::cout << "sequenceIds after recovery: " << received.str() << std::endl;
  ASSERT_FALSE(ids.empty()) << "nothing after recovery: " << why;
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end(), std::greater_equal<uint64_t>()), ids.end())
      << "sequenceIds not strictly increasing: " << received.str();
  EXPECT_EQ(ids.back(), 7u) << received.str() << why;
  for (uint64_t k = 4; k <= 7; ++k) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), k), ids.end())
        << "sequenceId " << k << " missing: " << received.str();
  }
  // Nothing after 7: no duplicate, no stray message (pings are answered inside Read).
  std::optional<WsMessage> extra = resumed.Read(milliseconds(1000));
  EXPECT_FALSE(extra.has_value()) << "unexpected frame after sequenceId 7: " << extra->payload;

  // The resumed session is live: a new message gets the next number.
  HttpResponse sent = SendToConnection(id, "m8");
  ASSERT_EQ(sent.status, 202) << sent.error << sent.body;
  std::optional<json::Value> m8 = ReadJson(resumed, seconds(5), &why);
  ASSERT_TRUE(m8.has_value()) << why;
  EXPECT_EQ(UintField(*m8, "sequenceId"), 8u) << json::Serialize(*m8);

  EXPECT_TRUE(server->Stop(seconds(15)).Success());
}

// ---------------------------------------------------------------------------------------------
// 3. A held session whose window ran out while the server was down closes, once.

TEST_F(Durability, RestartAfterHoldWindowClosesHeldSessionsExactlyOnce) {
  const std::vector<std::string> hold = {"--reliable-hold", "2"};
  ChildProcess* server = StartServer(hold);
  ASSERT_NE(server, nullptr);
  WsClient client;
  std::optional<Connected> connected = ConnectJson(client, "u1", kReliable);
  ASSERT_TRUE(connected.has_value());
  const std::string id = connected->connection_id;
  ASSERT_EQ(ConnectionExists(id), 200);

  ASSERT_NO_FATAL_FAILURE(Kill9(server));
  client.Close();
  // The condition under test is time passing while the server is down: twice the window.
  std::this_thread::sleep_for(seconds(4));

  server = StartServer(hold);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectionExists(id), 404) << "a session past its hold window right after start";
  ASSERT_TRUE(server->Stop(seconds(15)).Success());

  server = StartServer(hold);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectionExists(id), 404) << "after a second restart";
  ASSERT_TRUE(server->Stop(seconds(15)).Success());

  // Count the connection's entries in the stopped server's log.
  storage::StoreOptions options;
  options.path = (data_dir_ / "db").string();
  auto store = storage::Store::Open(options);
  ASSERT_TRUE(store.ok()) << store.status().message();
  int opens = 0, closes = 0, undecodable = 0;
  std::string close_reasons;
  Status scanned = (*store)->ScanLog(kHub, 0, UINT64_MAX, [&](uint64_t, std::string_view bytes) {
    Result<storage::Entry> entry = storage::DecodeEntry(bytes);
    if (!entry.ok()) {
      ++undecodable;
      return true;
    }
    if (entry->origin_connection != id) return true;
    if (entry->kind == storage::EntryKind::kConnectionOpen) ++opens;
    if (entry->kind == storage::EntryKind::kConnectionClose) {
      ++closes;
      close_reasons += " [" + entry->reason + "]";
    }
    return true;
  });
  ASSERT_TRUE(scanned.ok()) << scanned.message();
  EXPECT_EQ(undecodable, 0);
  EXPECT_EQ(opens, 1);
  EXPECT_EQ(closes, 1) << "kConnectionClose entries for " << id << ":" << close_reasons;
}

// Acknowledged joins of a reliable session survive kill -9 and a restart whose start-up takes
// longer than the hold window (an ASan build re-applying a long log): the window counts the
// time the node was down, not the time it took to start, so the session is still held (and
// its groups with it) when the node is back. It used to be closed at once, every join gone.
TEST_F(Durability, AcknowledgedJoinsSurviveKill9AndAStartUpLongerThanTheHoldWindow) {
  const std::vector<std::string> hold = {"--reliable-hold", "6"};
  ChildProcess* server = StartServer(hold);
  ASSERT_NE(server, nullptr);
  WsClient client;
  std::optional<Connected> connected =
      ConnectJson(client, "u1", kReliable, {"webpubsub.joinLeaveGroup"});
  ASSERT_TRUE(connected.has_value());
  const std::string id = connected->connection_id;
  constexpr int kJoins = 100;
  for (int i = 1; i <= kJoins; ++i) {
    ASSERT_TRUE(client.SendText(R"({"type":"joinGroup","group":"g)" + std::to_string(i) +
                                R"(","ackId":)" + std::to_string(i) + "}"));
  }
  std::string why;
  for (int acked = 0; acked < kJoins;) {
    std::optional<json::Value> m = ReadJson(client, seconds(10), &why);
    ASSERT_TRUE(m.has_value()) << "after " << acked << " acks: " << why;
    if (StringField(*m, "type") != "ack") continue;
    ASSERT_EQ(json::Serialize(*m),
              R"({"type":"ack","ackId":)" + std::to_string(acked + 1) + R"(,"success":true})");
    ++acked;
  }

  ASSERT_NO_FATAL_FAILURE(Kill9(server));
  client.Close();
  // Back at once, but it takes longer than the window to start.
  server = StartServer(hold, seconds(8));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ConnectionExists(id), 200) << "the held session after a slow start-up";
  int lost = 0;
  for (int i = 1; i <= kJoins; ++i) {
    lost += Rest("HEAD", HubPath("/groups/g" + std::to_string(i))).status == 200 ? 0 : 1;
  }
  EXPECT_EQ(lost, 0) << "acknowledged joins lost, of " << kJoins;
  EXPECT_TRUE(server->Stop(seconds(15)).Success());
}

// ---------------------------------------------------------------------------------------------
// 4. Start-up refuses a data dir it must not use: exit 2, one line naming the reason, and the
//    data left as it was.

TEST_F(Durability, StartupFailsWhenTheDataDirIsLockedByARunningServer) {
  ChildProcess* first = StartServer();
  ASSERT_NE(first, nullptr);
  WsClient client;
  std::optional<Connected> connected = ConnectJson(client, "u1", kJson);
  ASSERT_TRUE(connected.has_value());

  const std::string log =
      RunExpectingStartupFailure(ServeArgs(0, (dir_ / "second-port").string(), {}, "warn")).log;
  EXPECT_NE(log.find("locked"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir_ / "second-port")) << "the second server started listening";

  // The running server and its store are unaffected: it still reads and writes.
  ASSERT_TRUE(first->Running()) << first->exit_status()->ToString();
  EXPECT_EQ(Rest("HEAD", "/api/health").status, 200);
  EXPECT_EQ(ConnectionExists(connected->connection_id), 200);
  HttpResponse sent = SendToConnection(connected->connection_id, "still-here");
  ASSERT_EQ(sent.status, 202) << sent.error << sent.body;
  std::string why;
  std::optional<json::Value> m = ReadJson(client, seconds(5), &why);
  ASSERT_TRUE(m.has_value()) << why;
  EXPECT_EQ(StringField(*m, "data"), "still-here");
  EXPECT_TRUE(first->Stop(seconds(15)).Success());
}

// Gives data_dir_ some state and stops the server cleanly: a reliable session (held for
// recovery by the next start, SIGTERM closes it with 1001) in group g1, with one message.
class DurabilityStopped : public Durability {
 protected:
  void MakeState() {
    ChildProcess* server = StartServer();
    ASSERT_NE(server, nullptr);
    WsClient client;
    std::optional<Connected> connected = ConnectJson(client, "u1", kReliable);
    ASSERT_TRUE(connected.has_value());
    state_connection_ = connected->connection_id;
    ASSERT_EQ(SendToConnection(state_connection_, "hello").status, 202);
    ASSERT_EQ(Rest("PUT", HubPath("/groups/g1/connections/" + state_connection_)).status, 200);
    ASSERT_TRUE(server->Stop(seconds(15)).Success());
  }

  // The manifest CURRENT names.
  fs::path Manifest() const {
    std::string current = ReadFile(data_dir_ / "db" / "CURRENT").value_or("");
    return data_dir_ / "db" / current.substr(0, current.find('\n'));
  }

  // When a server came up on a damaged store: prints what it serves of MakeState's state.
  void DescribeWhatStarted(const Refusal& refusal) {
    if (!refusal.started_port) return;
    port_ = *refusal.started_port;
    std::cout << "the server started on the damaged store; HEAD connections/" << state_connection_
              << " -> " << ConnectionExists(state_connection_) << ", HEAD groups/g1 -> "
              << Rest("HEAD", HubPath("/groups/g1")).status << " (both were 200 before)"
              << std::endl;
  }

  std::string state_connection_;

  std::vector<std::string> RefusedArgs() const {
    return ServeArgs(0, (dir_ / "refused-port").string(), {}, "warn");
  }
};

TEST_F(DurabilityStopped, StartupFailsOnACorruptCurrentFile) {
  ASSERT_NO_FATAL_FAILURE(MakeState());
  {
    std::ofstream current(data_dir_ / "db" / "CURRENT", std::ios::trunc | std::ios::binary);
    current << "\x01garbage-not-a-manifest-name";
  }
  const auto before = SnapshotFiles(data_dir_);
  const std::string log = RunExpectingStartupFailure(RefusedArgs()).log;
  EXPECT_NE(log.find("corrupt"), std::string::npos) << log;
  EXPECT_EQ(DescribeDifferences(before, SnapshotFiles(data_dir_)), "");
  EXPECT_FALSE(fs::exists(dir_ / "refused-port"));
}

TEST_F(DurabilityStopped, StartupFailsOnAManifestWithFlippedBytes) {
  ASSERT_NO_FATAL_FAILURE(MakeState());
  const fs::path manifest = Manifest();
  ASSERT_TRUE(fs::is_regular_file(manifest)) << manifest;
  std::string bytes = ReadFile(manifest).value_or("");
  ASSERT_GT(bytes.size(), 64u);
  // Inside the records, past the first one's header: a checksum mismatch.
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 8; ++i) bytes[i] = ~bytes[i];
  {
    std::ofstream out(manifest, std::ios::trunc | std::ios::binary);
    out << bytes;
  }
  const auto before = SnapshotFiles(data_dir_);
  const Refusal refusal = RunExpectingStartupFailure(RefusedArgs());
  DescribeWhatStarted(refusal);
  EXPECT_NE(refusal.log.find("corrupt"), std::string::npos) << refusal.log;
  EXPECT_EQ(DescribeDifferences(before, SnapshotFiles(data_dir_)), "");
}

// A MANIFEST cut in half loses committed records (here: the later column families). RocksDB
// reads a short MANIFEST as a torn tail; the store must still notice that state is missing.
TEST_F(DurabilityStopped, StartupFailsOnATruncatedManifest) {
  ASSERT_NO_FATAL_FAILURE(MakeState());
  const fs::path manifest = Manifest();
  ASSERT_TRUE(fs::is_regular_file(manifest)) << manifest;
  const auto size = fs::file_size(manifest);
  ASSERT_GT(size, 16u);
  fs::resize_file(manifest, size / 2);
  const auto before = SnapshotFiles(data_dir_);
  const Refusal refusal = RunExpectingStartupFailure(RefusedArgs());
  DescribeWhatStarted(refusal);
  EXPECT_NE(refusal.log.find("data dir"), std::string::npos) << refusal.log;
  EXPECT_EQ(DescribeDifferences(before, SnapshotFiles(data_dir_)), "");
}

TEST_F(DurabilityStopped, StartupFailsOnAStoreWrittenByANewerFormat) {
  ASSERT_NO_FATAL_FAILURE(MakeState());
  const std::string db = (data_dir_ / "db").string();
  std::string error;
  ASSERT_TRUE(SetStoreFormat(db, "99", &error)) << error;
  auto before = DumpRocksDb(db, &error);
  ASSERT_TRUE(before.has_value()) << error;
  const auto files_before = SnapshotFiles(data_dir_);

  const std::string log = RunExpectingStartupFailure(RefusedArgs()).log;
  EXPECT_NE(log.find("newer"), std::string::npos) << log;
  EXPECT_NE(log.find("99"), std::string::npos) << log;

  auto after = DumpRocksDb(db, &error);
  ASSERT_TRUE(after.has_value()) << error;
  EXPECT_TRUE(*before == *after) << "the store's content changed";
  EXPECT_EQ(after->at(std::string("meta") + '\x01' + "format"), "99");
  // RocksDB bookkeeping (MANIFEST, OPTIONS, WAL files) may be rewritten by an open; reported
  // for information only, the assertion above is on the content.
  const std::string file_changes = DescribeDifferences(files_before, SnapshotFiles(data_dir_));
  if (!file_changes.empty())
    std::cout << "files rewritten by the refused open:" << file_changes << std::endl;
}

TEST_F(Durability, StartupFailsWhenTheDataDirIsARegularFile) {
  const fs::path not_a_dir = dir_ / "data-file";
  {
    std::ofstream out(not_a_dir);
    out << "not a directory\n";
  }
  std::vector<std::string> args = ServeArgs(0, (dir_ / "refused-port").string(), {}, "warn");
  std::replace(args.begin(), args.end(), data_dir_.string(), not_a_dir.string());
  const std::string log = RunExpectingStartupFailure(args).log;
  EXPECT_NE(log.find("data dir"), std::string::npos) << log;
  EXPECT_EQ(ReadFile(not_a_dir).value_or(""), "not a directory\n");
}

TEST_F(DurabilityStopped, StartupFailsWhenTheDataDirIsNotAccessible) {
  ASSERT_NO_FATAL_FAILURE(MakeState());
  // Root ignores permission bits; run the server as `nobody` through setpriv when it exists.
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    if (!fs::exists("/usr/bin/setpriv")) {
      GTEST_SKIP() << "running as root, where mode 000 does not stop reads, and no setpriv";
    }
    prefix = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    // nobody must reach the data dir itself and write its log file's directory entry.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  const auto before = SnapshotFiles(data_dir_);
  fs::permissions(data_dir_, fs::perms::none);
  const std::string log = RunExpectingStartupFailure(RefusedArgs(), prefix).log;
  fs::permissions(data_dir_, fs::perms::owner_all);
  EXPECT_NE(log.find("data dir"), std::string::npos) << log;
  EXPECT_NE(log.find("not readable"), std::string::npos) << log;
  EXPECT_EQ(DescribeDifferences(before, SnapshotFiles(data_dir_)), "");
}

// ---------------------------------------------------------------------------------------------
// 5. A full disk fails writes with 503; the server keeps serving and recovers by itself.

TEST_F(Durability, FullDiskFailsWritesWith503ThenRecovers) {
  const fs::path disk = dir_ / "disk";
  fs::create_directory(disk);
  if (::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=64m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno)
                 << "): needs root with CAP_SYS_ADMIN";
  }
  mounts_.push_back(disk);
  data_dir_ = disk / "data";

  ChildProcess* server = StartServer();
  ASSERT_NE(server, nullptr);
  WsClient client;
  std::optional<Connected> connected =
      ConnectJson(client, "u1", kJson, {"webpubsub.joinLeaveGroup"});
  ASSERT_TRUE(connected.has_value());
  const std::string id = connected->connection_id;
  ASSERT_EQ(SendToConnection(id, "before-full").status, 202);
  // The space the node keeps in reserve for a full disk (storage/ballast.h).
  EXPECT_TRUE(fs::exists(data_dir_ / "db.ballast")) << "no reserve beside the store";

  // Fill the disk: a 6 MiB file (what the operator deletes below: less than the ~8 MiB RocksDB
  // needs free to resume), then big chunks, then small ones, until nothing more fits.
  const fs::path six_mib = disk / "six-mib";
  {
    std::ofstream out(six_mib, std::ios::binary);
    const std::string chunk(6 << 20, 'f');
    ASSERT_TRUE(out.write(chunk.data(), static_cast<std::streamsize>(chunk.size())).flush());
  }
  const fs::path filler = disk / "filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string big(1 << 20, 'x'), small(4096, 'x');
    for (const std::string* chunk : {&big, &small}) {
      while (out.write(chunk->data(), static_cast<std::streamsize>(chunk->size())).flush()) {
      }
      out.clear();
    }
  }
  std::cout << "filler " << fs::file_size(filler) << " bytes; free " << fs::space(disk).available
            << " bytes" << std::endl;

  // REST sends until one is refused; every accepted one must still reach the client.
  std::vector<std::string> accepted = {"before-full"};
  HttpResponse refused;
  // 64 KiB each: RocksDB preallocates its write-ahead log, so the first megabytes still fit
  // after the filler took every free byte.
  const std::string padding(64 * 1024, 'p');
  for (int i = 0; i < 5000 && refused.status == 0; ++i) {
    const std::string text = "full-" + std::to_string(i) + "-" + padding;
    HttpResponse sent =
        Rest("POST", HubPath("/connections/" + id + "/:send"), text, "text/plain", seconds(5));
    if (sent.status == 202) {
      accepted.push_back(text);
    } else {
      refused = sent;
      if (refused.status == 0) refused.status = -1;  // transport failure: stop and report
    }
  }
  std::cout << accepted.size() - 1 << " sends accepted before the disk was full" << std::endl;
  // A dropped request may be a dying server: give it a moment to be reaped, to say so.
  if (refused.status == -1) server->WaitForExit(seconds(2));
  ASSERT_TRUE(server->Running()) << "hubcast died when the disk filled up: "
                                 << server->exit_status()->ToString()
                                 << "; the refused send: " << refused.error;
  ASSERT_EQ(refused.status, 503) << "the first refused send: " << refused.error << refused.body;
  EXPECT_EQ(refused.Header("x-ms-error-code"), "ServiceUnavailable");

  // The server keeps serving reads.
  ASSERT_TRUE(server->Running()) << server->exit_status()->ToString();
  EXPECT_EQ(Rest("HEAD", "/api/health", "", "", seconds(5)).status, 200);
  EXPECT_EQ(ConnectionExists(id, seconds(5)), 200) << "connectionExists with a full disk";
  // A client action that needs the log gets an error ack.
  ASSERT_TRUE(client.SendText(R"({"type":"joinGroup","group":"gx","ackId":1})"));

  // The client gets every accepted message, in order, then the failed ack.
  std::string why;
  size_t delivered = 0;
  std::optional<json::Value> ack;
  while (delivered < accepted.size() || !ack) {
    std::optional<json::Value> m = ReadJson(client, seconds(5), &why);
    if (!m) break;
    if (StringField(*m, "type") == "ack") {
      ack = *m;
      continue;
    }
    ASSERT_LT(delivered, accepted.size()) << "unexpected " << json::Serialize(*m);
    EXPECT_EQ(StringField(*m, "data"), accepted[delivered]) << "message " << delivered;
    ++delivered;
  }
  EXPECT_EQ(delivered, accepted.size()) << "accepted messages not delivered: " << why;
  ASSERT_TRUE(ack.has_value()) << "no ack for joinGroup with a full disk: " << why;
  const json::Value* success = ack->Find("success");
  EXPECT_TRUE(success != nullptr && success->is_bool() && !success->as_bool())
      << "joinGroup with a full disk: " << json::Serialize(*ack);

  EXPECT_FALSE(fs::exists(data_dir_ / "db.ballast")) << "the reserve was not released";

  // Space returns, only 6 MiB of it: within ~10 s sends are accepted again and delivered.
  fs::remove(six_mib);
  const auto freed = Clock::now();
  HttpResponse sent;
  std::string recovered_text;
  for (int i = 0; Clock::now() - freed < seconds(15); ++i) {
    recovered_text = "after-" + std::to_string(i);
    sent = Rest("POST", HubPath("/connections/" + id + "/:send"), recovered_text, "text/plain",
                seconds(5));
    if (sent.status == 202) break;
    std::this_thread::sleep_for(milliseconds(250));
  }
  const double recovery_seconds = std::chrono::duration<double>(Clock::now() - freed).count();
  std::cout << "writes accepted again " << recovery_seconds << " s after space returned"
            << std::endl;
  ASSERT_EQ(sent.status, 202) << "no recovery within 15 s: " << sent.error << sent.body;
  EXPECT_LE(recovery_seconds, 11.0);
  ASSERT_TRUE(server->Running());
  std::optional<json::Value> m = ReadJson(client, seconds(5), &why);
  ASSERT_TRUE(m.has_value()) << why;
  EXPECT_EQ(StringField(*m, "data"), recovered_text) << json::Serialize(*m);

  ASSERT_TRUE(client.SendText(R"({"type":"joinGroup","group":"gx","ackId":2})"));
  std::optional<json::Value> ack2 = ReadJson(client, seconds(5), &why);
  ASSERT_TRUE(ack2.has_value()) << why;
  EXPECT_EQ(json::Serialize(*ack2), R"({"type":"ack","ackId":2,"success":true})");
  EXPECT_EQ(Rest("HEAD", HubPath("/groups/gx")).status, 200);

  EXPECT_TRUE(server->Stop(seconds(15)).Success());
}

}  // namespace
}  // namespace hubcast::testing
