// Tests of server/config.h: `hubcast serve` options layered defaults < file < env < flags.
#include "server/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

extern char** environ;

namespace hubcast::server {
namespace {

// Valid access keys (at least 32 bytes).
const std::string kKey1 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
const std::string kKey2 = "secondary-key-0123456789-abcdefghij";
const std::string kKey3 = "third-key-0123456789-abcdefghijklmn";
const std::string kKey4 = "fourth-key-0123456789-abcdefghijklm";

// Every option `hubcast serve` declares (config.cc).
const std::vector<std::string> kOptionNames = {
    "port",
    "bind",
    "data-dir",
    "access-key",
    "ports-file",
    "event-loops",
    "http-threads",
    "http-idle-timeout-seconds",
    "tls-cert",
    "tls-key",
    "upstream-ca",
    "reliable-max-unacked",
    "reliable-max-unacked-mib",
    "keepalive-seconds",
    "idle-timeout-seconds",
    "reliable-hold",
    "reconnection-token-seconds",
    "max-outbound-mib",
    "max-outbound-total-mib",
    "write-stall-seconds",
    "allow-anonymous",
    "sync-writes",
    "replay-max-age",
    "replay-max-bytes",
    "appliers",
    "max-pending-per-hub",
    "max-pending",
    "max-pending-mib",
    "loop-inbox",
    "loop-inbox-mib",
    "max-hubs",
    "checkpoint-seconds",
    "event-handler",
    "anonymous-connect",
    "hub-keepalive-seconds",
    "upstream-timeout-seconds",
    "public-host",
    "node-id",
    "nats",
    "region",
    "nats-creds",
    "nats-tls-ca",
    "stream-replicas",
    "stream-placement",
    "stream-max-age",
    "node-timeout",
    "snapshot-seconds",
    "log-level",
    "log-format",
    "admin-bind",
};

std::string EnvName(const std::string& option) {
  std::string e = "HUBCAST_";
  for (char c : option) e += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return e;
}

// Clears every HUBCAST_* variable for the test and restores the environment afterwards, so
// neither the caller's environment nor one test leaks into another.
class ServeConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      if (kv.rfind("HUBCAST_", 0) != 0) continue;
      size_t eq = kv.find('=');
      saved_.emplace_back(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
    }
    for (const auto& [name, value] : saved_) unsetenv(name.c_str());
  }

  void TearDown() override {
    for (const auto& name : set_) unsetenv(name.c_str());
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
    for (const auto& path : files_) std::remove(path.c_str());
  }

  void SetEnv(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    set_.push_back(name);
  }

  // Writes a temporary config file and returns its path.
  std::string WriteFile(const std::string& text) {
    char path[] = "/tmp/hubcast-config-test-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    if (fd >= 0) close(fd);
    std::ofstream out(path, std::ios::trunc);
    out << text;
    files_.push_back(path);
    return path;
  }

  Result<ServerConfig> Parse(const std::vector<std::string>& args) {
    return ParseServeConfig(args, &print_defaults_, &help_);
  }

  ServerConfig ParseOk(const std::vector<std::string>& args) {
    auto c = Parse(args);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? *c : ServerConfig();
  }

  // Expects rejection; returns the message.
  std::string ParseError(const std::vector<std::string>& args) {
    auto c = Parse(args);
    EXPECT_FALSE(c.ok());
    if (c.ok()) return "";
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(c.status().message().empty());
    return c.status().message();
  }

  static bool Contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
  }

  bool print_defaults_ = true;
  bool help_ = true;

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
  std::vector<std::string> set_;
  std::vector<std::string> files_;
};

void ExpectDefaults(const ServerConfig& c) {
  EXPECT_EQ(c.port, 8080);
  EXPECT_EQ(c.bind, "127.0.0.1");
  EXPECT_EQ(c.data_dir, "./hubcast-data");
  EXPECT_TRUE(c.access_keys.empty());
  EXPECT_EQ(c.ports_file, "");
  EXPECT_EQ(c.event_loops, 0);
  EXPECT_EQ(c.http_threads, 64);
  EXPECT_EQ(c.http_idle_timeout_seconds, 60);
  EXPECT_EQ(c.tls_cert, "");
  EXPECT_EQ(c.tls_key, "");
  EXPECT_EQ(c.upstream_ca, "");
  EXPECT_EQ(c.keepalive_seconds, 20);
  EXPECT_EQ(c.idle_timeout_seconds, 120);
  EXPECT_EQ(c.reliable_hold_seconds, 30);
  EXPECT_EQ(c.max_outbound_mib, 16);
  EXPECT_EQ(c.write_stall_seconds, 30);
  EXPECT_FALSE(c.allow_anonymous);
  EXPECT_EQ(c.node_id, "");
  EXPECT_EQ(c.log_level, "info");
}

