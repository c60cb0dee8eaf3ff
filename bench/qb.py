#!/usr/bin/env python3
"""Benchmark helpers for bench/run.sh (Python 3 stdlib only).

Subcommands print one JSON object on stdout (or write files) so run.sh can collect results.
"""
import base64
import http.client
import json
import math
import os
import re
import random
import sqlite3
import statistics
import sys
import threading
import time
import urllib.parse


# ---------------------------------------------------------------- HTTP
class Client:
    def __init__(self, base, user=None):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.auth = None
        if user:
            self.auth = "Basic " + base64.b64encode(user.encode()).decode()
        self.conn = None

    def request(self, method, path, body=None, timeout=120):
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            headers = {}
            if self.auth:
                headers["Authorization"] = self.auth
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                return r.status, payload
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")

    def json(self, method, path, body=None, expect=(200, 201)):
        status, payload = self.request(method, path, body)
        if status not in expect:
            raise SystemExit(f"{method} {path} -> {status}: {payload[:300]!r}")
        return json.loads(payload) if payload else None


def out(obj):
    json.dump(obj, sys.stdout)
    sys.stdout.write("\n")


# ---------------------------------------------------------------- setup
def cmd_setup(args):
    """setup BASE ADMIN_USER NAME [SPACES] -> {customer, user, spaces:[ids]}"""
    base, admin, name = args[0], args[1], args[2]
    nspaces = int(args[3]) if len(args) > 3 else 1
    a = Client(base, admin)
    c = a.json("POST", "/customers", {"name": name, "displayName": name})
    cid = c["id"]
    k = a.json("POST", f"/customers/{cid}/keys")
    user = f"{k['key']}:{k['secret']}"
    cc = Client(base, user)
    spaces = []
    for i in range(nspaces):
        s = cc.json("POST", f"/customers/{cid}/spaces", {"name": f"s{i + 1}"})
        spaces.append(s["id"])
    out({"customer": cid, "user": user, "spaces": spaces})


def cmd_space(args):
    """space BASE USER CUSTOMER NAME -> {space}"""
    base, user, cid, name = args
    s = Client(base, user).json("POST", f"/customers/{cid}/spaces", {"name": name})
    out({"space": s["id"]})


def read_vmhwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])  # kB
    except OSError:
        pass
    return 0


def cmd_ingest(args):
    """ingest BASE USER CUSTOMER SPACE PID ORIGIN_BASE FILE... -> timing of one batch to finished.

    Posts every file as one batch (origin ORIGIN_BASE/FILE, id = file stem), polls the batch every
    50 ms until `finished`, samples VmHWM and VmRSS of PID meanwhile."""
    base, user, cid, space, pid, origin_base = args[:6]
    files = args[6:]
    c = Client(base, user)
    members = []
    for f in files:
        stem = os.path.splitext(os.path.basename(f))[0]
        media_type = {".jp2": "image/jp2", ".jpx": "image/jpx", ".tif": "image/tiff"}.get(
            os.path.splitext(f)[1].lower(), "image/jpeg")
        members.append({"space": int(space), "id": stem, "mediaType": media_type,
                        "origin": origin_base.rstrip("/") + "/" + os.path.basename(f)})
    peak_rss = 0
    t0 = time.perf_counter()
    b = c.json("POST", f"/customers/{cid}/queue", {"@type": "Collection", "member": members})
    bid = b["id"]
    while True:
        time.sleep(0.05)
        st = c.json("GET", f"/customers/{cid}/queue/batches/{bid}")
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        peak_rss = max(peak_rss, int(line.split()[1]))
        except OSError:
            pass
        if st.get("finished"):
            break
    elapsed = time.perf_counter() - t0
    out({"batch": bid, "seconds": elapsed, "count": st["count"], "completed": st["completed"],
         "errors": st["errors"], "vmhwm_kb": read_vmhwm(pid), "sampled_rss_kb": peak_rss})


def cmd_images(args):
    """images BASE USER CUSTOMER SPACE -> [{id,width,height}] of the space's finished images"""
    base, user, cid, space = args
    c = Client(base, user)
    res, page = [], 1
    while True:
        j = c.json("GET", f"/customers/{cid}/spaces/{space}/images?page={page}&pageSize=500")
        for m in j["member"]:
            res.append({"id": m["id"], "width": m["width"], "height": m["height"]})
        view = j.get("view") or {}
        if page >= view.get("totalPages", 1):
            break
        page += 1
    out(res)


