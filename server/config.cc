#include "server/config.h"

#include "base/strings.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

namespace hubcast::server {
namespace {

struct Option {
  const char* name;
  const char* default_text;
  const char* help;
  bool repeatable;  // values accumulate; a higher layer's values replace a lower layer's
  std::function<Status(ServerConfig&, const std::string&)> set;
};

Status ParseInt(const std::string& name, const std::string& v, int lo, int hi, int* out) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < lo || n > hi) {
    return Status::InvalidArgument("--" + name + " must be an integer in [" + std::to_string(lo) +
                                   ", " + std::to_string(hi) + "], got '" + v + "'");
  }
  *out = static_cast<int>(n);
  return Status::Ok();
}

// "512MiB", "64M", "1G", "4096" (bytes).
Status ParseBytes(const std::string& name, const std::string& v, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  std::string unit = end ? end : "";
  uint64_t mul = 0;
  if (unit.empty() || unit == "B") mul = 1;
  if (unit == "K" || unit == "KiB") mul = 1ull << 10;
  if (unit == "M" || unit == "MiB") mul = 1ull << 20;
  if (unit == "G" || unit == "GiB") mul = 1ull << 30;
  if (v.empty() || v[0] == '-' || end == v.c_str() || errno != 0 || mul == 0 || n == 0 ||
      n > (UINT64_MAX / mul)) {
    return Status::InvalidArgument(
        "--" + name + " must be a positive size such as 4096, 64MiB or 1GiB, got '" + v + "'");
  }
  *out = n * mul;
  return Status::Ok();
}

// "600", "600s", "10m", "2h" (seconds).
Status ParseDuration(const std::string& name, const std::string& v, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v.c_str(), &end, 10);
  std::string unit = end ? end : "";
  int64_t mul = 0;
  if (unit.empty() || unit == "s") mul = 1;
  if (unit == "m") mul = 60;
  if (unit == "h") mul = 3600;
  if (v.empty() || end == v.c_str() || errno != 0 || mul == 0 || n <= 0 || n > 365LL * 24 * 3600) {
    return Status::InvalidArgument("--" + name +
                                   " must be a positive duration such as 600, 90s, 10m or 2h, "
                                   "got '" +
                                   v + "'");
  }
  *out = n * mul;
  return Status::Ok();
}

Status ParseBool(const std::string& name, const std::string& v, bool* out) {
  std::string l = v;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "true" || l == "1" || l == "yes") {
    *out = true;
  } else if (l == "false" || l == "0" || l == "no") {
    *out = false;
  } else {
    return Status::InvalidArgument("--" + name + " must be true or false, got '" + v + "'");
  }
  return Status::Ok();
}

}  // namespace

std::optional<std::pair<std::string, int>> ParseHostPort(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  std::string host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return std::nullopt;  // an IPv6 address needs brackets
  }
  int port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return std::nullopt;
  return std::make_pair(host, port);
}

