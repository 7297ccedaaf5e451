// `hubcast token` and `hubcast send`: argument parsing and everything decided before a request
// is sent. Their requests against a real server are tested in tests/sdk/cli.test.mjs.
#include "server/cli.h"

#include "rest/jwt.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/test_util.h"
#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace hubcast::server {
namespace {

constexpr char kKey[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
const std::string kCs = std::string("Endpoint=http://127.0.0.1:1;AccessKey=") + kKey;

Result<TokenCommand> Token(const std::vector<std::string>& args,
                           const std::optional<std::string>& env = kCs) {
  bool help = false;
  return ParseTokenCommand(args, env, &help);
}

Result<SendCommand> Send(const std::vector<std::string>& args,
                         const std::optional<std::string>& env = kCs) {
  bool help = false;
  return ParseSendCommand(args, env, &help);
}

struct Outcome {
  int code;
  std::string out, err;
};

Outcome RunVerb(bool token, const std::vector<std::string>& args, const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out, err;
  CliIo io{in, out, err, kCs};
  const int code = token ? RunTokenCommand(args, io) : RunSendCommand(args, io);
  return {code, out.str(), err.str()};
}

TEST(CliToken, ParsesRepeatedAndInlineFlags) {
  auto c = Token({"--hub", "chat", "--user=alice", "--role", "r1", "--role=r2", "--group", "g1",
                  "--minutes", "5"});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->hub, "chat");
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->roles, (std::vector<std::string>{"r1", "r2"}));
  EXPECT_EQ(c->groups, std::vector<std::string>{"g1"});
  EXPECT_EQ(c->minutes, 5);
  EXPECT_EQ(c->connection_string, kCs);
}

TEST(CliToken, ConnectionStringFlagWinsOverTheEnvironment) {
  auto c = Token({"--hub", "h", "--connection-string", "Endpoint=http://x;AccessKey=k"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->connection_string, "Endpoint=http://x;AccessKey=k");
  auto none = Token({"--hub", "h"}, std::nullopt);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("HUBCAST_CONNECTION_STRING"), std::string::npos);
}

TEST(CliToken, RejectsBadUsage) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {},                                            // no --hub
           {"--hub"},                                     // no value
           {"--hub", "h", "--minutes", "0"},              // below 1
           {"--hub", "h", "--minutes", "5m"},             // not a number
           {"--hub", "h", "--user", "a", "--user", "b"},  // not repeatable
           {"--hub", "h", "--colour", "red"},             // unknown
           {"--hub", "h", "extra"}}) {                    // positional
    EXPECT_FALSE(Token(args).ok()) << ::testing::PrintToString(args);
  }
}

TEST(CliToken, PrintsAUrlSignedWithTheKey) {
  Outcome r = RunVerb(true, {"--hub", "chat", "--user", "alice", "--group", "g1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string prefix = "ws://127.0.0.1:1/client/hubs/chat?access_token=";
  ASSERT_EQ(r.out.rfind(prefix, 0), 0u) << r.out;
  ASSERT_EQ(r.out.back(), '\n');
  const std::string token = r.out.substr(prefix.size(), r.out.size() - prefix.size() - 1);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto claims = rest::VerifyToken(token, {kKey}, now);
  ASSERT_TRUE(claims.ok()) << claims.status().message();
  EXPECT_EQ(claims->subject, "alice");
  EXPECT_EQ(claims->groups, std::vector<std::string>{"g1"});
}

TEST(CliToken, HelpGoesToStdoutAndUsageErrorsExitTwo) {
  Outcome help = RunVerb(true, {"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: hubcast token"), std::string::npos);
  Outcome bad = RunVerb(true, {"--hub", "1bad"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("Invalid hub name"), std::string::npos) << bad.err;
}

TEST(CliSend, ParsesTargetsAndOptions) {
  auto c = Send({"--hub", "h", "--group", "g", "--filter", "userId eq 'a'", "--exclude", "c1",
                 "--exclude", "c2", "--ttl", "30", "--type", "json", "{\"a\":1}"});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->target, SendTarget::kGroup);
  EXPECT_EQ(c->target_name, "g");
  EXPECT_EQ(c->filter, "userId eq 'a'");
  EXPECT_EQ(c->excluded, (std::vector<std::string>{"c1", "c2"}));
  EXPECT_EQ(c->ttl_seconds, 30);
  EXPECT_EQ(c->type, "json");
  EXPECT_EQ(c->payload, "{\"a\":1}");

  auto all = Send({"--hub", "h", "hello"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->target, SendTarget::kAll);
  EXPECT_EQ(all->type, "text");
  auto dashes = Send({"--hub", "h", "--", "--not-a-flag"});
  ASSERT_TRUE(dashes.ok());
  EXPECT_EQ(dashes->payload, "--not-a-flag");
  auto stdin_payload = Send({"--hub", "h", "--connection", "c", "-"});
  ASSERT_TRUE(stdin_payload.ok());
  EXPECT_EQ(stdin_payload->target, SendTarget::kConnection);
  EXPECT_EQ(stdin_payload->payload, "-");
}

TEST(CliSend, RejectsBadUsage) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--hub", "h"},                                      // nothing to send
           {"--hub", "h", "a", "b"},                            // two payloads
           {"--hub", "h", "--group", "g", "--user", "u", "x"},  // two targets
           {"--hub", "h", "--connection", "c", "--filter", "f", "x"},
           {"--hub", "h", "--user", "u", "--exclude", "c", "x"},
           {"--hub", "h", "--ttl", "301", "x"},
           {"--hub", "h", "--ttl", "-1", "x"},
           {"--hub", "h", "--type", "xml", "x"},
           {"--group", "g", "x"}}) {  // no --hub
    EXPECT_FALSE(Send(args).ok()) << ::testing::PrintToString(args);
  }
}

TEST(CliSend, UnreadableFileIsAUsageError) {
  testing::TempDir dir;
  Outcome r = RunVerb(false, {"--hub", "h", "@" + dir.path() + "/missing"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
}

TEST(CliSend, NamesTheSdkRefusesExitTwoWithoutSending) {
  Outcome r = RunVerb(false, {"--hub", "h", "--group", " ", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("InvalidArgument"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace hubcast::server
