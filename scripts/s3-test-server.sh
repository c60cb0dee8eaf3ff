#!/usr/bin/env bash
# A real S3 server for tests and local clusters: Ceph's RADOS Gateway as a one-node cluster
# (one mon, one memstore OSD, one radosgw) on loopback, everything under one directory.
#
#   s3-test-server.sh start DIR   start it; writes DIR/s3.env (endpoint, region, keys, bucket)
#   s3-test-server.sh stop DIR    stop the daemons this script started in DIR (recorded pids)
#   s3-test-server.sh env DIR     print DIR/s3.env
#   s3-test-server.sh stop-rgw DIR / start-rgw DIR   stop / restart only the gateway (outages)
#
# Only pids recorded in DIR/pids/ are ever signalled; nothing is killed by name. Data lives in
# RAM (memstore), so stop discards it. Environment: S3_BUCKETS (space-separated buckets to
# create, default "quire-test"), S3_ACCESS_KEY, S3_SECRET_KEY.
set -euo pipefail

cmd=${1:-}
DIR=${2:-}
if [ -z "$cmd" ] || [ -z "$DIR" ]; then
  echo "usage: $0 start|stop|env|stop-rgw|start-rgw DIR" >&2
  exit 2
fi

ACCESS_KEY=${S3_ACCESS_KEY:-quiretestaccess}
SECRET_KEY=${S3_SECRET_KEY:-quiretestsecret0123456789}
BUCKETS=${S3_BUCKETS:-quire-test}
REGION=us-east-1

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A pid is alive unless it is gone or a zombie (a killed daemon stays one until reaped).
alive() {
  local pid=$1
  [ -r "/proc/$pid/status" ] || return 1
  ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

stop_pid() {  # stop_pid NAME SIGNAL
  local name=$1 sig=$2 f="$DIR/pids/$1" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$f"
}

aws_s3() {
  AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_DEFAULT_REGION=$REGION \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    aws --endpoint-url "$ENDPOINT" "$@"
}

start_rgw() {
  # shellcheck disable=SC1091
  . "$DIR/s3.env"
  ENDPOINT=$S3_ENDPOINT
  radosgw -c "$DIR/ceph.conf" -n client.rgw.a -f >>"$DIR/log/rgw.out" 2>&1 &
  echo $! >"$DIR/pids/rgw"
  for _ in $(seq 300); do
    if curl -s -o /dev/null "$ENDPOINT/"; then return 0; fi
    if ! alive "$(cat "$DIR/pids/rgw")"; then break; fi
    sleep 0.1
  done
  echo "s3-test-server: radosgw did not answer on $ENDPOINT (see $DIR/log)" >&2
  return 1
}

start() {
  # A directory left by an earlier run: stop what it recorded, then start afresh.
  if [ -d "$DIR/pids" ]; then stop; fi
  rm -rf "$DIR/mon" "$DIR/osd" "$DIR/log" "$DIR/run" "$DIR/rgw" "$DIR/s3.env" "$DIR/monmap"
  mkdir -p "$DIR"/{mon,osd,log,run,pids,rgw}
  local fsid mon_port rgw_port osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  mon_port=$(free_port)
  rgw_port=$(free_port)
  cat >"$DIR/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
osd crush chooseleaf type = 0
paxos propose interval = 0.01
paxos min wait = 0.01
osd objectstore = memstore
memstore device bytes = 4294967296
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
mon data = $DIR/mon/\$name
osd data = $DIR/osd/\$name
keyring = $DIR/keyring
[client]
objecter tick interval = 0.5
[client.rgw.a]
ms mon client mode = crc secure
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw thread pool size = 32
rgw dns name = localhost
rgw data = $DIR/rgw
CONF
  cat >"$DIR/s3.env" <<ENV
S3_ENDPOINT=http://127.0.0.1:$rgw_port
S3_REGION=$REGION
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_BUCKET=${BUCKETS%% *}
S3_BUCKETS="$BUCKETS"
S3_DIR=$DIR
ENV
  ENDPOINT=http://127.0.0.1:$rgw_port

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap" \
    >/dev/null || return 1
  ceph-mon -c "$DIR/ceph.conf" --mkfs -i a --monmap "$DIR/monmap" >>"$DIR/log/mkfs.out" 2>&1 ||
    { echo "s3-test-server: ceph-mon --mkfs failed (see $DIR/log/mkfs.out)" >&2; return 1; }
  ceph-mon -c "$DIR/ceph.conf" -i a -f >>"$DIR/log/mon.out" 2>&1 &
  echo $! >"$DIR/pids/mon"

  local id=""
  for _ in $(seq 100); do
    if id=$(timeout 10 ceph -c "$DIR/ceph.conf" osd new "$osd_uuid" 2>>"$DIR/log/ceph-cli.out"); then
      break
    fi
    sleep 0.1
  done
  if [ -z "$id" ]; then echo "s3-test-server: monitor did not answer" >&2; return 1; fi
  mkdir -p "$DIR/osd/osd.$id"
  ceph-osd -c "$DIR/ceph.conf" -i "$id" --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1 ||
    { echo "s3-test-server: ceph-osd --mkfs failed (see $DIR/log/mkfs.out)" >&2; return 1; }
  ceph-osd -c "$DIR/ceph.conf" -i "$id" -f >>"$DIR/log/osd.out" 2>&1 &
  echo $! >"$DIR/pids/osd"

  start_rgw || return 1
  # radosgw-admin as its own client name: it must not share the gateway's admin socket.
  timeout 30 radosgw-admin -c "$DIR/ceph.conf" -n client.admin user create --uid=test \
    --display-name=test --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
    >>"$DIR/log/admin.out" 2>&1 || { echo "s3-test-server: user create failed" >&2; return 1; }
  local ok=0
  for _ in $(seq 200); do
    if aws_s3 s3api list-buckets >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
  done
  if [ $ok -ne 1 ]; then echo "s3-test-server: signed requests fail" >&2; return 1; fi
  for b in $BUCKETS; do aws_s3 s3api create-bucket --bucket "$b" >/dev/null || return 1; done
}

stop() {
  [ -d "$DIR/pids" ] || return 0
  stop_pid rgw TERM
  stop_pid osd KILL  # a clean memstore shutdown would write its RAM out first
  stop_pid mon TERM
}

case "$cmd" in
  start)
    if ! start; then stop; exit 1; fi
    cat "$DIR/s3.env"
    ;;
  stop) stop ;;
  env) cat "$DIR/s3.env" ;;
  stop-rgw) stop_pid rgw TERM ;;
  start-rgw) start_rgw ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