// ---------------------------------------------------------------------------------------------
// Defaults and flags

TEST_F(ServeConfig, NoArgumentsGiveDefaults) {
  ServerConfig c = ParseOk({});
  ExpectDefaults(c);
  EXPECT_FALSE(print_defaults_);
  EXPECT_FALSE(help_);
}

TEST_F(ServeConfig, StructDefaultsMatchParsedDefaults) { ExpectDefaults(ServerConfig()); }

TEST_F(ServeConfig, PortFlagWithSeparateValue) { EXPECT_EQ(ParseOk({"--port", "0"}).port, 0); }

TEST_F(ServeConfig, PortFlagWithEqualsValue) { EXPECT_EQ(ParseOk({"--port=9"}).port, 9); }

TEST_F(ServeConfig, PortRangeEdgesAreAccepted) {
  EXPECT_EQ(ParseOk({"--port", "65535"}).port, 65535);
  EXPECT_EQ(ParseOk({"--port=0"}).port, 0);
}

TEST_F(ServeConfig, LastFlagWins) { EXPECT_EQ(ParseOk({"--port", "1", "--port=2"}).port, 2); }

TEST_F(ServeConfig, EveryOptionCanBeSetByFlag) {
  ServerConfig c = ParseOk({"--bind",
                            "0.0.0.0",
                            "--data-dir=/var/lib/hubcast",
                            "--access-key",
                            kKey1,
                            "--ports-file",
                            "/tmp/ports",
                            "--event-loops",
                            "4",
                            "--http-threads=8",
                            "--http-idle-timeout-seconds",
                            "9",
                            "--tls-cert",
                            "/etc/hubcast/chain.pem",
                            "--tls-key",
                            "/etc/hubcast/key.pem",
                            "--upstream-ca",
                            "/etc/hubcast/ca.pem",
                            "--keepalive-seconds",
                            "5",
                            "--idle-timeout-seconds",
                            "60",
                            "--reliable-hold",
                            "90",
                            "--max-outbound-mib",
                            "32",
                            "--write-stall-seconds",
                            "7",
                            "--allow-anonymous",
                            "true",
                            "--node-id",
                            "n1",
                            "--log-level",
                            "debug"});
  EXPECT_EQ(c.bind, "0.0.0.0");
  EXPECT_EQ(c.data_dir, "/var/lib/hubcast");
  EXPECT_EQ(c.access_keys, std::vector<std::string>({kKey1}));
  EXPECT_EQ(c.ports_file, "/tmp/ports");
  EXPECT_EQ(c.event_loops, 4);
  EXPECT_EQ(c.http_threads, 8);
  EXPECT_EQ(c.http_idle_timeout_seconds, 9);
  EXPECT_EQ(c.tls_cert, "/etc/hubcast/chain.pem");
  EXPECT_EQ(c.tls_key, "/etc/hubcast/key.pem");
  EXPECT_EQ(c.upstream_ca, "/etc/hubcast/ca.pem");
  EXPECT_EQ(c.keepalive_seconds, 5);
  EXPECT_EQ(c.idle_timeout_seconds, 60);
  EXPECT_EQ(c.reliable_hold_seconds, 90);
  EXPECT_EQ(c.max_outbound_mib, 32);
  EXPECT_EQ(c.write_stall_seconds, 7);
  EXPECT_TRUE(c.allow_anonymous);
  EXPECT_EQ(c.node_id, "n1");
  EXPECT_EQ(c.log_level, "debug");
}

TEST_F(ServeConfig, EmptyValueWithEqualsIsKeptForStrings) {
  EXPECT_EQ(ParseOk({"--ports-file="}).ports_file, "");
  EXPECT_EQ(ParseOk({"--node-id=a=b"}).node_id, "a=b");
}

