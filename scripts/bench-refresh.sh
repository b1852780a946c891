#!/usr/bin/env bash
# Refresh rotation over HTTP on PostgreSQL (with group commit, and without:
# --db-group-commit=false) and on SQLite, with `pgbench -N` at 8 and 32
# clients on the same machine as the yardstick, in one run. Prints the
# figures docs/PERFORMANCE.md reports. Needs PostgreSQL on 127.0.0.1:5432 (trust
# auth, database test) and pgbench. Only loopback traffic.
#
# BIN=path/to/gatehouse benchmarks that binary instead of building this tree
# (to compare two versions in one run); SKIP_PGBENCH=1 skips the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${GATEHOUSE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
DUR="${DUR:-5s}"
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" # no NOTICEs from the schema resets
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_bench CASCADE; DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history" >/dev/null 2>&1; rm -rf "$work"' EXIT
if [ -n "${BIN:-}" ]; then
  cp "$BIN" "$work/gatehouse"
else
  go build -o "$work/gatehouse" ./cmd/gatehouse
fi

if [ -z "${SKIP_PGBENCH:-}" ]; then
  pgbench -i -q -s 10 "$PG" >/dev/null 2>&1
  for c in 8 32; do
    echo "== pgbench -N (simple update, $c clients, 2 threads, scale 10) =="
    pgbench -N -c $c -j 2 -T "${DUR%s}" "$PG" 2>/dev/null | grep -E "^tps|latency average"
  done
fi

run() { # name db [serve flags]
  local addr=127.0.0.1:18080
  GATEHOUSE_SECRET=bench-secret-bench-secret-bench-secret \
    "$work/gatehouse" serve --addr $addr --db "$2" --log-level warn --login-rate-per-ip 1000000 \
    --max-sessions-per-user -1 "${@:3}" >"$work/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf http://$addr/readyz >/dev/null && break; sleep 0.1; done
  echo "== gatehouse refresh on $1 =="
  "$work/gatehouse" bench --url http://$addr --duration "$DUR" --concurrency 1,8,32 --scenarios refresh
  kill $pid; wait $pid 2>/dev/null || true
}

psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_bench CASCADE; CREATE SCHEMA gh_bench" >/dev/null
run postgres "$PG&search_path=gh_bench"
help=$("$work/gatehouse" serve --help 2>&1 || true) # binaries from before group commit lack the flag
if grep -q db-group-commit <<<"$help"; then
  psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_bench CASCADE; CREATE SCHEMA gh_bench" >/dev/null
  run "postgres without group commit" "$PG&search_path=gh_bench" --db-group-commit=false
fi
run sqlite "$work/bench.db"
