#include "base/log.h"

#include "base/json.h"

#include <gtest/gtest.h>

#include <string>

namespace hubcast {
namespace {

class LogFormatTest : public ::testing::Test {
 protected:
  void TearDown() override { SetLogFormat(LogFormat::kText); }
};

TEST_F(LogFormatTest, TextLineHasTimeLevelContextAndMessage) {
  SetLogFormat(LogFormat::kText);
  std::string line = FormatLogLine(LogLevel::kWarn, "conn hub=chat id=c1", "dropped");
  EXPECT_NE(line.find(" WARN [conn hub=chat id=c1] dropped"), std::string::npos) << line;
}

TEST_F(LogFormatTest, JsonLineIsOneObjectWithTheContextAsMembers) {
  SetLogFormat(LogFormat::kJson);
  std::string line =
      FormatLogLine(LogLevel::kInfo, "conn hub=chat id=c1", "closing with 1003: \"bad\"\nframe");
  auto v = json::Parse(line);
  ASSERT_TRUE(v.ok()) << line;
  EXPECT_EQ(v->Find("level")->str(), "info");
  EXPECT_EQ(v->Find("logger")->str(), "conn");
  EXPECT_EQ(v->Find("hub")->str(), "chat");
  EXPECT_EQ(v->Find("id")->str(), "c1");
  EXPECT_EQ(v->Find("msg")->str(), "closing with 1003: \"bad\"\nframe");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(v->Find("time"), nullptr);
}

TEST_F(LogFormatTest, JsonLineWithoutContextHasNoLogger) {
  SetLogFormat(LogFormat::kJson);
  auto v = json::Parse(FormatLogLine(LogLevel::kError, "", "x"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->Find("logger"), nullptr);
  EXPECT_EQ(v->Find("level")->str(), "error");
}

}  // namespace
}  // namespace hubcast