namespace {

#define INT_OPT(NAME, FIELD, DEF, LO, HI, HELP)                                                   \
  Option {                                                                                        \
    NAME, DEF, HELP, false,                                                                       \
        [](ServerConfig& c, const std::string& v) { return ParseInt(NAME, v, LO, HI, &c.FIELD); } \
  }
#define STR_OPT(NAME, FIELD, DEF, HELP)                                 \
  Option {                                                              \
    NAME, DEF, HELP, false, [](ServerConfig& c, const std::string& v) { \
      c.FIELD = v;                                                      \
      return Status::Ok();                                              \
    }                                                                   \
  }

const std::vector<Option>& Options() {
  static const std::vector<Option> kOptions = {
      INT_OPT("port", port, "8080", 0, 65535, "TCP port for /client and /api (0: any free port)"),
      STR_OPT("bind", bind, "127.0.0.1", "address to listen on"),
      STR_OPT("data-dir", data_dir, "./hubcast-data", "folder for the node's state and keys"),
      Option{"access-key", "",
             "access key (repeatable: primary, secondary); generated and kept "
             "in the data dir when none is given",
             true,
             [](ServerConfig& c, const std::string& v) {
               if (Status s = ValidateAccessKey(v); !s.ok()) return s;
               c.access_keys.push_back(v);
               return Status::Ok();
             }},
      STR_OPT("ports-file", ports_file, "", "write the bound port to this file once listening"),
      INT_OPT("event-loops", event_loops, "0", 0, 256, "socket event-loop threads (0: cores)"),
      INT_OPT("http-threads", http_threads, "64", 1, 1024,
              "workers for complete HTTP requests (REST calls, WebSocket handshakes); a fixed "
              "pool, never tied to a connection"),
      INT_OPT("http-idle-timeout-seconds", http_idle_timeout_seconds, "60", 1, 3600,
              "close a keep-alive HTTP connection idle between requests for this long"),
      STR_OPT("tls-cert", tls_cert, "",
              "PEM certificate chain: serve https:// and wss:// on the port (with --tls-key; "
              "reloaded on SIGHUP)"),
      STR_OPT("tls-key", tls_key, "", "PEM private key of --tls-cert (no passphrase)"),
      STR_OPT("upstream-ca", upstream_ca, "",
              "PEM file of CAs trusted for https:// event handlers, besides the system's"),
      INT_OPT("reliable-max-unacked", reliable_max_unacked, "100000", 1, 100000000,
              "messages a reliable client may leave unacknowledged before it is closed (1008)"),
      INT_OPT("reliable-max-unacked-mib", reliable_max_unacked_mib, "64", 1, 65536,
              "bytes (MiB) a reliable client may leave unacknowledged before it is closed"),
      INT_OPT("keepalive-seconds", keepalive_seconds, "20", 1, 120,
              "WebSocket ping interval for idle connections"),
      INT_OPT("idle-timeout-seconds", idle_timeout_seconds, "120", 5, 3600,
              "drop a connection that sent nothing for this long"),
      INT_OPT("reliable-hold", reliable_hold_seconds, "30", 1, 3600,
              "seconds a dropped reliable connection waits for its client to recover"),
      INT_OPT("reconnection-token-seconds", reconnection_token_seconds, "604800", 1, 31536000,
              "seconds a reliable connection's reconnection token stays valid after it is issued"),
      INT_OPT("max-outbound-mib", max_outbound_mib, "16", 1, 1024,
              "unsent bytes queued for one client before it is dropped as too slow"),
      INT_OPT("max-outbound-total-mib", max_outbound_total_mib, "1024", 1, 1048576,
              "unsent bytes queued for all clients of the node; past it the largest queues are "
              "dropped as slow and sends get 503 / error acks until below three quarters"),
      INT_OPT("write-stall-seconds", write_stall_seconds, "30", 1, 3600,
              "drop a client whose queued messages made no write progress for this long"),
      Option{"allow-anonymous", "false", "accept clients without an access token", false,
             [](ServerConfig& c, const std::string& v) {
               return ParseBool("allow-anonymous", v, &c.allow_anonymous);
             }},
      Option{"sync-writes", "false",
             "fsync every write (survives power loss; the default survives a process crash)", false,
             [](ServerConfig& c, const std::string& v) {
               return ParseBool("sync-writes", v, &c.sync_writes);
             }},
      Option{"replay-max-age", "10m", "keep replay-log entries this long (e.g. 600, 10m, 2h)",
             false,
             [](ServerConfig& c, const std::string& v) {
               return ParseDuration("replay-max-age", v, &c.replay_max_age_seconds);
             }},
      Option{"replay-max-bytes", "512MiB", "keep at most this much replay log per hub", false,
             [](ServerConfig& c, const std::string& v) {
               return ParseBytes("replay-max-bytes", v, &c.replay_max_bytes);
             }},
      INT_OPT("appliers", appliers, "0", 0, 64,
              "threads applying log entries to hub views; each hub is pinned to one (0: cores)"),
      INT_OPT("max-pending-per-hub", max_pending_per_hub, "65536", 1, 16777216,
              "commands of one hub accepted but not yet applied; past it: 503 / error acks"),
      INT_OPT("max-pending", max_pending, "262144", 1, 67108864,
              "commands of all hubs accepted but not yet applied; past it: 503 / error acks"),
      INT_OPT("max-pending-mib", max_pending_mib, "256", 1, 65536,
              "payload MiB of all commands accepted but not yet applied; past it: 503"),
      INT_OPT("loop-inbox", loop_inbox, "65536", 16, 16777216,
              "tasks an event loop's inbox holds before deliveries to it wait (slowing appliers)"),
      INT_OPT("loop-inbox-mib", loop_inbox_mib, "64", 1, 65536,
              "MiB of messages an event loop's inbox holds before deliveries to it wait"),
      INT_OPT("max-hubs", max_hubs, "1000", 1, 1000000,
              "hubs this node serves; a request that would create one more gets 503"),
      INT_OPT("checkpoint-seconds", checkpoint_seconds, "5", 1, 3600,
              "how often reliable connections' acknowledgements are checkpointed to the log"),
      Option{"event-handler", "",
             "event handler of a hub (repeatable): HUB=URL_TEMPLATE[;user=PATTERN][;system=LIST]",
             true,
             [](ServerConfig& c, const std::string& v) {
               c.event_handlers.push_back(v);
               return Status::Ok();
             }},
      Option{"anonymous-connect", "",
             "a hub's anonymous connect policy (repeatable): HUB=allow|deny", true,
             [](ServerConfig& c, const std::string& v) {
               c.anonymous_connect.push_back(v);
               return Status::Ok();
             }},
      Option{"hub-keepalive-seconds", "", "a hub's keep-alive interval (repeatable): HUB=N", true,
             [](ServerConfig& c, const std::string& v) {
               c.hub_keepalive.push_back(v);
               return Status::Ok();
             }},
      INT_OPT("upstream-timeout-seconds", upstream_timeout_seconds, "10", 1, 300,
              "timeout of one call to an event handler"),
      STR_OPT("public-host", public_host, "",
              "host name event handlers see in WebHook-Request-Origin (default: the bind address)"),
      STR_OPT("node-id", node_id, "", "this node's id (default: generated, kept in the data dir)"),
      STR_OPT("nats", nats, "",
              "NATS servers of a cluster, comma-separated URLs (without it the node runs alone "
              "on its embedded log)"),
      STR_OPT("region", region, "", "this node's region (reported to the other nodes)"),
      STR_OPT("nats-creds", nats_creds, "", "NATS credentials file (JWT and NKey seed)"),
      STR_OPT("nats-tls-ca", nats_tls_ca, "", "CA certificates to verify NATS servers' TLS with"),
      INT_OPT("stream-replicas", stream_replicas, "3", 1, 5,
              "replicas of each hub's JetStream stream (1 for a single nats-server)"),
      STR_OPT("stream-placement", stream_placement, "",
              "placement tag of new hub streams (nats-server server_tags)"),
      Option{"stream-max-age", "24h",
             "how long a hub's stream keeps entries: a node away longer loads a snapshot", false,
             [](ServerConfig& c, const std::string& v) {
               return ParseDuration("stream-max-age", v, &c.stream_max_age_seconds);
             }},
      INT_OPT("node-timeout", node_timeout_seconds, "10", 2, 3600,
              "seconds without a heartbeat after which a node is dead"),
      INT_OPT("snapshot-seconds", snapshot_seconds, "60", 5, 86400,
              "how often a hub's owner writes its view into JetStream for joining nodes"),
      Option{"log-level", "info", "debug, info, warn or error", false,
             [](ServerConfig& c, const std::string& v) {
               if (v != "debug" && v != "info" && v != "warn" && v != "error") {
                 return Status::InvalidArgument("--log-level must be debug, info, warn or error");
               }
               c.log_level = v;
               return Status::Ok();
             }},
      Option{"log-format", "text", "text (one line per event) or json (one object per line)", false,
             [](ServerConfig& c, const std::string& v) {
               if (v != "text" && v != "json") {
                 return Status::InvalidArgument("--log-format must be text or json, got '" + v +
                                                "'");
               }
               c.log_format = v;
               return Status::Ok();
             }},
      Option{"admin-bind", "127.0.0.1:0",
             "HOST:PORT of the admin listener (/metrics, /healthz, /readyz, /dashboard); port 0 "
             "picks a free one (printed at start), off disables it",
             false,
             [](ServerConfig& c, const std::string& v) {
               if (v != "off" && !ParseHostPort(v)) {
                 return Status::InvalidArgument(
                     "--admin-bind must be HOST:PORT (e.g. 127.0.0.1:9090, [::1]:0) or off, got '" +
                     v + "'");
               }
               c.admin_bind = v;
               return Status::Ok();
             }},
  };
  return kOptions;
}

const Option* FindOption(const std::string& name) {
  for (const auto& o : Options()) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

std::string EnvName(const std::string& name) {
  std::string e = "HUBCAST_";
  for (char c : name) e += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return e;
}

// The list a repeatable option fills.
std::vector<std::string>& RepeatedValues(ServerConfig& c, const std::string& name) {
  if (name == "event-handler") return c.event_handlers;
  if (name == "anonymous-connect") return c.anonymous_connect;
  if (name == "hub-keepalive-seconds") return c.hub_keepalive;
  return c.access_keys;
}

// One layer: the values it sets; a repeatable option's values replace the lower layer's.
using Layer = std::vector<std::pair<const Option*, std::string>>;

Status ApplyLayer(ServerConfig& c, const Layer& layer) {
  std::vector<const Option*> reset;
  for (const auto& [opt, value] : layer) {
    if (opt->repeatable && std::find(reset.begin(), reset.end(), opt) == reset.end()) {
      RepeatedValues(c, opt->name).clear();
      reset.push_back(opt);
    }
    if (Status s = opt->set(c, value); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status ValidateAccessKey(const std::string& key) {
  if (key.size() < 32) {
    return Status::InvalidArgument("an access key must have at least 32 characters");
  }
  for (unsigned char ch : key) {
    if (ch == ';' || ch < 0x20 || ch == 0x7f) {
      return Status::InvalidArgument("an access key must not contain ';' or control characters");
    }
  }
  if (std::isspace(static_cast<unsigned char>(key.front())) ||
      std::isspace(static_cast<unsigned char>(key.back()))) {
    return Status::InvalidArgument("an access key must not start or end with whitespace");
  }
  return Status::Ok();
}

Result<ServerConfig> ParseServeConfig(const std::vector<std::string>& args, bool* print_defaults,
                                      bool* help) {
  *print_defaults = false;
  *help = false;
  Layer flags;
  std::string config_file;
  if (const char* env = std::getenv("HUBCAST_CONFIG")) config_file = env;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--help" || a == "-h") {
      *help = true;
      continue;
    }
    if (a == "--print-default-config") {
      *print_defaults = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) return Status::InvalidArgument("unexpected argument '" + a + "'");
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name != "config" && !FindOption(name)) {
      return Status::InvalidArgument("unknown option --" + name);
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Status::InvalidArgument("--" + name + " needs a value");
      value = args[++i];
    }
    if (name == "config") {
      config_file = value;
    } else {
      flags.emplace_back(FindOption(name), value);
    }
  }

  ServerConfig c;
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) return Status::InvalidArgument("cannot read config file " + config_file);
    Layer file;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      // '#' starts a comment at the start of a line or after whitespace: keys may contain '#'.
      for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
          line.resize(i);
          break;
        }
      }
      line = std::string(Trim(line));
      if (line.empty()) continue;
      size_t eq = line.find('=');
      if (eq == std::string::npos) {
        return Status::InvalidArgument(config_file + ":" + std::to_string(n) +
                                       ": expected 'name = value'");
      }
      std::string name(Trim(line.substr(0, eq)));
      const Option* opt = FindOption(name);
      if (!opt) {
        return Status::InvalidArgument(config_file + ":" + std::to_string(n) + ": unknown key '" +
                                       name + "'");
      }
      file.emplace_back(opt, std::string(Trim(line.substr(eq + 1))));
    }
    if (Status s = ApplyLayer(c, file); !s.ok()) {
      return Status::InvalidArgument(config_file + ": " + s.message());
    }
  }
  Layer env;
  for (const auto& o : Options()) {
    const char* v = std::getenv(EnvName(o.name).c_str());
    if (!v) continue;
    if (o.repeatable) {
      // Keys are comma-separated; hub settings hold commas themselves, so they are separated
      // by whitespace.
      std::stringstream ss(v);
      std::string part;
      char sep = std::string(o.name) == "access-key" ? ',' : ' ';
      while (std::getline(ss, part, sep)) {
        part = std::string(Trim(part));
        if (!part.empty()) env.emplace_back(&o, part);
      }
    } else {
      env.emplace_back(&o, v);
    }
  }
  if (Status s = ApplyLayer(c, env); !s.ok()) {
    return Status::InvalidArgument("environment: " + s.message());
  }
  if (Status s = ApplyLayer(c, flags); !s.ok()) return s;
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key go together");
  }
  return c;
}

std::string DefaultConfigText() {
  std::string out = "# hubcast serve configuration (defaults)\n";
  for (const auto& o : Options()) {
    out += "\n# " + std::string(o.help) + " (env " + EnvName(o.name) + ")\n";
    out += std::string(o.default_text).empty() ? "# " : "";
    out += std::string(o.name) + " = " + o.default_text + "\n";
  }
  return out;
}

std::string ServeUsage() {
  std::string out =
      "usage: hubcast serve [--config FILE] [--print-default-config] [--OPTION VALUE]...\n\n";
  for (const auto& o : Options()) {
    std::string flag = std::string("  --") + o.name;
    flag.resize(std::max<size_t>(flag.size() + 1, 26), ' ');
    out += flag + o.help;
    if (*o.default_text) out += " [" + std::string(o.default_text) + "]";
    out += "\n";
  }
  out +=
      "\nEach option is also HUBCAST_<NAME> in the environment and 'name = value' in the "
      "config file.\n";
  return out;
}

}  // namespace hubcast::server
