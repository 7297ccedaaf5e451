#!/usr/bin/env bash
# Configures (first time, or after a failed configure) and builds Hubcast into build/.
#   HUBCAST_JOBS        parallel build jobs (default 2: the machines have 2 cores)
#   HUBCAST_BUILD_TYPE  CMake build type at configure time (default RelWithDebInfo)
#   HUBCAST_CMAKE_ARGS  more arguments for the configure step, split on spaces
#                       (deploy/Containerfile: -DBUILD_TESTING=OFF)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
JOBS="${HUBCAST_JOBS:-2}"
BUILD_TYPE="${HUBCAST_BUILD_TYPE:-RelWithDebInfo}"
read -r -a CMAKE_ARGS <<<"${HUBCAST_CMAKE_ARGS:-}"

fail() { printf 'build: FAILED: %s\n' "$*" >&2; exit 1; }

if [ ! -f "$BUILD/CMakeCache.txt" ] || { [ ! -f "$BUILD/Makefile" ] && [ ! -f "$BUILD/build.ninja" ]; }; then
  printf 'build: configuring %s (%s)\n' "$BUILD" "$BUILD_TYPE"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "${CMAKE_ARGS[@]}" ||
    fail "cmake configure"
fi

printf 'build: building with -j%s\n' "$JOBS"
cmake --build "$BUILD" -j "$JOBS" || fail "cmake --build (see the first error above)"
printf 'build: ok\n'
