#!/usr/bin/env bash
# Quire benchmarks: ingest, tiles, API, table growth — each against a reference measured in the
# same run on the same machine. Writes bench/REPORT.md (see bench/README.md).
#
#   BENCH_QUICK=1 ./bench/run.sh     small settings (4 images of 2000x1500, 5 s wrk runs)
#
# Environment: BENCH_QUICK, BENCH_PORT_BASE (default 18480), BENCH_REPORT (output file),
# BENCH_PROFILE=0 to skip perf profiles, QUIRE (binary, default build/quire).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
QUIRE=${QUIRE:-$ROOT/build/quire}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
QB="$PY $HERE/qb.py"
QUICK=${BENCH_QUICK:-0}
PORT_BASE=${BENCH_PORT_BASE:-18480}
PROFILE=${BENCH_PROFILE:-1}
T_START=$(date +%s)

"$HERE/install-bench-deps.sh"

if [ "$QUICK" = 1 ]; then
  N=4; W=2000; H=1500; BIG=5000; DUR=5; DUR_SHORT=3; ROWS_BIG=20000; REPS=1; POSTS=5
  NT=2; TW=1400; TH=1000; NS=4
  MODE="QUICK (BENCH_QUICK=1: small images, short runs — NOT the benchmark's figures)"
  REPORT=${BENCH_REPORT:-$HERE/out/REPORT-quick.md}
else
  N=24; W=6000; H=4000; BIG=20000; DUR=12; DUR_SHORT=8; ROWS_BIG=1000000; REPS=2; POSTS=30
  NT=8; TW=7000; TH=5000; NS=12
  MODE="full"
  REPORT=${BENCH_REPORT:-$HERE/REPORT.md}
fi
ROWS_SMALL=1000

OUT=$HERE/out
INPUTS=$OUT/inputs-${W}x${H}
BIGDIR=$OUT/inputs-big-$BIG
RUN=$OUT/run
rm -rf "$RUN"
mkdir -p "$INPUTS" "$BIGDIR" "$RUN"
[ -x "$QUIRE" ] || { echo "run.sh: $QUIRE missing: run 'make bench' (it builds first)" >&2; exit 1; }
# A snapshot of the binary: a rebuild in the shared tree must not swap it mid-run.
BUILD_DIR=$(dirname "$QUIRE")
cp "$QUIRE" "$RUN/quire"
QUIRE=$RUN/quire
# The decode + encode floor (bench/floor_bench.cc), built beside quire.
cmake --build "$BUILD_DIR" --target floor_bench >/dev/null
FLOOR=$BUILD_DIR/floor_bench
RES=$RUN/results.jsonl
CMDS=$RUN/commands.txt
: >"$RES"
: >"$CMDS"

QPORT=$PORT_BASE; OPORT=$((PORT_BASE + 1)); LPORT=$((PORT_BASE + 2)); NPORT=$((PORT_BASE + 3))
QPORT2=$((PORT_BASE + 4)); SPORT=$((PORT_BASE + 5))
ADMIN=benchadmin:benchsecret

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

log() { echo "[bench $(($(date +%s) - T_START))s] $*" >&2; }
# record KEY JSON: one result line
record() { [ -n "$2" ] || { echo "run.sh: no result for $1" >&2; exit 1; }; echo "{\"k\":\"$1\",\"v\":$2}" >>"$RES"; }
cmd() { echo "$*" >>"$CMDS"; }
# stop_pid, wait_http, gen_image, make_inputs
source "$HERE/lib.sh"

for p in $QPORT $OPORT $LPORT $NPORT $QPORT2 $SPORT; do
  if (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "run.sh: port $p busy; set BENCH_PORT_BASE" >&2; exit 1
  fi
done

QPID=""
start_quire() { # DATA PORT WORKERS [extra flags...]
  local data=$1 port=$2 workers=$3; shift 3
  mkdir -p "$data"
  "$QUIRE" serve --listen 127.0.0.1:$port --data "$data" --admin-key benchadmin \
    --admin-secret benchsecret --workers "$workers" --allow-private-origins "$@" \
    >>"$data.log" 2>&1 &
  QPID=$!
  PIDS+=("$QPID")
  wait_http "http://127.0.0.1:$port/healthz"
}

# ------------------------------------------------------------------ machine
log "mode: $MODE"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mode: $MODE"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') × $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r); os: $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quire: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet -- . ':!bench/REPORT*.md' 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "vips: $(vips --version)"
  echo "iipimage-server: $(dpkg-query -W -f='${Version}' iipimage-server); lighttpd: $(dpkg-query -W -f='${Version}' lighttpd); nginx: $(dpkg-query -W -f='${Version}' nginx-light); wrk: $(dpkg-query -W -f='${Version}' wrk)"
} >"$RUN/machine.txt"

