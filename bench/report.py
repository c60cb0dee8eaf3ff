#!/usr/bin/env python3
"""report.py RUN_DIR REPORT.md — turns bench/run.sh's results.jsonl into the markdown report."""
import json
import os
import statistics
import sys

run, report = sys.argv[1], sys.argv[2]
R = {}
for line in open(os.path.join(run, "results.jsonl")):
    d = json.loads(line)
    R.setdefault(d["k"], []).append(d["v"])


def group(prefix):
    """all values of keys PREFIX and PREFIX_rN"""
    vals = []
    for k, v in R.items():
        if k == prefix or (k.startswith(prefix + "_r") and k[len(prefix) + 2:].isdigit()):
            vals.extend(v)
    return vals


def med(prefix, field):
    vals = [v[field] for v in group(prefix)]
    return statistics.median(vals) if vals else float("nan")


def mx(prefix, field):
    vals = [v[field] for v in group(prefix)]
    return max(vals) if vals else float("nan")


def read(name):
    p = os.path.join(run, name)
    return open(p).read().rstrip() if os.path.exists(p) else ""


rows = []  # (measure, quire, reference, ratio, target, met)


def row(measure, q, ref, ratio, target, met):
    rows.append((measure, q, ref, ratio, target, "✅" if met else "❌" if met is not None else "—"))


inp = R["inputs"][0]
n = inp["n"]
# 1. ingest
q_s, naive_s, pyr_s = med("ingest_quire", "seconds"), med("ingest_ref_naive", "seconds"), med("ingest_ref_pyr", "seconds")
floor_s = med("ingest_floor", "seconds")
row(f"ingest {n} × {inp['w']}×{inp['h']} vs the decode + encode floor (libjpeg-turbo, tiles only)",
    f"{q_s:.2f} s", f"{floor_s:.2f} s", f"{q_s / floor_s:.2f}×", "≤ 0.6×", q_s / floor_s <= 0.6)
q_rss = mx("ingest_quire", "vmhwm_kb") / 1024
naive_rss, pyr_rss = mx("ingest_ref_naive", "max_rss_kb") / 1024, mx("ingest_ref_pyr", "max_rss_kb") / 1024
errs = sum(v["errors"] for v in group("ingest_quire"))
row(f"ingest {n} × {inp['w']}×{inp['h']}, 2 workers: time (vs naive CLI: thumbs from source)",
    f"{q_s:.2f} s ({60 * n / q_s:.0f} img/min)", f"{naive_s:.2f} s ({60 * n / naive_s:.0f} img/min)",
    f"{q_s / naive_s:.2f}×", "≤ 0.2×", q_s / naive_s <= 0.2 and errs == 0)
row("ingest: time vs CLI with thumbs from the pyramid (informational)",
    f"{q_s:.2f} s", f"{pyr_s:.2f} s ({60 * n / pyr_s:.0f} img/min)", f"{q_s / pyr_s:.2f}×", "—", None)
row("ingest: peak RSS (Quire process VmHWM; CLI largest process)", f"{q_rss:.0f} MiB",
    f"{naive_rss:.0f} MiB naive / {pyr_rss:.0f} MiB pyr", "—", "< 256 MiB", q_rss < 256)
if group("ingest_pixels"):
    px_s = med("ingest_pixels", "seconds")
    row(f"ingest {n} inputs (Q90 4:4:4): DCT path (default) vs pixel path (--jpeg-dct-memory 0)",
        f"{q_s:.2f} s", f"{px_s:.2f} s", f"{q_s / px_s:.2f}×", "—", None)
if group("cam_dct"):
    cd, cp, cf = med("cam_dct", "seconds"), med("cam_pixels", "seconds"), med("cam_floor", "seconds")
    row(f"ingest {n} camera-like inputs (Q85 4:2:0): DCT path vs pixel path",
        f"{cd:.2f} s", f"{cp:.2f} s", f"{cd / cp:.2f}×", "—", None)
    row(f"ingest {n} camera-like inputs: DCT path vs their decode + encode floor",
        f"{cd:.2f} s", f"{cf:.2f} s", f"{cd / cf:.2f}×", "≤ 0.6×", cd / cf <= 0.6)
