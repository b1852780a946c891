#!/usr/bin/env bash
# Fuzz every target in the module, one after another, for FUZZTIME each
# (default 1m; the figures in docs/FUZZING.md are from FUZZTIME=10m).
#
#   FUZZTIME=10m scripts/fuzz.sh            # every target
#   scripts/fuzz.sh ./guard                 # the targets of some packages
#
# PARALLEL sets the fuzzing workers per target (default: GOMAXPROCS). A
# crash stops the run and leaves the failing input in the package's
# testdata/fuzz/<target>/, where `go test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-1m}"
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)
par=()
[ -n "${PARALLEL:-}" ] && par=(-parallel "$PARALLEL")
for pkg in $(go list "${pkgs[@]}"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | cut -c6- | sort -u); do
    echo "== $pkg $target ($FUZZTIME)"
    start=$(date +%s)
    out=$(go test "$pkg" -run "^$target\$" -fuzz "^$target\$" -fuzztime "$FUZZTIME" -timeout 0 "${par[@]}" 2>&1) || { echo "$out"; exit 1; }
    echo "$out" | grep -E '^fuzz: elapsed' | tail -1
    echo "   $(( $(date +%s) - start ))s, corpus $(ls "$(go env GOCACHE)/fuzz/$pkg/$target" 2>/dev/null | wc -l) new inputs in the cache"
  done
done
