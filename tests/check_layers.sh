#!/usr/bin/env bash
# Fails (exit 1, one `file:line: reason` per problem) when a source file breaks the layering in
# ARCHITECTURE.md: server -> rest -> replication -> storage -> base (each may include only its
# own folder and the ones after it), or includes a third-party header outside its owner:
#   cpprest/pplx  never from a .h file, and only in rest/
#   rocksdb       only in storage/
#   nats          only in replication/
#   Poco          not in base/, storage/, replication/
# Usage: tests/check_layers.sh [SOURCE_ROOT]   (default: the repository holding this script)
set -euo pipefail

ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$ROOT"

LAYERS=(base storage replication rest server)  # lowest first

rank() {
  local i
  for i in "${!LAYERS[@]}"; do
    [ "${LAYERS[$i]}" = "$1" ] && { echo "$i"; return; }
  done
  echo -1
}

include_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^>"]+)[>"]'
problems=0
checked=0
report() {
  printf '%s:%s: %s\n' "$1" "$2" "$3"
  problems=$((problems + 1))
}

for layer in "${LAYERS[@]}"; do
  [ -d "$layer" ] || continue
  own=$(rank "$layer")
  while IFS= read -r -d '' file; do
    checked=$((checked + 1))
    while IFS= read -r hit; do
      line="${hit%%:*}"
      text="${hit#*:}"
      [[ "$text" =~ $include_re ]] || continue
      delimiter="${BASH_REMATCH[1]}"
      target="${BASH_REMATCH[2]}"
      top="${target%%/*}"
      if [ "$delimiter" = '"' ] && [ "$target" != "$top" ]; then
        theirs=$(rank "$top")
        if [ "$theirs" -gt "$own" ]; then
          report "$file" "$line" "upward include of \"$target\": $layer/ may not use $top/"
        fi
      fi
      case "$top" in
        cpprest | pplx)
          case "$file" in
            *.h | *.hpp) report "$file" "$line" "cpprestsdk header <$target> in a header file" ;;
          esac
          [ "$layer" = rest ] ||
            report "$file" "$line" "cpprestsdk header <$target> outside rest/"
          ;;
        rocksdb)
          [ "$layer" = storage ] || report "$file" "$line" "RocksDB header <$target> outside storage/"
          ;;
        nats | nats.h)
          [ "$layer" = replication ] ||
            report "$file" "$line" "NATS header <$target> outside replication/"
          ;;
        Poco)
          case "$layer" in
            base | storage | replication)
              report "$file" "$line" "POCO header <$target> in $layer/ (POCO belongs to rest/ and server/)"
              ;;
          esac
          ;;
      esac
    done < <(grep -nE "$include_re" "$file" || true)
  done < <(find "$layer" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.hpp' -o -name '*.cpp' \) \
             -print0 | sort -z)
done

if [ "$problems" -gt 0 ]; then
  echo "check_layers: $problems problem(s) in $checked files (see ARCHITECTURE.md, 'Folders')" >&2
  exit 1
fi
echo "check_layers: $checked files, no upward or misplaced includes"
