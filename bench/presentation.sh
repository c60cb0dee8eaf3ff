#!/usr/bin/env bash
# Presentation benchmarks (issue 13), each against a reference in the same run:
#   1. a single-asset manifest, wrk -t2 -c64, vs nginx serving the same bytes as a static file
#      (target ≥ 0.5×), ABBA;
#   2. a named-query manifest of 500 canvases over a space of 1,000,000 images: p50/p99 of
#      sequential GETs (target p50 < 20 ms); the assets are written into the SQLite file by
#      bench/qb.py populate, 500 of them then given string1 'book' and number1 1…500;
#   3. tiles of a restricted image with a valid IIIF Auth session cookie vs the same tiles of
#      an open image, wrk -t2 -c64 (target ≥ 0.9×), ABBA.
# Writes bench/REPORT-presentation.md. BENCH_QUICK=1: 20,000 images, 3 s runs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
QB="$PY $HERE/qb.py"
QUICK=${BENCH_QUICK:-0}
ROWS=1000000; DUR=8; REPS=2
REPORT=$HERE/REPORT-presentation.md
if [ "$QUICK" = 1 ]; then ROWS=20000; DUR=3; REPS=1; REPORT=$HERE/out/REPORT-presentation-quick.md; fi
PORT_BASE=${BENCH_PORT_BASE:-18780}
QPORT=$PORT_BASE; NPORT=$((PORT_BASE + 1))
OUT=$HERE/out
RUN=$OUT/presentation
QUIRE=${QUIRE:-$ROOT/build/quire}
T_START=$(date +%s)
log() { echo "[bench-presentation $(($(date +%s) - T_START))s] $*" >&2; }
source "$HERE/lib.sh"
trap stop_pids EXIT
"$HERE/install-bench-deps.sh"