bq, br = med("big_quire", "seconds"), med("big_ref", "seconds")
bq_rss, br_rss = mx("big_quire", "vmhwm_kb") / 1024, mx("big_ref", "max_rss_kb") / 1024
berr = sum(v["errors"] for v in group("big_quire"))
row(f"ingest 1 × {inp['big']}×{inp['big']} JPEG: time (CLI: pyramid + thumbs from pyramid)",
    f"{bq:.2f} s", f"{br:.2f} s", f"{bq / br:.2f}×", "≤ 1.1×", bq / br <= 1.1 and berr == 0)
row(f"ingest {inp['big']}²: peak RSS", f"{bq_rss:.0f} MiB", f"{br_rss:.0f} MiB", "—", "< 256 MiB", bq_rss < 256)
if group("origin_slow"):
    sq, fq = med("origin_slow", "seconds"), med("origin_fast", "seconds")
    serr = sum(v["errors"] for v in group("origin_slow"))
    row(f"ingest {group('origin_slow')[0]['count']} JPEGs from a 4 MB/s, 100 ms origin vs from the local origin",
        f"{sq:.2f} s", f"{fq:.2f} s", f"{sq / fq:.2f}×", "≤ 1.3×", sq / fq <= 1.3 and serr == 0)
if group("tiff_quire"):
    ti = R["tiff_inputs"][0]
    tq, tr = med("tiff_quire", "seconds"), med("tiff_ref", "seconds")
    tq_rss, tr_rss = mx("tiff_quire", "vmhwm_kb") / 1024, mx("tiff_ref", "max_rss_kb") / 1024
    terr = sum(v["errors"] for v in group("tiff_quire"))
    row(f"ingest {ti['n']} × {ti['w']}×{ti['h']} uncompressed TIFF (8- and 16-bit, {ti['bytes'] / 2**20:.0f} MiB) vs vips CLI pyramid + thumbs",
        f"{tq:.2f} s", f"{tr:.2f} s", f"{tq / tr:.2f}×", "≤ 0.6×", tq / tr <= 0.6 and terr == 0)
    row("TIFF masters: peak RSS", f"{tq_rss:.0f} MiB", f"{tr_rss:.0f} MiB", "—", "< 256 MiB", tq_rss < 256)

# 2. delivery
def wrk_rows(kind, label, rps_target, p99_target=None):
    qr, ir = med(f"{kind}_quire", "rps"), med(f"{kind}_iip", "rps")
    qp, ip = med(f"{kind}_quire", "p99_ms"), med(f"{kind}_iip", "p99_ms")
    row(f"{label}: req/s", f"{qr:,.0f}", f"{ir:,.0f}", f"{qr / ir:.2f}×", f"≥ {rps_target}×", qr / ir >= rps_target)
    if p99_target:
        row(f"{label}: p99", f"{qp:.1f} ms", f"{ip:.1f} ms", f"{qp / ip:.2f}×", f"≤ {p99_target}×", qp / ip <= p99_target)
    else:
        row(f"{label}: p99", f"{qp:.1f} ms", f"{ip:.1f} ms", f"{qp / ip:.2f}×", "—", None)


wrk_rows("tiles", f"random 256² tiles, all levels ({R['tile_urls'][0]['urls']:,} URLs), -c64 vs iipsrv×2", 3, 0.5)
# Targets of issue 17 (the round-1 targets were 2× and 3×, met since).
wrk_rows("full", "full/!1024,1024/0/default.jpg, -c8 vs iipsrv×2", 3)
wrk_rows("info", "info.json, -c64 vs iipsrv×2", 5)
if group("tilesn_nginx"):
    tq, tn = med("tilesn_quire", "rps"), med("tilesn_nginx", "rps")
    ex = R["tiles_extract"][0]
    row(f"random 256² tiles, -c64, vs nginx serving the same {ex['files']:,} tile files: req/s",
        f"{tq:,.0f}", f"{tn:,.0f}", f"{tq / tn:.2f}×", "≥ 0.7×", tq / tn >= 0.7)
    row("tiles vs nginx static: p99", f"{med('tilesn_quire', 'p99_ms'):.1f} ms",
        f"{med('tilesn_nginx', 'p99_ms'):.1f} ms", "—", "—", None)
