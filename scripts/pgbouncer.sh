#!/usr/bin/env bash
# Starts Debian's PgBouncer in transaction mode on 127.0.0.1:${PGBOUNCER_PORT:-6432}
# in front of the PostgreSQL on 127.0.0.1:5432 (trust auth), for the tests
# that run the store and two instances through a pooler
# (GATEHOUSE_TEST_PGBOUNCER). Every database name is forwarded, so each test
# can use a database of its own. Idempotent: an instance already answering
# on the port is left alone.
set -euo pipefail
port="${PGBOUNCER_PORT:-6432}"
bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
if pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  exit 0
fi
dir="${PGBOUNCER_DIR:-/tmp/gatehouse-pgbouncer}"
mkdir -p "$dir"
# A pid file left by a PgBouncer that is gone would stop a new one.
if [ -f "$dir/pgbouncer.pid" ] && ! kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
  rm -f "$dir/pgbouncer.pid"
fi
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432 user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
auth_type = any
pool_mode = transaction
default_pool_size = 40
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
unix_socket_dir =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
user_args=()
if [ "$(id -u)" = 0 ]; then
  # PgBouncer refuses to run as root.
  chown -R postgres "$dir" 2>/dev/null || true
  user_args=(-u postgres)
fi
"$bin" -d "${user_args[@]}" "$dir/pgbouncer.ini"
for _ in $(seq 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && exit 0
  sleep 0.1
done
echo "pgbouncer did not start; see $dir/pgbouncer.log" >&2
exit 1