TEST_F(ServeConfig, TlsCertificateAndKeyGoTogether) {
  EXPECT_TRUE(Contains(ParseError({"--tls-cert", "/c.pem"}), "--tls-key"));
  EXPECT_TRUE(Contains(ParseError({"--tls-key", "/k.pem"}), "--tls-cert"));
}

TEST_F(ServeConfig, AccessKeyIsRepeatable) {
  ServerConfig c = ParseOk({"--access-key", kKey1, "--access-key=" + kKey2});
  EXPECT_EQ(c.access_keys, std::vector<std::string>({kKey1, kKey2}));
}

TEST_F(ServeConfig, InvalidAccessKeyFlagIsRejected) {
  EXPECT_TRUE(Contains(ParseError({"--access-key", "short"}), "32"));
  ParseError({"--access-key", kKey1 + ";x"});
}

TEST_F(ServeConfig, BooleanSpellings) {
  for (const char* yes : {"true", "TRUE", "1", "yes", "Yes"}) {
    EXPECT_TRUE(ParseOk({"--allow-anonymous", yes}).allow_anonymous) << yes;
  }
  for (const char* no : {"false", "False", "0", "no"}) {
    EXPECT_FALSE(ParseOk({"--allow-anonymous", no}).allow_anonymous) << no;
  }
  EXPECT_TRUE(Contains(ParseError({"--allow-anonymous", "maybe"}), "allow-anonymous"));
}

TEST_F(ServeConfig, LogLevels) {
  for (const char* level : {"debug", "info", "warn", "error"}) {
    EXPECT_EQ(ParseOk({"--log-level", level}).log_level, level);
  }
  EXPECT_TRUE(Contains(ParseError({"--log-level", "trace"}), "log-level"));
  ParseError({"--log-level", "INFO"});
}

TEST_F(ServeConfig, UnknownFlagIsRejected) {
  EXPECT_TRUE(Contains(ParseError({"--nope", "1"}), "--nope"));
  EXPECT_TRUE(Contains(ParseError({"--nope=1"}), "--nope"));
  ParseError({"--Port", "1"});
}

TEST_F(ServeConfig, PositionalArgumentIsRejected) {
  EXPECT_TRUE(Contains(ParseError({"8080"}), "8080"));
  ParseError({"-p", "8080"});
}

TEST_F(ServeConfig, FlagWithoutValueIsRejected) {
  EXPECT_TRUE(Contains(ParseError({"--port"}), "--port"));
  ParseError({"--config"});
}

TEST_F(ServeConfig, OutOfRangeIntegersAreRejected) {
  EXPECT_TRUE(Contains(ParseError({"--port", "65536"}), "port"));
  ParseError({"--port", "-1"});
  ParseError({"--port", "99999999999999999999"});
  ParseError({"--event-loops", "257"});
  ParseError({"--event-loops", "-1"});
  ParseError({"--http-threads", "0"});
  ParseError({"--http-threads", "1025"});
  ParseError({"--keepalive-seconds", "0"});
  ParseError({"--keepalive-seconds", "121"});
  ParseError({"--idle-timeout-seconds", "4"});
  ParseError({"--idle-timeout-seconds", "3601"});
  ParseError({"--reliable-hold", "0"});
  ParseError({"--reconnection-token-seconds", "0"});
  ParseError({"--max-outbound-mib", "1025"});
  ParseError({"--write-stall-seconds", "0"});
}

TEST_F(ServeConfig, NonIntegersAreRejected) {
  ParseError({"--port", "abc"});
  ParseError({"--port", "80x"});
  ParseError({"--port", "8.5"});
  ParseError({"--port="});
  ParseError({"--http-threads", ""});
}

TEST_F(ServeConfig, HelpAndPrintDefaultsAreReported) {
  ParseOk({"--help"});
  EXPECT_TRUE(help_);
  EXPECT_FALSE(print_defaults_);
  ParseOk({"-h"});
  EXPECT_TRUE(help_);
  ParseOk({"--print-default-config", "--port", "1"});
  EXPECT_TRUE(print_defaults_);
  EXPECT_FALSE(help_);
}

