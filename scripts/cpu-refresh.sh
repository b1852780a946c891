#!/usr/bin/env bash
# cpu-refresh.sh — CPU per refresh on PostgreSQL, split by process (issue 23,
# item 7): the Gatehouse server, PostgreSQL (every postgres process on the
# machine), and the load generator, each from /proc over one
# `gatehouse bench` run of the refresh scenario on a fresh schema.
#
#   scripts/cpu-refresh.sh [CONCURRENCY...]     default: 8 32
#
# BIN=path/to/gatehouse measures that binary instead of building this tree;
# DUR=seconds per run (default 5); SERVE_ARGS are added to `serve`
# (e.g. --db-group-commit=false) and SERVE_ENV to its environment (e.g.
# GOMAXPROCS=1). Needs PostgreSQL on 127.0.0.1:5432 (trust
# auth, database test) or GATEHOUSE_TEST_POSTGRES.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${GATEHOUSE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
DUR="${DUR:-5}"
addr=127.0.0.1:18092
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_cpu CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT
if [ -n "${BIN:-}" ]; then cp "$BIN" "$work/gatehouse"; else go build -o "$work/gatehouse" ./cmd/gatehouse; fi
. scripts/cpu-split.sh

for c in "${@:-8 32}"; do
  for conc in $c; do
    psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_cpu CASCADE; CREATE SCHEMA gh_cpu" >/dev/null 2>&1
    # shellcheck disable=SC2086
    env ${SERVE_ENV:-} GATEHOUSE_SECRET=cpu-secret-cpu-secret-cpu-secret-cpu-secret "$work/gatehouse" serve --addr $addr \
      --db "$PG&search_path=gh_cpu" --log-level warn --login-rate-per-ip 1000000 --max-sessions-per-user -1 \
      ${SERVE_ARGS:-} >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 0.1; done
    # The load generator's setup (registering users: argon2id) is left
    # out: its CPU is read from its own /proc entry once the run is going.
    "$work/gatehouse" bench --url "http://$addr" --duration "${DUR}s" --concurrency "$conc" --scenarios refresh >"$work/out" 2>&1 &
    bench=$!
    sleep 1.5 # setup and ramp
    before=$(cpu_sample $pid $bench)
    sleep "$((DUR - 2))"
    after=$(cpu_sample $pid $bench)
    wait $bench || { cat "$work/out" "$work/server.log" >&2; exit 1; }
    kill $pid; wait $pid 2>/dev/null || true
    rps=$(awk '$1 == "refresh" { print $3 }' "$work/out")
    cpu_report "" "$conc" "$rps" "$before" "$after" refresh
  done
done