# ------------------------------------------------------------------ inputs
log "inputs: $N × ${W}x${H} + 1 × ${BIG}x${BIG} (cached in $OUT)"
cmd "# inputs: per image, three 'vips perlin W H --uchar --seed S' bands (cells 400/61/7) → vips bandjoin → vips jpegsave --Q 90; the big one is a 5000² tile × 'vips replicate 4 4'"
make_inputs "$INPUTS" $N $W $H
[ -s "$BIGDIR/big.jpg" ] || gen_image "$BIGDIR/big.jpg" $BIG $BIG 99 $((BIG >= 20000 ? 4 : 1))
IN_FILES=("$INPUTS"/img*.jpg)
IN_FILES=("${IN_FILES[@]:0:$N}")
record inputs "{\"n\":$N,\"w\":$W,\"h\":$H,\"bytes\":$(cat "${IN_FILES[@]}" | wc -c),\"big\":$BIG,\"big_bytes\":$(stat -c %s "$BIGDIR/big.jpg")}"

# Origin: a local HTTP server over the inputs (Quire fetches through it).
$PY -m http.server --bind 127.0.0.1 $OPORT --directory "$OUT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$OPORT/"
ORIGIN=http://127.0.0.1:$OPORT/$(basename "$INPUTS")
BIGORIGIN=http://127.0.0.1:$OPORT/$(basename "$BIGDIR")

# ------------------------------------------------------------------ 1. ingest
# The naive CLI pipeline per image: pyramid + 4 thumbnails decoded from the source JPEG
# ("naive"), or from the pyramid ("pyr"). Each vips process runs under /usr/bin/time for its RSS.
cat >"$RUN/vips-one.sh" <<'EOF'
#!/usr/bin/env bash
# vips-one.sh MODE IN OUTDIR RSSLOG
set -euo pipefail
mode=$1 in=$2 od=$3/$(basename "$2" .jpg) rss=$4
mkdir -p "$od"
T() { /usr/bin/time -a -o "$rss" -f %M "$@"; }
T vips tiffsave "$in" "$od/image.tif" --tile --pyramid --compression jpeg --Q 85 --tile-width 256 --tile-height 256
src=$in; [ "$mode" = pyr ] && src=$od/image.tif
for s in 1024 400 200 100; do T vipsthumbnail "$src" --size $s -o "$od/thumb-$s.jpg"; done
EOF
chmod +x "$RUN/vips-one.sh"
cmd "# reference ingest (per image, 2 images at a time: printf '%s\n' FILES | xargs -P2 -I{} vips-one.sh MODE {} OUT RSS):"
cmd "vips tiffsave IN.jpg image.tif --tile --pyramid --compression jpeg --Q 85 --tile-width 256 --tile-height 256"
cmd "vipsthumbnail IN.jpg --size N -o thumb-N.jpg   # N = 1024 400 200 100 ('naive'); 'pyr' reads image.tif instead"

ref_ingest() { # MODE NAME PARALLEL FILES...
  local mode=$1 name=$2 par=$3; shift 3
  local od=$RUN/ref-$name rss=$RUN/ref-$name.rss t0 t1
  rm -rf "$od" "$rss"; mkdir -p "$od"
  sync
  t0=$(date +%s.%N)
  printf '%s\n' "$@" | xargs -P"$par" -I{} "$RUN/vips-one.sh" "$mode" {} "$od" "$rss"
  t1=$(date +%s.%N)
  local maxkb; maxkb=$(sort -n "$rss" | tail -1)
  record "$name" "{\"seconds\":$(echo "$t1 - $t0" | bc | sed "s/^\./0./"),\"count\":$#,\"max_rss_kb\":$maxkb}"
  rm -rf "$od"
}

