// Drives mirador.html in headless Debian Chromium through playwright-core (as viewer.mjs
// does for OpenSeadragon) and prints one JSON line: every request, every failed or non-2xx
// one, console and page errors, and per canvas what Mirador fetched after it was selected
// (image requests and their statuses) with a screenshot.
//
//   node mirador.mjs <manifest URL> <screenshot prefix>   → <prefix>-canvas<i>.png
import { openBrowser, printReport } from "./browser.mjs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const [manifest, prefix] = process.argv.slice(2);
if (!manifest || !prefix) {
  console.error("usage: node mirador.mjs <manifest URL> <screenshot prefix>");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const pageUrl = pathToFileURL(path.join(here, "mirador.html")).href + "?manifest=" +
                encodeURIComponent(manifest);

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
let browser;
try {
  browser = await openBrowser({ width: 1000, height: 700 }, "quire-mirador-");
  const page = browser.page;
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
  if (browser) await browser.close();
}
printReport(report);
