#include "server/cli.h"

#include "base/json.h"
#include "rest/service_client.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <istream>
#include <iterator>
#include <map>
#include <ostream>
#include <set>
#include <utility>

namespace hubcast::server {
namespace {

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;

// Flags as --name VALUE or --name=VALUE; everything else (and everything after "--") is
// positional. Every flag here takes a value.
struct Args {
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> positionals;
};

Result<Args> SplitArgs(const std::vector<std::string>& args, const std::set<std::string>& known,
                       const std::set<std::string>& repeatable, bool* help) {
  Args out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out.positionals.insert(out.positionals.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return Status::InvalidArgument("help");
    }
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      out.positionals.push_back(arg);
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (!known.count(name)) return Status::InvalidArgument("unknown option --" + name);
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Status::InvalidArgument("--" + name + " needs a value");
    }
    std::vector<std::string>& values = out.flags[name];
    if (!values.empty() && !repeatable.count(name)) {
      return Status::InvalidArgument("--" + name + " is given twice");
    }
    values.push_back(std::move(value));
  }
  return out;
}

const std::string* One(const Args& a, const std::string& name) {
  auto it = a.flags.find(name);
  return it == a.flags.end() ? nullptr : &it->second.front();
}

std::vector<std::string> Many(const Args& a, const std::string& name) {
  auto it = a.flags.find(name);
  return it == a.flags.end() ? std::vector<std::string>() : it->second;
}

std::optional<int64_t> ParseInteger(const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// The flags both verbs share: --connection-string (else the environment) and --hub.
Status CommonFlags(const Args& a, const std::optional<std::string>& env, std::string* cs,
                   std::string* hub) {
  if (const std::string* v = One(a, "connection-string")) {
    *cs = *v;
  } else if (env && !env->empty()) {
    *cs = *env;
  } else {
    return Status::InvalidArgument(
        "no connection string: set HUBCAST_CONNECTION_STRING or pass --connection-string");
  }
  const std::string* h = One(a, "hub");
  if (h == nullptr) return Status::InvalidArgument("--hub is required");
  *hub = *h;
  return Status::Ok();
}

int UsageError(std::ostream& err, const char* verb, const std::string& message) {
  err << "hubcast " << verb << ": " << message << " (see hubcast " << verb << " --help)\n";
  return kExitUsage;
}

}  // namespace

std::string TokenUsage() {
  return "usage: hubcast token --hub H [--user U] [--role R]... [--group G]... [--minutes M]\n"
         "                     [--connection-string CS]\n"
         "Prints a client access URL for hub H, signed locally with the access key:\n"
         "  --user U      the client's user id (default: none)\n"
         "  --role R      a role, e.g. webpubsub.joinLeaveGroup or webpubsub.sendToGroup.g1\n"
         "  --group G     a group the client joins on connect\n"
         "  --minutes M   minutes until the token expires (default 60)\n"
         "The connection string comes from --connection-string or HUBCAST_CONNECTION_STRING.\n";
}

std::string SendUsage() {
  return "usage: hubcast send --hub H [--group G | --user U | --connection C] [--filter F]\n"
         "                    [--exclude C]... [--ttl S] [--type text|json|binary]\n"
         "                    [--connection-string CS] TEXT|@FILE|-\n"
         "Sends TEXT, the contents of FILE, or standard input (-) to every connection of hub H,\n"
         "or to group G, user U or connection C:\n"
         "  --filter F    OData filter on userId, connectionId and groups (not with --connection)\n"
         "  --exclude C   a connection id left out (whole hub or group only)\n"
         "  --ttl S       seconds (0-300) after which an undelivered message is dropped\n"
         "  --type T      text (default), json or binary: how clients receive it\n"
         "The connection string comes from --connection-string or HUBCAST_CONNECTION_STRING.\n"
         "Errors print the service's status and message and exit 1.\n";
}

Result<TokenCommand> ParseTokenCommand(const std::vector<std::string>& args,
                                       const std::optional<std::string>& env_connection_string,
                                       bool* help) {
  auto a = SplitArgs(args, {"connection-string", "hub", "user", "role", "group", "minutes"},
                     {"role", "group"}, help);
  if (!a.ok()) return a.status();
  if (!a->positionals.empty()) {
    return Status::InvalidArgument("unexpected argument '" + a->positionals.front() + "'");
  }
  TokenCommand c;
  if (Status s = CommonFlags(*a, env_connection_string, &c.connection_string, &c.hub); !s.ok()) {
    return s;
  }
  if (const std::string* u = One(*a, "user")) c.user = *u;
  c.roles = Many(*a, "role");
  c.groups = Many(*a, "group");
  if (const std::string* m = One(*a, "minutes")) {
    std::optional<int64_t> minutes = ParseInteger(*m);
    if (!minutes || *minutes < 1) {
      return Status::InvalidArgument("--minutes must be a whole number of at least 1");
    }
    c.minutes = *minutes;
  }
  return c;
}