rm -rf "$RUN"
mkdir -p "$RUN/origins" "$RUN/nginx/www" "$RUN/nginx/tmp"
cp "$QUIRE" "$RUN/quire"  # a rebuild in the tree must not swap the binary mid-run
QUIRE=$RUN/quire
RES=$RUN/results.jsonl
: >"$RES"
record() { [ -n "$2" ] || { echo "presentation.sh: no result for $1" >&2; exit 1; }; echo "{\"k\":\"$1\",\"v\":$2}" >>"$RES"; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ADMIN=benchadmin:benchsecret
Q=http://127.0.0.1:$QPORT

start_quire() {
  "$QUIRE" serve --listen 127.0.0.1:$QPORT --data "$RUN/data" --admin-key benchadmin \
    --admin-secret benchsecret --workers 1 --origin-file-root "$RUN/origins" "$@" \
    >>"$RUN/quire.log" 2>&1 &
  QPID=$!
  PIDS+=("$QPID")
  wait_http "$Q/healthz"
}
run_wrk() { # NAME PORT URLFILE [COOKIE]
  local name=$1 port=$2 urls=$3 cookie=${4:-}
  URLS=$urls COOKIE=$cookie wrk -t2 -c64 -d"${DUR}s" --timeout 10s -s "$HERE/urls.lua" \
    "http://127.0.0.1:$port" >"$RUN/wrk-$name.txt" 2>&1
  [ -z "$name" ] || record "$name" "$($QB wrk "$RUN/wrk-$name.txt")"
}
# ABBA over REPS: run_pair NAME_A PORT_A URLS_A COOKIE_A NAME_B PORT_B URLS_B COOKIE_B
run_pair() {
  run_wrk "" "$2" "$3" "$4"; run_wrk "" "$6" "$7" "$8"  # warm-up
  for rep in $(seq 1 "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then
      run_wrk "$1_r$rep" "$2" "$3" "$4"; run_wrk "$5_r$rep" "$6" "$7" "$8"
    else
      run_wrk "$5_r$rep" "$6" "$7" "$8"; run_wrk "$1_r$rep" "$2" "$3" "$4"
    fi
  done
}

# ------------------------------------------------------------------ setup
vips black "$RUN/origins/b.v" 4000 3000 --bands 3
vips linear "$RUN/origins/b.v" "$RUN/origins/page.jpg" 1 120 --uchar
start_quire
bench_customer "$Q" "$ADMIN"
C=$BENCH_CUSTOMER; S=$BENCH_SPACE; U=$BENCH_USER
log "customer $C space $S; ingesting two 4000×3000 images"
curl -fsS -u "$U" -X POST "$Q/customers/$C/queue" -H 'Content-Type: application/json' -d "{\"member\":[
  {\"space\":$S,\"id\":\"open\",\"origin\":\"file://$RUN/origins/page.jpg\",\"mediaType\":\"image/jpeg\"},
  {\"space\":$S,\"id\":\"closed\",\"origin\":\"file://$RUN/origins/page.jpg\",\"mediaType\":\"image/jpeg\"}]}" >/dev/null
for _ in $(seq 1 600); do
  done_count=$(curl -fsS -u "$U" "$Q/customers/$C/spaces/$S/images?pageSize=10" |
    $PY -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin)["member"] if m["width"] > 0 and not m["ingesting"]))')
  [ "$done_count" = 2 ] && break
  sleep 0.2
done
[ "$done_count" = 2 ] || { echo "presentation.sh: ingest did not finish" >&2; exit 1; }

# ------------------------------------------------------------------ 1. single-asset manifest
log "1. single-asset manifest vs nginx static"
MPATH=/iiif-manifest/$C/$S/open
curl -fsS "$Q$MPATH" -o "$RUN/nginx/www/manifest.json"
start_nginx "$RUN/nginx" $NPORT /manifest.json
echo "$MPATH" >"$RUN/manifest-quire.txt"
echo "/manifest.json" >"$RUN/manifest-nginx.txt"
record manifest_bytes "{\"bytes\":$(stat -c %s "$RUN/nginx/www/manifest.json")}"
run_pair manifest_quire $QPORT "$RUN/manifest-quire.txt" "" manifest_nginx $NPORT "$RUN/manifest-nginx.txt" ""

# ------------------------------------------------------------------ 3. restricted tiles
log "3. tiles of a restricted image with a session vs an open image"
ROLES=$Q/customers/$C/roles
AUTH_STATE=built
if curl -fsS -u "$U" -X PUT "$ROLES/staff" -H 'Content-Type: application/json' \
     -d '{"label":"Staff","provider":"grant"}' -o "$RUN/role.json" 2>/dev/null &&
   curl -fsS -u "$U" -X POST "$ROLES/staff/grants" -H 'Content-Type: application/json' \
     -d '{"label":"bench"}' -o "$RUN/grant.json" 2>/dev/null; then
  ROLE_ID=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["@id"])' "$RUN/role.json")
  curl -fsS -u "$U" -X PUT "$Q/customers/$C/spaces/$S/images/closed" -H 'Content-Type: application/json' \
    -d "{\"origin\":\"file://$RUN/origins/page.jpg\",\"mediaType\":\"image/jpeg\",\"roles\":[\"$ROLE_ID\"],\"maxUnauthorised\":200}" >/dev/null
  for _ in $(seq 1 600); do
    st=$(curl -fsS -u "$U" "$Q/customers/$C/spaces/$S/images/closed" | $PY -c 'import json,sys; d=json.load(sys.stdin); print("done" if not d["ingesting"] and d["width"] > 0 else "wait")')
    [ "$st" = done ] && break
    sleep 0.2
  done
  CODE=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["code"])' "$RUN/grant.json")
  # Redeem the grant code the way the access page's form does: POST, then keep the cookie.
  curl -sS -o /dev/null -c "$RUN/cookies.txt" -X POST "$Q/auth/v2/grant/$CODE" \
    -H 'Content-Type: application/x-www-form-urlencoded' -d "code=$CODE"
  COOKIE=$(awk -v n="quire-auth-$C" '$6 == n {print $6 "=" $7}' "$RUN/cookies.txt")
  [ -n "$COOKIE" ] || { echo "presentation.sh: the grant gave no quire-auth-$C cookie" >&2; exit 1; }
  : >"$RUN/tiles-open.txt"; : >"$RUN/tiles-closed.txt"
  for lvl in 1 2 4 8; do
    span=$((256 * lvl))
    for ((y = 0; y < 3000; y += span)); do
      for ((x = 0; x < 4000; x += span)); do
        w=$((x + span > 4000 ? 4000 - x : span)); h=$((y + span > 3000 ? 3000 - y : span))
        ow=$(((w + lvl - 1) / lvl)); oh=$(((h + lvl - 1) / lvl))
        for id in open closed; do
          echo "/iiif-img/$C/$S/$id/$x,$y,$w,$h/$ow,$oh/0/default.jpg" >>"$RUN/tiles-$id.txt"
        done
      done
    done
  done
  # Every URL answers 200 with the cookie (and the restricted ones 401 without it).
  first=$(head -1 "$RUN/tiles-closed.txt")
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$Q$first")" = 401 ] || { echo "presentation.sh: restricted tile served without a session" >&2; exit 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$Q$first")" = 200 ] || { echo "presentation.sh: the session cookie does not open the tile" >&2; exit 1; }
  record tile_urls "{\"n\":$(wc -l <"$RUN/tiles-open.txt")}"
  run_pair tiles_closed $QPORT "$RUN/tiles-closed.txt" "$COOKIE" tiles_open $QPORT "$RUN/tiles-open.txt" ""
else
  AUTH_STATE=missing
  log "3. skipped: this build has no IIIF Auth grants API"
fi
stop_pid "$QPID"

