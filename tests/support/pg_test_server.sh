#!/usr/bin/env bash
# Starts or stops the PostgreSQL 15 server the tests share: a fresh cluster in DIR, owned by
# the `postgres` user (PostgreSQL refuses to run as root), listening only on a unix socket in
# DIR (no TCP port to collide with). Tests connect with
#   postgresql:///postgres?host=DIR&port=PORT&user=postgres
# and create a database of their own. Durability is off: the data is thrown away.
#   pg_test_server.sh start DIR PORT | restart DIR | halt DIR | resume DIR | stop DIR
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
cmd=${1:?start|stop}
dir=${2:?directory}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    port=${3:?port}
    [ -x "$BIN/initdb" ] || { echo "PostgreSQL 15 is not installed (scripts/install-deps.sh)" >&2; exit 1; }
    if [ -f "$dir/data/postmaster.pid" ]; then as_pg "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "-c listen_addresses='' -k $dir -p $port -c fsync=off -c synchronous_commit=off \
          -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB" >"$dir/options"
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o "$(cat "$dir/options")" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
    ;;
  restart)
    # Fast shutdown (sessions are ended, as in a real restart), then start again at once.
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 restart >/dev/null
    ;;
  halt)
    # An outage: the server goes away (fast shutdown) and its data stays for `resume`.
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    ;;
  resume)
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o "$(cat "$dir/options")" \
      >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start DIR PORT | restart DIR | halt DIR | resume DIR | stop DIR" >&2; exit 2 ;;
esac
