// The portal's dashboard under load (bench/portal.sh): BATCHES active batches of MEMBERS tiny
// images each, submitted at once and ingested by the server's workers, with the dashboard
// open in headless Chromium (mode "with") or no browser at all ("without", the reference).
// Prints one JSON line: the server's CPU seconds over the run and, with the dashboard, for
// every outcome how long after its recorded time (the image's `finished`) the dashboard's
// bar for that batch showed the count including it.
//
//   node dashboard.mjs <with|without> <config.json>
//   config: url, pid, clkTck, admin "key:secret", space, origin (file:// URL of a tiny PNG),
//           batches, members
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [mode, cfgPath] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
const auth = "Basic " + Buffer.from(cfg.admin).toString("base64");
const call = async (method, p, body) => {
  const r = await fetch(cfg.url + p, { method, headers: { Authorization: auth, "Content-Type": "application/json" },
                                       body: body && JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
};
const cpuSeconds = () => {
  const f = fs.readFileSync(`/proc/${cfg.pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / cfg.clkTck;  // utime + stime
};

const out = { mode, batches: cfg.batches, members: cfg.members };
let context, profile;
try {
  let page;
  if (mode === "with") {
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "quire-bench-portal-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
      viewport: { width: 1280, height: 900 },
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
    page = context.pages()[0] || (await context.newPage());
    await page.goto(cfg.url + "/portal/");
    const [key, secret] = cfg.admin.split(":");
    await page.getByLabel("Key").fill(key);
    await page.getByLabel("Secret").fill(secret);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.locator("#active-batches").waitFor();
    // Every value a bar shows, when it shows it (epoch ms, the same clock as the server's).
    await page.evaluate(() => {
      window.seen = [];
      const note = (bar) => {
        const m = /^Batch (\d+) progress$/.exec(bar.getAttribute("aria-label") || "");
        if (m) window.seen.push([Number(m[1]), Number(bar.getAttribute("aria-valuenow")), performance.timeOrigin + performance.now()]);
      };
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.type === "attributes" && r.attributeName === "aria-valuenow") note(r.target);
          for (const n of r.addedNodes || []) if (n.querySelectorAll) n.querySelectorAll("[role=progressbar]").forEach(note);
        }
      }).observe(document.getElementById("active-batches"), { subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuenow"] });
    });
  }
  const cpu0 = cpuSeconds(), t0 = Date.now();
  const ids = [];
  let next = 0;
  const submit = async () => {
    while (next < cfg.batches) {
      const n = next++;
      const member = Array.from({ length: cfg.members }, (_, i) => ({
        id: `b${n}-m${i}`, space: cfg.space, origin: cfg.origin, mediaType: "image/png" }));
      ids.push((await call("POST", "/customers/1/queue", { "@type": "Collection", member })).id);
    }
  };
  await Promise.all(Array.from({ length: 8 }, submit));
  out.submitMs = Date.now() - t0;
  for (;;) {
    const active = await call("GET", "/customers/1/queue/active?pageSize=1");
    if (active.totalItems === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  out.runMs = Date.now() - t0;
  out.serverCpuS = cpuSeconds() - cpu0;
  if (page) {
    await new Promise((r) => setTimeout(r, 1500));  // the last counts, if late, still count
    const seen = await page.evaluate(() => window.seen);
    const shown = new Map();  // batch → [[value, t]…]
    for (const [b, v, t] of seen) { if (!shown.has(b)) shown.set(b, []); shown.get(b).push([v, t]); }
    const lags = [];
    let missing = 0;
    for (const b of ids) {
      const imgs = await call("GET", `/customers/1/queue/batches/${b}/images?pageSize=500`);
      const done = imgs.member.map((m) => Date.parse(m.finished)).sort((a, b) => a - b);
      const views = shown.get(b) || [];
      done.forEach((finished, k) => {
        const view = views.find(([v]) => v >= k + 1);
        if (!view) { missing++; return; }
        lags.push(view[1] - finished);
      });
    }
    lags.sort((a, b) => a - b);
    const q = (p) => lags.length ? Math.round(lags[Math.min(lags.length - 1, Math.floor(p * lags.length))]) : null;
    out.outcomes = lags.length + missing;
    out.neverShown = missing;
    out.lagMs = { median: q(0.5), p95: q(0.95), p99: q(0.99), max: lags.length ? Math.round(lags[lags.length - 1]) : null };
    out.within1s = lags.filter((l) => l <= 1000).length;
    out.barsSeen = shown.size;
  }
} catch (e) {
  out.error = String((e && e.stack) || e);
} finally {
  if (context) await context.close().catch(() => {});
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exitCode = out.error ? 1 : 0;