// ---------------------------------------------------------------------------------------------
// Config file

TEST_F(ServeConfig, ConfigFileSetsOptions) {
  std::string path = WriteFile(
      "# a comment line\n"
      "\n"
      "port = 9000\n"
      "   # port = 1 (an indented comment)\n"
      "bind=0.0.0.0   # trailing comment\n"
      "\tlog-level =  warn \r\n"
      "allow-anonymous = yes\n"
      "access-key = " +
      kKey1 + "\n" + "access-key = " + kKey2 + "\n");
  ServerConfig c = ParseOk({"--config", path});
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.bind, "0.0.0.0");
  EXPECT_EQ(c.log_level, "warn");
  EXPECT_TRUE(c.allow_anonymous);
  EXPECT_EQ(c.access_keys, std::vector<std::string>({kKey1, kKey2}));
  EXPECT_EQ(c.data_dir, "./hubcast-data");  // untouched options keep their default
}

TEST_F(ServeConfig, ConfigFileWithEqualsFlag) {
  std::string path = WriteFile("port = 1234\n");
  EXPECT_EQ(ParseOk({"--config=" + path}).port, 1234);
}

TEST_F(ServeConfig, ConfigFileFromEnvironment) {
  SetEnv("HUBCAST_CONFIG", WriteFile("port = 4321\n"));
  EXPECT_EQ(ParseOk({}).port, 4321);
}

TEST_F(ServeConfig, ConfigFlagOverridesConfigEnvironment) {
  SetEnv("HUBCAST_CONFIG", WriteFile("port = 4321\n"));
  std::string path = WriteFile("port = 1111\n");
  EXPECT_EQ(ParseOk({"--config", path}).port, 1111);
}

TEST_F(ServeConfig, ConfigFileUnknownKeyIsRejectedWithItsLine) {
  std::string path = WriteFile("# comment\nport = 1\nportt = 2\n");
  std::string error = ParseError({"--config", path});
  EXPECT_TRUE(Contains(error, "portt")) << error;
  EXPECT_TRUE(Contains(error, ":3")) << error;
}

TEST_F(ServeConfig, ConfigFileLineWithoutEqualsIsRejected) {
  std::string path = WriteFile("port 1\n");
  EXPECT_TRUE(Contains(ParseError({"--config", path}), ":1"));
}

TEST_F(ServeConfig, ConfigFileInvalidValueIsRejectedNamingTheFile) {
  std::string path = WriteFile("port = 70000\n");
  std::string error = ParseError({"--config", path});
  EXPECT_TRUE(Contains(error, path)) << error;
  EXPECT_TRUE(Contains(error, "port")) << error;
}

TEST_F(ServeConfig, MissingConfigFileIsRejected) {
  EXPECT_TRUE(
      Contains(ParseError({"--config", "/nonexistent/hubcast.conf"}), "/nonexistent/hubcast.conf"));
}

TEST_F(ServeConfig, EmptyConfigFileGivesDefaults) {
  ExpectDefaults(ParseOk({"--config", WriteFile("")}));
  ExpectDefaults(ParseOk({"--config", WriteFile("# only comments\n\n   \n")}));
}

TEST_F(ServeConfig, DefaultConfigTextParsesBackToDefaults) {
  ExpectDefaults(ParseOk({"--config", WriteFile(DefaultConfigText())}));
}

// ---------------------------------------------------------------------------------------------
// Environment

TEST_F(ServeConfig, EnvironmentSetsPort) {
  SetEnv("HUBCAST_PORT", "1234");
  EXPECT_EQ(ParseOk({}).port, 1234);
}

TEST_F(ServeConfig, EnvironmentAccessKeysAreCommaSeparated) {
  SetEnv("HUBCAST_ACCESS_KEY", kKey1 + "," + kKey2);
  EXPECT_EQ(ParseOk({}).access_keys, std::vector<std::string>({kKey1, kKey2}));
}

TEST_F(ServeConfig, EnvironmentAccessKeysAreTrimmed) {
  SetEnv("HUBCAST_ACCESS_KEY", kKey1 + " , " + kKey2);
  EXPECT_EQ(ParseOk({}).access_keys, std::vector<std::string>({kKey1, kKey2}));
}

