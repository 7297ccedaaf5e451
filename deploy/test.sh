#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest.
# Extra arguments go to ctest (e.g. `deploy/test.sh -L unit`, `deploy/test.sh -R Layering`).
# Exits with ctest's code; the last line is `N passed, N failed`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
JOBS="${HUBCAST_JOBS:-2}"

"$ROOT/deploy/install-deps.sh"
"$ROOT/deploy/build.sh"

# Tests that need NATS start their own nats-server on a free port; check that it runs here.
if ctest --test-dir "$BUILD" --print-labels 2>/dev/null | grep -qiw nats; then
  nats-server --version >/dev/null 2>&1 || { echo "test: nats-server does not run" >&2; exit 1; }
  echo "test: $(nats-server --version)"
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

set +e
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 900 "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# ctest's summary: "95% tests passed, 1 tests failed out of 20".
summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
if [ -n "$summary" ]; then
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
  total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
  passed=$((total - failed))
else
  passed=0
  failed=0
  [ "$rc" -ne 0 ] && failed=1
fi
echo "$passed passed, $failed failed"
exit "$rc"
