// bench_loadgen: the load generator of tests/bench/compare.sh. One process holds up to ~19,000
// client WebSockets to one server (Hubcast, nats-server, a Socket.IO server or a `ws` server)
// plus app-server publisher connections, on one thread, and runs the phases its driver writes
// on stdin (protocol in loadgen.h). Loopback only.
//
//   bench_loadgen --server hubcast|nats|socketio|ws --port P --key K --first N --count M
//                 [--nats-port P] [--reliable] [--group-sizes 1,10,100,1000] [--hub H]
//                 [--channels 64] [--max-handshakes 200] [--connect-timeout-seconds 180]
//
// Exit status 0 after "quit" (or the end of stdin), 1 on a bad flag or when the members could
// not all connect.

#include "tests/bench/loadgen/loadgen.h"
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <sys/resource.h>

namespace {

using hubcast::bench::LoadGenOptions;

void PrintUsage() {
  std::fprintf(stderr,
               "usage: bench_loadgen --server hubcast|nats|socketio|ws --port P --key K\n"
               "  --first N --count M [--nats-port P] [--reliable] [--group-sizes 1,10,100,1000]\n"
               "  [--hub H] [--channels N] [--max-handshakes N] [--connect-timeout-seconds N]\n"
               "Then reads phase commands on stdin (see tests/bench/loadgen/loadgen.h).\n");
}

bool ParseNumber(std::string_view text, int min, int max, int* out) {
  long value = 0;
  if (!hubcast::bench::ParseInt(text, min, max, &value)) return false;
  *out = static_cast<int>(value);
  return true;
}

bool ParseSizes(std::string_view text, std::vector<int>* sizes) {
  sizes->clear();
  while (!text.empty()) {
    size_t comma = text.find(',');
    int size = 0;
    if (!ParseNumber(text.substr(0, comma), 1, 1'000'000, &size)) return false;
    sizes->push_back(size);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return !sizes->empty();
}

bool ParseFlags(int argc, char** argv, LoadGenOptions* options) {
  options->dialect.group_sizes = {1, 10, 100, 1000};
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--reliable") {
      options->dialect.reliable = true;
      continue;
    }
    if (flag == "--help" || flag == "-h" || i + 1 >= argc) return false;
    std::string_view value = argv[++i];
    bool ok = true;
    if (flag == "--server") {
      options->dialect.server = value;
    } else if (flag == "--port") {
      ok = ParseNumber(value, 1, 65535, &options->dialect.port);
    } else if (flag == "--nats-port") {
      ok = ParseNumber(value, 1, 65535, &options->nats_port);
    } else if (flag == "--key") {
      options->dialect.key = value;
    } else if (flag == "--hub") {
      options->dialect.hub = value;
    } else if (flag == "--first") {
      ok = ParseNumber(value, 0, 10'000'000, &options->first);
    } else if (flag == "--count") {
      ok = ParseNumber(value, 1, 1'000'000, &options->count);
    } else if (flag == "--group-sizes") {
      ok = ParseSizes(value, &options->dialect.group_sizes);
    } else if (flag == "--channels") {
      ok = ParseNumber(value, 1, 10'000, &options->channels);
    } else if (flag == "--max-handshakes") {
      ok = ParseNumber(value, 1, 100'000, &options->max_handshakes);
    } else if (flag == "--connect-timeout-seconds") {
      ok = ParseNumber(value, 1, 86'400, &options->connect_timeout_seconds);
    } else {
      std::fprintf(stderr, "bench_loadgen: unknown flag %s\n", argv[i - 1]);
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "bench_loadgen: bad value for %s: '%s'\n", argv[i - 1], argv[i]);
      return false;
    }
  }
  if (options->dialect.port == 0) {
    std::fprintf(stderr, "bench_loadgen: --port is required\n");
    return false;
  }
  if (options->dialect.server == "nats" && options->nats_port == 0) {
    std::fprintf(stderr, "bench_loadgen: --nats-port is required with --server nats\n");
    return false;
  }
  return true;
}

// Every member and publisher connection is a descriptor: take the hard limit (compare.sh does
// too; connect() failing with EMFILE says so if it is still too low).
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

int main(int argc, char** argv) {
  LoadGenOptions options;
  if (!ParseFlags(argc, argv, &options)) {
    PrintUsage();
    return 1;
  }
  std::string error;
  auto dialect = hubcast::bench::MakeDialect(options.dialect, &error);
  if (dialect == nullptr) {
    std::fprintf(stderr, "bench_loadgen: %s\n", error.c_str());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();
  hubcast::bench::LoadGen generator(options, std::move(dialect));
  return generator.Run();
}
