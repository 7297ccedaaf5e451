// Logging: a process-wide sink with levels, and a Logger value that carries context
// (hub, connection id) so every line says where it came from. Thread-safe: lines from
// different threads never interleave. Tokens and payloads are never logged at info or above.
//
// Two line formats (`--log-format`):
//   text  2026-01-02T03:04:05.678Z INFO [conn hub=chat id=abc] closing with 1000: ...
//   json  {"time":"2026-01-02T03:04:05.678Z","level":"info","logger":"conn","hub":"chat",
//          "id":"abc","msg":"closing with 1000: ..."}  (one object per line)
// In JSON the context's first word is "logger" and each key=value of With() is a member
// (values are ids and names: they hold no spaces).
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace hubcast {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText = 0, kJson = 1 };

class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void Write(LogLevel level, std::string_view line) = 0;
};

// The default sink writes to stderr. SetLogSink replaces it (tests capture lines).
void SetLogSink(LogSink* sink);
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void SetLogFormat(LogFormat format);
// One line as the current format writes it (without the newline); for tests.
std::string FormatLogLine(LogLevel level, std::string_view context, std::string_view message);
void LogLine(LogLevel level, std::string_view context, std::string_view message);

class Logger {
 public:
  Logger() = default;
  explicit Logger(std::string context) : context_(std::move(context)) {}
  Logger With(std::string_view key, std::string_view value) const {
    std::string c = context_;
    if (!c.empty()) c += ' ';
    c.append(key).append("=").append(value);
    return Logger(std::move(c));
  }
  template <typename... Args>
  void Debug(const Args&... a) const {
    Log(LogLevel::kDebug, a...);
  }
  template <typename... Args>
  void Info(const Args&... a) const {
    Log(LogLevel::kInfo, a...);
  }
  template <typename... Args>
  void Warn(const Args&... a) const {
    Log(LogLevel::kWarn, a...);
  }
  template <typename... Args>
  void Error(const Args&... a) const {
    Log(LogLevel::kError, a...);
  }

 private:
  template <typename... Args>
  void Log(LogLevel level, const Args&... a) const {
    if (level < GetLogLevel()) return;
    std::ostringstream os;
    (os << ... << a);
    LogLine(level, context_, os.str());
  }
  std::string context_;
};

}  // namespace hubcast
