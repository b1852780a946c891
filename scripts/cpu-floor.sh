#!/usr/bin/env bash
# cpu-floor.sh — the floor under CPU per refresh (issue 23, item 7): what a
# refresh's unavoidable parts cost on this machine with nothing of
# Gatehouse around them (scripts/floor), beside Gatehouse's own refresh
# (scripts/cpu-refresh.sh), in one sitting, ROUNDS times interleaved:
#
#   bare       net/http: read a refresh-sized JSON body, answer a refresh-sized one
#   sign       bare + an Ed25519 signature over an access token's claims
#   sign+pg    sign + one single-row UPDATE … RETURNING committed through pgx
#   raw+pg     sign+pg served from a plain accept loop instead of net/http's
#              server (what a hand-written HTTP loop would save)
#   gatehouse  a real refresh (cpu-refresh.sh)
#
#   scripts/cpu-floor.sh [CONCURRENCY] [ROUNDS]      default: 8 3
#
# Each line splits CPU per request by process: the server, PostgreSQL
# (every postgres process on the machine), the load generator. Needs
# PostgreSQL on 127.0.0.1:5432 (trust auth, database test) or
# GATEHOUSE_TEST_POSTGRES.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${GATEHOUSE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
conc="${1:-8}"; rounds="${2:-3}"; DUR="${DUR:-5}"
addr=127.0.0.1:18097
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_floor CASCADE" >/dev/null 2>&1; rm -rf "$work"' EXIT
go build -o "$work/floor" ./scripts/floor
go build -o "$work/gatehouse" ./cmd/gatehouse
. scripts/cpu-split.sh

floor() { # name, serve flags...
  local name=$1; shift
  psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_floor CASCADE; CREATE SCHEMA gh_floor" >/dev/null 2>&1
  "$work/floor" serve --addr $addr "$@" >"$work/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://$addr/" && break; sleep 0.1; done
  "$work/floor" load --url "http://$addr" --concurrency "$conc" --duration "${DUR}s" >"$work/out" 2>&1 &
  local load=$!
  sleep 1
  local before after
  before=$(cpu_sample $pid $load)
  sleep "$((DUR - 2))"
  after=$(cpu_sample $pid $load)
  wait $load || { cat "$work/out" "$work/server.log" >&2; exit 1; }
  kill $pid; wait $pid 2>/dev/null || true
  local rps; rps=$(awk '$1 == "floor" { print $3 }' "$work/out")
  cpu_report "$name" "$conc" "$rps" "$before" "$after" request
}

for _ in $(seq "$rounds"); do
  floor bare
  floor sign --sign
  floor sign+pg --sign --pg "$PG&search_path=gh_floor"
  floor raw+pg --raw --sign --pg "$PG&search_path=gh_floor"
  BIN="$work/gatehouse" DUR="$DUR" scripts/cpu-refresh.sh "$conc" | sed 's/^/gatehouse /'
done