TEST_F(ServeConfig, EnvironmentNamesUseUnderscores) {
  SetEnv("HUBCAST_DATA_DIR", "/data");
  SetEnv("HUBCAST_IDLE_TIMEOUT_SECONDS", "300");
  SetEnv("HUBCAST_ALLOW_ANONYMOUS", "true");
  SetEnv("HUBCAST_RELIABLE_HOLD", "45");
  ServerConfig c = ParseOk({});
  EXPECT_EQ(c.data_dir, "/data");
  EXPECT_EQ(c.idle_timeout_seconds, 300);
  EXPECT_TRUE(c.allow_anonymous);
  EXPECT_EQ(c.reliable_hold_seconds, 45);
}

TEST_F(ServeConfig, InvalidEnvironmentValueIsRejected) {
  SetEnv("HUBCAST_PORT", "http");
  EXPECT_TRUE(Contains(ParseError({}), "environment"));
}

TEST_F(ServeConfig, InvalidEnvironmentAccessKeyIsRejected) {
  SetEnv("HUBCAST_ACCESS_KEY", kKey1 + ",short");
  EXPECT_TRUE(Contains(ParseError({}), "environment"));
}

TEST_F(ServeConfig, UnrelatedHubcastVariablesAreIgnored) {
  SetEnv("HUBCAST_SOMETHING_ELSE", "x");
  ExpectDefaults(ParseOk({}));
}

// ---------------------------------------------------------------------------------------------
// Precedence: defaults < file < env < flags

TEST_F(ServeConfig, PrecedenceIsDefaultsFileEnvironmentFlags) {
  std::string path = WriteFile("port = 1000\nbind = 10.0.0.1\nnode-id = from-file\n");
  SetEnv("HUBCAST_PORT", "2000");
  SetEnv("HUBCAST_BIND", "10.0.0.2");

  ServerConfig flags = ParseOk({"--config", path, "--port", "3000"});
  EXPECT_EQ(flags.port, 3000);            // flag beats env and file
  EXPECT_EQ(flags.bind, "10.0.0.2");      // env beats file
  EXPECT_EQ(flags.node_id, "from-file");  // file beats default
  EXPECT_EQ(flags.log_level, "info");     // default

  ServerConfig env = ParseOk({"--config", path});
  EXPECT_EQ(env.port, 2000);
}

TEST_F(ServeConfig, FileBeatsDefaults) {
  EXPECT_EQ(ParseOk({"--config", WriteFile("port = 1000\n")}).port, 1000);
}

TEST_F(ServeConfig, FlagPrecedesEnvironmentEvenWhenGivenBeforeConfig) {
  std::string path = WriteFile("port = 1000\n");
  EXPECT_EQ(ParseOk({"--port", "3000", "--config", path}).port, 3000);
}

TEST_F(ServeConfig, HigherLayerAccessKeysReplaceLowerOnes) {
  std::string path = WriteFile("access-key = " + kKey1 + "\naccess-key = " + kKey2 + "\n");
  EXPECT_EQ(ParseOk({"--config", path}).access_keys, std::vector<std::string>({kKey1, kKey2}));

  SetEnv("HUBCAST_ACCESS_KEY", kKey3);
  EXPECT_EQ(ParseOk({"--config", path}).access_keys, std::vector<std::string>({kKey3}));

  EXPECT_EQ(ParseOk({"--config", path, "--access-key", kKey4}).access_keys,
            std::vector<std::string>({kKey4}));
}

TEST_F(ServeConfig, InvalidLowerLayerFailsEvenIfOverridden) {
  // Every layer is validated: a bad file value stops start-up even if a flag sets the option.
  std::string path = WriteFile("port = nope\n");
  ParseError({"--config", path, "--port", "1"});
}

// ---------------------------------------------------------------------------------------------
// ValidateAccessKey

TEST_F(ServeConfig, AccessKeyOfAtLeast32BytesIsValid) {
  EXPECT_TRUE(ValidateAccessKey(std::string(32, 'k')).ok());
  EXPECT_TRUE(ValidateAccessKey(kKey1).ok());  // the emulator's public key
  EXPECT_TRUE(ValidateAccessKey("with inner spaces and = signs, 0123456789").ok());
  EXPECT_TRUE(ValidateAccessKey(std::string(4096, 'x')).ok());
}

