#!/usr/bin/env bash
# S3 storage benchmarks (issue 10), each ratio against file storage measured in the same run:
#   1. ingest N images into S3 vs into files (2 workers, one batch; ABBA over REPS), peak RSS;
#      and one BIG×BIG image into S3 (peak RSS against the 256 MiB bound)
#   2. cold-cache tiles from S3 (fresh cache): req/s, p99 and ranged GETs per tile (counted in
#      radosgw's access log)
#   3. warm-cache tiles from S3 vs the same tiles from file storage: req/s ratio (target ≥ 0.9)
# Writes bench/out/REPORT-s3.md. BENCH_QUICK=1: 4 × 2000×1500, BIG 5000, short runs.
# Its radosgw comes from scripts/s3-test-server.sh in bench/out/s3run/s3 (stopped at exit).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
QUIRE=${QUIRE:-$ROOT/build/quire}
PY=/usr/bin/python3
QB="$PY $HERE/qb.py"
QUICK=${BENCH_QUICK:-0}
PORT_BASE=${BENCH_PORT_BASE:-18580}
if [ "$QUICK" = 1 ]; then N=4; W=2000; H=1500; BIG=5000; DUR=5; REPS=1
else N=24; W=6000; H=4000; BIG=20000; DUR=10; REPS=${BENCH_S3_REPS:-4}; fi
LOAD_AT_START=$(cut -d" " -f1 /proc/loadavg)

