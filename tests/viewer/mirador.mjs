// Drives mirador.html in headless Debian Chromium through playwright-core (as viewer.mjs
// does for OpenSeadragon) and prints one JSON line: every request, every failed or non-2xx
// one, console and page errors, and per canvas what Mirador fetched after it was selected
// (image requests and their statuses) with a screenshot.
//
//   node mirador.mjs <manifest URL> <screenshot prefix>   → <prefix>-canvas<i>.png
import { chromium } from "playwright-core";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";

const [manifest, prefix] = process.argv.slice(2);
if (!manifest || !prefix) {
  console.error("usage: node mirador.mjs <manifest URL> <screenshot prefix>");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const pageUrl = pathToFileURL(path.join(here, "mirador.html")).href + "?manifest=" +
                encodeURIComponent(manifest);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "quire-chromium-"));

const report = { requests: [], failedRequests: [], badResponses: [], consoleErrors: [],
                 pageErrors: [], canvases: [] };
let inFlight = 0, lastActivity = Date.now();
const settled = async (quietMs, timeoutMs) => {
  const start = Date.now();
  while (inFlight > 0 || Date.now() - lastActivity < quietMs) {
    if (Date.now() - start > timeoutMs) throw new Error("network never went quiet");
    await new Promise((r) => setTimeout(r, 50));
  }
};
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 30000,
    viewport: { width: 1000, height: 700 },
    deviceScaleFactor: 1,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("request", (r) => {
    if (!r.url().startsWith("http")) return;
    inFlight++;
    lastActivity = Date.now();
  });
  const done = () => { inFlight--; lastActivity = Date.now(); };
  page.on("requestfinished", async (r) => {
    if (!r.url().startsWith("http")) return;
    const res = await r.response();
    report.requests.push({ url: r.url(), status: res ? res.status() : 0 });
    done();
  });
  page.on("requestfailed", (r) => {
    if (!r.url().startsWith("http")) return;
    report.failedRequests.push({ url: r.url(), error: r.failure() && r.failure().errorText });
    done();
  });
  page.on("response", (r) => {
    if (r.url().startsWith("http") && r.status() >= 400)
      report.badResponses.push({ url: r.url(), status: r.status() });
  });
  page.on("console", (m) => { if (m.type() === "error") report.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  await page.goto(pageUrl, { waitUntil: "load", timeout: 30000 });
  const state = await page.evaluate(() => window.miradorReady);
  report.manifestCanvases = state.canvases;
  await settled(700, 30000);
  for (let i = 0; i < state.canvases.length; i++) {
    const before = report.requests.length;
    const id = await page.evaluate((k) => window.showCanvas(k), i);
    await page.waitForTimeout(200);
    await settled(700, 30000);
    const shown = await page.evaluate(() => window.currentCanvas());
    await page.waitForTimeout(500);  // the viewport's move to the new canvas, drawn
    const screenshot = `${prefix}-canvas${i + 1}.png`;
    await page.screenshot({ path: screenshot });
    report.canvases.push({ id, shown, screenshot, requests: report.requests.slice(before) });
  }
} catch (e) {
  report.error = String((e && e.stack) || e);
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exitCode = report.error ? 1 : 0;
