#!/usr/bin/env bash
# Installs what Hubcast needs to build and test on Debian 12, and nothing that is already there.
# Idempotent: a second run checks and returns without touching apt or npm.
#   - system packages: asks dpkg-query which are missing; only then runs `apt-get update` (once)
#     and installs those, without recommends.
#   - Node.js/npm: a node from another source (with its own bundled npm) counts as installed;
#     Debian's npm conflicts with some such builds, so it is installed only when `npm` is missing.
#   - tests/sdk: `npm ci` (or `npm install` without a lockfile) when its node_modules is missing or
#     older than package.json / package-lock.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  build-essential cmake pkg-config clang-format
  libpoco-dev librocksdb-dev libnats-dev nats-server libcpprest-dev libssl-dev libgtest-dev
  curl procps python3 ca-certificates
  clang libfuzzer-14-dev
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

# The official JavaScript SDK tests.
SDK_DIR="$ROOT/tests/sdk"
if [ -f "$SDK_DIR/package.json" ]; then
  command -v npm >/dev/null 2>&1 || die "npm is missing"
  stamp="$SDK_DIR/node_modules/.hubcast-installed"
  stale=0
  if [ ! -f "$stamp" ] || [ "$SDK_DIR/package.json" -nt "$stamp" ]; then
    stale=1
  elif [ -f "$SDK_DIR/package-lock.json" ] && [ "$SDK_DIR/package-lock.json" -nt "$stamp" ]; then
    stale=1
  fi
  if [ "$stale" -eq 1 ]; then
    if [ -f "$SDK_DIR/package-lock.json" ]; then
      npm_cmd=(npm ci)
    else
      npm_cmd=(npm install)
    fi
    say "tests/sdk: ${npm_cmd[*]}"
    (cd "$SDK_DIR" && "${npm_cmd[@]}" --no-audit --no-fund 2>&1) | redact
    touch "$stamp"
  else
    say "tests/sdk: node_modules up to date"
  fi
fi