# ---------------------------------------------------------------- URL lists for wrk
def tile_regions(w, h, tile=256):
    """IIIF 2 tile requests over all pyramid levels: scale factors 1..32."""
    res = []
    s = 1
    while s <= 32:
        span = tile * s
        for y in range(0, h, span):
            for x in range(0, w, span):
                rw, rh = min(span, w - x), min(span, h - y)
                res.append(f"{x},{y},{rw},{rh}/{math.ceil(rw / s)},")
        s *= 2
    return res


def cmd_urls(args):
    """urls KIND IMAGES_JSON QUIRE_PREFIX IIP_MAP_JSON OUT_QUIRE OUT_IIP

    KIND: tiles | full | info. IIP_MAP_JSON maps image id -> tif file name for iipsrv."""
    kind, images_json, qprefix, iipmap_json, out_q, out_i = args
    images = json.load(open(images_json))
    iipmap = json.load(open(iipmap_json))
    q, i = [], []
    for im in images:
        qi = f"{qprefix}/{urllib.parse.quote(im['id'], safe='')}"
        ii = f"/iipsrv?IIIF={iipmap[im['id']]}"
        if kind == "tiles":
            for r in tile_regions(im["width"], im["height"]):
                q.append(f"{qi}/{r}/0/default.jpg")
                i.append(f"{ii}/{r}/0/default.jpg")
        elif kind == "full":
            q.append(f"{qi}/full/!1024,1024/0/default.jpg")
            i.append(f"{ii}/full/!1024,1024/0/default.jpg")
        elif kind == "info":
            q.append(f"{qi}/info.json")
            i.append(f"{ii}/info.json")
    with open(out_q, "w") as f:
        f.write("\n".join(q) + "\n")
    with open(out_i, "w") as f:
        f.write("\n".join(i) + "\n")
    out({"urls": len(q)})


def cmd_check_urls(args):
    """check_urls BASE LISTFILE N -> fetch N random URLs, report status counts (sanity)."""
    base, listfile, n = args[0], args[1], int(args[2])
    urls = [l.strip() for l in open(listfile) if l.strip()]
    c = Client(base)
    counts = {}
    bad = []
    rnd = random.Random(1)
    for _ in range(n):
        u = rnd.choice(urls)
        st, body = c.request("GET", u)
        counts[st] = counts.get(st, 0) + 1
        if st != 200 and len(bad) < 3:
            bad.append([u, st, body[:200].decode("utf-8", "replace")])
    out({"status": counts, "bad": bad})