Result<SendCommand> ParseSendCommand(const std::vector<std::string>& args,
                                     const std::optional<std::string>& env_connection_string,
                                     bool* help) {
  auto a = SplitArgs(args,
                     {"connection-string", "hub", "group", "user", "connection", "filter",
                      "exclude", "ttl", "type"},
                     {"exclude"}, help);
  if (!a.ok()) return a.status();
  SendCommand c;
  if (Status s = CommonFlags(*a, env_connection_string, &c.connection_string, &c.hub); !s.ok()) {
    return s;
  }
  int targets = 0;
  for (auto [flag, target] :
       {std::pair{"group", SendTarget::kGroup}, std::pair{"user", SendTarget::kUser},
        std::pair{"connection", SendTarget::kConnection}}) {
    if (const std::string* v = One(*a, flag)) {
      ++targets;
      c.target = target;
      c.target_name = *v;
    }
  }
  if (targets > 1) {
    return Status::InvalidArgument("give at most one of --group, --user and --connection");
  }
  if (const std::string* f = One(*a, "filter")) {
    if (c.target == SendTarget::kConnection) {
      return Status::InvalidArgument("--filter does not apply to --connection");
    }
    c.filter = *f;
  }
  c.excluded = Many(*a, "exclude");
  if (!c.excluded.empty() && c.target != SendTarget::kAll && c.target != SendTarget::kGroup) {
    return Status::InvalidArgument("--exclude applies only to the whole hub or a --group");
  }
  if (const std::string* t = One(*a, "ttl")) {
    std::optional<int64_t> ttl = ParseInteger(*t);
    if (!ttl || *ttl < 0 || *ttl > 300) {
      return Status::InvalidArgument("--ttl must be a whole number of seconds from 0 to 300");
    }
    c.ttl_seconds = static_cast<int>(*ttl);
  }
  if (const std::string* t = One(*a, "type")) {
    if (*t != "text" && *t != "json" && *t != "binary") {
      return Status::InvalidArgument("--type must be text, json or binary");
    }
    c.type = *t;
  }
  if (a->positionals.size() != 1) {
    return Status::InvalidArgument(a->positionals.empty() ? "nothing to send: give TEXT, @FILE or -"
                                                          : "give exactly one TEXT, @FILE or -");
  }
  c.payload = a->positionals.front();
  return c;
}

int RunTokenCommand(const std::vector<std::string>& args, CliIo io) {
  bool help = false;
  auto c = ParseTokenCommand(args, io.env_connection_string, &help);
  if (help) {
    io.out << TokenUsage();
    return 0;
  }
  if (!c.ok()) return UsageError(io.err, "token", c.status().message());
  auto service = ServiceClient::FromConnectionString(c->connection_string, c->hub);
  if (!service.ok()) return UsageError(io.err, "token", service.error().message);
  ClientAccessOptions options;
  options.user_id = c->user;
  options.roles = c->roles;
  options.groups = c->groups;
  options.expiration_minutes = c->minutes;
  auto access = service->GetClientAccessUrl(options);
  if (!access.ok()) return UsageError(io.err, "token", access.error().message);
  io.out << access->url << "\n";
  return 0;
}

int RunSendCommand(const std::vector<std::string>& args, CliIo io) {
  bool help = false;
  auto c = ParseSendCommand(args, io.env_connection_string, &help);
  if (help) {
    io.out << SendUsage();
    return 0;
  }
  if (!c.ok()) return UsageError(io.err, "send", c.status().message());
  auto service = ServiceClient::FromConnectionString(c->connection_string, c->hub);
  if (!service.ok()) return UsageError(io.err, "send", service.error().message);

  std::string data;
  if (c->payload == "-") {
    data.assign(std::istreambuf_iterator<char>(io.in), std::istreambuf_iterator<char>());
  } else if (c->payload.rfind('@', 0) == 0) {
    std::ifstream file(c->payload.substr(1), std::ios::binary);
    if (!file) return UsageError(io.err, "send", "cannot read " + c->payload.substr(1));
    data.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  } else {
    data = c->payload;
  }
  Message message = c->type == "json"     ? Message::Json(std::move(data))
                    : c->type == "binary" ? Message::Binary(std::move(data))
                                          : Message::Text(std::move(data));

  ServiceResult<void> sent;
  switch (c->target) {
    case SendTarget::kAll:
      sent = service->SendToAll(std::move(message), {c->excluded, c->filter, c->ttl_seconds});
      break;
    case SendTarget::kGroup:
      sent = service->SendToGroup(c->target_name, std::move(message),
                                  {c->excluded, c->filter, c->ttl_seconds});
      break;
    case SendTarget::kUser:
      sent = service->SendToUser(c->target_name, std::move(message), {c->filter, c->ttl_seconds});
      break;
    case SendTarget::kConnection:
      sent = service->SendToConnection(c->target_name, std::move(message), {c->ttl_seconds});
      break;
  }
  if (!sent.ok()) {
    io.err << "hubcast send: " << sent.error().ToString() << "\n";
    return sent.error().code == "InvalidArgument" ? kExitUsage : kExitRefused;
  }
  return 0;
}