quire_ingest() { # NAME DATA ORIGIN_BASE FILES... (QUIRE_FLAGS: more serve flags)
  local name=$1 data=$2 ob=$3; shift 3
  start_quire "$data" $QPORT 2 --response-cache-bytes 0 ${QUIRE_FLAGS:-}
  local setup
  if [ -s "$data.setup.json" ]; then setup=$(cat "$data.setup.json")
  else setup=$($QB setup http://127.0.0.1:$QPORT $ADMIN bench 1); echo "$setup" >"$data.setup.json"; fi
  local cid user sp
  cid=$(echo "$setup" | $PY -c 'import json,sys;print(json.load(sys.stdin)["customer"])')
  user=$(echo "$setup" | $PY -c 'import json,sys;print(json.load(sys.stdin)["user"])')
  sp=$($QB space http://127.0.0.1:$QPORT "$user" "$cid" "$name" | $PY -c 'import json,sys;print(json.load(sys.stdin)["space"])')
  sync
  local r; r=$($QB ingest http://127.0.0.1:$QPORT "$user" "$cid" "$sp" "$QPID" "$ob" "$@")
  record "$name" "$r"
  echo "$cid $sp $user" >"$data.last"
  stop_pid "$QPID"
}
cmd "# decode + encode floor: floor_bench 2 FILES (libjpeg-turbo: decode each image to RGB, encode every 256² tile of every pyramid level at Q85, 2×2 box shrink between levels; 2 images at a time)"
cmd "# Quire ingest: quire serve --listen 127.0.0.1:$QPORT --data DIR --workers 2 --allow-private-origins --response-cache-bytes 0 (fresh process per batch, so VmHWM is this batch's peak)"
cmd "# then one POST /customers/C/queue of all images (origins http://127.0.0.1:$OPORT/...), poll the batch every 50 ms until 'finished'"

# Camera-like inputs for the DCT path (issue 17 §2): the same pictures as Q85 4:2:0 JPEGs
# (vips jpegsave --Q 85 of each input), where the bench's own inputs are Q90 4:4:4.
CAMDIR=$OUT/inputs-cam-${W}x${H}
mkdir -p "$CAMDIR"
for f in "${IN_FILES[@]}"; do
  [ -s "$CAMDIR/$(basename "$f")" ] || vips jpegsave "$f" "$CAMDIR/$(basename "$f")" --Q 85
done
CAM_FILES=("$CAMDIR"/img*.jpg)
CAM_FILES=("${CAM_FILES[@]:0:$N}")
CAMORIGIN=http://127.0.0.1:$OPORT/$(basename "$CAMDIR")
cmd "# DCT path vs pixel path: the same Quire ingest with --jpeg-dct-memory 0 ('pixels'), on the inputs and on camera-like Q85 4:2:0 copies of them (vips jpegsave IN.jpg CAM.jpg --Q 85)"

QDATA=$RUN/quire-ingest
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="naive pyr floor quire pixels camfloor camdct campixels"
  else order="campixels camdct camfloor pixels quire floor pyr naive"; fi
  for what in $order; do
    log "ingest rep $rep: $what"
    case $what in
      floor) sync; record ingest_floor_r$rep "$("$FLOOR" 2 "${IN_FILES[@]}")" ;;
      naive) ref_ingest naive ingest_ref_naive 2 "${IN_FILES[@]}" ;;
      pyr) ref_ingest pyr ingest_ref_pyr 2 "${IN_FILES[@]}" ;;
      quire) quire_ingest ingest_quire_r$rep "$QDATA" "$ORIGIN" "${IN_FILES[@]}" ;;
      pixels) QUIRE_FLAGS="--jpeg-dct-memory 0" quire_ingest ingest_pixels_r$rep "$RUN/quire-pixels" "$ORIGIN" "${IN_FILES[@]}" ;;
      camfloor) sync; record cam_floor_r$rep "$("$FLOOR" 2 "${CAM_FILES[@]}")" ;;
      camdct) quire_ingest cam_dct_r$rep "$RUN/quire-camdct" "$CAMORIGIN" "${CAM_FILES[@]}" ;;
      campixels) QUIRE_FLAGS="--jpeg-dct-memory 0" quire_ingest cam_pixels_r$rep "$RUN/quire-campx" "$CAMORIGIN" "${CAM_FILES[@]}" ;;
    esac
  done
