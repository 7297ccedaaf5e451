#!/usr/bin/env bash
# Hubcast against nats-server, Socket.IO and ws on this machine, in one command:
#
#   tests/bench/compare.sh            # the default matrix (3 repetitions, about 20 minutes)
#   tests/bench/compare.sh --smoke    # about 30 seconds (what ctest -L bench runs)
#   tests/bench/compare.sh --full     # the whole cross product (about two hours)
#
# Installs what is missing (deploy/install-deps.sh: nats-server, Node.js, npm ci in
# tests/bench/peers), builds the two binaries it needs (hubcast, bench_loadgen) in build/ (or
# $HUBCAST_BUILD_DIR), then runs compare.py, which starts every server and generator itself and
# stops them by pid however it ends. Every other argument goes to compare.py (--help lists them).
#   --no-build   skip install and build; use with --hubcast and --loadgen (the ctest does)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${HUBCAST_BUILD_DIR:-$ROOT/build}"

build=1
args=()
for arg in "$@"; do
  if [ "$arg" = "--no-build" ]; then build=0; else args+=("$arg"); fi
done

if [ "$build" -eq 1 ]; then
  "$ROOT/deploy/install-deps.sh"
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE="${HUBCAST_BUILD_TYPE:-RelWithDebInfo}"
  fi
  cmake --build "$BUILD" -j "${HUBCAST_JOBS:-2}" --target hubcast bench_loadgen
  args=(--hubcast "$BUILD/server/hubcast" --loadgen "$BUILD/tests/bench/bench_loadgen" "${args[@]}")
fi

# Each server holds every connection of a run: raise the soft descriptor limit to the hard one.
ulimit -n "$(ulimit -Hn)"
exec python3 "$HERE/compare.py" "${args[@]}"
