#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with ctest.
# Extra arguments go to ctest (e.g. `deploy/test.sh -L unit`, `deploy/test.sh -R Layering`).
# With no arguments (as CI runs it) two sanitizer runs follow the normal suite, each building
# only what it runs:
#   build-asan/  AddressSanitizer + UBSan (-DHUBCAST_SANITIZE=address): `ctest -L unit`, i.e.
#                the unit tests and every fuzz target's corpus
#   build-tsan/  ThreadSanitizer (-DHUBCAST_SANITIZE=thread): `ctest -L concurrency`, the tests
#                whose code runs on several threads (tests/CMakeLists.txt, concurrency_tests)
# HUBCAST_SANITIZERS picks them: "asan tsan" (the default with no arguments), "asan", or "" (the
# default with arguments). Exits non-zero if any test failed; the last line is
# `N passed, N failed` over all runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
JOBS="${HUBCAST_JOBS:-2}"
if [ "$#" -eq 0 ]; then
  SANITIZERS="${HUBCAST_SANITIZERS-asan tsan}"
else
  SANITIZERS="${HUBCAST_SANITIZERS-}"
fi

"$ROOT/deploy/install-deps.sh"
"$ROOT/deploy/build.sh"

# Tests that need NATS start their own nats-server on a free port; check that it runs here.
if ctest --test-dir "$BUILD" --print-labels 2>/dev/null | grep -qiw nats; then
  nats-server --version >/dev/null 2>&1 || { echo "test: nats-server does not run" >&2; exit 1; }
  echo "test: $(nats-server --version)"
fi

logs=()
trap 'rm -f "${logs[@]}"' EXIT
passed=0
failed=0
rc=0

# Runs ctest in a build dir and adds its summary ("95% tests passed, 1 tests failed out of
# 20") to the counts; a run that prints no summary counts as one failure if it failed.
run_ctest() {
  local dir="$1" log
  shift
  log="$(mktemp)"
  logs+=("$log")
  set +e
  ctest --test-dir "$dir" --output-on-failure -j"$JOBS" --timeout 900 "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  set -e
  local summary
  summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
  if [ -n "$summary" ]; then
    local f t
    f="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
    t="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
    passed=$((passed + t - f))
    failed=$((failed + f))
  elif [ "$status" -ne 0 ]; then
    failed=$((failed + 1))
  fi
  [ "$status" -eq 0 ] || rc="$status"
}

# Configures (once) and builds `target` in an instrumented build dir, then runs `ctest -L label`
# there. clang at -O0 -g1 compiles an instrumented file about three times faster than g++ at
# -O1 (measured on tests/unit/storage/filter_test.cc), which keeps the whole command well inside
# CI's time; line tables are all a report needs, and assert() stays on.
run_sanitized() {
  local name="$1" sanitize="$2" target="$3" label="$4" dir="$ROOT/build-$1" start
  start=$(date +%s)
  echo "test: ctest -L $label under $name ($dir)"
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    CC=clang CXX=clang++ cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O0 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1" \
      -DHUBCAST_SANITIZE="$sanitize" >/dev/null
  fi
  if cmake --build "$dir" -j "$JOBS" --target "$target"; then
    run_ctest "$dir" -L "$label"
  else
    echo "test: FAILED to build $target in $dir" >&2
    failed=$((failed + 1))
    rc=1
  fi
  echo "test: $name run took $(($(date +%s) - start)) s"
}

run_ctest "$BUILD" "$@"

# Any report fails the test that made it: UBSan aborts (-fno-sanitize-recover), ASan and LSan
# exit non-zero, TSan exits 66 at the end of a process that reported a race.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1}"
for s in $SANITIZERS; do
  case "$s" in
    asan) run_sanitized asan address unit_checks unit ;;
    tsan) run_sanitized tsan thread concurrency_tests concurrency ;;
    *) echo "test: unknown sanitizer '$s' in HUBCAST_SANITIZERS" >&2; exit 2 ;;
  esac
done

echo "$passed passed, $failed failed"
exit "$rc"