done
QLAST=($(cat "$QDATA.last"))  # customer space user of the last Quire ingest (served below)
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="ref quire"; else order="quire ref"; fi
  for what in $order; do
    log "big ingest rep $rep: $what"
    case $what in
      ref) ref_ingest pyr big_ref 1 "$BIGDIR/big.jpg" ;;
      quire) quire_ingest big_quire_r$rep "$RUN/quire-big" "$BIGORIGIN" "$BIGDIR/big.jpg" ;;
    esac
  done
done

# ------------------------------------------------------------------ 1a. slow origins
# Ingest that never waits on a slow origin (issue 17 §3): the first NS inputs from an origin
# whose every connection carries 4 MB/s and answers after 100 ms, against the same files from
# the fast local origin. Downloads run ahead of conversion (--fetch-concurrency 8, default).
$PY "$HERE/slow_origin.py" $SPORT "$OUT" 4000000 100 >"$RUN/slow-origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SPORT/$(basename "$INPUTS")/$(basename "${IN_FILES[0]}")"
SLOWORIGIN=http://127.0.0.1:$SPORT/$(basename "$INPUTS")
SLOW_FILES=("${IN_FILES[@]:0:$NS}")
cmd "# slow origin: bench/slow_origin.py (each connection 4,000,000 bytes/s, 100 ms before the first byte) over the same files; $NS images, one batch each way, alternating; quire serve defaults (--fetch-concurrency 8)"
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="fast slow"; else order="slow fast"; fi
  for what in $order; do
    log "slow origin rep $rep: $what"
    case $what in
      fast) quire_ingest origin_fast_r$rep "$RUN/quire-fast" "$ORIGIN" "${SLOW_FILES[@]}" ;;
      slow) quire_ingest origin_slow_r$rep "$RUN/quire-slow" "$SLOWORIGIN" "${SLOW_FILES[@]}" ;;
    esac
  done
done