if "tiles_quire_cached" in R:
    c = R["tiles_quire_cached"][0]
    row("tiles with Quire's response cache on (default 64 MB; informational)", f"{c['rps']:,.0f} req/s, p99 {c['p99_ms']:.1f} ms",
        "—", "—", "—", None)

# 3. API
aq, an = med("api_quire", "rps"), med("api_nginx", "rps")
row("GET batch (Basic auth), -c64 vs nginx static file: req/s", f"{aq:,.0f}", f"{an:,.0f}", f"{aq / an:.2f}×", "≥ 0.6×", aq / an >= 0.6)
row("GET batch: p99", f"{med('api_quire', 'p99_ms'):.2f} ms", f"{med('api_nginx', 'p99_ms'):.2f} ms", "—", "—", None)
pb = R["post_batch"][0]
row(f"POST 250-image batch ({pb['n']} sequential)", f"p50 {pb['p50_ms']:.1f} ms, p99 {pb['p99_ms']:.1f} ms", "—", "—", "—", None)
small = R.get("populate_" + str(min(int(k.split("_")[1]) for k in R if k.startswith("populate_"))))
big_rows = max(int(k.split("_")[1]) for k in R if k.startswith("populate_"))
small_rows = min(int(k.split("_")[1]) for k in R if k.startswith("populate_"))
ls, lb = group("list_small"), group("list_big")
for path in ls[0]:
    s = statistics.median(v[path]["p50_ms"] for v in ls)
    b = statistics.median(v[path]["p50_ms"] for v in lb)
    shown = path.replace("/customers/2", "/customers/C").replace("/spaces/1", "/spaces/S")
    row(f"GET {shown} p50, {big_rows:,} vs {small_rows:,} rows", f"{b:.2f} ms", f"{s:.2f} ms", f"{b / s:.2f}×",
        "≤ 1.5×", b / s <= 1.5)
cs, cb = med("claim_small", "mean_ms"), med("claim_big", "mean_ms")
row(f"job claim transaction (SQL of ClaimJob), {big_rows:,} vs {small_rows:,} queued jobs", f"{cb:.3f} ms", f"{cs:.3f} ms",
    f"{cb / cs:.2f}×", "≤ 1.5×", cb / cs <= 1.5)

L = []
L.append("# Quire benchmark report\n")
machine = read("machine.txt")
load0 = [l for l in machine.splitlines() if l.startswith("load at start:")]
if load0 and float(load0[0].split(":")[1].split()[0]) > 1.0:
    L.append(f"> **Shared machine**: {load0[0]} (other work was running). Absolute figures are "
             "noisy; each ratio is still Quire and its reference measured side by side in this run. "
             "Contention hurts the ingest CLI reference (5 short-lived vips processes per image, each "
             "paying start-up under load) more than a long-lived server, so the ingest ratio flatters "
             "Quire here; compare its seconds with bench-reference figures measured on a quiet machine.\n")
if "QUICK" in machine:
    L.append("> **QUICK RUN** (`BENCH_QUICK=1`): small images and short load runs, for checking the "
             "harness. These are not the benchmark's figures.\n")
L.append("Generated by `make bench` (`bench/run.sh`). Every ratio compares Quire with a reference "
         "measured in the same run on the same machine, alternating between them (ABBA order over "
         "repetitions); figures are medians over the repetitions. Raw figures and exact commands "
         "below.\n")