std::string StatusUsage() {
  return "usage: hubcast status [--format text|json] [--connection-string CS]\n"
         "Prints the node that serves the endpoint: its id, region and readiness, its hubs\n"
         "with connections (in the hub / on this node), groups and messages per second, and\n"
         "in a cluster every node and region with the age of its last heartbeat and this\n"
         "node's lag behind each hub's log. --format json prints the service's document.\n"
         "The connection string comes from --connection-string or HUBCAST_CONNECTION_STRING.\n";
}

Result<std::string> FormatStatus(const std::string& status_json) {
  auto doc = json::Parse(status_json);
  if (!doc.ok() || !doc->is_object()) return Status::InvalidArgument("not a JSON object");
  auto str = [](const json::Value* o, const char* name) -> std::string {
    const json::Value* v = o ? o->Find(name) : nullptr;
    if (!v) return "";
    return v->is_string() ? v->str() : json::Serialize(*v);
  };
  const json::Value* node = doc->Find("node");
  const json::Value* hubs = doc->Find("hubs");
  const json::Value* nodes = doc->Find("nodes");
  if (!node || !node->is_object() || !hubs || !hubs->is_array() || !nodes || !nodes->is_array()) {
    return Status::InvalidArgument("not a status document (node, hubs, nodes)");
  }
  std::string out = "node " + str(node, "id");
  if (!str(node, "region").empty()) out += "  region " + str(node, "region");
  out += str(node, "ready") == "true" ? "  ready" : "  NOT READY: " + str(node, "notReady");
  if (str(node, "clustered") == "true") {
    out += str(node, "natsConnected") == "true" ? "  NATS connected" : "  NATS DISCONNECTED";
  }
  out += "  up " + str(node, "uptimeSeconds") + " s\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %12s %8s %8s %10s %10s %8s\n", "hub", "connections",
                "here", "groups", "in/s", "out/s", "lag");
  out += "\n";
  out += line;
  for (const json::Value& h : hubs->items()) {
    std::string lag = str(&h, "lag");
    std::snprintf(line, sizeof line, "%-24s %12s %8s %8s %10s %10s %8s\n", str(&h, "name").c_str(),
                  str(&h, "connections").c_str(), str(&h, "localConnections").c_str(),
                  str(&h, "groups").c_str(), str(&h, "receivedPerSecond").c_str(),
                  str(&h, "deliveredPerSecond").c_str(), lag.empty() ? "-" : lag.c_str());
    out += line;
  }
  if (hubs->items().empty()) out += "(no hubs)\n";
  out += "\n";
  std::snprintf(line, sizeof line, "%-24s %-16s %-8s %s\n", "node", "region", "lag", "heartbeat");
  out += line;
  for (const json::Value& n : nodes->items()) {
    std::string age = "this node";
    if (str(&n, "self") != "true") {
      const json::Value* ms = n.Find("heartbeatAgeMs");
      char buf[48];
      std::snprintf(
          buf, sizeof buf, "%.1f s ago",
          ms && ms->is_number() ? std::strtod(json::Serialize(*ms).c_str(), nullptr) / 1000 : 0.0);
      age = buf;
    }
    std::string region = str(&n, "region");
    std::string lag = str(&n, "lag");
    std::snprintf(line, sizeof line, "%-24s %-16s %-8s %s\n", str(&n, "id").c_str(),
                  region.empty() ? "-" : region.c_str(), lag.empty() ? "-" : lag.c_str(),
                  age.c_str());
    out += line;
  }
  return out;
}

int RunStatusCommand(const std::vector<std::string>& args, CliIo io) {
  bool help = false;
  auto a = SplitArgs(args, {"connection-string", "format"}, {}, &help);
  if (help) {
    io.out << StatusUsage();
    return 0;
  }
  if (!a.ok()) return UsageError(io.err, "status", a.status().message());
  if (!a->positionals.empty()) return UsageError(io.err, "status", "no arguments expected");
  const std::string* format = One(*a, "format");
  if (format && *format != "text" && *format != "json") {
    return UsageError(io.err, "status", "--format must be text or json");
  }
  std::string cs = One(*a, "connection-string") ? *One(*a, "connection-string")
                   : io.env_connection_string   ? *io.env_connection_string
                                                : std::string();
  if (cs.empty()) {
    return UsageError(io.err, "status",
                      "no connection string: set HUBCAST_CONNECTION_STRING or pass "
                      "--connection-string");
  }
  // The status is node-wide; the SDK wants a hub name all the same.
  auto service = ServiceClient::FromConnectionString(cs, "status");
  if (!service.ok()) return UsageError(io.err, "status", service.error().message);
  auto status = service->GetServiceStatus();
  if (!status.ok()) {
    io.err << "hubcast status: " << status.error().ToString() << "\n";
    return kExitRefused;
  }
  if (format && *format == "json") {
    io.out << *status << "\n";
    return 0;
  }
  auto text = FormatStatus(*status);
  if (!text.ok()) {
    io.err << "hubcast status: the service's answer was not understood: " << text.status().message()
           << "\n";
    return kExitRefused;
  }
  io.out << *text;
  return 0;
}

}  // namespace hubcast::server
