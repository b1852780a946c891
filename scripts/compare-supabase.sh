#!/usr/bin/env bash
# compare-supabase.sh — Gatehouse against Supabase Auth (GoTrue) on the same
# PostgreSQL, in one sitting, interleaved: refresh and the caller's account
# (Gatehouse /v1/me, Supabase /user) at 8 and 32 concurrent clients.
#
#   SUPABASE_BIN=path/to/auth scripts/compare-supabase.sh [ROUNDS]
#
# SUPABASE_BIN is Supabase Auth built from a checkout of
# github.com/supabase/auth (`go build -o auth .`), run from SUPABASE_SRC (its
# migrations directory; default: the binary's directory). Supabase runs in
# its faster configuration: refresh-token algorithm 2, a pool of 16 idle
# connections (without one it opens a connection per request), rate limits
# lifted, its log discarded. Gatehouse runs on PostgreSQL with its defaults.
# Each round gives each server a fresh database. Prints every run, then the
# medians and Gatehouse ÷ Supabase, and CPU per request for the whole
# machine (every process, from /proc/stat).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SUPABASE_BIN:?set SUPABASE_BIN to a Supabase Auth binary}"
src=${SUPABASE_SRC:-$(dirname "$SUPABASE_BIN")}
rounds=${1:-3}
PG="${GATEHOUSE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
base=${PG%%\?*}
db_url() { echo "${base%/*}/$1${PG#"$base"}"; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/gatehouse" ./cmd/gatehouse
go build -o "$work/supabench" ./scripts/supabench
dur=4

busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "did not start: $1" >&2; exit 1; }
measure() { # label scenario concurrency command...: one load run, its figures and its CPU per request
  local label=$1 scenario=$2 conc=$3; shift 3
  local b0; b0=$(busy)
  "$@" >"$work/out"
  local b1; b1=$(busy)
  awk -v l="$label" 'NR > 1 { print l, $0 }' "$work/out"
  awk -v l="$label $scenario $conc" -v j=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" -v d=$dur \
    'NR > 1 { printf "%s cpu/request %.3f ms\n", l, j / hz * 1000 / int($3 * d) }' "$work/out"
}

gatehouse() {
  psql -q "$PG" -c "DROP DATABASE IF EXISTS cmp_gh" -c "CREATE DATABASE cmp_gh" 2>/dev/null
  GATEHOUSE_SECRET=cmp-secret-cmp-secret-cmp-secret-cmp-secret "$work/gatehouse" serve --addr 127.0.0.1:18183 \
    --db "$(db_url cmp_gh)" --log-level warn --login-rate-per-ip 1000000 --max-sessions-per-user -1 >"$work/gh.log" 2>&1 &
  local pid=$!
  wait_up http://127.0.0.1:18183/readyz
  for s in refresh me; do
    for c in 8 32; do
      measure gatehouse $s $c "$work/gatehouse" bench --url http://127.0.0.1:18183 --duration ${dur}s --concurrency $c --scenarios $s
    done
  done
  kill $pid; wait $pid 2>/dev/null || true
  psql -q "$PG" -c "DROP DATABASE cmp_gh"
}

supabase() {
  local url; url=$(db_url cmp_supa)
  psql -q "$PG" -c "DROP DATABASE IF EXISTS cmp_supa" -c "CREATE DATABASE cmp_supa" 2>/dev/null
  psql -q "$url" -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
      CREATE USER supabase_auth_admin NOINHERIT CREATEROLE LOGIN PASSWORD 'root'; END IF; END \$\$" \
    -c "CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin" -c "GRANT CREATE ON DATABASE cmp_supa TO supabase_auth_admin" \
    -c "ALTER USER supabase_auth_admin SET search_path = 'auth'"
  local auth_url; auth_url=$(sed 's|://[^@]*@|://supabase_auth_admin:root@|' <<<"$(db_url cmp_supa)")
  (
    cd "$src"
    export GOTRUE_JWT_SECRET=cmp-secret-cmp-secret-cmp-secret-cmp-secret GOTRUE_JWT_EXP=3600 GOTRUE_JWT_AUD=authenticated \
      GOTRUE_JWT_DEFAULT_GROUP_NAME=authenticated GOTRUE_DB_DRIVER=postgres DB_NAMESPACE=auth DATABASE_URL="$auth_url" \
      API_EXTERNAL_URL=http://127.0.0.1:9998 GOTRUE_API_HOST=127.0.0.1 PORT=9998 GOTRUE_SITE_URL=http://localhost:3000 \
      GOTRUE_MAILER_AUTOCONFIRM=true GOTRUE_EXTERNAL_EMAIL_ENABLED=true GOTRUE_LOG_LEVEL=warn \
      GOTRUE_RATE_LIMIT_TOKEN_REFRESH=100000000 GOTRUE_RATE_LIMIT_VERIFY=100000000 GOTRUE_RATE_LIMIT_EMAIL_SENT=100000000 \
      GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED=true GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL=10 \
      GOTRUE_SECURITY_REFRESH_TOKEN_ALGORITHM_VERSION=2 GOTRUE_DB_MAX_POOL_SIZE=16 GOTRUE_DB_MAX_IDLE_POOL_SIZE=16
    "$SUPABASE_BIN" migrate >/dev/null 2>&1
    exec "$SUPABASE_BIN" serve >/dev/null 2>&1
  ) &
  local pid=$!
  wait_up http://127.0.0.1:9998/health
  for s in refresh user; do
    for c in 8 32; do
      measure supabase $s $c "$work/supabench" -url http://127.0.0.1:9998 -scenario $s -concurrency $c -duration ${dur}s
    done
  done
  kill $pid; wait $pid 2>/dev/null || true
  psql -q "$PG" -c "DROP DATABASE cmp_supa WITH (FORCE)"
}

for r in $(seq "$rounds"); do gatehouse; supabase; done | tee "$work/runs"

echo
echo "medians of $rounds rounds (req/s; CPU per request, whole machine):"
awk '
  $4 != "cpu/request" { s = ($2 == "user") ? "me" : $2; k = s " " $3; v[$1, k, ++n[$1, k]] = $4; keys[k] = 1 }
  $4 == "cpu/request" { s = ($2 == "user") ? "me" : $2; k = s " " $3; cp[$1, k, ++nc[$1, k]] = $5; next }
  function median(arr, l, k, cnt,   i, j, t, a) {
    for (i = 1; i <= cnt; i++) a[i] = arr[l, k, i] + 0
    for (i = 1; i <= cnt; i++) for (j = i + 1; j <= cnt; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((cnt + 1) / 2)]
  }
  END {
    printf "%-12s %12s %12s %8s   %s\n", "scenario c", "gatehouse", "supabase", "ratio", "CPU ms/request gatehouse -> supabase"
    for (k in keys) {
      g = median(v, "gatehouse", k, n["gatehouse", k]); s = median(v, "supabase", k, n["supabase", k])
      printf "%-12s %12d %12d %7.1fx   %.3f -> %.3f\n", k, g, s, g / s, median(cp, "gatehouse", k, nc["gatehouse", k]), median(cp, "supabase", k, nc["supabase", k])
    }
  }' "$work/runs"
