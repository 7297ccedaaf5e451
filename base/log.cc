#include "base/log.h"

#include "base/json.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace hubcast {
namespace {

class StderrSink : public LogSink {
 public:
  void Write(LogLevel, std::string_view line) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fputc('\n', stderr);
  }

 private:
  std::mutex mu_;
};

StderrSink g_stderr_sink;
std::atomic<LogSink*> g_sink{&g_stderr_sink};
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

void SetLogSink(LogSink* sink) { g_sink.store(sink ? sink : &g_stderr_sink); }
void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

std::string FormatLogLine(LogLevel level, std::string_view context, std::string_view message) {
  using namespace std::chrono;
  auto now = system_clock::now();
  std::time_t t = system_clock::to_time_t(now);
  int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  std::string line;
  line.reserve(96 + context.size() + message.size());
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    line.append("{\"time\":\"").append(ts).append("\",\"level\":\"");
    for (const char* c = LevelName(level); *c; ++c) line += static_cast<char>(*c | 0x20);
    line += '"';
    bool first = true;
    while (!context.empty()) {
      size_t end = context.find(' ');
      std::string_view word = context.substr(0, end);
      context = end == std::string_view::npos ? std::string_view() : context.substr(end + 1);
      size_t eq = word.find('=');
      std::string_view key = eq == std::string_view::npos ? "logger" : word.substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? word : word.substr(eq + 1);
      if (key == "logger" && !first) continue;  // one logger name per line
      first = false;
      line += ',';
      json::AppendQuoted(line, key);
      line += ':';
      json::AppendQuoted(line, value);
    }
    line.append(",\"msg\":");
    json::AppendQuoted(line, message);
    line += '}';
    return line;
  }
  line.append(ts).append(" ").append(LevelName(level)).append(" ");
  if (!context.empty()) line.append("[").append(context).append("] ");
  line.append(message);
  return line;
}

void LogLine(LogLevel level, std::string_view context, std::string_view message) {
  g_sink.load()->Write(level, FormatLogLine(level, context, message));
}

}  // namespace hubcast
