#!/usr/bin/env bash
# JPEG 2000 and the decode sandbox (issue 14), each against a reference in the same run,
# alternating (ABBA):
#   1. ingest of one 6000×4000 JP2 (lossy 10:1, 1024² tiles, 6 resolutions, as DLCS-style
#      masters are) through `quire serve --workers 1` (sandboxed decode + the pyramid pipeline)
#      vs the OpenJPEG CLI decode of the same file (`opj_decompress -threads 1` to PPM) followed
#      by the same pyramid pipeline with the vips CLI (tiffsave --pyramid JPEG Q85 256² +
#      vipsthumbnail 1024/400/200/100 from the pyramid); Quire's own split (sandbox / pyramid /
#      thumbnails) from its log;
#   2. the sandbox's cost on a trusted format: N 6000×4000 JPEGs ingested with
#      `--decode-sandbox all` (every format through the child) vs the default `untrusted`
#      (JPEG in-process), `--workers 2`.
# Writes bench/REPORT-jp2.md. BENCH_QUICK=1: 2000×1500, 4 JPEGs, one repetition.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
QB="$PY $HERE/qb.py"
QUICK=${BENCH_QUICK:-0}
W=6000; H=4000; N=8; REPS=3
REPORT=$HERE/REPORT-jp2.md
if [ "$QUICK" = 1 ]; then W=2000; H=1500; N=4; REPS=1; REPORT=$HERE/out/REPORT-jp2-quick.md; fi
PORT_BASE=${BENCH_PORT_BASE:-18880}
QPORT=$PORT_BASE; OPORT=$((PORT_BASE + 1))
OUT=$HERE/out
RUN=$OUT/jp2
QUIRE=${QUIRE:-$ROOT/build/quire}
T_START=$(date +%s)
log() { echo "[bench-jp2 $(($(date +%s) - T_START))s] $*" >&2; }
source "$HERE/lib.sh"
trap stop_pids EXIT
for tool in opj_compress opj_decompress vips vipsthumbnail; do
  command -v $tool >/dev/null || { echo "jp2.sh: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || "$HERE/install-bench-deps.sh"

rm -rf "$RUN"
mkdir -p "$RUN"
cp "$QUIRE" "$RUN/quire"  # a rebuild in the tree must not swap the binary mid-run
QUIRE=$RUN/quire
RES=$RUN/results.jsonl
: >"$RES"
record() { [ -n "$2" ] || { echo "jp2.sh: no result for $1" >&2; exit 1; }; echo "{\"k\":\"$1\",\"v\":$2}" >>"$RES"; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ADMIN=benchadmin:benchsecret
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | sed 's/^\./0./'; }

# ------------------------------------------------------------------ inputs
INPUTS=$OUT/inputs-${W}x${H}  # shared with bench/run.sh (cached)
JP2DIR=$OUT/inputs-jp2-${W}x${H}
log "inputs: $N × ${W}x${H} JPEG (cached in $INPUTS) and one JP2"
make_inputs "$INPUTS" "$N" $W $H
IN_FILES=("$INPUTS"/img*.jpg)
IN_FILES=("${IN_FILES[@]:0:$N}")
mkdir -p "$JP2DIR"
if [ ! -s "$JP2DIR/master.jp2" ]; then
  vips copy "${IN_FILES[0]}" "$JP2DIR/master.ppm"
  t0=$(now)
  opj_compress -i "$JP2DIR/master.ppm" -o "$JP2DIR/master.tmp.jp2" -r 10 -t 1024,1024 -n 6 >/dev/null
  echo "$(since "$t0")" >"$JP2DIR/encode-seconds"
  mv "$JP2DIR/master.tmp.jp2" "$JP2DIR/master.jp2"
  rm -f "$JP2DIR/master.ppm"
fi
JP2=$JP2DIR/master.jp2
record inputs "{\"w\":$W,\"h\":$H,\"n\":$N,\"jpeg_bytes\":$(cat "${IN_FILES[@]}" | wc -c),\"jp2_bytes\":$(stat -c %s "$JP2"),\"encode_s\":$(cat "$JP2DIR/encode-seconds")}"

$PY -m http.server --bind 127.0.0.1 $OPORT --directory "$OUT" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$OPORT/"
ORIGIN_JPEG=http://127.0.0.1:$OPORT/$(basename "$INPUTS")
ORIGIN_JP2=http://127.0.0.1:$OPORT/$(basename "$JP2DIR")

# A fresh server per batch (its VmHWM is that batch's peak), one customer and space.
start_quire() { # DATA WORKERS FLAGS...
  local data=$1 workers=$2; shift 2
  rm -rf "$data"
  "$QUIRE" serve --listen 127.0.0.1:$QPORT --data "$data" --admin-key benchadmin \
    --admin-secret benchsecret --workers "$workers" --allow-private-origins \
    --response-cache-bytes 0 "$@" >"$data.log" 2>&1 &
  QPID=$!
  PIDS+=("$QPID")
  wait_http "http://127.0.0.1:$QPORT/healthz"
}
quire_ingest() { # NAME DATA WORKERS ORIGIN_BASE "FLAGS" FILES...
  local name=$1 data=$2 workers=$3 ob=$4 flags=$5; shift 5
  # shellcheck disable=SC2086
  start_quire "$data" "$workers" $flags
  bench_customer "http://127.0.0.1:$QPORT" "$ADMIN"
  sync
  local r; r=$($QB ingest "http://127.0.0.1:$QPORT" "$BENCH_USER" "$BENCH_CUSTOMER" "$BENCH_SPACE" "$QPID" "$ob" "$@")
  record "$name" "$r"
  sleep 1.2  # the log reaches its file within a second
  stop_pid "$QPID"
}

# ------------------------------------------------------------------ 1. JP2 ingest vs opj_decompress + CLI
cat >"$RUN/ref-one.sh" <<'EOF'
#!/usr/bin/env bash
# ref-one.sh IN.jp2 OUTDIR TIMES: opj_decompress to PPM, then the pyramid + thumbnails
set -euo pipefail
in=$1 od=$2 times=$3
rm -rf "$od"; mkdir -p "$od"
T() { /usr/bin/time -a -o "$times" -f "%e %M $1" "$@" >/dev/null; }
T opj_decompress -threads 1 -i "$in" -o "$od/decoded.ppm"
T vips tiffsave "$od/decoded.ppm" "$od/image.tif" --tile --pyramid --compression jpeg --Q 85 --tile-width 256 --tile-height 256
for s in 1024 400 200 100; do T vipsthumbnail "$od/image.tif" --size $s -o "$od/thumb-$s.jpg"; done
EOF
chmod +x "$RUN/ref-one.sh"
ref_jp2() { # NAME
  local times=$RUN/$1.times t0
  rm -f "$times"
  sync
  t0=$(now)
  "$RUN/ref-one.sh" "$JP2" "$RUN/ref-out" "$times"
  local total; total=$(since "$t0")
  local dec; dec=$(awk '$3 == "opj_decompress" {print $1}' "$times")
  local maxkb; maxkb=$(awk '{print $2}' "$times" | sort -n | tail -1)
  local deckb; deckb=$(awk '$3 == "opj_decompress" {print $2}' "$times")
  record "$1" "{\"seconds\":$total,\"decode_s\":$dec,\"max_rss_kb\":$maxkb,\"decode_rss_kb\":$deckb}"
  rm -rf "$RUN/ref-out"
}
quire_jp2() { # NAME
  quire_ingest "$1" "$RUN/q-jp2" 1 "$ORIGIN_JP2" "" "$JP2"
  # The split from the log: "sandboxed decode done in N ms (C s CPU, peak RSS M MiB)" and the
  # outcome line "(fetch F, sandbox S, probe P, pyramid Y, thumbnails T, store O)".
  $PY - "$RUN/q-jp2.log" "$1" >>"$RES" <<'PYEOF'
import json, re, sys
text = open(sys.argv[1]).read()
d = {}
m = re.search(r"sandboxed decode done in (\d+) ms \(([\d.]+) s CPU, peak RSS (\d+) MiB\)", text)
if m: d.update(child_ms=int(m[1]), child_cpu_s=float(m[2]), child_rss_mib=int(m[3]))
m = re.search(r"done in (\d+) ms \(fetch (\d+), sandbox (\d+), probe (\d+), pyramid (\d+), thumbnails (\d+), store (\d+)\)", text)
if m: d.update(zip(["total_ms", "fetch_ms", "sandbox_ms", "probe_ms", "pyramid_ms", "thumbnails_ms", "store_ms"], map(int, m.groups())))
print(json.dumps({"k": sys.argv[2] + "_split", "v": d}))
PYEOF
}
log "1. JP2 ${W}x${H} ingest: quire vs opj_decompress + vips CLI"
for rep in $(seq 1 "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then quire_jp2 jp2_quire_r$rep; ref_jp2 jp2_ref_r$rep
  else ref_jp2 jp2_ref_r$rep; quire_jp2 jp2_quire_r$rep; fi
done

# ------------------------------------------------------------------ 2. sandbox overhead on JPEG
log "2. $N JPEG ${W}x${H}: --decode-sandbox all vs untrusted"
for rep in $(seq 1 "$REPS"); do
  for mode in $([ $((rep % 2)) = 1 ] && echo "untrusted all" || echo "all untrusted"); do
    quire_ingest "jpeg_${mode}_r$rep" "$RUN/q-jpeg" 2 "$ORIGIN_JPEG" "--decode-sandbox $mode" "${IN_FILES[@]}"
    children=$(grep -c 'sandboxed decode done' "$RUN/q-jpeg.log" || true)
    record "jpeg_${mode}_r${rep}_children" "${children:-0}"
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ report
$PY - "$RES" "$REPORT" "$LOAD_START" "$LOAD_END" "$QUICK" "$(git -C "$ROOT" rev-parse --short HEAD)" <<'PYEOF'
import json, statistics, subprocess, sys
res, report, load0, load1, quick, head = sys.argv[1:7]
r = {}
for line in open(res):
    d = json.loads(line)
    r[d["k"]] = d["v"]
def runs(prefix):
    return [v for k, v in sorted(r.items()) if k.startswith(prefix + "_r") and k[len(prefix) + 2:].isdigit()]
def med(prefix, field="seconds"):
    return statistics.median(v[field] for v in runs(prefix))
inp = r["inputs"]
q, ref = med("jp2_quire"), med("jp2_ref")
refdec = med("jp2_ref", "decode_s")
splits = [v for k, v in sorted(r.items()) if k.startswith("jp2_quire_r") and k.endswith("_split")]
def msplit(f):
    vals = [s[f] for s in splits if f in s]
    return statistics.median(vals) if vals else float("nan")
qh = max(v["vmhwm_kb"] for v in runs("jp2_quire")) / 1024
refrss = max(v["max_rss_kb"] for v in runs("jp2_ref")) / 1024
ju, ja = med("jpeg_untrusted"), med("jpeg_all")
hu = max(v["vmhwm_kb"] for v in runs("jpeg_untrusted")) / 1024
ha = max(v["vmhwm_kb"] for v in runs("jpeg_all")) / 1024
children = {k: v for k, v in r.items() if k.endswith("_children")}
errors = sum(v["errors"] for k, v in r.items() if isinstance(v, dict) and "errors" in v)
cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"], capture_output=True, text=True).stdout.strip()
L = []
L.append("# JPEG 2000 and the decode sandbox" + (" (QUICK: small inputs, not the benchmark's figures)" if quick == "1" else ""))
L.append("")
L.append(f"`bench/jp2.sh` at {head}. Machine: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
         f"shared with other builds and tests: load average {load0} at the start, {load1} at the end. "
         f"Medians of {len(runs('jp2_quire'))} runs per side, alternating (ABBA). Every batch on a fresh `quire serve`.")
L.append("")
L.append(f"Inputs: {inp['w']}×{inp['h']} perlin-noise images (bench/lib.sh `gen_image`); the JP2 is the first of them, "
         f"encoded by `opj_compress -r 10 -t 1024,1024 -n 6` ({inp['jp2_bytes']/1e6:.1f} MB, encoding took {inp['encode_s']:.1f} s); "
         f"{inp['n']} JPEGs Q90 ({inp['jpeg_bytes']/1e6:.1f} MB in all).")
L.append("")
L.append("## 1. One JP2 ingested")
L.append("")
L.append("| | seconds | peak RSS |")
L.append("|---|---|---|")
L.append(f"| Quire: POST → `finished` (`--workers 1`; sandboxed decode, then the pyramid pipeline) | {q:.2f} | server {qh:.0f} MiB, decode child {msplit('child_rss_mib'):.0f} MiB |")
L.append(f"| reference: `opj_decompress -threads 1` to PPM + `vips tiffsave --pyramid` + 4 × `vipsthumbnail` | {ref:.2f} | {refrss:.0f} MiB (largest step) |")
L.append(f"| **ratio Quire / reference** | **{q/ref:.2f}×** | |")
L.append("")
L.append("Each run (seconds): Quire " + ", ".join(f"{v['seconds']:.2f}" for v in runs("jp2_quire")) +
         "; reference " + ", ".join(f"{v['seconds']:.2f}" for v in runs("jp2_ref")) + ".")
L.append("")
L.append(f"Where the time goes. Quire (from its log): decode in the sandbox {msplit('sandbox_ms')/1000:.2f} s "
         f"(child CPU {msplit('child_cpu_s'):.2f} s), pyramid {msplit('pyramid_ms')/1000:.2f} s, thumbnails {msplit('thumbnails_ms')/1000:.2f} s, "
         f"fetch {msplit('fetch_ms')/1000:.2f} s, store {msplit('store_ms')/1000:.2f} s. "
         f"Reference: `opj_decompress` {refdec:.2f} s, the rest {ref - refdec:.2f} s. "
         f"The decoder is OpenJPEG's either way, single-threaded on both sides (the child runs libvips with one thread; "
         f"`-threads 1`), but libvips' jp2kload decodes tile by tile into its pipeline where `opj_decompress` decodes the whole "
         f"image into one buffer and converts it to PPM (hence its larger peak RSS, {med('jp2_ref', 'decode_rss_kb')/1024:.0f} MiB). "
         f"The sandbox's own share: the child's start, the uncompressed intermediate TIFF written and read back.")
L.append("")
L.append(f"## 2. The sandbox's cost on JPEG ({inp['n']} × {inp['w']}×{inp['h']}, `--workers 2`)")
L.append("")
L.append("| `--decode-sandbox` | seconds (batch) | per image | server peak RSS | children started |")
L.append("|---|---|---|---|---|")
cu = max(v for k, v in children.items() if k.startswith("jpeg_untrusted"))
ca = max(v for k, v in children.items() if k.startswith("jpeg_all"))
L.append(f"| `untrusted` (default: JPEG decoded in-process) | {ju:.2f} | {ju/inp['n']*2:.2f} s of a worker | {hu:.0f} MiB | {cu} |")
L.append(f"| `all` (JPEG decoded in the child first) | {ja:.2f} | {ja/inp['n']*2:.2f} s of a worker | {ha:.0f} MiB | {ca} |")
L.append(f"| **ratio all / untrusted** | **{ja/ju:.2f}×** | | | |")
L.append("")
L.append("Each run (seconds): untrusted " + ", ".join(f"{v['seconds']:.2f}" for v in runs("jpeg_untrusted")) +
         "; all " + ", ".join(f"{v['seconds']:.2f}" for v in runs("jpeg_all")) + ".")
L.append("")
L.append("In-process, libvips streams the JPEG decode straight into the pyramid writer; through the sandbox the image is decoded "
         f"whole into an uncompressed TIFF in the scratch directory ({inp['w']*inp['h']*3/2**20:.0f} MiB per image here) and read back, "
         "so every byte of pixels crosses the page cache twice more, plus a process start per image. "
         "That is the price of moving a trusted format behind the wall; untrusted formats pay it because the alternative is "
         "running their decoder inside the server.")
L.append("")
L.append(f"Failed images in all batches: {errors}.")
L.append("")
L.append("Raw results: `bench/out/jp2/results.jsonl`; server logs `bench/out/jp2/q-*.log`.")
open(report, "w").write("\n".join(L) + "\n")
print(report)
PYEOF
log "wrote $REPORT"
