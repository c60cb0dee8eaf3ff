#!/usr/bin/env bash
# Events benchmarks (issue 19), each a ratio within one run, alternating (ABBA):
#   1. batch GET req/s (wrk -t2 -c64) with 1,000 idle SSE streams open vs none (target ≥ 0.9×),
#      and the server's thread count with the streams open
#   2. ingest of N images with --log-format json and a webhook receiver subscribed to every
#      event vs plain logs and no webhook (target ≥ 0.97×; /metrics is always on)
# Writes bench/REPORT-events.md. BENCH_QUICK=1: 4 × 2000×1500, short runs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
QB="$PY $HERE/qb.py"
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then N=4; W=2000; H=1500; DUR=4; REPS=1; else N=24; W=6000; H=4000; DUR=8; REPS=2; fi
PORT=${BENCH_PORT_BASE:-18660}
OPORT=$((PORT + 1)); HOOKPORT=$((PORT + 2))
OUT=$HERE/out
INPUTS=$OUT/inputs-${W}x${H}
RUN=$OUT/events
REPORT=$HERE/REPORT-events.md
[ "$QUICK" = 1 ] && REPORT=$OUT/REPORT-events-quick.md
rm -rf "$RUN"
mkdir -p "$RUN"
cp "$ROOT/build/quire" "$RUN/quire"
QUIRE=$RUN/quire
RES=$RUN/results.jsonl
: >"$RES"
log() { echo "[bench-events $(date +%T)] $*" >&2; }
record() { echo "{\"k\":\"$1\",\"v\":$2}" >>"$RES"; }
# stop_pid, wait_http, gen_image, make_inputs
source "$HERE/lib.sh"
trap stop_pids EXIT
ADMIN=benchadmin:benchsecret
AUTHH="Basic $(printf $ADMIN | base64 -w0)"

start_quire() { # DATA [flags]
  local data=$1; shift
  mkdir -p "$data"
  "$QUIRE" serve --listen 127.0.0.1:$PORT --data "$data" --admin-key benchadmin \
    --admin-secret benchsecret --allow-private-origins --response-cache-bytes 0 "$@" \
    >>"$data.log" 2>&1 &
  QPID=$!
  PIDS+=("$QPID")
  wait_http "http://127.0.0.1:$PORT/healthz"
}

# ---- 1. batch GET with 1,000 idle streams open, and without
start_quire "$RUN/api" --workers 0
members=$($PY -c 'import json; print(json.dumps({"@type":"Collection","member":[{"id":"m%d" % i,"space":1,"origin":"https://example.org/%d.jpg" % i,"mediaType":"image/jpeg"} for i in range(10)]}))')
curl -fsS -u $ADMIN -X POST http://127.0.0.1:$PORT/customers/1/spaces -d '{"name":"b"}' >/dev/null
curl -fsS -u $ADMIN -X POST http://127.0.0.1:$PORT/customers/1/queue -d "$members" >/dev/null
echo "/customers/1/queue/batches/1" >"$RUN/batch-url.txt"
wrk_rps() {
  URLS=$RUN/batch-url.txt AUTH=$AUTHH wrk -t2 -c64 -d${DUR}s --timeout 10s -s "$HERE/urls.lua" \
    "http://127.0.0.1:$PORT" | sed -n 's/^WRKJSON //p'
}
cat >"$RUN/streams.py" <<'PYEOF'
# N stream clients in one process: each sends its GET, then sleeps (the stream stays open).
import socket, sys, time
port, auth, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /customers/1/queue/batches/1/stream HTTP/1.1\r\nHost: x\r\n"
               "Authorization: %s\r\nAccept: text/event-stream\r\n\r\n" % auth).encode())
    socks.append(s)
first = socks[0].recv(4096).decode(errors="replace")
print("open", len(socks), first.split("\r\n")[0], flush=True)
time.sleep(3600)
PYEOF
STREAMS=""
open_streams() {
  $PY "$RUN/streams.py" $PORT "$AUTHH" 1000 >"$RUN/streams.log" 2>&1 &
  STREAMS=$!
  PIDS+=("$STREAMS")
  for _ in $(seq 1 300); do grep -q "^open" "$RUN/streams.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "^open 1000 HTTP/1.1 200" "$RUN/streams.log" ||
    { echo "events.sh: the streams did not open:" >&2; cat "$RUN/streams.log" >&2; exit 1; }
  sleep 1
}
close_streams() { stop_pid "$STREAMS"; sleep 1; }
URLS=$RUN/batch-url.txt AUTH=$AUTHH wrk -t2 -c64 -d2s -s "$HERE/urls.lua" http://127.0.0.1:$PORT >/dev/null
for what in streams none none streams; do
  if [ $what = streams ]; then
    open_streams
    record streams_threads "{\"threads\":$(awk '/^Threads/ {print $2}' /proc/$QPID/status)}"
  fi
  log "batch GET, streams: $what"
  record "batch_get_$what" "$(wrk_rps)"
  [ $what = streams ] && close_streams