# ------------------------------------------------------------------ 1b. TIFF masters
# Masters as digitisation programmes make them (issue 17 §4): uncompressed TIFF, half 8-bit
# RGB and half 16-bit RGB, made once from the JPEG inputs (resized to TW×TH) and kept.
TIFDIR=$OUT/tiff-masters-${TW}x${TH}
mkdir -p "$TIFDIR"
for i in $(seq 1 $NT); do
  f=$TIFDIR/master$i.tif
  [ -s "$f" ] && continue
  src=${IN_FILES[$(((i - 1) % ${#IN_FILES[@]}))]}
  vips resize "$src" "$TIFDIR/tmp.v" "$(echo "$TW / $W" | bc -l)" --vscale "$(echo "$TH / $H" | bc -l)"
  if [ $((i % 2)) = 0 ]; then  # 16-bit: the 8-bit samples times 257 (full 16-bit range)
    vips linear "$TIFDIR/tmp.v" "$TIFDIR/tmp16.v" 257 0
    vips cast "$TIFDIR/tmp16.v" "$TIFDIR/tmp16u.v" ushort
    vips copy "$TIFDIR/tmp16u.v" "$TIFDIR/tmp.v" --interpretation rgb16
    rm -f "$TIFDIR/tmp16.v" "$TIFDIR/tmp16u.v"
  fi
  vips tiffsave "$TIFDIR/tmp.v" "$f.tmp.tif" --compression none
  mv "$f.tmp.tif" "$f"
  rm -f "$TIFDIR/tmp.v"
done
TIF_FILES=("$TIFDIR"/master*.tif)
TIF_FILES=("${TIF_FILES[@]:0:$NT}")
# Read from the local disk as the CLI reads them: file:// origins under --origin-file-root (an
# HTTP origin here would be Python's http.server moving 1.2 GB).
TIFORIGIN=file://$TIFDIR
record tiff_inputs "{\"n\":$NT,\"w\":$TW,\"h\":$TH,\"bytes\":$(cat "${TIF_FILES[@]}" | wc -c)}"
cmd "# TIFF masters: $NT × ${TW}×${TH} uncompressed TIFF (odd: 8-bit RGB, even: 16-bit RGB), from the JPEG inputs by vips resize (+ linear ×257, cast ushort); reference: vips-one.sh pyr (the tiffsave pyramid + 4 thumbnails from it, 2 at a time), Quire: one batch of file:// origins (--origin-file-root)"
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="ref quire"; else order="quire ref"; fi
  for what in $order; do
    log "TIFF masters rep $rep: $what"
    case $what in
      ref) ref_ingest pyr tiff_ref 2 "${TIF_FILES[@]}" ;;
      quire) QUIRE_FLAGS="--origin-file-root $TIFDIR" quire_ingest tiff_quire_r$rep "$RUN/quire-tiff" "$TIFORIGIN" "${TIF_FILES[@]}" ;;
    esac
  done
done

# ------------------------------------------------------------------ 2. tiles
log "delivery: quire + iipsrv over the same pyramids"
CID=${QLAST[0]}; SID=${QLAST[1]}; QUSER=${QLAST[2]}
start_quire "$QDATA" $QPORT 2 --response-cache-bytes 0
$QB images http://127.0.0.1:$QPORT "$QUSER" "$CID" "$SID" >"$RUN/images.json"
IIPROOT=$RUN/iip
mkdir -p "$IIPROOT"
$PY - "$RUN/images.json" "$QDATA/blobs/$CID/$SID" "$IIPROOT" <<'EOF' >"$RUN/iipmap.json"
import json, os, sys
images, blobdir, root = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
m = {}
for im in images:
    src = os.path.join(blobdir, im["id"], "image.tif")  # ids are [A-Za-z0-9_-]: not escaped
    assert os.path.exists(src), src
    name = im["id"] + ".tif"
    os.symlink(src, os.path.join(root, name))
    m[im["id"]] = name
json.dump(m, sys.stdout)
EOF
cat >"$RUN/lighttpd.conf" <<EOF
server.modules = ("mod_fastcgi")
server.bind = "127.0.0.1"
server.port = $LPORT
server.document-root = "$IIPROOT"
server.errorlog = "$RUN/lighttpd-error.log"
server.max-connections = 1024
fastcgi.server = ("/iipsrv" => ((
  "socket" => "$RUN/iipsrv.sock",
  "bin-path" => "/usr/lib/iipimage-server/iipsrv.fcgi",
  "max-procs" => 2,
  "check-local" => "disable",
  "bin-environment" => (
    "FILESYSTEM_PREFIX" => "$IIPROOT/",
    "JPEG_QUALITY" => "90",
    "MAX_IMAGE_CACHE_SIZE" => "10",
    "MAX_CVT" => "5000",
    "VERBOSITY" => "1",
    "LOGFILE" => "$RUN/iipsrv.log"
  )
)))
EOF
lighttpd -D -f "$RUN/lighttpd.conf" >"$RUN/lighttpd.out" 2>&1 &
PIDS+=($!)
LPID=$!
FIRST_TIF=$($PY -c 'import json,sys; print(next(iter(json.load(open(sys.argv[1])).values())))' "$RUN/iipmap.json")
wait_http "http://127.0.0.1:$LPORT/iipsrv?IIIF=$FIRST_TIF/info.json"
cmd "# iipsrv: lighttpd -D -f lighttpd.conf (mod_fastcgi, iipsrv.fcgi, max-procs 2, JPEG_QUALITY 90, MAX_IMAGE_CACHE_SIZE 10, MAX_CVT 5000, no memcached); config below"
QPREFIX=/iiif-img/v2/$CID/$SID
for kind in tiles full info; do
  $QB urls $kind "$RUN/images.json" "$QPREFIX" "$RUN/iipmap.json" "$RUN/$kind-quire.txt" "$RUN/$kind-iip.txt" >"$RUN/$kind-count.json"
  for srv in quire iip; do
    port=$QPORT; [ $srv = iip ] && port=$LPORT
    $QB check_urls http://127.0.0.1:$port "$RUN/$kind-$srv.txt" 30 >"$RUN/$kind-$srv-check.json"
    record "check_${kind}_$srv" "$(cat "$RUN/$kind-$srv-check.json")"
  done
done
record tile_urls "$(cat "$RUN/tiles-count.json")"

run_wrk() { # NAME PORT URLFILE CONNS DURATION [AUTH]
  local name=$1 port=$2 urls=$3 conns=$4 dur=$5 auth=${6:-}
  URLS=$urls AUTH=$auth wrk -t2 -c"$conns" -d"${dur}s" --timeout 10s -s "$HERE/urls.lua" \
    "http://127.0.0.1:$port" >"$RUN/wrk-$name.txt" 2>&1
  if [ -n "$name" ]; then record "$name" "$($QB wrk "$RUN/wrk-$name.txt")"; fi
}
cmd "# load: URLS=LIST wrk -t2 -c64 -dDs --timeout 10s -s bench/urls.lua http://127.0.0.1:PORT (random line of LIST per request; -c8 for full renders)"
compare() { # KIND CONNS DURATION: warm-up both, then alternate REPS times
  local kind=$1 conns=$2 dur=$3
  run_wrk "" $QPORT "$RUN/$kind-quire.txt" "$conns" 2
  run_wrk "" $LPORT "$RUN/$kind-iip.txt" "$conns" 2
  for rep in $(seq 1 $REPS); do
    if [ $((rep % 2)) = 1 ]; then order="quire iip"; else order="iip quire"; fi
    for srv in $order; do
      log "wrk $kind $srv rep $rep (-c$conns ${dur}s)"
      port=$QPORT; [ $srv = iip ] && port=$LPORT
      run_wrk "${kind}_${srv}_r$rep" $port "$RUN/$kind-$srv.txt" "$conns" "$dur"
    done
  done
}
compare tiles 64 $DUR
compare full 8 $DUR
compare info 64 $DUR_SHORT
# The physical HTTP limit for tiles (issue 17 §5): nginx serving the very same tile bytes, each
# extracted once from Quire to a static file at the same path, under the same load.
log "tiles: extracting the tile URLs as static files for nginx"
$QB extract http://127.0.0.1:$QPORT "$RUN/tiles-quire.txt" "$RUN/nginx-tiles/www" >"$RUN/tiles-extract.json"
record tiles_extract "$(cat "$RUN/tiles-extract.json")"
start_nginx "$RUN/nginx-tiles" $NPORT "$(head -1 "$RUN/tiles-quire.txt")" \
  "sendfile on; tcp_nopush on; open_file_cache max=20000 inactive=60s;" \
  'location / { default_type image/jpeg; }'
TNGPID=$NGINX_PID
cmd "# tiles vs nginx: every URL of the tile list fetched once from Quire into nginx-tiles/www/PATH (bench/qb.py extract); nginx -c nginx.conf (2 workers, access_log off, sendfile, open_file_cache) serves them; the same URL list and wrk -c64 against both, alternating"
run_wrk "" $NPORT "$RUN/tiles-quire.txt" 64 2
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="quire nginx"; else order="nginx quire"; fi
  for srv in $order; do
    log "wrk tiles vs nginx: $srv rep $rep"
    if [ $srv = quire ]; then run_wrk tilesn_quire_r$rep $QPORT "$RUN/tiles-quire.txt" 64 $DUR
    else run_wrk tilesn_nginx_r$rep $NPORT "$RUN/tiles-quire.txt" 64 $DUR; fi
  done
done
stop_pid "$TNGPID"
# Tiles again with Quire's response cache on (its default, 64 MB): informational, not the ratio.
stop_pid "$QPID"
start_quire "$QDATA" $QPORT 2
run_wrk "" $QPORT "$RUN/tiles-quire.txt" 64 2
log "wrk tiles quire with response cache"
run_wrk tiles_quire_cached $QPORT "$RUN/tiles-quire.txt" 64 $DUR_SHORT
TILE_QPID=$QPID

profile_wrk() { # NAME PID PORT URLFILE CONNS [AUTH]
  [ "$PROFILE" = 1 ] && command -v perf >/dev/null || return 0
  local name=$1 pid=$2 port=$3 urls=$4 conns=$5 auth=${6:-}
  log "profile $name"
  perf record -F 199 --call-graph dwarf -p "$pid" -o "$RUN/perf-$name.data" -- sleep 8 >/dev/null 2>&1 &
  local pp=$!
  URLS=$urls AUTH=$auth wrk -t2 -c"$conns" -d9s --timeout 10s -s "$HERE/urls.lua" \
    "http://127.0.0.1:$port" >/dev/null 2>&1 || true
  wait $pp || true
  perf_summary "$RUN/perf-$name.data" "$RUN/profile-$name.txt"
}
NEED_PROFILE=$($PY - "$RES" <<'EOF'
import json, statistics, sys
rs = {}
for l in open(sys.argv[1]):
    d = json.loads(l); rs.setdefault(d["k"].rsplit("_r", 1)[0] if "_r" in d["k"] else d["k"], []).append(d["v"])
def med(k, f): return statistics.median(v[f] for v in rs[k])
need = []
for kind, t_rps in (("tiles", 3), ("full", 2), ("info", 3)):
    if med(f"{kind}_quire", "rps") < t_rps * med(f"{kind}_iip", "rps"): need.append(kind)
    elif kind == "tiles" and med("tiles_quire", "p99_ms") > 0.5 * med("tiles_iip", "p99_ms"): need.append(kind)
print(" ".join(need))
EOF
)
stop_pid "$TILE_QPID"
if [ -n "$NEED_PROFILE" ]; then
  start_quire "$QDATA" $QPORT 2 --response-cache-bytes 0
  for kind in $NEED_PROFILE; do
    c=64; [ $kind = full ] && c=8
    profile_wrk "$kind" "$QPID" $QPORT "$RUN/$kind-quire.txt" $c
  done
  stop_pid "$QPID"
fi
stop_pid "$LPID"

# ------------------------------------------------------------------ 3. API
log "api: batch GET vs nginx static"
ADATA=$RUN/quire-api
start_quire "$ADATA" $QPORT 0
SETUP=$($QB setup http://127.0.0.1:$QPORT $ADMIN api 1)
ACID=$(echo "$SETUP" | $PY -c 'import json,sys;print(json.load(sys.stdin)["customer"])')
AUSER=$(echo "$SETUP" | $PY -c 'import json,sys;print(json.load(sys.stdin)["user"])')
ASID=$(echo "$SETUP" | $PY -c 'import json,sys;print(json.load(sys.stdin)["spaces"][0])')
cmd "# API server: quire serve --workers 0 (no ingest while the API is measured); POST 250-image batches, sequential, one connection"
$QB post_batches http://127.0.0.1:$QPORT "$AUSER" "$ACID" "$ASID" 3 250 "http://127.0.0.1:9/x.jpg" >/dev/null
log "api: POST 250-image batches"
record post_batch "$($QB post_batches http://127.0.0.1:$QPORT "$AUSER" "$ACID" "$ASID" $POSTS 250 "http://127.0.0.1:9/x.jpg")"
BPATH=/customers/$ACID/queue/batches/1
mkdir -p "$RUN/nginx/www"
$QB fetch http://127.0.0.1:$QPORT "$AUSER" "$BPATH" "$RUN/nginx/www/batch.json" >"$RUN/batch-bytes.json"
start_nginx "$RUN/nginx" $NPORT /batch.json
NGPID=$NGINX_PID
echo "$BPATH" >"$RUN/api-quire.txt"
echo "/batch.json" >"$RUN/api-nginx.txt"
AUTHH="Basic $(printf '%s' "$AUSER" | base64 -w0)"
cmd "# nginx: nginx -c nginx.conf (2 workers, access_log off) serving the Quire batch body as /batch.json; both with wrk -t2 -c64 (Quire with Authorization: Basic)"
run_wrk "" $QPORT "$RUN/api-quire.txt" 64 2 "$AUTHH"
run_wrk "" $NPORT "$RUN/api-nginx.txt" 64 2
for rep in $(seq 1 $REPS); do
  if [ $((rep % 2)) = 1 ]; then order="quire nginx"; else order="nginx quire"; fi
  for srv in $order; do
    log "wrk api $srv rep $rep"
    if [ $srv = quire ]; then run_wrk api_quire_r$rep $QPORT "$RUN/api-quire.txt" 64 $DUR_SHORT "$AUTHH"
    else run_wrk api_nginx_r$rep $NPORT "$RUN/api-nginx.txt" 64 $DUR_SHORT; fi
  done
done
API_NEED=$($PY - "$RES" <<'EOF'
import json, statistics, sys
q, n = [], []
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["k"].startswith("api_quire"): q.append(d["v"]["rps"])
    if d["k"].startswith("api_nginx"): n.append(d["v"]["rps"])
print(1 if statistics.median(q) < 0.5 * statistics.median(n) else 0)
EOF
)
[ "$API_NEED" = 1 ] && profile_wrk api "$QPID" $QPORT "$RUN/api-quire.txt" 64 "$AUTHH"
stop_pid "$NGPID"
stop_pid "$QPID"

# ------------------------------------------------------------------ 3b. table growth
log "tables: $ROWS_SMALL vs $ROWS_BIG rows"
cmd "# table growth: two servers (--workers 0) at once, one with $ROWS_SMALL rows, one with $ROWS_BIG (assets + batch_assets of one space, batches, and queued jobs of 50 other customers, half in retry backoff: bench/qb.py populate); sequential GETs alternate between them"
declare -A SC
for rows in $ROWS_SMALL $ROWS_BIG; do
  d=$RUN/quire-rows$rows
  start_quire "$d" $QPORT 0
  s=$($QB setup http://127.0.0.1:$QPORT $ADMIN rows 1)
  stop_pid "$QPID"
  SC[$rows]=$s
  c=$(echo "$s" | $PY -c 'import json,sys;print(json.load(sys.stdin)["customer"])')
  sp=$(echo "$s" | $PY -c 'import json,sys;print(json.load(sys.stdin)["spaces"][0])')
  record "populate_$rows" "$($QB populate "$d/quire.db" "$c" "$sp" $rows)"
done
start_quire "$RUN/quire-rows$ROWS_SMALL" $QPORT 0; P1=$QPID
start_quire "$RUN/quire-rows$ROWS_BIG" $QPORT2 0; P2=$QPID
c=$(echo "${SC[$ROWS_SMALL]}" | $PY -c 'import json,sys;print(json.load(sys.stdin)["customer"])')
u1=$(echo "${SC[$ROWS_SMALL]}" | $PY -c 'import json,sys;print(json.load(sys.stdin)["user"])')
u2=$(echo "${SC[$ROWS_BIG]}" | $PY -c 'import json,sys;print(json.load(sys.stdin)["user"])')
sp=$(echo "${SC[$ROWS_SMALL]}" | $PY -c 'import json,sys;print(json.load(sys.stdin)["spaces"][0])')
# Batch listings ask for pages of 4: the small database holds only 4 batches, and a page must
# carry the same number of members at both sizes for the comparison to be about table size.
LPATHS=("/customers/$c/spaces/$sp/images" "/customers/$c/spaces/$sp/images?page=5" "/customers/$c/queue/batches?pageSize=4"
        "/customers/$c/queue/active" "/customers/$c/queue/batches/2/images" "/customers/$c/spaces/$sp"
        "/customers/$c/queue")
NLAT=100; [ "$QUICK" = 1 ] && NLAT=50
for rep in 1 2; do
  record "list_small_r$rep" "$($QB latency http://127.0.0.1:$QPORT "$u1" $NLAT "${LPATHS[@]}")"
  record "list_big_r$rep" "$($QB latency http://127.0.0.1:$QPORT2 "$u2" $NLAT "${LPATHS[@]}")"
done
LIST_NEED=$($PY - "$RES" <<'EOF'
import json, sys
s, b = {}, {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["k"].startswith("list_small"): s = d["v"]
    if d["k"].startswith("list_big"): b = d["v"]
print(" ".join(p for p in s if b[p]["p50_ms"] > 1.5 * s[p]["p50_ms"]))
EOF
)
if [ -n "$LIST_NEED" ] && [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
  log "profile listing at $ROWS_BIG rows"
  perf record -F 199 --call-graph dwarf -p "$P2" -o "$RUN/perf-list.data" -- sleep 6 >/dev/null 2>&1 &
  pp=$!
  timeout 6 $QB latency http://127.0.0.1:$QPORT2 "$u2" 100000 $LIST_NEED >/dev/null 2>&1 || true
  wait $pp || true
  perf_summary "$RUN/perf-list.data" "$RUN/profile-list.txt"
fi
stop_pid "$P1"; stop_pid "$P2"
cmd "# job claim: the SQL of SqliteStore::ClaimJob run against each database (BEGIN IMMEDIATE … ROLLBACK) by bench/qb.py claim"
NCL=300; [ "$QUICK" = 1 ] && NCL=50
for rep in 1 2; do
  record "claim_small_r$rep" "$($QB claim "$RUN/quire-rows$ROWS_SMALL/quire.db" $NCL)"
  record "claim_big_r$rep" "$($QB claim "$RUN/quire-rows$ROWS_BIG/quire.db" $NCL)"
done

# ------------------------------------------------------------------ report
T_END=$(date +%s)
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/machine.txt"
echo "bench wall time: $((T_END - T_START)) s" >>"$RUN/machine.txt"
$PY "$HERE/report.py" "$RUN" "$REPORT"
log "wrote $REPORT ($((T_END - T_START)) s)"
