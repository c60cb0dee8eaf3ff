#!/usr/bin/env bash
# Audio/video benchmark (issue 14 §4): the transcode of one video through Quire vs plain
# ffmpeg with the same settings on the same file, alternating (ABBA), medians reported.
#   Quire: `quire serve --workers 1`, one batch of the video from a file:// origin, POST ->
#          the batch's `finished` (download, ffprobe, transcode, probe of the output, poster
#          frame and 4 thumbnails, storing), and the transcode alone from the server's log.
#   plain: the exact ffmpeg command Quire logged ("av transcode: ..."), on the same input.
# Target: Quire's POST -> finished ≤ 1.1 × plain ffmpeg.
# Writes bench/REPORT-av.md. BENCH_QUICK=1: a 10 s 1280x720 input, 1 repetition.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then SECS=10; SIZE=1280x720; REPS=1; else SECS=30; SIZE=1920x1080; REPS=2; fi
PORT=${BENCH_PORT_BASE:-18800}
OUT=$HERE/out
RUN=$OUT/av
REPORT=$HERE/REPORT-av.md
[ "$QUICK" = 1 ] && REPORT=$OUT/REPORT-av-quick.md
rm -rf "$RUN"
mkdir -p "$RUN/origin"
cp "$ROOT/build/quire" "$RUN/quire"
QUIRE=$RUN/quire
ADMIN=benchadmin:benchsecret
log() { echo "[bench-av $(date +%T)] $*" >&2; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc | sed 's/^\./0./'; }
# stop_pid, stop_pids, wait_http
source "$HERE/lib.sh"
trap stop_pids EXIT

INPUT=$RUN/origin/master.mp4
log "input: ${SECS} s ${SIZE} testsrc2 + sine, H.264 CRF 18 / AAC 192k"
ffmpeg -nostdin -hide_banner -v error -y -f lavfi -i "testsrc2=size=$SIZE:rate=25:duration=$SECS" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$SECS" \
  -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 192k -shortest "$INPUT"
INPUT_BYTES=$(stat -c %s "$INPUT")

DATA=$RUN/data
mkdir -p "$DATA"
"$QUIRE" serve --listen 127.0.0.1:$PORT --data "$DATA" --admin-key benchadmin \
  --admin-secret benchsecret --workers 1 --origin-file-root "$RUN/origin" >>"$RUN/quire.log" 2>&1 &
QPID=$!
PIDS+=("$QPID")
wait_http "http://127.0.0.1:$PORT/healthz"
curl -fsS -u $ADMIN -X POST http://127.0.0.1:$PORT/customers/1/spaces -d '{"name":"av"}' >/dev/null
SPACE=1

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# One batch of the video under a new id; prints the seconds from POST to finished. One Python
# process polls over one keep-alive connection every 100 ms: a curl + python per poll would
# take a fifth of this 2-core machine from the transcode it measures.
run_quire() { # ID
  $PY - "$PORT" "$1" "$SPACE" "$INPUT" <<'PYEOF'
import base64, http.client, json, sys, time
port, image_id, space, origin = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
auth = {"Authorization": "Basic " + base64.b64encode(b"benchadmin:benchsecret").decode()}
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=600)
body = {"@type": "Collection", "member": [{"id": image_id, "space": space,
        "origin": "file://" + origin, "mediaType": "video/mp4"}]}
t0 = time.monotonic()
c.request("POST", "/customers/1/queue", json.dumps(body), auth)
batch = json.loads(c.getresponse().read())["id"]
while True:
    c.request("GET", f"/customers/1/queue/batches/{batch}", headers=auth)
    d = json.loads(c.getresponse().read())
    if "finished" in d:
        break
    time.sleep(0.1)
t1 = time.monotonic()
if d["completed"] != 1:
    sys.exit(f"quire failed the video: {d}")
print(f"{t1 - t0:.3f}")
PYEOF
}

