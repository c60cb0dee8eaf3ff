// Drives viewer.html in headless Debian Chromium (browser.mjs: no browser download) and prints
// one JSON line: what the viewer recorded, every failed or non-2xx request the browser saw,
// and for each view its screenshot and where sample screen points land in the image.
//
//   node viewer.mjs <info.json URL> <screenshot prefix>   → <prefix>-<view>.png
import { openBrowser, printReport } from "./browser.mjs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

const [info, prefix] = process.argv.slice(2);
if (!info || !prefix) {
  console.error("usage: node viewer.mjs <info.json URL> <screenshot prefix>");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const pageUrl =
  pathToFileURL(path.join(here, "viewer.html")).href + "?info=" + encodeURIComponent(info);

const report = { requests: 0, failedRequests: [], badResponses: [], consoleErrors: [],
                 pageErrors: [], views: [] };
let browser;
try {
  browser = await openBrowser({ width: 800, height: 600 }, "quire-viewer-");
  const page = browser.page;
  page.on("request", (r) => { if (r.url().startsWith("http")) report.requests++; });
  page.on("requestfailed", (r) =>
    report.failedRequests.push({ url: r.url(), error: r.failure() && r.failure().errorText }));
  page.on("response", (r) => {
    if (r.url().startsWith("http") && r.status() >= 400)
      report.badResponses.push({ url: r.url(), status: r.status() });
  });
  page.on("console", (m) => { if (m.type() === "error") report.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  await page.goto(pageUrl, { waitUntil: "load", timeout: 30000 });
  await page.evaluate(() => window.viewerReady);
  for (const name of ["home", "corner", "middle"]) {
    const view = await page.evaluate((n) => window.showView(n), name);
    view.screenshot = `${prefix}-${name}.png`;
    await page.screenshot({ path: view.screenshot });
    report.views.push(view);
  }
  report.viewer = await page.evaluate(() => window.viewerState);
} catch (e) {
  report.error = String((e && e.stack) || e);
} finally {
  if (browser) await browser.close();
}
printReport(report);