done
record idle_threads "{\"threads\":$(awk '/^Threads/ {print $2}' /proc/$QPID/status)}"
stop_pid "$QPID"

# ---- 2. ingest with JSON logs and a webhook receiver, and without
log "inputs: $N × ${W}x${H}"
make_inputs "$INPUTS" $N $W $H
IN_FILES=("$INPUTS"/img*.jpg)
IN_FILES=("${IN_FILES[@]:0:$N}")
$PY -m http.server --bind 127.0.0.1 $OPORT --directory "$OUT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$OPORT/"
ORIGIN=http://127.0.0.1:$OPORT/$(basename "$INPUTS")
cat >"$RUN/receiver.py" <<'PYEOF'
# A webhook receiver: answers 204 to every POST and counts them.
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    count = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        H.count += 1
        self.send_response(204)
        self.end_headers()
        with open(sys.argv[2], "w") as f:
            f.write(str(H.count))
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PYEOF
$PY "$RUN/receiver.py" $HOOKPORT "$RUN/deliveries" >"$RUN/receiver.log" 2>&1 &
PIDS+=($!)
n=0
ingest() { # on|off NAME
  local mode=$1 name=$2 data=$RUN/ingest-$n flags=()
  n=$((n + 1))
  [ "$mode" = on ] && flags=(--log-format json)
  start_quire "$data" --workers 2 "${flags[@]}"
  bench_customer http://127.0.0.1:$PORT $ADMIN
  local cid=$BENCH_CUSTOMER user=$BENCH_USER sp=$BENCH_SPACE
  if [ "$mode" = on ]; then
    curl -fsS -u "$user" -X POST "http://127.0.0.1:$PORT/customers/$cid/webhooks" \
      -d "{\"url\":\"http://127.0.0.1:$HOOKPORT/hook\",\"events\":[\"batch.finished\",\"image.failed\",\"image.completed\"]}" \
      >"$RUN/webhook-$n.json" ||
      curl -fsS -u "$user" -X POST "http://127.0.0.1:$PORT/customers/$cid/webhooks" \
        -d "{\"url\":\"http://127.0.0.1:$HOOKPORT/hook\",\"events\":[\"batch.finished\",\"image.failed\"]}" \
        >"$RUN/webhook-$n.json"
  fi
  sync
  log "$name"
  record "$name" "$($QB ingest http://127.0.0.1:$PORT "$user" "$cid" "$sp" "$QPID" "$ORIGIN" "${IN_FILES[@]}")"
  stop_pid "$QPID"
  rm -rf "$data"
}
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="off on"; else order="on off"; fi
  for m in $order; do ingest $m "ingest_${m}_r$rep"; done
done
record deliveries "{\"count\":$(cat "$RUN/deliveries" 2>/dev/null || echo 0)}"

$PY - "$RES" "$REPORT" "$N" "$W" "$H" <<'PYEOF'
import json, statistics, sys, os, platform
res, report, n, w, h = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
r = {}
for line in open(res):
    o = json.loads(line)
    k = o["k"]
    base = k.rsplit("_r", 1)[0] if k.rsplit("_r", 1)[-1].isdigit() else k
    r.setdefault(base, []).append(o["v"])
med = lambda k, f: statistics.median(v[f] for v in r[k])
streams, none = med("batch_get_streams", "rps"), med("batch_get_none", "rps")
on, off = med("ingest_on", "seconds"), med("ingest_off", "seconds")
for k in ("ingest_on", "ingest_off"):
    for v in r[k]:
        if v["completed"] != v["count"]:
            sys.exit(f"{k}: {v['errors']} of {v['count']} images failed")
g, i = streams / none, off / on
out = ["# Events benchmarks (bench/events.sh)", "",
       f"{platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end. ABBA, medians.", "",
       "| measure | with | without | ratio | target | met |", "|---|---|---|---|---|---|",
       f"| batch GET req/s (wrk -t2 -c64, 10-image batch) with 1,000 idle SSE streams open | "
       f"{streams:.0f} | {none:.0f} | {g:.2f}× | ≥ 0.9× | {'yes' if g >= 0.9 else 'NO'} |",
       f"| ingest {n} × {w}×{h}, 2 workers: JSON logs + a webhook receiver vs plain logs, no webhook (s) | "
       f"{on:.2f} | {off:.2f} | {i:.2f}× throughput | ≥ 0.97× | {'yes' if i >= 0.97 else 'NO'} |", "",
       f"Server threads with 1,000 streams open: {r['streams_threads'][0]['threads']} "
       f"(after they closed: {r['idle_threads'][0]['threads']}). Webhook deliveries received: "
       f"{r['deliveries'][0]['count']}.", "", "Raw results:", "", "```"]
out += [l.rstrip() for l in open(res)] + ["```", ""]
open(report, "w").write("\n".join(out))
print(report)
PYEOF
