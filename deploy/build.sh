#!/usr/bin/env bash
# Configures (first time, or after a failed configure) and builds Hubcast into build/.
#   HUBCAST_JOBS        parallel build jobs (default 2: the machines have 2 cores)
#   HUBCAST_BUILD_TYPE  CMake build type at configure time (default RelWithDebInfo)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
JOBS="${HUBCAST_JOBS:-2}"
BUILD_TYPE="${HUBCAST_BUILD_TYPE:-RelWithDebInfo}"

fail() { printf 'build: FAILED: %s\n' "$*" >&2; exit 1; }

if [ ! -f "$BUILD/CMakeCache.txt" ] || { [ ! -f "$BUILD/Makefile" ] && [ ! -f "$BUILD/build.ninja" ]; }; then
  printf 'build: configuring %s (%s)\n' "$BUILD" "$BUILD_TYPE"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" || fail "cmake configure"
fi

printf 'build: building with -j%s\n' "$JOBS"
cmake --build "$BUILD" -j "$JOBS" || fail "cmake --build (see the first error above)"
printf 'build: ok\n'