def cmd_extract(args):
    """extract BASE LISTFILE OUTDIR -> every URL path of LISTFILE fetched once and written to
    OUTDIR/PATH, so that a static server can answer the same paths with the same bytes."""
    base, listfile, outdir = args
    c = Client(base)
    n = total = 0
    for path in sorted({l.strip() for l in open(listfile) if l.strip()}):
        st, body = c.request("GET", path)
        if st != 200:
            raise SystemExit(f"GET {path} -> {st}")
        dest = os.path.join(outdir, path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(body)
        n += 1
        total += len(body)
    out({"files": n, "bytes": total})


# ---------------------------------------------------------------- API latency
def pct(vals, p):
    vals = sorted(vals)
    if not vals:
        return 0.0
    k = max(0, min(len(vals) - 1, int(math.ceil(p / 100.0 * len(vals))) - 1))
    return vals[k]


def cmd_post_batches(args):
    """post_batches BASE USER CUSTOMER SPACE N SIZE ORIGIN -> p50/p99 ms of N sequential POSTs of SIZE images."""
    base, user, cid, space, n, size, origin = args
    n, size = int(n), int(size)
    c = Client(base, user)
    lat = []
    for k in range(n):
        members = [{"space": int(space), "id": f"p{k:04d}-{j:04d}", "mediaType": "image/jpeg",
                    "origin": f"{origin}?k={k}&j={j}"} for j in range(size)]
        body = json.dumps({"@type": "Collection", "member": members}).encode()
        t0 = time.perf_counter()
        st, payload = c.request("POST", f"/customers/{cid}/queue", body)
        lat.append((time.perf_counter() - t0) * 1000)
        if st != 201:
            raise SystemExit(f"POST batch -> {st}: {payload[:300]!r}")
    out({"n": n, "size": size, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
         "mean_ms": statistics.mean(lat)})


def cmd_latency(args):
    """latency BASE USER N PATH... -> per path: p50/p99 ms of N sequential GETs (after 10 warm-ups;
    at most $BENCH_MAX_SECONDS, default 8, per path)."""
    base, user, n = args[0], args[1], int(args[2])
    paths = args[3:]
    c = Client(base, user if user != "-" else None)
    res = {}
    for p in paths:
        for _ in range(10):
            st, _b = c.request("GET", p)
        if st != 200:
            raise SystemExit(f"GET {p} -> {st}: {_b[:300]!r}")
        lat = []
        deadline = time.perf_counter() + float(os.environ.get("BENCH_MAX_SECONDS", "8"))
        for _ in range(n):
            t0 = time.perf_counter()
            st, _b = c.request("GET", p)
            lat.append((time.perf_counter() - t0) * 1000)
            if t0 > deadline:  # slow paths: stop early, keep what was measured
                break
        res[p] = {"n": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "bytes": len(_b)}
    out(res)


def cmd_fetch(args):
    """fetch BASE USER PATH OUTFILE -> writes the body bytes."""
    base, user, path, outfile = args
    st, body = Client(base, user).request("GET", path)
    if st != 200:
        raise SystemExit(f"GET {path} -> {st}")
    with open(outfile, "wb") as f:
        f.write(body)
    out({"bytes": len(body)})


# ---------------------------------------------------------------- table growth
def cmd_populate(args):
    """populate DB CUSTOMER SPACE N -> adds N assets (finished) + N batch_assets over N/250 batches
    to CUSTOMER/SPACE, and N queued jobs spread over 50 extra customers (a backlog of other
    customers' work): the 25 even customers' jobs are ready, every job of the 25 odd customers
    waits on retry backoff (an origin outage), the way a large deployment's tables look."""
    db, cid, space, n = args[0], int(args[1]), int(args[2]), int(args[3])
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    nb = max(1, n // 250)
    base_batch = conn.execute("SELECT COALESCE(MAX(id),0) FROM batches").fetchone()[0]
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM k WHERE i < ?) "
        "INSERT INTO batches(id, customer, submitted, count, completed, errors, finished) "
        "SELECT ?+i, ?, ?-(?-i)*1000, 250, 250, 0, ?-(?-i)*1000+500 FROM k",
        (nb, base_batch, cid, now, nb, now, nb))
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM k WHERE i < ?-1) "
        "INSERT INTO assets(customer, space, id, origin, media_type, family, delivery_channels, "
        "created, finished, width, height, batch, thumbnails) "
        "SELECT ?, ?, printf('gen%08d', i), printf('https://example.org/img/%08d.jpg', i), "
        "'image/jpeg', 'I', '[{\"channel\":\"iiif-img\",\"policy\":\"default\"},"
        "{\"channel\":\"thumbs\",\"policy\":\"default\"}]', ?-(?-i)*10, ?-(?-i)*10+5, 6000, 4000, "
        "?+1+i/250, '[[1024,683],[400,267],[200,133],[100,67]]' FROM k",
        (n, cid, space, now - 10 * n, n, now - 10 * n, n, base_batch))
    conn.execute(
        "INSERT INTO batch_assets(batch, customer, space, asset_id, ordinal, state, finished) "
        "SELECT batch, customer, space, id, rowid, 'completed', finished FROM assets "
        "WHERE customer = ? AND space = ? AND id LIKE 'gen%'", (cid, space))
    # Backlog: other customers (ids 1000+) with queued jobs. They need customer rows for FKs.
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM k WHERE i < 49) "
        "INSERT OR IGNORE INTO customers(id, name, display_name, created) "
        "SELECT 1000+i, printf('backlog%02d', i), 'backlog', ? FROM k", (now,))
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM k WHERE i < 49) "
        "INSERT OR IGNORE INTO queue_turns(customer, last_turn) SELECT 1000+i, 0 FROM k")
    conn.execute(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM k WHERE i < ?-1) "
        "INSERT INTO jobs(customer, space, asset_id, batch, priority, state, attempts, "
        "next_attempt_at, created) "
        "SELECT 1000+(i%50), 1, printf('bk%08d', i), 1, 0, 'queued', (i%2), "
        "CASE WHEN i%2=1 THEN ?+86400000 ELSE 0 END, ? FROM k", (n, now, now))
    # The counters the server keeps in step with its rows (customers.batch_count,
    # spaces.image_count) are set here too, as the server would have left them.
    conn.execute("UPDATE customers SET batch_count = (SELECT COUNT(*) FROM batches b "
                 "WHERE b.customer = customers.id)")
    conn.execute("UPDATE spaces SET image_count = (SELECT COUNT(*) FROM assets a "
                 "WHERE a.customer = spaces.customer AND a.space = spaces.id)")
    conn.execute("COMMIT")
    conn.close()
    out({"rows": n, "seconds": time.perf_counter() - t0})


