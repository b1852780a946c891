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
tck=$(getconf CLK_TCK)
ticks() { for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true; done | awk '{ s += $1 } END { print s + 0 }'; }

floor() { # name, serve flags...
  local name=$1; shift
  psql "$PG" -qc "DROP SCHEMA IF EXISTS gh_floor CASCADE; CREATE SCHEMA gh_floor" >/dev/null 2>&1
  "$work/floor" serve --addr $addr "$@" >"$work/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://$addr/" && break; sleep 0.1; done
  "$work/floor" load --url "http://$addr" --concurrency "$conc" --duration "${DUR}s" >"$work/out" 2>&1 &
  local load=$!
  sleep 1
  local s0 p0 b0 t0 s1 p1 b1 t1
  s0=$(ticks $pid); p0=$(ticks $(pgrep -x postgres)); b0=$(ticks $load); t0=$(date +%s.%N)
  sleep "$((DUR - 2))"
  s1=$(ticks $pid); p1=$(ticks $(pgrep -x postgres)); b1=$(ticks $load); t1=$(date +%s.%N)
  wait $load || { cat "$work/out" "$work/server.log" >&2; exit 1; }
  kill $pid; wait $pid 2>/dev/null || true
  local rps; rps=$(awk '$1 == "floor" { print $3 }' "$work/out")
  awk -v name="$name" -v c="$conc" -v rps="$rps" -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) -v hz="$tck" -v t0="$t0" -v t1="$t1" 'BEGIN {
    n = rps * (t1 - t0); ms = 1000 / hz / n
    printf "%-9s c=%-3s %6d req/s   per request: server %.3f ms, postgres %.3f ms, load generator %.3f ms, all %.3f ms\n",
      name, c, rps, s * ms, p * ms, b * ms, (s + p + b) * ms }'
}

for _ in $(seq "$rounds"); do
  floor bare
  floor sign --sign
  floor sign+pg --sign --pg "$PG&search_path=gh_floor"
  floor raw+pg --raw --sign --pg "$PG&search_path=gh_floor"
  BIN="$work/gatehouse" DUR="$DUR" scripts/cpu-refresh.sh "$conc" | sed 's/^/gatehouse /'
done
