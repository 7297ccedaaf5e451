// hubcast: the server executable. `hubcast serve` runs a single node on its embedded default
// (LocalLog, state in the data dir); `hubcast token` and `hubcast send` are app-server verbs on
// the service SDK (server/cli.h).
#include "base/log.h"
#include "base/random.h"
#include "base/strings.h"
#include "replication/cluster.h"
#include "replication/hub.h"
#include "replication/nats_connection.h"
#include "replication/nats_log.h"
#include "replication/snapshots.h"
#include "rest/upstream_client.h"
#include "server/admin.h"
#include "server/cli.h"
#include "server/config.h"
#include "server/gateway.h"
#include "server/hub_settings.h"
#include "server/outbound_budget.h"
#include "server/tls.h"
#include "storage/store.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sched.h>
#include <signal.h>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <time.h>
#include <tuple>
#include <unistd.h>

namespace {

using hubcast::Logger;
namespace fs = std::filesystem;

// Exit codes: 0 normal (also after SIGTERM), 1 runtime failure, 2 configuration / start-up.
int Fail(const std::string& line) {
  std::fprintf(stderr, "hubcast: %s\n", line.c_str());
  return 2;
}

// Reads a one-line value kept in the data dir, or creates it with `make` (mode 0600).
bool KeepInDataDir(const fs::path& file, const std::function<std::string()>& make, std::string* out,
                   std::string* error) {
  std::ifstream in(file);
  if (in) {
    std::getline(in, *out);
    if (!out->empty()) return true;
  }
  *out = make();
  fs::path tmp = file;
  tmp += ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    if (!o) {
      *error = "cannot write " + tmp.string();
      return false;
    }
    o << *out << "\n";
  }
  ::chmod(tmp.c_str(), 0600);
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) {
    *error = "cannot write " + file.string() + ": " + ec.message();
    return false;
  }
  return true;
}

// When this process started (Unix ms), from the kernel's record: start-up work that comes
// before the hold windows are computed (opening the store, re-applying the log) is then not
// counted as down time. 0 when /proc cannot tell.
int64_t ProcessStartUnixMs() {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Field 22 (starttime, clock ticks since boot); counted after the command name's ')',
  // which may itself hold spaces, so field 3 is the first after it.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string skipped;
  for (int i = 3; i < 22; ++i) fields >> skipped;
  uint64_t start_ticks = 0;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  timespec boot{};
  if (!(fields >> start_ticks) || ticks <= 0 || ::clock_gettime(CLOCK_BOOTTIME, &boot) != 0) {
    return 0;
  }
  const int64_t started_ms = static_cast<int64_t>(start_ticks * 1000 / ticks);
  const int64_t up_ms = int64_t{boot.tv_sec} * 1000 + boot.tv_nsec / 1000000;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  return now_ms - std::max<int64_t>(0, up_ms - started_ms);
}

using hubcast::Status;

// The cluster half of a node: the NATS connection, the hubs' JetStream logs, the snapshots
// and the membership (heartbeats, deaths, hub owners). Empty in single-node mode.
struct Cluster {
  std::unique_ptr<hubcast::replication::NatsConnection> connection;
  std::unique_ptr<hubcast::replication::NatsLogProvider> logs;
  std::unique_ptr<hubcast::replication::SnapshotStore> snapshots;
  std::unique_ptr<hubcast::replication::ClusterMembership> membership;
  // Set by Start, read by the membership thread for the heartbeats' lag; the membership stops
  // before the registry goes.
  std::atomic<hubcast::replication::HubRegistry*> registry{nullptr};