# The claim transaction of SqliteStore::ClaimJob (src/store/sqlite/sqlite_store.cc), verbatim,
# run against a database and rolled back, so the cost of one claim can be compared at 1k and 1M rows.
CLAIM_SQL = [
    ("UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL "
     "WHERE state = 'leased' AND lease_until < ?", lambda now, prio: (now,)),
]
CLAIM_SELECT = ("SELECT customer, jid FROM (SELECT t.customer, t.last_turn, "
                "(SELECT j.id FROM jobs j WHERE j.customer = t.customer AND j.priority = ?1 AND "
                "j.state = 'queued' AND j.next_attempt_at <= ?2 ORDER BY j.next_attempt_at, j.id "
                "LIMIT 1) AS jid "
                "FROM queue_turns t) WHERE jid IS NOT NULL ORDER BY last_turn, customer LIMIT 1")


def check_claim_sql_matches_source():
    """The copy above must be the SQL ClaimJob runs: compare with the string literals of the
    SQLite dialect (src/store/sqlite/sqlite_store.cc: the claim SELECT) and of the shared store
    logic (src/store/sql/sql_store.cc: the lease expiry), each file's joined together, and
    refuse to measure a stale copy."""
    store = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "store")
    joined = ""
    for src in (os.path.join(store, "sqlite", "sqlite_store.cc"),
                os.path.join(store, "sql", "sql_store.cc")):
        joined += "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', open(src).read())) + "\n"
    for sql in [CLAIM_SELECT] + [q for q, _ in CLAIM_SQL]:
        if sql not in joined:
            raise SystemExit("bench/qb.py: the claim SQL no longer matches SqliteStore::ClaimJob; "
                             "update CLAIM_SELECT/CLAIM_SQL: " + sql)


def cmd_claim(args):
    """claim DB N -> mean/p99 ms of N claim transactions (rolled back) against DB (at most
    $BENCH_MAX_SECONDS, default 8, and at least 3 claims)."""
    check_claim_sql_matches_source()
    db, n = args[0], int(args[1])
    conn = sqlite3.connect(db, isolation_level=None)
    lat, sel = [], []
    deadline = time.perf_counter() + float(os.environ.get("BENCH_MAX_SECONDS", "8"))
    for k in range(n + 2):
        if k >= 5 and time.perf_counter() > deadline:  # slow claims: stop early
            break
        now = int(time.time() * 1000)
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(CLAIM_SQL[0][0], (now,))
        row = None
        ts = time.perf_counter()
        for prio in (1, 0):
            row = conn.execute(CLAIM_SELECT, (prio, now)).fetchone()
            if row:
                break
        sel_ms = (time.perf_counter() - ts) * 1000
        if row:
            conn.execute("UPDATE jobs SET state = 'leased', lease_owner = ?, lease_until = ?, "
                         "attempts = attempts + 1 WHERE id = ?", ("bench", now + 60000, row[1]))
            conn.execute("UPDATE queue_turns SET last_turn = (SELECT MAX(last_turn) + 1 FROM "
                         "queue_turns) WHERE customer = ?", (row[0],))
            conn.execute("SELECT id, customer, space, asset_id, batch, priority, attempts, "
                         "lease_owner, lease_until FROM jobs WHERE id = ?", (row[1],)).fetchone()
        conn.execute("ROLLBACK")
        if k >= 2:
            lat.append((time.perf_counter() - t0) * 1000)
            sel.append(sel_ms)
    jobs = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + CLAIM_SELECT, (0, 0))]
    plan += [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + CLAIM_SQL[0][0], (0,))]
    out({"jobs": jobs, "n": len(lat), "claimed": bool(row), "mean_ms": statistics.mean(lat),
         "select_mean_ms": statistics.mean(sel),
         "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "plan": plan})


# ---------------------------------------------------------------- wrk output
def cmd_wrk(args):
    """wrk FILE -> parses the JSON line written by bench/urls.lua's done()."""
    txt = open(args[0]).read()
    for line in txt.splitlines():
        if line.startswith("WRKJSON "):
            out(json.loads(line[8:]))
            return
    raise SystemExit("no WRKJSON line in " + args[0] + ":\n" + txt[-2000:])


CMDS = {k[4:]: v for k, v in globals().items() if k.startswith("cmd_")}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        print("usage: qb.py " + "|".join(sorted(CMDS)) + " ARGS...", file=sys.stderr)
        sys.exit(2)
    CMDS[sys.argv[1]](sys.argv[2:])
