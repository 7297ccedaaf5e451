#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) under libFuzzer for SECONDS each.
#   tests/fuzz/run.sh SECONDS [target ...]      e.g. tests/fuzz/run.sh 600 filter json
# Configures and builds build-fuzz/ with clang (-DHUBCAST_FUZZ=ON: -fsanitize=fuzzer,address,
# undefined), then runs each target on a working corpus in build-fuzz/corpus/<target>/, seeded
# from tests/fuzz/corpus/<target>/: new corpus entries stay out of the repository. Crashing
# inputs are saved in build-fuzz/crashers/<target>/ (see README.md for turning one into a
# regression seed). One line per target goes to stdout and build-fuzz/summary.txt.
#   HUBCAST_FUZZ_PARALLEL  targets run at once (default 1; the machines have 2 cores)
#   HUBCAST_JOBS           build jobs (default 2)
#   HUBCAST_FUZZ_NO_BUILD  set: run the binaries already in build-fuzz/tests/fuzz/ (built by hand,
#                          e.g. only the sources a target needs while the machine is busy)
# Exits 1 if any target found a crash.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build-fuzz"
SEEDS="$ROOT/tests/fuzz/corpus"
SECONDS_EACH="${1:?usage: tests/fuzz/run.sh SECONDS [target ...]}"
shift
PARALLEL="${HUBCAST_FUZZ_PARALLEL:-1}"
JOBS="${HUBCAST_JOBS:-2}"

say() { printf 'fuzz: %s\n' "$*" >&2; }

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for dir in "$SEEDS"/*/; do targets+=("$(basename "$dir")"); done
fi

if [ -n "${HUBCAST_FUZZ_NO_BUILD:-}" ]; then
  say "using the targets already in $BUILD/tests/fuzz (HUBCAST_FUZZ_NO_BUILD)"
elif [ ! -f "$BUILD/CMakeCache.txt" ]; then
  say "configuring $BUILD (clang, libFuzzer, ASan+UBSan)"
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHUBCAST_FUZZ=ON >/dev/null
fi
if [ -z "${HUBCAST_FUZZ_NO_BUILD:-}" ]; then
  build_targets=()
  for t in "${targets[@]}"; do build_targets+=("${t}_fuzz"); done
  say "building ${build_targets[*]}"
  cmake --build "$BUILD" -j "$JOBS" --target "${build_targets[@]}" >/dev/null
fi

: >"$BUILD/summary.txt"
run_one() {
  local t="$1" corpus="$BUILD/corpus/$1" crashers="$BUILD/crashers/$1" log="$BUILD/$1.log"
  mkdir -p "$corpus" "$crashers"
  local dict=()
  [ -f "$ROOT/tests/fuzz/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/$t.dict")
  local before
  before=$(find "$crashers" -type f | wc -l)
  set +e
  "$BUILD/tests/fuzz/${t}_fuzz" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="$crashers/" "${dict[@]}" \
    "$corpus" "$SEEDS/$t" >"$log" 2>&1
  local rc=$?
  set -e
  local execs seconds found
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  seconds=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  found=$(( $(find "$crashers" -type f | wc -l) - before ))
  local line
  line=$(printf '%-14s %6ss %12s execs  corpus %5s  exit %s  new crashers %s' "$t" \
    "${seconds:-?}" "${execs:-?}" "$(find "$corpus" -type f | wc -l)" "$rc" "$found")
  echo "$line" | tee -a "$BUILD/summary.txt"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    say "$t: see $log and $crashers"
    return 1
  fi
}

failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
