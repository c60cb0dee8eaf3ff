#!/usr/bin/env bash
# Ingest on PostgreSQL with 2 worker processes vs one SQLite process with 2 threads (issue 18:
# "coordination must cost nothing visible", target ≥ 0.9× the throughput). The same N
# images (bench/run.sh's inputs) as one batch, ABBA over REPS:
#   sqlite: quire serve --workers 2 on SQLite + files
#   pg:     quire serve --workers 0 + 2 × quire worker --workers 1, one PostgreSQL 15 (durable
#           settings) and one shared file: blob directory
# Appends its section to bench/REPORT-postgresql.md (after run_pg.sh has written it).
# BENCH_QUICK=1: 4 × 2000×1500.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
QB="$PY $HERE/qb.py"
PGBIN=/usr/lib/postgresql/15/bin
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then N=4; W=2000; H=1500; REPS=1; else N=24; W=6000; H=4000; REPS=2; fi
PORT=${BENCH_PORT_BASE:-18620}
OPORT=$((PORT + 1)); PGPORT=$((PORT + 2))
REPORT=${BENCH_REPORT_PG:-$HERE/REPORT-postgresql.md}
OUT=$HERE/out
INPUTS=$OUT/inputs-${W}x${H}
RUN=$OUT/pg-ingest
rm -rf "$RUN"
mkdir -p "$RUN"
cp "$ROOT/build/quire" "$RUN/quire"
QUIRE=$RUN/quire
RES=$RUN/results.jsonl
: >"$RES"
PGDIR=/tmp/quire-bench-pg-ingest-$PGPORT
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
log() { echo "[bench-pg-ingest $(date +%T)] $*" >&2; }
# stop_pid, wait_http, gen_image, make_inputs
source "$HERE/lib.sh"

cleanup() {
  stop_pids
  [ -f "$PGDIR/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "inputs: $N × ${W}x${H}"
make_inputs "$INPUTS" $N $W $H
IN_FILES=("$INPUTS"/img*.jpg)
IN_FILES=("${IN_FILES[@]:0:$N}")
$PY -m http.server --bind 127.0.0.1 $OPORT --directory "$OUT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$OPORT/"
ORIGIN=http://127.0.0.1:$OPORT/$(basename "$INPUTS")

rm -rf "$PGDIR"; mkdir -p "$PGDIR"
[ "$(id -u)" -ne 0 ] || chown postgres: "$PGDIR"
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w start \
  -o "-c listen_addresses='' -k $PGDIR -p $PGPORT -c max_connections=100" >/dev/null
n=0
one_run() { # sqlite|pg NAME
  local mode=$1 name=$2 data=$RUN/data-$n flags=() procs=()
  n=$((n + 1))
  mkdir -p "$data"
  if [ "$mode" = pg ]; then
    as_pg "$PGBIN/psql" -h "$PGDIR" -p "$PGPORT" -U postgres -qc "CREATE DATABASE run$n"
    flags=(--database "postgresql:///run$n?host=$PGDIR&port=$PGPORT&user=postgres" --storage "file:$data/blobs")
  fi
  "$QUIRE" serve --listen 127.0.0.1:$PORT --data "$data" --admin-key benchadmin --admin-secret benchsecret \
    --workers $([ "$mode" = pg ] && echo 0 || echo 2) --allow-private-origins --response-cache-bytes 0 \
    "${flags[@]}" >>"$data/serve.log" 2>&1 &
  local serve=$!
  PIDS+=("$serve")
  wait_http "http://127.0.0.1:$PORT/healthz"
  if [ "$mode" = pg ]; then
    for w in 1 2; do
      "$QUIRE" worker --data "$data/w$w" --workers 1 --allow-private-origins --node-id "w$w" \
        "${flags[@]}" >>"$data/worker$w.log" 2>&1 &
      procs+=($!); PIDS+=($!)
    done
    for _ in $(seq 1 200); do
      [ "$(grep -l 'quire worker running' "$data"/worker*.log 2>/dev/null | wc -l)" = 2 ] && break
      sleep 0.05
    done
  fi
  bench_customer http://127.0.0.1:$PORT benchadmin:benchsecret
  sync
  log "$name"
  echo "{\"k\":\"$name\",\"v\":$($QB ingest http://127.0.0.1:$PORT "$BENCH_USER" "$BENCH_CUSTOMER" "$BENCH_SPACE" "$serve" "$ORIGIN" "${IN_FILES[@]}")}" >>"$RES"
  for p in "${procs[@]}" "$serve"; do stop_pid "$p"; done
  rm -rf "$data"
}
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="sqlite pg"; else order="pg sqlite"; fi
  for m in $order; do one_run $m "${m}_r$rep"; done
done

$PY - "$RES" "$REPORT" "$N" "$W" "$H" <<'PYEOF'
import json, statistics, sys, os
res, report, n, w, h = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
r = {}
for line in open(res):
    o = json.loads(line)
    r.setdefault(o["k"].split("_r")[0], []).append(o["v"])
for k, runs in r.items():
    for v in runs:
        if v["completed"] != v["count"]:
            sys.exit(f"{k}: {v['errors']} of {v['count']} images failed")
sq = statistics.median(v["seconds"] for v in r["sqlite"])
pg = statistics.median(v["seconds"] for v in r["pg"])
ratio = sq / pg
runs = {k: ", ".join("%.2f" % v["seconds"] for v in r[k]) for k in r}
section = [
    "", "## Ingest with 2 worker processes on PostgreSQL vs one SQLite process with 2 threads (target ≥ 0.9×)", "",
    f"`bench/pg_ingest.sh`: {n} × {w}×{h} JPEG as one batch, ABBA × {len(r['pg'])}; load {os.getloadavg()[0]:.1f} at the end. "
    "SQLite: `quire serve --workers 2`. PostgreSQL (durable settings): `quire serve --workers 0` and two "
    "`quire worker --workers 1` over one `file:` blob directory.", "",
    "| setup | seconds (median) | images/s | runs |", "|---|---|---|---|",
    f"| SQLite, 1 process × 2 workers | {sq:.2f} | {n / sq:.2f} | {runs['sqlite']} |",
    f"| PostgreSQL, 2 processes × 1 worker | {pg:.2f} | {n / pg:.2f} | {runs['pg']} |",
    "", f"Throughput ratio PostgreSQL / SQLite: **{ratio:.2f}×** — target {'met' if ratio >= 0.9 else 'NOT met'}.", ""]
text = open(report).read() if os.path.exists(report) else "# Distributed mode on PostgreSQL\n"
marker = "\n## Ingest with 2 worker processes"
if marker in text:
    head, rest = text.split(marker, 1)
    nxt = rest.find("\n## ")
    text = head + ("" if nxt < 0 else rest[nxt:])
text = text.rstrip("\n") + "\n" + "\n".join(section)
open(report, "w").write(text)
print("\n".join(section))
PYEOF