L.append("## Machine\n\n```\n" + machine + "\n```\n")
L.append("## Summary\n")
L.append("| measure | Quire | reference | ratio | target | met |\n|---|---|---|---|---|---|")
for r in rows:
    L.append("| " + " | ".join(str(x) for x in r) + " |")
L.append("")
missed = [r for r in rows if r[5] == "❌"]
L.append(f"Targets met: {sum(1 for r in rows if r[5] == '✅')} of {sum(1 for r in rows if r[5] != '—')}.\n")

L.append("## Raw figures\n")
L.append("Each line is one measurement (`k` = what, `_rN` = repetition). Ingest: `seconds` from the "
         "batch POST to `finished`, `vmhwm_kb` = the Quire process's peak RSS (fresh process per "
         "batch), reference `max_rss_kb` = the largest vips process (`/usr/bin/time -f %M`). wrk: "
         "req/s and latency percentiles from wrk's own histogram (`non2xx` counts error statuses).\n")
L.append("```")
for line in open(os.path.join(run, "results.jsonl")):
    L.append(line.rstrip())
L.append("```\n")

L.append("## Commands\n\n```\n" + read("commands.txt") + "\n```\n")
L.append("Per-image reference script (`vips-one.sh`):\n\n```bash\n" + read("vips-one.sh") + "\n```\n")
L.append("lighttpd + iipsrv:\n\n```\n" + read("lighttpd.conf") + "\n```\n")
L.append("nginx:\n\n```\n" + read("nginx/nginx.conf") + "\n```\n")

L.append("## Method notes\n")
L.append("- Ingest: the CLI reference reads the JPEGs from local disk; Quire fetches them over HTTP "
         "from a local origin (`python3 -m http.server`), then stores the pyramid and thumbnails and "
         "records the outcome in SQLite. Both run 2 images at a time (Quire `--workers 2`, CLI `xargs -P2`).\n"
         "- Delivery: Quire runs with `--response-cache-bytes 0` so that, like iipsrv without memcached, "
         "every request is rendered; the row 'with response cache' shows the default configuration.\n"
         "- Both servers, wrk and (for ingest) the origin share the same 2 cores.\n"
         "- Table growth: two Quire servers (`--workers 0`) run at once, one per database; sequential "
         "GETs alternate between them. The large database's jobs belong to 50 other customers: 25 have "
         "ready jobs, 25 have every job waiting on retry backoff (an origin outage).\n"
         "- Job claim: the statements of `SqliteStore::ClaimJob` run by Python's sqlite3 against each "
         "database (`BEGIN IMMEDIATE` … `ROLLBACK`); query plan of the claim SELECT at the large size:\n")
cb_plan = group("claim_big")[0].get("plan", [])
L.append("```\n" + "\n".join(cb_plan) + "\n```\n")
cbs = med("claim_big", "select_mean_ms") if all("select_mean_ms" in v for v in group("claim_big")) else None
if cbs is not None and cb / cs > 1.5:
    L.append(f"  Claim at {big_rows:,} jobs: {cb:.2f} ms, of which {cbs:.2f} ms ({100 * cbs / cb:.0f}%) is the "
             "claim SELECT. The index `jobs_claim (customer, priority, state, id)` has no "
             "`next_attempt_at`, so for every customer whose queued jobs all wait on backoff the "
             "correlated subquery walks all of that customer's jobs on every claim: cost grows with "
             "the backlog.\n")
profs = sorted(f for f in os.listdir(run) if f.startswith("profile-"))
L.append("## Profiles of missed targets\n")
if not missed:
    L.append("No target missed.\n")
elif not profs:
    L.append("Targets were missed but no profile was taken (perf missing or BENCH_PROFILE=0).\n")
for f in profs:
    L.append(f"### {f[8:-4]} (`perf record -F 199 --call-graph dwarf -p QUIRE_PID` under the same load)\n")
    L.append("```\n" + read(f) + "\n```\n")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
open(report, "w").write("\n".join(L) + "\n")
print("\n".join(L[:0]))
for r in rows:
    print(" | ".join(str(x) for x in r))
