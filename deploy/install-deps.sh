#!/usr/bin/env bash
# Installs what Hubcast needs to build and test on Debian 12, and nothing that is already there.
# Idempotent: a second run checks and returns without touching apt or npm.
#   - system packages: asks dpkg-query which are missing; only then runs `apt-get update` (once)
#     and installs those, without recommends.
#   - Node.js/npm: a node from another source (with its own bundled npm) counts as installed;
#     Debian's npm conflicts with some such builds, so it is installed only when `npm` is missing.
#   - tests/sdk and tests/bench/peers: `npm ci` (or `npm install` without a lockfile) when a
#     folder's node_modules is missing or older than package.json / package-lock.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  build-essential cmake pkg-config clang-format
  libpoco-dev librocksdb-dev libnats-dev nats-server libcpprest-dev libssl-dev libgtest-dev
  libprotobuf-dev protobuf-compiler
  curl procps python3 ca-certificates
  clang libfuzzer-14-dev
  chromium fonts-dejavu-core  # tests/integration/dashboard_test.cc drives the dashboard headless
)

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

# Package tools may print the addresses they fetch from; keep those out of our logs.
redact() { sed -E 's#[A-Za-z][A-Za-z0-9+.-]*://[^/[:space:]]+#<registry>#g'; }

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done
if ! command -v node >/dev/null 2>&1 && ! is_installed nodejs; then
  missing+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1 && ! is_installed npm; then
  missing+=(npm)
fi

if [ "${#missing[@]}" -eq 0 ]; then
  say "all system packages present"
else
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}, and there is no apt-get"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run as root (no sudo here)"
    SUDO=(sudo)
  fi
  APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  say "installing: ${missing[*]}"
  "${APT[@]}" -qq update 2>&1 | redact
  "${APT[@]}" -qq -y install --no-install-recommends "${missing[@]}" 2>&1 | redact
  for pkg in "${missing[@]}"; do
    is_installed "$pkg" || die "$pkg is still not installed"
  done
  say "installed: ${missing[*]}"
fi

# npm packages: `npm ci` in a folder (`npm install` without a lockfile) when its node_modules is
# missing or older than package.json / package-lock.json.
npm_ci() {
  local dir="$1" name="$2"
  [ -f "$dir/package.json" ] || return 0
  command -v npm >/dev/null 2>&1 || die "npm is missing"
  local stamp="$dir/node_modules/.hubcast-installed"
  local stale=0
  if [ ! -f "$stamp" ] || [ "$dir/package.json" -nt "$stamp" ]; then
    stale=1
  elif [ -f "$dir/package-lock.json" ] && [ "$dir/package-lock.json" -nt "$stamp" ]; then
    stale=1
  fi
  if [ "$stale" -eq 0 ]; then
    say "$name: node_modules up to date"
    return 0
  fi
  local npm_cmd=(npm install)
  [ -f "$dir/package-lock.json" ] && npm_cmd=(npm ci)
  say "$name: ${npm_cmd[*]}"
  (cd "$dir" && "${npm_cmd[@]}" --no-audit --no-fund 2>&1) | redact
  touch "$stamp"
}

npm_ci "$ROOT/tests/sdk" "tests/sdk"                  # the official JavaScript SDK tests
npm_ci "$ROOT/tests/bench/peers" "tests/bench/peers"  # the Node servers compare.sh measures