TEST_F(ServeConfig, AccessKeyLengthCountsUtf8Bytes) {
  std::string e_acute = "\xc3\xa9";
  std::string sixteen;
  for (int i = 0; i < 16; ++i) sixteen += e_acute;  // 16 characters, 32 bytes
  EXPECT_TRUE(ValidateAccessKey(sixteen).ok());
}

TEST_F(ServeConfig, ShortAccessKeyIsInvalid) {
  EXPECT_EQ(ValidateAccessKey(std::string(31, 'k')).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ValidateAccessKey("").ok());
}

TEST_F(ServeConfig, AccessKeyWithSemicolonIsInvalid) {
  EXPECT_FALSE(ValidateAccessKey(std::string(20, 'k') + ";" + std::string(20, 'k')).ok());
}

TEST_F(ServeConfig, AccessKeyWithControlCharacterIsInvalid) {
  const std::string base(20, 'k');
  EXPECT_FALSE(ValidateAccessKey(base + "\t" + base).ok());
  EXPECT_FALSE(ValidateAccessKey(base + "\n" + base).ok());
  EXPECT_FALSE(ValidateAccessKey(base + std::string(1, '\0') + base).ok());
  EXPECT_FALSE(ValidateAccessKey(base + "\x7f" + base).ok());
}

TEST_F(ServeConfig, AccessKeyWithSurroundingWhitespaceIsInvalid) {
  const std::string base(40, 'k');
  EXPECT_FALSE(ValidateAccessKey(" " + base).ok());
  EXPECT_FALSE(ValidateAccessKey(base + " ").ok());
}

// ---------------------------------------------------------------------------------------------
// DefaultConfigText / ServeUsage

TEST_F(ServeConfig, DefaultConfigTextListsEveryOption) {
  const std::string text = DefaultConfigText();
  for (const auto& name : kOptionNames) {
    EXPECT_TRUE(Contains(text, "\n" + name + " = ") || Contains(text, "\n# " + name + " = "))
        << name << " missing from:\n"
        << text;
    EXPECT_TRUE(Contains(text, EnvName(name))) << name;
  }
  EXPECT_TRUE(Contains(text, "\nport = 8080\n"));
  EXPECT_TRUE(Contains(text, "\nlog-level = info\n"));
}

TEST_F(ServeConfig, DefaultConfigTextOptionsAreAllKnownKeys) {
  // Every `name = value` line, commented or not, names an option the parser accepts.
  const std::string text = DefaultConfigText();
  size_t lines = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# ", 0) == 0) line = line.substr(2);
    size_t eq = line.find(" = ");
    if (eq == std::string::npos || line.find(' ') < eq) continue;
    ++lines;
    std::string name = line.substr(0, eq);
    EXPECT_NE(std::find(kOptionNames.begin(), kOptionNames.end(), name), kOptionNames.end())
        << name;
  }
  EXPECT_EQ(lines, kOptionNames.size());
}

TEST_F(ServeConfig, LogFormatAndAdminBindAreChecked) {
  bool print_defaults = false, help = false;
  auto ok = ParseServeConfig({"--log-format", "json", "--admin-bind", "[::1]:9090"},
                             &print_defaults, &help);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->log_format, "json");
  EXPECT_EQ(ok->admin_bind, "[::1]:9090");
  EXPECT_FALSE(ParseServeConfig({"--log-format", "yaml"}, &print_defaults, &help).ok());
  EXPECT_FALSE(ParseServeConfig({"--admin-bind", "9090"}, &print_defaults, &help).ok());
  EXPECT_TRUE(ParseServeConfig({"--admin-bind", "off"}, &print_defaults, &help).ok());
}

TEST_F(ServeConfig, UsageListsEveryFlag) {
  const std::string usage = ServeUsage();
  for (const auto& name : kOptionNames) {
    EXPECT_TRUE(Contains(usage, "--" + name + " ")) << name;
  }
  EXPECT_TRUE(Contains(usage, "--config"));
  EXPECT_TRUE(Contains(usage, "--print-default-config"));
}

}  // namespace
}  // namespace hubcast::server