  Status Connect(const hubcast::server::ServerConfig& cfg, hubcast::storage::Store* store) {
    namespace r = hubcast::replication;
    r::NatsConnectionOptions no;
    for (auto url : hubcast::Split(cfg.nats, ',')) {
      url = hubcast::Trim(url);
      if (!url.empty()) no.urls.emplace_back(url);
    }
    no.credentials_file = cfg.nats_creds;
    no.tls_ca_file = cfg.nats_tls_ca;
    no.name = "hubcast " + cfg.node_id;
    auto conn = r::NatsConnection::Connect(no);
    if (!conn.ok()) return conn.status();
    connection = std::move(conn).value();
    // A node cannot serve without its log: wait for NATS (it may start after the nodes).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!connection->connected() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!connection->connected()) {
      return Status::Unavailable("no NATS server answered at " + cfg.nats + " within 60 s");
    }
    r::NatsLogOptions lo;
    lo.node_id = cfg.node_id;
    lo.replicas = cfg.stream_replicas;
    lo.placement_tag = cfg.stream_placement;
    lo.max_age_ms = cfg.stream_max_age_seconds * 1000;
    logs = r::NatsLogProvider::New(connection.get(), store, lo);
    // JetStream may still be electing its leaders (a cluster that is starting or lost a
    // server): its first answers time out. Asked again until the same deadline.
    auto open_snapshots = [&] {
      return r::NewJetStreamSnapshots(connection.get(),
                                      {cfg.stream_replicas, cfg.stream_placement});
    };
    auto snaps = open_snapshots();
    while (!snaps.ok() && snaps.status().code() == hubcast::StatusCode::kUnavailable &&
           std::chrono::steady_clock::now() < deadline) {
      hubcast::Logger("main").Warn("JetStream is not ready: ", snaps.status().message());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      snaps = open_snapshots();
    }
    if (!snaps.ok()) return snaps.status();
    snapshots = std::move(snaps).value();
    r::ClusterOptions co;
    co.node_id = cfg.node_id;
    co.region = cfg.region;
    co.node_timeout = std::chrono::seconds(cfg.node_timeout_seconds);
    co.lag = [this] {
      uint64_t lag = 0;
      if (auto* r = registry.load()) {
        for (const auto& hub : r->AllHubs()) lag += hub->consumer_lag().value_or(0);
      }
      return lag;
    };
    membership = std::make_unique<r::ClusterMembership>(connection.get(), co);
    return Status::Ok();
  }

  void Configure(hubcast::replication::HubRegistryOptions* ro,
                 const hubcast::server::ServerConfig& cfg) {
    if (!connection) return;
    ro->logs = logs.get();
    ro->snapshots = snapshots.get();
    ro->snapshot_interval = std::chrono::seconds(cfg.snapshot_seconds);
    ro->discover_interval = std::chrono::seconds(5);
    ro->is_owner = [m = membership.get()](const hubcast::HubName& hub) {
      return m->IsOwner(hub.str());
    };
    ro->is_dead = [m = membership.get()](const std::string& node) { return m->IsDead(node); };
    ro->node_down_hold_ms = int64_t{cfg.reliable_hold_seconds} * 1000;
  }

  Status Start(hubcast::replication::HubRegistry* registry) {
    if (!connection) return Status::Ok();
    this->registry = registry;
    membership->OnNodeDeath([registry](const std::string& node, uint64_t incarnation, bool report) {
      if (report) registry->ReportNodeDown(node, incarnation);
    });
    return membership->Start();
  }

  void StopMembership() {
    if (membership) membership->Stop();
    registry = nullptr;
  }

  void Stop() {
    StopMembership();
    if (connection) connection->Close();
  }
};

