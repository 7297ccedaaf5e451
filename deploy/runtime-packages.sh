#!/usr/bin/env bash
# Prints, one per line, the Debian packages that hold the shared libraries a binary loads
# (default build/server/hubcast): what a runtime image or host needs besides the binary.
# deploy/Containerfile installs exactly these in its runtime stage. Fails, naming it, on a
# library that no installed package owns, or one the loader cannot find.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${1:-$ROOT/build/server/hubcast}"
[ -x "$binary" ] || { echo "runtime-packages: $binary is not an executable" >&2; exit 1; }

libraries="$(ldd "$binary")"
if grep -q 'not found' <<<"$libraries"; then
  echo "runtime-packages: the loader cannot find: $(grep 'not found' <<<"$libraries" | tr -s ' \t' ' ')" >&2
  exit 1
fi

owner() {  # library path -> package; Debian 12 merged /usr, so dpkg may know either spelling
  local path=$1 real candidate
  real="$(readlink -f "$path")"
  for candidate in "$path" "$real" "/usr$path" "/usr$real" "${path#/usr}" "${real#/usr}"; do
    dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1 && return 0
  done
  echo "runtime-packages: no installed package owns $path" >&2
  return 1
}

packages=()
while read -r library; do
  packages+=("$(owner "$library")") || exit 1
done < <(awk '/=> \// { print $3 }' <<<"$libraries")
printf '%s\n' "${packages[@]}" | sort -u
