// The app-server verbs of the `hubcast` executable, built on the C++ service SDK
// (rest/service_client.h), so they work against any Hubcast or Azure Web PubSub endpoint:
//
//   hubcast token --hub H [--user U] [--role R]... [--group G]... [--minutes M]
//       prints a client access URL (ws[s]://.../client/hubs/H?access_token=...), signed locally
//   hubcast send --hub H [--group G | --user U | --connection C] [--filter F] [--exclude C]...
//                [--ttl S] [--type text|json|binary] TEXT|@FILE|-
//       sends TEXT, the bytes of FILE, or standard input to the whole hub, a group, a user or
//       a connection
//   hubcast status [--format text|json]
//       prints the serving node (id, region, readiness), its hubs with their connection counts
//       and message rates, and in a cluster every node and region with its heartbeat age and
//       the node's lag behind each hub's log (GET /api/status, a Hubcast extension)
//
// Both take the connection string from --connection-string or HUBCAST_CONNECTION_STRING.
// Exit codes: 0 done; 1 the service refused (its status, code and message go to stderr) or did
// not answer; 2 bad usage (unknown or missing flags, unreadable FILE, bad connection string).
//
// Thread-safety: none needed; main runs one verb on its thread.
#pragma once

#include "base/status.h"

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace hubcast::server {

// Where a verb reads and writes; main passes std::cin/cout/cerr and the environment.
struct CliIo {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  std::optional<std::string> env_connection_string;  // HUBCAST_CONNECTION_STRING, if set
};

struct TokenCommand {
  std::string connection_string;
  std::string hub;
  std::optional<std::string> user;
  std::vector<std::string> roles;
  std::vector<std::string> groups;
  int64_t minutes = 60;
};

enum class SendTarget { kAll, kGroup, kUser, kConnection };

struct SendCommand {
  std::string connection_string;
  std::string hub;
  SendTarget target = SendTarget::kAll;
  std::string target_name;  // group, user or connection id
  std::string filter;
  std::vector<std::string> excluded;
  int ttl_seconds = 0;
  std::string type = "text";  // text, json or binary
  std::string payload;        // TEXT, @FILE or - as given
};

// Parse the arguments after the verb. `help` is set (and the result is an error) on --help.
// Errors are InvalidArgument with a message fit for the terminal.
Result<TokenCommand> ParseTokenCommand(const std::vector<std::string>& args,
                                       const std::optional<std::string>& env_connection_string,
                                       bool* help);
Result<SendCommand> ParseSendCommand(const std::vector<std::string>& args,
                                     const std::optional<std::string>& env_connection_string,
                                     bool* help);

std::string TokenUsage();
std::string SendUsage();
std::string StatusUsage();
// The text form of a /api/status document; an error when it is not one.
Result<std::string> FormatStatus(const std::string& status_json);

// Run a verb; the return value is the process exit code.
int RunTokenCommand(const std::vector<std::string>& args, CliIo io);
int RunSendCommand(const std::vector<std::string>& args, CliIo io);
int RunStatusCommand(const std::vector<std::string>& args, CliIo io);

}  // namespace hubcast::server
