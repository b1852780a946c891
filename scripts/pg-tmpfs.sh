#!/usr/bin/env bash
# pg-tmpfs.sh — a throwaway PostgreSQL whose data lives in memory (/dev/shm),
# so that a commit's WAL flush costs almost nothing. It answers the question
# the shared machine's disk leaves open: how refresh compares with
# `pgbench -N` when neither waits on the disk (docs/PERFORMANCE.md). Same
# version and default settings as Debian's cluster; fsync and
# synchronous_commit stay on.
#
#   scripts/pg-tmpfs.sh start     # 127.0.0.1:${PG_TMPFS_PORT:-5433}, database test, trust auth
#   GATEHOUSE_TEST_POSTGRES='postgres://postgres@127.0.0.1:5433/test?sslmode=disable' scripts/bench-refresh.sh
#   scripts/pg-tmpfs.sh stop      # and its data is gone
#
# Never for data you want to keep: a reboot loses it.
set -euo pipefail
port="${PG_TMPFS_PORT:-5433}"
dir="${PG_TMPFS_DIR:-/dev/shm/gatehouse-pg-tmpfs}"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "${bin:-}/initdb" ] || { echo "pg-tmpfs.sh: no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }
as_pg() { # initdb and the server refuse to run as root
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}
case "${1:-}" in
start)
  if pg_isready -q -h 127.0.0.1 -p "$port"; then echo "pg-tmpfs.sh: something already answers on $port" >&2; exit 1; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_pg "'$bin/initdb' -D '$dir/data' -A trust -U postgres >/dev/null"
  as_pg "'$bin/pg_ctl' -D '$dir/data' -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1\" -l '$dir/log' -w start >/dev/null"
  psql -q "postgres://postgres@127.0.0.1:$port/postgres" -c "CREATE DATABASE test"
  echo "postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
  ;;
stop)
  [ -d "$dir/data" ] && as_pg "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null" || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: scripts/pg-tmpfs.sh start|stop" >&2
  exit 2
  ;;
esac
