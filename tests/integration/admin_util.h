// Helpers for tests of the admin listener (`--admin-bind`): finding its port in a server's
// output, reading a client's messages until an expected one, and a strict parser of the Prometheus
// text exposition format (version 0.0.4), written from the format's description so that the test
// does not share the server's formatting code. Header-only; used from the test thread only.
#pragma once

#include "tests/integration/process_util.h"
#include "tests/integration/ws_client.h"
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hubcast::testing {

// The admin port a server printed ("Admin=http://127.0.0.1:PORT/"), waited for.
inline std::optional<int> WaitForAdminPort(ChildProcess& server,
                                           std::chrono::milliseconds timeout) {
  static const std::regex kLine(R"(Admin=http://[^:\s]+:(\d+)/)");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && server.Running()) {
    std::smatch m;
    const std::string log = server.ReadLog();
    if (std::regex_search(log, m, kLine)) return std::stoi(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

// Reads messages until one contains `needle`; false when none came within `timeout` or the
// connection ended.
inline bool ReadUntil(WsClient& c, const std::string& needle,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = c.Read(std::chrono::seconds(2));
    if (m && m->payload.find(needle) != std::string::npos) return true;
    if (!m && !c.connected()) return false;
  }
  return false;
}

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter, gauge, histogram, ...
  std::map<std::string, double> samples;     // `name{labels as written}` -> value
  double Value(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? -1 : it->second;
  }
};

// Parses `text` strictly; on the first violation returns nullopt and sets *error to the line
// and the rule it breaks. Rules: every line is a HELP or TYPE comment, another comment, or a
// sample; names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, label values
// quoted with only \\, \" and \n escapes, no label twice in a sample; a value is a float,
// +Inf, -Inf or NaN; TYPE at most once per family, before its samples; a family's samples
// are contiguous; no series twice; counters are named *_total; histogram series are
// _bucket (with le), _sum and _count, buckets cumulative and ending in le="+Inf" equal to
// _count; the text ends with a newline.
inline std::optional<Exposition> ParseExposition(const std::string& text, std::string* error) {
  Exposition out;
  if (!text.empty() && text.back() != '\n') {
    *error = "the text does not end with a newline";
    return std::nullopt;
  }
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  std::set<std::string> helped, finished;
  std::string current;  // family of the samples being read
  // Histogram checks: per (family, labels without le) the buckets in order.
  std::map<std::string, std::vector<std::pair<std::string, double>>> buckets;
  auto fail = [&](const std::string& line, const std::string& why) {
    *error = why + ": '" + line + "'";
    return std::nullopt;
  };
  auto family_of = [&](const std::string& name) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
        std::string base = name.substr(0, name.size() - s.size());
        auto t = out.types.find(base);
        if (t != out.types.end() && (t->second == "histogram" || t->second == "summary")) {
          return base;
        }
      }
    }
    return name;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::smatch m;
      static const std::regex kMeta(R"(# (HELP|TYPE) (\S+) ?(.*))");
      if (!std::regex_match(line, m, kMeta)) continue;  // a plain comment
      const std::string name = m[2];
      if (!std::regex_match(name, kName)) return fail(line, "bad metric name");
      if (m[1] == "HELP") {
        if (!helped.insert(name).second) return fail(line, "second HELP");
        continue;
      }
      if (!kTypes.count(m[3])) return fail(line, "unknown type");
      if (out.types.count(name)) return fail(line, "second TYPE");
      if (finished.count(name) || current == name) return fail(line, "TYPE after samples");
      if (m[3] == "counter" && name.size() < 6) return fail(line, "counter not named *_total");
      if (m[3] == "counter" && name.compare(name.size() - 6, 6, "_total") != 0) {
        return fail(line, "counter not named *_total");
      }
      out.types[name] = m[3];
      continue;
    }
    // A sample: name, optional {labels}, a space, the value (no timestamp from us).
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const std::string name = line.substr(0, i);
    if (!std::regex_match(name, kName)) return fail(line, "bad metric name");
    std::string labels, le;
    std::string labels_without_le;
    std::set<std::string> label_names;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail(line, "label without '='");
        const std::string lname = line.substr(i, eq - i);
        if (!std::regex_match(lname, kLabelName)) return fail(line, "bad label name");
        if (!label_names.insert(lname).second) return fail(line, "label given twice");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') return fail(line, "unquoted label");
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (++j >= line.size()) return fail(line, "escape at the end");
            if (line[j] == 'n') {
              value += '\n';
            } else if (line[j] == '\\' || line[j] == '"') {
              value += line[j];
            } else {
              return fail(line, "unknown escape");
            }
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return fail(line, "unterminated label value");
        const std::string pair = line.substr(i, j + 1 - i);
        if (lname == "le") {
          le = value;
        } else {
          labels_without_le += (labels_without_le.empty() ? "" : ",") + pair;
        }
        labels += (labels.empty() ? "" : ",") + pair;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return fail(line, "unterminated labels");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return fail(line, "no space before the value");
    const std::string value_text = line.substr(i + 1);
    double value;
    if (value_text == "+Inf") {
      value = HUGE_VAL;
    } else if (value_text == "-Inf") {
      value = -HUGE_VAL;
    } else if (value_text == "NaN") {
      value = NAN;
    } else {
      char* end = nullptr;
      value = std::strtod(value_text.c_str(), &end);
      if (value_text.empty() || *end != '\0' || std::isspace(value_text[0])) {
        return fail(line, "bad value");
      }
    }
    const std::string family = family_of(name);
    if (family != current) {
      if (finished.count(family)) return fail(line, "samples of a family not contiguous");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    auto type = out.types.find(family);
    if (type != out.types.end() && type->second == "histogram") {
      if (name == family + "_bucket") {
        if (le.empty()) return fail(line, "bucket without le");
        buckets[family + "{" + labels_without_le + "}"].emplace_back(le, value);
      } else if (name != family + "_sum" && name != family + "_count") {
        return fail(line, "histogram series not _bucket, _sum or _count");
      }
    }
    const std::string series = labels.empty() ? name : name + "{" + labels + "}";
    if (!out.samples.emplace(series, value).second) return fail(line, "series given twice");
  }
  for (const auto& [key, list] : buckets) {
    double last = 0;
    for (const auto& [le, v] : list) {
      if (v < last) {
        *error = "buckets of " + key + " are not cumulative";
        return std::nullopt;
      }
      last = v;
    }
    if (list.empty() || list.back().first != "+Inf") {
      *error = "buckets of " + key + " do not end with le=\"+Inf\"";
      return std::nullopt;
    }
    const std::string family = key.substr(0, key.find('{'));
    const std::string labels = key.substr(key.find('{') + 1, key.size() - key.find('{') - 2);
    const std::string count = family + "_count" + (labels.empty() ? "" : "{" + labels + "}");
    if (out.Value(count) != list.back().second) {
      *error = "the +Inf bucket of " + key + " differs from " + count;
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace hubcast::testing
