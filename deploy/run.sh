#!/usr/bin/env bash
# Installs what is missing, builds, and starts one Hubcast node in the foreground.
# Defaults: --port 8080 --bind 127.0.0.1 --data-dir ./hubcast-data (relative to where you run it).
# Any argument is passed to `hubcast serve`; a setting given as a flag, as a HUBCAST_<NAME>
# variable, or through --config/HUBCAST_CONFIG is not overridden by these defaults.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

"$ROOT/deploy/install-deps.sh"
"$ROOT/deploy/build.sh"

given() {  # flag name without dashes, then the arguments
  local name="$1" env_name arg
  shift
  env_name="HUBCAST_$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')"
  [ -n "${!env_name:-}" ] && return 0
  for arg in "$@"; do
    case "$arg" in
      --"$name" | --"$name"=*) return 0 ;;
    esac
  done
  return 1
}

defaults=()
if ! given config "$@"; then
  given port "$@" || defaults+=(--port 8080)
  given bind "$@" || defaults+=(--bind 127.0.0.1)
  given data-dir "$@" || defaults+=(--data-dir ./hubcast-data)
fi

exec "$ROOT/build/server/hubcast" serve "${defaults[@]}" "$@"
