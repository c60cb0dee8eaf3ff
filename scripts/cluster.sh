#!/usr/bin/env bash
# A whole Quire cluster on this machine, on loopback, for trying distributed mode:
#   PostgreSQL 15 (the state), 2 API/delivery nodes (`quire serve --workers 0`) behind haproxy,
#   2 ingest worker nodes (`quire worker`), all sharing one file: blob directory.
#
#   scripts/cluster.sh up       start everything; prints the URL and an admin key
#   scripts/cluster.sh up --s3  the same with the blobs in S3: a one-node Ceph radosgw on
#                               loopback (scripts/s3-test-server.sh) and a disk cache per node.
#                               That S3 server keeps objects in memory: `down` discards them
#                               (the database stays), so `down` then `up --s3` starts afresh.
#   scripts/cluster.sh status   what runs, and whether it answers
#   scripts/cluster.sh down     stop everything (the data stays in $QUIRE_CLUSTER_DIR)
#
# QUIRE_CLUSTER_DIR (default /tmp/quire-cluster) holds the database, blobs, logs and pids;
# QUIRE_BIN (default build/quire) is the binary. Packages: scripts/install-deps.sh.
set -euo pipefail

DIR=${QUIRE_CLUSTER_DIR:-/tmp/quire-cluster}
HERE=$(cd "$(dirname "$0")/.." && pwd)
QUIRE=${QUIRE_BIN:-$HERE/build/quire}
PGBIN=/usr/lib/postgresql/15/bin
PIDS=$DIR/pids

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_http() {  # URL seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

STORAGE=()  # --storage (and the cache) every node gets; set by up
start_node() {  # name kind(serve|worker) args...
  local name=$1 kind=$2
  shift 2
  mkdir -p "$DIR/$name"
  nohup "$QUIRE" "$kind" --data "$DIR/$name" --database "$(cat "$DIR/database-url")" \
    "${STORAGE[@]}" --node-id "$name" --allow-private-origins "$@" \
    >>"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$PIDS/$name"
}

# Blobs in S3: the project's radosgw in $DIR/s3, its keys exported for the nodes.
start_s3() {
  if [ ! -f "$DIR/s3/s3.env" ] || ! "$HERE/scripts/s3-test-server.sh" env "$DIR/s3" >/dev/null 2>&1 ||
     ! curl -fsS -o /dev/null "$(. "$DIR/s3/s3.env"; echo "$S3_ENDPOINT")" 2>/dev/null; then
    rm -rf "$DIR/s3"
    S3_BUCKETS=quire "$HERE/scripts/s3-test-server.sh" start "$DIR/s3" >"$DIR/logs/s3.log" 2>&1 ||
      { tail -20 "$DIR/logs/s3.log" >&2; exit 1; }
  fi
  # shellcheck disable=SC1091
  . "$DIR/s3/s3.env"
  export QUIRE_S3_ACCESS_KEY=$S3_ACCESS_KEY QUIRE_S3_SECRET_KEY=$S3_SECRET_KEY
  echo "s3://$S3_BUCKET/cluster?endpoint=$S3_ENDPOINT&region=$S3_REGION&path_style=1" >"$DIR/storage-url"
}

up() {
  local s3=0
  [ "${1:-}" = "--s3" ] && s3=1
  [ -x "$QUIRE" ] || { echo "no quire binary at $QUIRE (make build, or set QUIRE_BIN)" >&2; exit 1; }
  [ -x "$PGBIN/initdb" ] && command -v haproxy >/dev/null ||
    { echo "PostgreSQL 15 and haproxy are needed: scripts/install-deps.sh" >&2; exit 1; }
  mkdir -p "$DIR" "$PIDS" "$DIR/logs" "$DIR/blobs"
  if alive "$PIDS/haproxy"; then echo "already up"; status; return; fi

  # PostgreSQL: a cluster of its own in $DIR/pg (owned by postgres, which refuses root).
  if [ ! -f "$DIR/pg/PG_VERSION" ]; then
    mkdir -p "$DIR/pg"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$DIR/pg"
    chmod 0700 "$DIR/pg"
    as_pg "$PGBIN/initdb" -D "$DIR/pg" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$DIR/logs/initdb.log"
    free_port >"$DIR/pg-port"
  fi
  local pgport
  pgport=$(cat "$DIR/pg-port")
  [ "$(id -u)" -ne 0 ] || chown postgres: "$DIR/logs"
  as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/logs/postgresql.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $pgport -k $DIR/pg -c max_connections=200" >/dev/null
  as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$pgport" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'quire'" | grep -q 1 ||
    as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$pgport" -U postgres quire
  echo "postgresql://postgres@127.0.0.1:$pgport/quire" >"$DIR/database-url"

  if [ $s3 -eq 1 ]; then
    start_s3
  else
    echo "file:$DIR/blobs" >"$DIR/storage-url"
  fi
  STORAGE=(--storage "$(cat "$DIR/storage-url")")

  # Ports and the administrator's secret are chosen once and kept.
  [ -f "$DIR/ports" ] || echo "$(free_port) $(free_port) $(free_port)" >"$DIR/ports"
  read -r lb a1 a2 <"$DIR/ports"
  [ -f "$DIR/admin-secret" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$DIR/admin-secret")
  local url="http://127.0.0.1:$lb"

  # The first API node migrates the schema and seeds the administrator; then the rest.
  start_node api-1 serve --workers 0 --listen "127.0.0.1:$a1" --public-url "$url" \
    --admin-key admin --admin-secret "$(cat "$DIR/admin-secret")"
  wait_http "http://127.0.0.1:$a1/healthz" 30 || { tail -20 "$DIR/logs/api-1.log" >&2; exit 1; }
  start_node api-2 serve --workers 0 --listen "127.0.0.1:$a2" --public-url "$url"
  start_node worker-1 worker --workers 1
  start_node worker-2 worker --workers 1
  wait_http "http://127.0.0.1:$a2/healthz" 30 || { tail -20 "$DIR/logs/api-2.log" >&2; exit 1; }

  cat >"$DIR/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend quire
  bind 127.0.0.1:$lb
  default_backend api
backend api
  balance roundrobin
  option httpchk GET /healthz
  retry-on conn-failure empty-response 503
  retries 2
  option redispatch
  server api-1 127.0.0.1:$a1 check inter 1s fall 2 rise 1
  server api-2 127.0.0.1:$a2 check inter 1s fall 2 rise 1
EOF
  haproxy -f "$DIR/haproxy.cfg" -D -p "$PIDS/haproxy"
  wait_http "$url/healthz" 10 || { echo "haproxy did not answer" >&2; exit 1; }
  echo "Quire cluster up: $url"
  echo "  admin key: admin    secret: $(cat "$DIR/admin-secret")"
  echo "  try: curl -u admin:$(cat "$DIR/admin-secret") $url/customers"
  echo "  database: $(cat "$DIR/database-url")   blobs: $(cat "$DIR/storage-url")   logs: $DIR/logs"
  if [ $s3 -eq 1 ]; then
    echo "  S3 (radosgw, in memory: 'down' discards the objects): $(. "$DIR/s3/s3.env"; echo "$S3_ENDPOINT")"
    echo "  aws cli: set -a; . $DIR/s3/s3.env; set +a; AWS_ACCESS_KEY_ID=\$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=\$S3_SECRET_KEY aws --endpoint-url \$S3_ENDPOINT s3 ls s3://quire/cluster/ --recursive"
  fi
}

status() {
  local any=0
  if [ -f "$DIR/pg/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" status >/dev/null 2>&1; then
    echo "postgresql  running  $(cat "$DIR/database-url" 2>/dev/null)"
    any=1
  else
    echo "postgresql  stopped"
  fi
  for n in haproxy api-1 api-2 worker-1 worker-2; do
    if alive "$PIDS/$n"; then echo "$n  running  pid $(cat "$PIDS/$n")"; any=1; else echo "$n  stopped"; fi
  done
  if [ -f "$DIR/s3/s3.env" ]; then
    local ep
    ep=$(. "$DIR/s3/s3.env"; echo "$S3_ENDPOINT")
    if curl -fsS -o /dev/null "$ep" 2>/dev/null; then echo "s3  running  $ep"; else echo "s3  stopped"; fi
  fi
  if [ -f "$DIR/ports" ]; then
    read -r lb a1 a2 <"$DIR/ports"
    for u in "http://127.0.0.1:$lb" "http://127.0.0.1:$a1" "http://127.0.0.1:$a2"; do
      if curl -fsS -o /dev/null "$u/healthz" 2>/dev/null; then echo "$u  healthy"; else echo "$u  not answering"; fi
    done
  fi
  [ $any -eq 1 ]
}

down() {
  for n in haproxy api-1 api-2 worker-1 worker-2; do
    if alive "$PIDS/$n"; then kill -TERM "$(cat "$PIDS/$n")"; fi
  done
  for n in api-1 api-2 worker-1 worker-2; do
    for _ in $(seq 1 100); do alive "$PIDS/$n" || break; sleep 0.1; done
    rm -f "$PIDS/$n"
  done
  rm -f "$PIDS/haproxy"
  if [ -f "$DIR/pg/postmaster.pid" ]; then as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null; fi
  if [ -d "$DIR/s3" ]; then
    "$HERE/scripts/s3-test-server.sh" stop "$DIR/s3" >/dev/null 2>&1 || true
    echo "S3 server stopped (its objects are gone; the database is kept: 'up --s3' after removing $DIR for a fresh start)"
  fi
  echo "Quire cluster down (data kept in $DIR)"
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up [--s3]|down|status" >&2; exit 2 ;;
esac