int Serve(const std::vector<std::string>& args) {
  bool print_defaults = false, help = false;
  auto parsed = hubcast::server::ParseServeConfig(args, &print_defaults, &help);
  if (help) {
    std::cout << hubcast::server::ServeUsage();
    return 0;
  }
  if (print_defaults) {
    std::cout << hubcast::server::DefaultConfigText();
    return 0;
  }
  if (!parsed.ok()) return Fail(parsed.status().message());
  hubcast::server::ServerConfig cfg = std::move(*parsed);
  using hubcast::LogLevel;
  hubcast::SetLogLevel(cfg.log_level == "debug"   ? LogLevel::kDebug
                       : cfg.log_level == "warn"  ? LogLevel::kWarn
                       : cfg.log_level == "error" ? LogLevel::kError
                                                  : LogLevel::kInfo);
  hubcast::SetLogFormat(cfg.log_format == "json" ? hubcast::LogFormat::kJson
                                                 : hubcast::LogFormat::kText);

  std::error_code ec;
  fs::create_directories(cfg.data_dir, ec);
  if (ec) return Fail("cannot create data dir " + cfg.data_dir + ": " + ec.message());
  if (::access(cfg.data_dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Fail("the data dir " + cfg.data_dir + " is not readable and writable by this user");
  }
  std::string error;
  if (cfg.access_keys.empty()) {
    std::string key;
    if (!KeepInDataDir(
            fs::path(cfg.data_dir) / "access-key", [] { return hubcast::RandomHex(24); }, &key,
            &error)) {
      return Fail(error);
    }
    if (auto s = hubcast::server::ValidateAccessKey(key); !s.ok()) {
      return Fail("the access key in the data dir is invalid: " + s.message());
    }
    cfg.access_keys.push_back(key);
  }
  if (cfg.node_id.empty() && !KeepInDataDir(
                                 fs::path(cfg.data_dir) / "node-id",
                                 [] { return hubcast::RandomHex(8); }, &cfg.node_id, &error)) {
    return Fail(error);
  }

  // Signals are taken by sigwait in this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  hubcast::server::GatewayOptions go;
  go.bind = cfg.bind;
  go.port = cfg.port;
  // The cores this process may run on (taskset, cgroups), not the machine's.
  cpu_set_t affinity;
  CPU_ZERO(&affinity);
  const int cores = sched_getaffinity(0, sizeof affinity, &affinity) == 0
                        ? std::max(1, CPU_COUNT(&affinity))
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  go.event_loops = cfg.event_loops > 0 ? cfg.event_loops : cores;
  go.max_loop_inbox = static_cast<size_t>(cfg.loop_inbox);
  go.max_loop_inbox_bytes = static_cast<size_t>(cfg.loop_inbox_mib) << 20;
  go.http_threads = cfg.http_threads;
  go.http_idle_timeout = std::chrono::seconds(cfg.http_idle_timeout_seconds);
  if (!cfg.tls_cert.empty()) {
    auto tls = hubcast::server::TlsContext::Load(cfg.tls_cert, cfg.tls_key);
    if (!tls.ok()) return Fail(tls.status().message());
    go.tls = *tls;
  }
  go.access_keys = cfg.access_keys;
  go.allow_anonymous = cfg.allow_anonymous;
  go.limits.keepalive = std::chrono::seconds(cfg.keepalive_seconds);
  go.limits.idle_timeout = std::chrono::seconds(cfg.idle_timeout_seconds);
  go.limits.reliable_hold = std::chrono::seconds(cfg.reliable_hold_seconds);
  go.reconnection_token_lifetime = std::chrono::seconds(cfg.reconnection_token_seconds);
  go.limits.write_stall = std::chrono::seconds(cfg.write_stall_seconds);
  go.limits.max_outbound_bytes = static_cast<size_t>(cfg.max_outbound_mib) * 1024 * 1024;
  hubcast::server::OutboundBudget outbound_budget(static_cast<uint64_t>(cfg.max_outbound_total_mib)
                                                  << 20);
  go.limits.outbound_budget = &outbound_budget;

  go.limits.checkpoint_interval = std::chrono::seconds(cfg.checkpoint_seconds);
  go.limits.max_unacked_messages = static_cast<size_t>(cfg.reliable_max_unacked);
  go.limits.max_unacked_bytes = static_cast<size_t>(cfg.reliable_max_unacked_mib) << 20;
  auto settings = hubcast::server::HubSettings::Parse(cfg.event_handlers, cfg.anonymous_connect,
                                                      cfg.hub_keepalive);
  if (!settings.ok()) return Fail(settings.status().message());
  go.settings = std::make_shared<const hubcast::server::HubSettings>(std::move(*settings));
  go.upstream_timeout = std::chrono::seconds(cfg.upstream_timeout_seconds);
  if (!cfg.upstream_ca.empty()) {
    if (auto s = hubcast::rest::CheckCaFile(cfg.upstream_ca); !s.ok()) return Fail(s.message());
    go.upstream_ca = cfg.upstream_ca;
  }
  go.origin = !cfg.public_host.empty()                    ? cfg.public_host
              : cfg.bind == "0.0.0.0" || cfg.bind == "::" ? "localhost"
                                                          : cfg.bind;

  // When the previous run was last alive: its held sessions' windows count from then, up to
  // when this one started.
  go.started_unix_ms = ProcessStartUnixMs();
  fs::path alive = fs::path(cfg.data_dir) / "alive";
  if (fs::exists(alive, ec)) {
    auto t = fs::last_write_time(alive, ec);
    if (!ec) {
      auto sys = std::chrono::time_point_cast<std::chrono::milliseconds>(
          std::chrono::file_clock::to_sys(t));
      go.last_alive_unix_ms = sys.time_since_epoch().count();
    }
  }

  hubcast::storage::StoreOptions so;
  so.path = (fs::path(cfg.data_dir) / "db").string();
  so.sync_writes = cfg.sync_writes;
  // RocksDB resumes after a full disk only with ~8 MiB free: twice that is kept in reserve.
  so.ballast_bytes = uint64_t{16} << 20;
  auto store = hubcast::storage::Store::Open(so);
  if (!store.ok()) return Fail(store.status().message());

  Logger log("main");
  hubcast::server::Gateway gateway(go);
  if (!gateway.status().ok()) return Fail(gateway.status().message());
  // Cluster mode: the hubs' logs are JetStream streams, shared with the other nodes.
  Cluster cluster;
  if (!cfg.nats.empty()) {
    if (Status s = cluster.Connect(cfg, store->get()); !s.ok()) return Fail(s.message());
  }
  hubcast::replication::HubRegistryOptions ro;
  ro.node_id = cfg.node_id;
  ro.store = store->get();
  ro.replay_max_age_ms = cfg.replay_max_age_seconds * 1000;
  ro.replay_max_bytes = cfg.replay_max_bytes;
  ro.appliers = cfg.appliers > 0 ? cfg.appliers : cores;
  ro.max_pending_per_hub = static_cast<size_t>(cfg.max_pending_per_hub);
  ro.max_pending_per_node = static_cast<size_t>(cfg.max_pending);
  ro.max_pending_bytes = static_cast<uint64_t>(cfg.max_pending_mib) << 20;
  ro.max_hubs = static_cast<size_t>(cfg.max_hubs);
  ro.deliveries_backed_up = [&outbound_budget] { return outbound_budget.backed_up(); };
  cluster.Configure(&ro, cfg);
  hubcast::replication::HubRegistry registry(ro, &gateway);
  // On every way out, the membership thread (which reads the registry) stops before the
  // registry is destroyed.
  struct MembershipStop {
    Cluster& cluster;
    ~MembershipStop() { cluster.StopMembership(); }
  } membership_stop{cluster};
  if (Status s = cluster.Start(&registry); !s.ok()) return Fail(s.message());
  if (auto loaded = registry.LoadAll(); !loaded.ok()) {
    return Fail("cannot load the state in " + cfg.data_dir + ": " + loaded.message());
  }
  gateway.SetRegistry(&registry);
  // The admin pages (metrics, probes, dashboard, status): the listener is off the client
  // port; the client port only answers GET /api/status from them.
  hubcast::server::AdminOptions ao;
  const auto admin_where = hubcast::server::ParseHostPort(cfg.admin_bind);
  if (admin_where) std::tie(ao.host, ao.port) = *admin_where;
  ao.access_keys = cfg.access_keys;
  ao.node_id = cfg.node_id;
  ao.region = cfg.region;
  hubcast::server::AdminSources sources;
  sources.registry = &registry;
  sources.store = store->get();
  sources.trace = gateway.trace();
  sources.nats = cluster.connection.get();
  sources.membership = cluster.membership.get();
  hubcast::server::Admin admin(std::move(ao), sources);
  gateway.SetStatusRoute([&admin](const hubcast::rest::HttpRequest& request) {
    return admin.HandleClientStatus(request);
  });
  auto port = gateway.Start();
  if (!port.ok()) return Fail(port.status().message());
  int admin_port = 0;
  if (admin_where) {
    auto bound = admin.Start();
    if (!bound.ok()) return Fail("admin listener: " + bound.status().message());
    admin_port = *bound;
  }
  admin.SetServing(true);

  std::string host = cfg.bind == "0.0.0.0" || cfg.bind == "::" ? "127.0.0.1" : cfg.bind;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::cout << "Endpoint=" << (go.tls ? "https://" : "http://") << host << ":" << *port
            << ";AccessKey=" << cfg.access_keys[0] << ";Version=1.0;" << std::endl;
  if (admin_where) {
    std::string admin_host = admin_where->first;
    if (admin_host == "0.0.0.0" || admin_host == "::") admin_host = "127.0.0.1";
    if (admin_host.find(':') != std::string::npos) admin_host = "[" + admin_host + "]";
    std::cout << "Admin=http://" << admin_host << ":" << admin_port << "/" << std::endl;
  }
  if (!cfg.ports_file.empty()) {
    std::string tmp = cfg.ports_file + ".tmp";
    {
      std::ofstream o(tmp, std::ios::trunc);
      o << *port << "\n";
    }
    fs::rename(tmp, cfg.ports_file, ec);
    if (ec) return Fail("cannot write ports file " + cfg.ports_file + ": " + ec.message());
  }
  if (admin_where) log.Info("admin listener on port ", admin_port, " (/metrics, /dashboard)");
  log.Info("listening on ", cfg.bind, ":", *port, " node=", cfg.node_id,
           " event-loops=", go.event_loops, " appliers=", ro.appliers);

  // Touch the alive marker while serving; sigtimedwait doubles as the timer.
  int sig = 0;
  timespec tick{2, 0};
  for (;;) {
    { std::ofstream touch(alive, std::ios::app); }
    fs::last_write_time(alive, fs::file_time_type::clock::now(), ec);
    sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGHUP) {
      // Hub settings (event handlers, policies) and the TLS certificate reload; connections
      // stay. Other options need a restart.
      bool pd = false, h = false;
      auto again = hubcast::server::ParseServeConfig(args, &pd, &h);
      auto reloaded =
          again.ok() ? hubcast::server::HubSettings::Parse(
                           again->event_handlers, again->anonymous_connect, again->hub_keepalive)
                     : hubcast::Result<hubcast::server::HubSettings>(again.status());
      if (!reloaded.ok()) {
        log.Error("SIGHUP: settings not reloaded: ", reloaded.status().message());
      } else {
        gateway.SetSettings(
            std::make_shared<const hubcast::server::HubSettings>(std::move(*reloaded)));
        log.Info("SIGHUP: hub settings reloaded");
      }
      // The certificate files are read again (a renewed certificate); connections stay.
      if (go.tls) {
        if (auto s = go.tls->Reload(); !s.ok()) {
          log.Error("SIGHUP: TLS certificate not reloaded, the current one stays: ", s.message());
        } else {
          log.Info("SIGHUP: TLS certificate reloaded from ", cfg.tls_cert);
        }
      }
      continue;
    }
    if (sig > 0) break;
  }
  log.Info("signal ", sig, ": draining connections");
  admin.SetServing(false);
  gateway.Shutdown("Service reload");
  registry.Stop();  // applies the closes: their `disconnected` events start
  admin.Stop();
  cluster.Stop();
  if (!gateway.DrainUpstream(std::chrono::seconds(5))) {
    log.Warn("event handler calls still pending at exit");
  }
  // The calls still pending end now, while the registry their callbacks append to exists.
  // Destruction then runs in reverse declaration order: registry (appliers joined, so no more
  // Deliver), cluster, gateway, store.
  gateway.Stop();
  log.Info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help") {
    std::cout << "usage: hubcast serve [options]   run a node (hubcast serve --help)\n"
                 "       hubcast token [options]   print a client access URL (--help)\n"
                 "       hubcast send [options] TEXT|@FILE|-   send a message (--help)\n"
                 "       hubcast status [options]  the node, its hubs, the cluster (--help)\n";
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "serve") return Serve({args.begin() + 1, args.end()});
  if (args[0] == "token" || args[0] == "send" || args[0] == "status") {
    const char* cs = std::getenv("HUBCAST_CONNECTION_STRING");
    hubcast::server::CliIo io{std::cin, std::cout, std::cerr,
                              cs ? std::optional<std::string>(cs) : std::nullopt};
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (args[0] == "status") return hubcast::server::RunStatusCommand(rest, io);
    return args[0] == "token" ? hubcast::server::RunTokenCommand(rest, io)
                              : hubcast::server::RunSendCommand(rest, io);
  }
  return Fail("unknown command '" + args[0] + "' (try: hubcast --help)");
}
