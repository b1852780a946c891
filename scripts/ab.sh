#!/usr/bin/env bash
# ab.sh — compare two revisions under the same load, interleaved (issue 23).
#
#   scripts/ab.sh REV_A REV_B [ROUNDS]     e.g. scripts/ab.sh HEAD~1 HEAD 3
#
# Builds `gatehouse` at each revision (git archive: the working tree is not
# touched), then runs ROUNDS rounds (default 3), each starting a fresh
# server on a fresh SQLite database for B then A (alternating, so drift in
# the machine's load hits both alike) and driving it with the load
# generator of B: `gatehouse bench` with BENCH_ARGS (default: refresh and
# /v1/me at concurrency 8 and 32 for 4 s). Prints every run, then the median
# req/s and p99 per scenario and concurrency for A and B and the ratio B/A,
# and the machine's CPU per request: every process's (server, database,
# load generator), from /proc/stat, over each whole bench run.
#
# AB_PG=postgres://…/test runs each server on a fresh PostgreSQL database
# (created and dropped with psql) instead of SQLite.
set -euo pipefail
a=${1:?usage: scripts/ab.sh REV_A REV_B [ROUNDS]}
b=${2:?usage: scripts/ab.sh REV_A REV_B [ROUNDS]}
rounds=${3:-3}
bench_args=${BENCH_ARGS:---duration 4s --concurrency 8,32 --scenarios refresh,me}
addr=${AB_ADDR:-127.0.0.1:18181}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() { # rev label
  mkdir -p "$work/src-$2"
  git archive "$1" | tar -x -C "$work/src-$2"
  (cd "$work/src-$2" && go build -o "$work/gh-$2" ./cmd/gatehouse)
  echo "built $2 = $(git rev-parse --short "$1")" >&2
}
build "$a" A
build "$b" B

duration=$(sed -n 's/.*--duration \([0-9.]*\)s.*/\1/p' <<<"$bench_args")

busy() { # jiffies the machine's CPUs spent not idle
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

run() { # label
  local dir db; dir=$(mktemp -d -p "$work")
  db="$dir/gh.db"
  if [ -n "${AB_PG:-}" ]; then
    local name; name="ab_$(basename "$dir" | tr -dc 'a-z0-9')"
    psql -q "$AB_PG" -c "CREATE DATABASE $name" >/dev/null
    local base=${AB_PG%%\?*} # the URL up to its query: …/DBNAME
    db="${base%/*}/$name${AB_PG#"$base"}"
  fi
  GATEHOUSE_SECRET=ab-secret-ab-secret-ab-secret-ab-secret "$work/gh-$1" serve --addr "$addr" --db "$db" \
    --log-level warn --login-rate-per-ip 1000000 --max-sessions-per-user -1 >"$dir/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 0.1; done
  local before; before=$(busy)
  # shellcheck disable=SC2086
  if ! "$work/gh-B" bench --url "http://$addr" $bench_args >"$dir/out" 2>&1; then
    echo "$1: the load generator failed:" >&2; cat "$dir/out" "$dir/server.log" >&2
  fi
  local after; after=$(busy)
  awk -v l="$1" 'NR > 1 { print l, $0 }' "$dir/out"
  # CPU per request over the run (setup and ramp included, so an upper bound).
  awk -v l="$1" -v d="$duration" -v j=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    'NR > 1 { n += $3 * d } END { if (n > 0 && d != "") printf "%s cpu/request %.3f ms (all processes, over %d requests)\n", l, j / hz * 1000 / n, n }' "$dir/out"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -n "${AB_PG:-}" ]; then psql -q "$AB_PG" -c "DROP DATABASE $name" >/dev/null; fi
}

for r in $(seq "$rounds"); do
  run B; run A
done | tee "$work/runs"

echo
echo "medians of $rounds runs (req/s, p99):"
awk '
  $2 == "cpu/request" { c[$1, "", ++nc[$1]] = $3; next }
  { key = $2 " " $3; v[$1, key, ++n[$1, key]] = $4; p[$1, key, n[$1, key]] = $6; keys[key] = 1 }
  function median(arr, l, k, cnt,   i, j, t, a) {
    for (i = 1; i <= cnt; i++) a[i] = arr[l, k, i] + 0
    for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((cnt + 1) / 2)]
  }
  END {
    printf "%-14s %10s %10s %7s   %s\n", "scenario conc", "A req/s", "B req/s", "B/A", "p99 of round 1, A -> B"
    for (k in keys) {
      ma = median(v, "A", k, n["A", k]); mb = median(v, "B", k, n["B", k])
      printf "%-14s %10d %10d %6.2fx   %s -> %s\n", k, ma, mb, mb / ma, p["A", k, 1], p["B", k, 1]
    }
    if (nc["A"] && nc["B"]) {
      ca = median(c, "A", "", nc["A"]); cb = median(c, "B", "", nc["B"])
      printf "CPU per request, all processes (median ms): A %.3f, B %.3f, B/A %.2fx\n", ca, cb, cb / ca
    }
  }' "$work/runs"
