// The typed configuration of `hubcast serve`: every option is declared once (name, default,
// help, validation) and layered defaults < config file < HUBCAST_* environment < flags.
// Unknown keys and invalid values stop start-up with one line saying which.
//
// Config file: `name = value` lines; `#` at the start of a line or after whitespace starts a
// comment (so a key may contain '#'); a repeatable option (access-key) may
// appear on several lines. Environment: HUBCAST_<NAME> with '-' -> '_' and upper case;
// repeatable values comma-separated for access keys (HUBCAST_ACCESS_KEY=k1,k2) and
// whitespace-separated for the hub settings (HUBCAST_EVENT_HANDLER="chat=http://... *=http://...").
#pragma once

#include "base/status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hubcast::server {

struct ServerConfig {
  int port = 8080;
  std::string bind = "127.0.0.1";
  std::string data_dir = "./hubcast-data";
  std::vector<std::string> access_keys;
  std::string ports_file;
  int event_loops = 0;  // 0: number of cores
  int http_threads = 64;
  int http_idle_timeout_seconds = 60;
  std::string tls_cert;  // PEM chain; with tls_key: serve https:// and wss://
  std::string tls_key;
  std::string upstream_ca;  // PEM CAs trusted for https:// event handlers (besides the system's)
  int reliable_max_unacked = 100000;
  int reliable_max_unacked_mib = 64;
  int keepalive_seconds = 20;
  int idle_timeout_seconds = 120;
  int reliable_hold_seconds = 30;
  int reconnection_token_seconds = 604800;
  int max_outbound_mib = 16;
  int max_outbound_total_mib = 1024;
  int write_stall_seconds = 30;
  bool allow_anonymous = false;
  bool sync_writes = false;
  int64_t replay_max_age_seconds = 600;
  uint64_t replay_max_bytes = 512ull * 1024 * 1024;
  int checkpoint_seconds = 5;
  int appliers = 0;  // 0: number of cores
  int max_pending_per_hub = 65536;
  int max_pending = 262144;
  int max_pending_mib = 256;
  int loop_inbox = 65536;
  int loop_inbox_mib = 64;
  int max_hubs = 1000;
  // Hub settings (server/hub_settings.h); re-read from the file and environment on SIGHUP.
  std::vector<std::string> event_handlers;
  std::vector<std::string> anonymous_connect;
  std::vector<std::string> hub_keepalive;
  int upstream_timeout_seconds = 10;
  std::string public_host;
  std::string node_id;  // default: random, kept in the data dir
  std::string log_level = "info";
  std::string log_format = "text";  // text or json
  // The admin listener (metrics, probes, dashboard): HOST:PORT, port 0 = a free one, "off":
  // none.
  std::string admin_bind = "127.0.0.1:0";
  // Cluster (NatsLog); empty `nats`: a single node on the embedded log.
  std::string nats;
  std::string region;
  std::string nats_creds;
  std::string nats_tls_ca;
  int stream_replicas = 3;
  std::string stream_placement;
  int64_t stream_max_age_seconds = 24 * 3600;
  int node_timeout_seconds = 10;
  int snapshot_seconds = 60;
};

// Parses `serve`'s arguments (without the program and subcommand), reading env from environ.
// Sets *print_defaults when --print-default-config was given, *help for --help.
Result<ServerConfig> ParseServeConfig(const std::vector<std::string>& args, bool* print_defaults,
                                      bool* help);
std::string DefaultConfigText();
std::string ServeUsage();
// A key must be at least 32 bytes with no ';', control characters or surrounding spaces
// (the same rule as Microsoft's emulator, so every SDK's connection-string parser takes it).
Status ValidateAccessKey(const std::string& key);
// "host:port" or "[v6]:port" (port 0-65535) as (host, port); nullopt when malformed.
std::optional<std::pair<std::string, int>> ParseHostPort(const std::string& text);

}  // namespace hubcast::server
