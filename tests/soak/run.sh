#!/usr/bin/env bash
# Soak test (not in CI): one `hubcast serve` under connection churn, group fan-out to reliable
# clients whose network is cut and recovered, and REST traffic, for MINUTES minutes.
#   tests/soak/run.sh MINUTES [soak.mjs options, e.g. --rate 80 --churn 20]
# Prints the server's RSS, fds and threads and the message counts every 10 s, then a verdict;
# exits 0 on PASS. The binary is $HUBCAST_BINARY, else build/server/hubcast (built with
# `cmake --build build --target hubcast`). The official SDKs come from tests/sdk/node_modules
# (`npm ci` there when missing). Everything stays on 127.0.0.1; the server is stopped by pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MINUTES="${1:?usage: tests/soak/run.sh MINUTES [--rate N --churn N ...]}"
shift

export HUBCAST_BINARY="${HUBCAST_BINARY:-$ROOT/build/server/hubcast}"
if [ ! -x "$HUBCAST_BINARY" ]; then
  echo "soak: no hubcast binary at $HUBCAST_BINARY (build it, or set HUBCAST_BINARY)" >&2
  exit 2
fi
if [ ! -d "$ROOT/tests/sdk/node_modules/@azure/web-pubsub-client" ]; then
  echo "soak: installing the SDKs (npm ci in tests/sdk)" >&2
  (cd "$ROOT/tests/sdk" && npm ci --no-audit --no-fund >/dev/null)
fi
exec node "$ROOT/tests/soak/soak.mjs" --minutes "$MINUTES" "$@"