# The command Quire ran (after the warm-up), with its input and output replaced by ours.
plain_command() {
  local cmd
  cmd=$(grep -o 'av transcode: .*' "$RUN/quire.log" | tail -1 | sed 's/^av transcode: //')
  [ -n "$cmd" ] || { log "no 'av transcode:' line in the log"; exit 1; }
  $PY - "$cmd" "$INPUT" "$RUN/plain.mp4" <<'PYEOF'
import shlex, sys
args = sys.argv[1].split(" ")
args[args.index("-i") + 1] = sys.argv[2]
args[-1] = sys.argv[3]
print(" ".join(shlex.quote(a) for a in args))
PYEOF
}

run_plain() {
  local t0 t1
  t0=$(now)
  eval "$PLAIN_CMD"
  t1=$(now)
  secs "$t0" "$t1"
}

QT=(); PT=(); TT=(); IDS=()
run_quire warmup >/dev/null  # first run: starts the worker, fills the page cache
PLAIN_CMD=$(plain_command)
for r in $(seq 1 "$REPS"); do
  for order in AB BA; do
    for side in $(echo $order | fold -w1); do
      if [ "$side" = A ]; then
        t=$(run_quire "v$r$order"); QT+=("$t"); IDS+=("v$r$order"); log "quire  $t s"
      else
        t=$(run_plain); PT+=("$t"); log "ffmpeg $t s"
      fi
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
# The worker's audio/video step of each run, as it logged it ("ingest C/S/ID: MP4 of H:MM:SS
# (WxH) in N ms"); read once the server has stopped and flushed its log.
stop_pid "$QPID"
for id in "${IDS[@]}"; do
  TT+=("$(grep -o "ingest 1/$SPACE/$id: MP4 of [0-9:.]* ([0-9x]*) in [0-9]* ms" "$RUN/quire.log" |
    grep -o '[0-9]* ms$' | cut -d' ' -f1)")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
QM=$(median "${QT[@]}")
PM=$(median "${PT[@]}")
TM=$(median "${TT[@]}")
RATIO=$(echo "scale=3; $QM / $PM" | bc | sed 's/^\./0./')
TRATIO=$(echo "scale=3; $TM / 1000 / $PM" | bc | sed 's/^\./0./')
VERDICT=$(echo "$RATIO <= 1.1" | bc)
OUTPUT_INFO=$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height \
  -of csv=p=0 "$RUN/plain.mp4")

{
  echo "# Audio/video transcode: Quire vs plain ffmpeg"
  echo
  echo "Generated by \`bench/av.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "## Machine"
  echo
  echo "- $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GB RAM"
  echo "- load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared: other builds and tests ran meanwhile)"
  echo "- $(ffmpeg -version | head -1)"
  echo
  echo "## Input and settings"
  echo
  echo "- ${SECS} s ${SIZE} \`testsrc2\` + 440 Hz sine, H.264 CRF 18 + AAC 192 kbit/s, $INPUT_BYTES bytes"
  echo "- output (policy \`default-video\`): $OUTPUT_INFO (codec,width,height)"
  echo "- the command Quire ran, as it logged it (one argument per space; the plain run gets"
  echo "  exactly these arguments with its own INPUT and OUTPUT):"
  echo
  echo '```'
  grep -o 'av transcode: .*' "$RUN/quire.log" | tail -1 | sed 's/^av transcode: //' |
    sed -E "s| -i [^ ]+ | -i INPUT |; s| [^ ]+\$| OUTPUT|"
  echo '```'
  echo
  echo "## Results ($REPS × ABBA, medians)"
  echo
  echo "| | seconds | ratio to plain ffmpeg |"
  echo "|---|---|---|"
  echo "| plain ffmpeg | $PM | 1 |"
  echo "| Quire, POST → batch finished (fetch, probe, transcode, probe, poster + 4 thumbnails, store) | $QM | **${RATIO}×** |"
  echo "| Quire, the worker's audio/video step alone (from its log) | $(echo "scale=2; $TM / 1000" | bc | sed 's/^\./0./') | ${TRATIO}× |"
  echo
  echo "Raw: quire ${QT[*]} s; ffmpeg ${PT[*]} s; worker step ${TT[*]} ms."
  echo
  if [ "$VERDICT" = 1 ]; then
    echo "Target ≤ 1.1×: **met** (${RATIO}×)."
  else
    echo "Target ≤ 1.1×: **missed** (${RATIO}×)."
  fi
} >"$REPORT"
log "wrote $REPORT"
cat "$REPORT"