# ------------------------------------------------------------------ 2. named-query manifest
log "2. named-query manifest: populating $ROWS images"
record populate "$($QB populate "$RUN/data/quire.db" "$C" "$S" "$ROWS")"
$PY - "$RUN/data/quire.db" "$C" "$S" <<'PYEOF'
import sqlite3, sys
db, c, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = sqlite3.connect(db)
# 500 images spread over the space (every 2,000th), numbered out of order.
ids = [r[0] for r in conn.execute(
    "SELECT id FROM assets WHERE customer = ? AND space = ? AND id LIKE 'gen%' ORDER BY id", (c, s))]
step = max(1, len(ids) // 500)
picked = ids[::step][:500]
for k, id_ in enumerate(picked):
    conn.execute("UPDATE assets SET string1 = 'book', number1 = ? WHERE customer = ? AND space = ? AND id = ?",
                 ((k * 7919) % 500 + 1, c, s, id_))
conn.commit()
PYEOF
start_quire
curl -fsS -u "$U" -X POST "$Q/customers/$C/namedQueries" -H 'Content-Type: application/json' \
  -d '{"name":"book","template":"space=p1&s1=p2&assetOrder=n1"}' >/dev/null
NQ=/iiif-resource/$C/book/$S/book
canvases=$(curl -fsS "$Q$NQ" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
record nq_canvases "{\"n\":$canvases}"
record nq_latency "$(BENCH_MAX_SECONDS=$((DUR * 2)) $QB latency "$Q" - 200 "$NQ")"
stop_pid "$QPID"

# ------------------------------------------------------------------ report
$PY - "$RES" "$REPORT" "$LOAD_START" "$ROWS" "$AUTH_STATE" "$(git -C "$ROOT" rev-parse --short HEAD)" <<'PYEOF'
import json, statistics, sys
res, report, load, rows, auth_state, head = sys.argv[1:7]
r = {}
for line in open(res):
    d = json.loads(line)
    r[d["k"]] = d["v"]
def med(prefix):
    v = [x["rps"] for k, x in r.items() if k.startswith(prefix + "_r")]
    return statistics.median(v) if v else None
def errs(prefix):
    return sum(x["non2xx"] + x["connect_err"] + x["read_err"] + x["timeout"]
               for k, x in r.items() if k.startswith(prefix + "_r"))
L = ["# Presentation and access control benchmarks (issue 13)", ""]
if float(load.split()[0]) > 1.5:
    L += [f"> **Shared machine**: load at start {load}. Each ratio is still measured side by side (ABBA).", ""]
L += [f"`bench/presentation.sh` at {head}; load at start {load}. `quire serve --workers 1` on SQLite + files; "
      "wrk -t2 -c64, medians of ABBA runs.", "",
      "| measure | Quire | reference | ratio | target | met |", "|---|---|---|---|---|---|"]
mq, mn = med("manifest_quire"), med("manifest_nginx")
L.append(f"| single-asset manifest ({r['manifest_bytes']['bytes']} B), req/s | {mq:,.0f} | nginx static file {mn:,.0f} | "
         f"{mq / mn:.2f}× | ≥ 0.5× | {'yes' if mq / mn >= 0.5 else 'NO'} |")
nq = next(iter(r["nq_latency"].values()))
L.append(f"| named-query manifest, {r['nq_canvases']['n']} canvases over {int(rows):,} images: p50 / p99 ms | "
         f"{nq['p50_ms']:.1f} / {nq['p99_ms']:.1f} | — | — | p50 < 20 ms | {'yes' if nq['p50_ms'] < 20 else 'NO'} |")
if auth_state == "built":
    tc, to = med("tiles_closed"), med("tiles_open")
    L.append(f"| tiles of a restricted image with a session cookie vs an open image ({r['tile_urls']['n']} tiles, "
             f"4 levels), req/s | {tc:,.0f} | open image {to:,.0f} | {tc / to:.2f}× | ≥ 0.9× | {'yes' if tc / to >= 0.9 else 'NO'} |")
else:
    L.append("| tiles of a restricted image with a session vs open | not measured: no IIIF Auth in this build | | | ≥ 0.9× | NO |")
L += ["", f"Non-2xx or failed requests in the measured runs: manifest {errs('manifest_quire')}, "
      f"tiles {errs('tiles_closed') + errs('tiles_open') if auth_state == 'built' else 'n/a'}.",
      f"The {int(rows):,} images are written into the SQLite file (`bench/qb.py populate`); 500 of them, every "
      f"{max(1, int(rows) // 500):,}th, get string1 `book` and number1 1…500 in a shuffled order; the query is "
      "`space=p1&s1=p2&assetOrder=n1`. Its plan (an index, not a scan) is asserted by `presentation_test`.",
      "", "## Raw results", "", "```"]
L += [line.rstrip() for line in open(res)]
L += ["```", ""]
open(report, "w").write("\n".join(L))
print("\n".join(L[:14]))
PYEOF
log "wrote $REPORT"