"$HERE/install-bench-deps.sh"
OUT=$HERE/out
INPUTS=$OUT/inputs-${W}x${H}
BIGDIR=$OUT/inputs-big-$BIG
RUN=$OUT/s3run
rm -rf "$RUN"
mkdir -p "$INPUTS" "$BIGDIR" "$RUN"
cp "$QUIRE" "$RUN/quire"
QUIRE=$RUN/quire
REPORT=$OUT/REPORT-s3-quick.md
[ "$QUICK" = 1 ] || REPORT=$HERE/REPORT-s3.md
RES=$RUN/results.jsonl
: >"$RES"
QPORT=$PORT_BASE; OPORT=$((PORT_BASE + 1)); FPORT=$((PORT_BASE + 2))
ADMIN=benchadmin:benchsecret
S3DIR=$RUN/s3

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "$ROOT/scripts/s3-test-server.sh" stop "$S3DIR" || true
}
trap cleanup EXIT
log() { echo "[s3 bench $(date +%T)] $*" >&2; }
record() { echo "{\"k\":\"$1\",\"v\":$2}" >>"$RES"; }
# stop_pid, wait_http, gen_image, make_inputs
source "$HERE/lib.sh"
QPID=""
start_quire() { # DATA PORT [flags]
  local data=$1 port=$2; shift 2
  mkdir -p "$data"
  "$QUIRE" serve --listen 127.0.0.1:$port --data "$data" --admin-key benchadmin \
    --admin-secret benchsecret --workers 2 --allow-private-origins --response-cache-bytes 0 "$@" \
    >>"$data.log" 2>&1 &
  QPID=$!
  PIDS+=("$QPID")
  wait_http "http://127.0.0.1:$port/healthz"
}
jget() { $PY -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# ---- inputs (same generator and cache as bench/run.sh)
log "inputs: $N × ${W}x${H} + ${BIG}²"
make_inputs "$INPUTS" $N $W $H
[ -s "$BIGDIR/big.jpg" ] || gen_image "$BIGDIR/big.jpg" $BIG $BIG 99 $((BIG >= 20000 ? 4 : 1))
IN_FILES=("$INPUTS"/img*.jpg)
IN_FILES=("${IN_FILES[@]:0:$N}")
$PY -m http.server --bind 127.0.0.1 $OPORT --directory "$OUT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$OPORT/"
ORIGIN=http://127.0.0.1:$OPORT/$(basename "$INPUTS")
BIGORIGIN=http://127.0.0.1:$OPORT/$(basename "$BIGDIR")

# ---- the S3 server
log "starting radosgw"
S3_BUCKETS=bench "$ROOT/scripts/s3-test-server.sh" start "$S3DIR" >/dev/null
. "$S3DIR/s3.env"
export QUIRE_S3_ACCESS_KEY=$S3_ACCESS_KEY QUIRE_S3_SECRET_KEY=$S3_SECRET_KEY
s3url() { echo "s3://bench/$1?endpoint=$S3_ENDPOINT&region=us-east-1&path_style=1"; }
ranged_gets() { grep -cE '"GET [^"]*" (200|206|404) ' "$S3DIR/log/client.rgw.a.log" || true; }
# CPU seconds (user + system) a process has used; of the S3 server's daemons, all together.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
s3_cpu_s() {
  local f
  for f in "$S3DIR"/pids/*; do cpu_s "$(cat "$f")"; echo; done | awk '{t += $1} END {printf "%.2f", t}'
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }  # JSON-safe: 0.19, not .19

# ---- 1. ingest
ingest() { # NAME DATA ORIGIN_BASE STORAGE_FLAGS... -- FILES...
  local name=$1 data=$2 ob=$3; shift 3
  local flags=()
  while [ "$1" != "--" ]; do flags+=("$1"); shift; done
  shift
  start_quire "$data" $QPORT "${flags[@]}"
  local setup cid user sp
  setup=$($QB setup http://127.0.0.1:$QPORT $ADMIN "b$RANDOM" 1)
  cid=$(echo "$setup" | jget '["customer"]'); user=$(echo "$setup" | jget '["user"]')
  sp=$(echo "$setup" | jget '["spaces"][0]')
  sync
  local q0 s0
  q0=$(cpu_s "$QPID"); s0=$(s3_cpu_s)
  record "$name" "$($QB ingest http://127.0.0.1:$QPORT "$user" "$cid" "$sp" "$QPID" "$ob" "$@")"
  record "${name}_cpu" "{\"quire_s\":$(minus "$(cpu_s "$QPID")" "$q0"),\"s3_server_s\":$(minus "$(s3_cpu_s)" "$s0")}"
  echo "$cid $sp $user" >"$data.last"
  stop_pid "$QPID"
}
for rep in $(seq 1 $REPS); do
  order="file s3"; [ $((rep % 2)) = 0 ] && order="s3 file"
  for what in $order; do
    log "ingest rep $rep: $what"
    if [ $what = file ]; then
      rm -rf "$RUN/ingest-file"*; ingest ingest_file_r$rep "$RUN/ingest-file" "$ORIGIN" -- "${IN_FILES[@]}"
    else
      rm -rf "$RUN/ingest-s3"*; ingest ingest_s3_r$rep "$RUN/ingest-s3" "$ORIGIN" --storage "$(s3url ingest-r$rep)" -- "${IN_FILES[@]}"
    fi
  done
done
log "big ingest into S3"
ingest big_s3 "$RUN/big-s3" "$BIGORIGIN" --storage "$(s3url big)" -- "$BIGDIR/big.jpg"

# The last reps' installations are served below: file storage, and S3 (prefix ingest-rREPS).
read -r FCID FSID FUSER <"$RUN/ingest-file.last"
read -r SCID SSID SUSER <"$RUN/ingest-s3.last"

# ---- 2. cold tiles
start_quire "$RUN/ingest-file" $FPORT
FPID=$QPID
$QB images http://127.0.0.1:$FPORT "$FUSER" "$FCID" "$FSID" >"$RUN/images.json"
$PY -c 'import json,sys; print(json.dumps({i["id"]: i["id"] for i in json.load(open(sys.argv[1]))}))' "$RUN/images.json" >"$RUN/idmap.json"
$QB urls tiles "$RUN/images.json" "/iiif-img/v2/$FCID/$FSID" "$RUN/idmap.json" "$RUN/tiles-file.txt" "$RUN/unused.txt" >/dev/null
$QB urls tiles "$RUN/images.json" "/iiif-img/v2/$SCID/$SSID" "$RUN/idmap.json" "$RUN/tiles-s3.txt" "$RUN/unused.txt" >/dev/null
NTILES=$(wc -l <"$RUN/tiles-s3.txt")
run_wrk() { # NAME PORT URLFILE DURATION
  URLS=$3 wrk -t2 -c64 -d"$4s" --timeout 10s -s "$HERE/urls.lua" "http://127.0.0.1:$2" >"$RUN/wrk-$1.txt" 2>&1
  [ -z "$1" ] || record "$1" "$($QB wrk "$RUN/wrk-$1.txt")"
}
S3FLAGS=(--storage "$(s3url ingest-r$REPS)" --cache-dir "$RUN/cache" --cache-bytes $((4 << 30)))
rm -rf "$RUN/cache"
start_quire "$RUN/ingest-s3" $QPORT "${S3FLAGS[@]}"
SPID=$QPID
log "cold tiles from S3: each of $NTILES tiles once, 16 concurrent clients (this also warms the cache)"
g0=$(ranged_gets)
record tiles_s3_cold "$($PY - "$RUN/tiles-s3.txt" $QPORT <<'PYEOF'
import http.client, json, random, sys, threading, time
urls = [l.strip() for l in open(sys.argv[1]) if l.strip()]
random.Random(3).shuffle(urls)
lat, bad, lock, it = [], [0], threading.Lock(), iter(urls)
def worker():
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=30)
    while True:
        with lock:
            u = next(it, None)
        if u is None:
            return
        t = time.perf_counter()
        c.request("GET", u)
        r = c.getresponse(); r.read()
        with lock:
            lat.append(time.perf_counter() - t)
            if r.status != 200: bad[0] += 1
t0 = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
el = time.perf_counter() - t0
lat.sort()
print(json.dumps({"requests": len(lat), "seconds": el, "rps": len(lat) / el, "non200": bad[0],
                  "p50_ms": lat[len(lat) // 2] * 1e3, "p99_ms": lat[int(len(lat) * .99)] * 1e3}))
PYEOF
)"
g1=$(ranged_gets)
record cold_gets "{\"ranged_gets\":$((g1 - g0)),\"tiles\":$NTILES}"

# ---- 3. warm tiles: ABBA against file storage
g2=$(ranged_gets)
run_wrk "" $QPORT "$RUN/tiles-s3.txt" 2
run_wrk "" $FPORT "$RUN/tiles-file.txt" 2
for rep in $(seq 1 $REPS); do
  order="file s3"; [ $((rep % 2)) = 0 ] && order="s3 file"
  for what in $order; do
    log "warm tiles rep $rep: $what"
    if [ $what = file ]; then run_wrk tiles_file_r$rep $FPORT "$RUN/tiles-file.txt" $DUR
    else run_wrk tiles_s3_warm_r$rep $QPORT "$RUN/tiles-s3.txt" $DUR; fi
  done
done
g3=$(ranged_gets)
record warm_gets "{\"ranged_gets\":$((g3 - g2))}"
# Profiles of both servers under the same warm load when S3 misses its ≥ 0.9× target.
WARM_RATIO=$($PY - "$RES" <<'PYEOF'
import json, statistics, sys
res = {}
for line in open(sys.argv[1]):
    r = json.loads(line); res[r["k"]] = r["v"]
m = lambda p: statistics.median(v["rps"] for k, v in res.items() if k.startswith(p))
print(f"{m('tiles_s3_warm_') / m('tiles_file_'):.3f}")
PYEOF
)
PROFILE=${BENCH_PROFILE:-1}
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null && awk -v r="$WARM_RATIO" 'BEGIN {exit !(r < 0.9)}'; then
  for what in s3 file; do
    log "profile warm tiles: $what"
    pid=$SPID port=$QPORT; [ $what = file ] && pid=$FPID port=$FPORT
    perf record -F 199 --call-graph dwarf -p "$pid" -o "$RUN/perf-warm-$what.data" -- sleep 8 >/dev/null 2>&1 &
    pp=$!
    URLS=$RUN/tiles-$what.txt wrk -t2 -c64 -d9s --timeout 10s -s "$HERE/urls.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true
    wait $pp || true
    perf_summary "$RUN/perf-warm-$what.data" "$RUN/profile-warm-$what.txt"
  done
fi
record cache "{\"bytes\":$(du -sb "$RUN/cache" | cut -f1)}"

# ---- report
$PY - "$RES" "$REPORT" "$N" "$W" "$H" "$BIG" "$REPS" "$LOAD_AT_START" <<'PYEOF'
import json, statistics, sys
res = {}
for line in open(sys.argv[1]):
    r = json.loads(line); res[r["k"]] = r["v"]
n, w, h, big, reps, load = sys.argv[3:9]
def med(prefix, field):
    vals = [v[field] for k, v in res.items() if k.startswith(prefix) and field in v]
    return statistics.median(vals) if vals else float("nan")
def cpu(prefix, field):
    vals = [v[field] for k, v in res.items() if k.startswith(prefix) and k.endswith("_cpu")]
    return statistics.median(vals) if vals else float("nan")
fi, si = med("ingest_file_", "seconds"), med("ingest_s3_", "seconds")
frss = max(v["vmhwm_kb"] for k, v in res.items() if k.startswith("ingest_file_") and "vmhwm_kb" in v) / 1024
srss = max(v["vmhwm_kb"] for k, v in res.items() if k.startswith("ingest_s3_") and "vmhwm_kb" in v) / 1024
ft, st = med("tiles_file_", "rps"), med("tiles_s3_warm_", "rps")
fp, sp = med("tiles_file_", "p99_ms"), med("tiles_s3_warm_", "p99_ms")
cold = res["tiles_s3_cold"]
gets = res["cold_gets"]["ranged_gets"]
creq = cold.get("requests", 0)
b = res["big_s3"]
lines = [
  "# S3 storage benchmark (bench/s3.sh)", "",
  f"Inputs: {n} × {w}×{h} JPEG, one {big}×{big}; radosgw (memstore) on loopback; 2 workers. "
  f"Ingest and warm tiles: {reps} runs per side, alternating (ABBA…), medians; load average "
  f"{load} at the start{' (above 1.5: a shared machine, ratios noisier)' if float(load) > 1.5 else ''}.", "",
  "| measure | file storage | S3 storage | ratio S3/file | target |", "|---|---|---|---|---|",
  f"| ingest of {n} images, s (median) | {fi:.2f} | {si:.2f} | {fi/si:.2f}× throughput | ≥ 0.9× |",
  f"| ingest CPU, s: Quire / the S3 server's daemons (median) | {cpu('ingest_file_', 'quire_s'):.1f} / – | {cpu('ingest_s3_', 'quire_s'):.1f} / {cpu('ingest_s3_', 's3_server_s'):.1f} | | profile |",
  f"| ingest peak RSS, MiB | {frss:.0f} | {srss:.0f} | | < 256 |",
  f"| ingest of {big}², s / peak RSS MiB | | {b['seconds']:.2f} / {b['vmhwm_kb']/1024:.0f} | | < 256 MiB |",
  f"| warm-cache random tiles, req/s (median) | {ft:.0f} | {st:.0f} | {st/ft:.2f}× | ≥ 0.9× |",
  f"| warm-cache p99, ms | {fp:.1f} | {sp:.1f} | | |",
  f"| cold-cache tiles (each once, 16 clients), req/s / p99 ms | | {cold['rps']:.0f} / {cold['p99_ms']:.1f} | | report |",
  f"| GETs per cold tile (each image's structure included) | | {gets} / {creq} = {gets/max(creq,1):.2f} | | ≤ 2 |",
  f"| GETs during the warm runs | | {res['warm_gets']['ranged_gets']} | | 0 |",
  ""]
import os
run = os.path.dirname(sys.argv[1])
for what in ("s3", "file"):
    prof = os.path.join(run, f"profile-warm-{what}.txt")
    if os.path.exists(prof):
        lines += [f"Profile of warm tiles from {what} storage (perf, 8 s under the same wrk load; the S3 "
                  "target was missed):", "", "```"] + open(prof).read().rstrip().split("\n") + ["```", ""]
lines += ["Raw results:", "", "```"] + [json.dumps({k: v}) for k, v in res.items()] + ["```"]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
