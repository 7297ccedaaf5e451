#!/usr/bin/env bash
# Fails when README.md's configuration table misses an option that `hubcast serve --help` lists:
# the table and the option declarations must not drift apart.
set -euo pipefail
binary=$1
readme=$2
missing=0
for opt in $("$binary" serve --help | grep -oE '^  --[a-z-]+' | tr -d ' '); do
  if ! grep -q -- "\`$opt" "$readme"; then
    echo "README.md does not document $opt"
    missing=1
  fi
done
exit $missing
