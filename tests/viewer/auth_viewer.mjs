// The IIIF Authorization Flow 2.0 in headless Debian Chromium through playwright-core: a
// restricted image opened from a page served over http beside quire (viewer and images on one
// host, as the cookie over plain http needs), probed (401), logged in through the access
// window with a grant code, token taken from the token iframe, probed again (200), then shown
// in OpenSeadragon with tiles fetched with the session cookie; then logged out, after which
// the probe fails and a tile is refused. Prints one JSON line like viewer.mjs, plus `auth`.
//
//   node auth_viewer.mjs <info.json URL> <grant code> <screenshot prefix>
import { openBrowser, printReport } from "./browser.mjs";
import { fileURLToPath } from "node:url";
import http from "node:http";
import path from "node:path";
import fs from "node:fs";

const [info, code, prefix] = process.argv.slice(2);
if (!info || !code || !prefix) {
  console.error("usage: node auth_viewer.mjs <info.json URL> <grant code> <screenshot prefix>");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
                ".png": "image/png", ".css": "text/css", ".svg": "image/svg+xml" };
// The test's pages and node_modules, on loopback (the browser's cookie needs an http origin).
const server = http.createServer((req, res) => {
  if (req.url === "/favicon.ico") {
    res.writeHead(204).end();
    return;
  }
  const file = path.join(here, decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (!file.startsWith(here + path.sep) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "Content-Type": types[path.extname(file)] || "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

const report = { requests: 0, failedRequests: [], badResponses: [], consoleErrors: [],
                 pageErrors: [], views: [], auth: {} };
let browser, context;
try {
  browser = await openBrowser({ width: 800, height: 600 }, "quire-auth-");
  context = browser.context;
  const page = browser.page;
  // Console errors of the logged-in part; after logout refusals are expected (kept apart).
  let consoleErrors = report.consoleErrors;
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));

  // 1. The viewer page probes: 401.
  await page.goto(`${origin}/auth.html?info=${encodeURIComponent(info)}`, { waitUntil: "load" });
  const before = await page.evaluate(() => window.authReady);
  report.auth.context = before.context;
  report.auth.probe1 = before.probe1;
  // 2. The access window: a code typed into its form, POSTed; it closes itself.
  const [popup] = await Promise.all([context.waitForEvent("page"), page.click("#login")]);
  await popup.waitForLoadState("load");
  report.auth.accessUrl = popup.url();
  report.auth.accessCsp = (await fetch(popup.url())).headers.get("content-security-policy");
  await popup.fill("#code", code);
  const closed = popup.waitForEvent("close", { timeout: 10000 });
  await popup.click("button[type=submit]");
  await closed;
  report.auth.cookies = (await context.cookies()).map((c) => ({
    name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure }));
  // 3. The token iframe, then a probe with the token: 200.
  const after = await page.evaluate(() => window.afterLogin());
  report.auth.token = { origin: after.token.origin, type: after.token.data.type,
                        expiresIn: after.token.data.expiresIn,
                        hasToken: typeof after.token.data.accessToken === "string" };
  report.auth.probe2 = after.probe2;
  const token = after.token.data.accessToken;

  // 4. The viewer, its tiles fetched as <img> elements do: with the browser's cookie.
  page.on("request", (r) => { if (r.url().startsWith(new URL(info).origin)) report.requests++; });
  page.on("requestfailed", (r) =>
    report.failedRequests.push({ url: r.url(), error: r.failure() && r.failure().errorText }));
  page.on("response", (r) => {
    if (r.url().startsWith("http") && r.status() >= 400)
      report.badResponses.push({ url: r.url(), status: r.status() });
  });
  await page.goto(`${origin}/viewer.html?credentials=1&info=${encodeURIComponent(info)}`,
                  { waitUntil: "load" });
  await page.evaluate(() => window.viewerReady);
  for (const name of ["home", "corner", "middle"]) {
    const view = await page.evaluate((n) => window.showView(n), name);
    view.screenshot = `${prefix}-${name}.png`;
    await page.screenshot({ path: view.screenshot });
    report.views.push(view);
  }
  report.viewer = await page.evaluate(() => window.viewerState);

  report.consoleAfterLogout = consoleErrors = [];
  // 5. Logout (the user opens the logout service), then a tile not seen before: refused.
  const base = info.replace(/\/info\.json$/, "");
  const logoutUrl = before.access + "/logout";
  const logout = await context.newPage();
  const answer = await logout.goto(logoutUrl, { waitUntil: "load" });
  report.auth.logoutStatus = answer.status();
  await logout.close();
  report.auth.cookiesAfterLogout = (await context.cookies()).map((c) => c.name);
  await page.goto(`${origin}/auth.html?info=${encodeURIComponent(info)}`, { waitUntil: "load" });
  await page.evaluate(() => window.authReady);
  // Not refused responses of the logged-in part: the ones from here on are expected.
  report.badResponsesAfterLogout = [];
  page.removeAllListeners("response");
  page.on("response", (r) => {
    if (r.status() >= 400) report.badResponsesAfterLogout.push({ url: r.url(), status: r.status() });
  });
  report.auth.tileAfterLogout =
      await page.evaluate((u) => window.loadImage(u), base + "/512,512,512,512/256,/0/default.jpg");
  report.auth.openAfterLogout =
      await page.evaluate((u) => window.loadImage(u), base + "/full/!400,400/0/default.jpg");
  report.auth.probe3 = await page.evaluate((t) => window.probeWith(t), token);
} catch (e) {
  report.error = String((e && e.stack) || e);
} finally {
  if (browser) await browser.close();
  server.close();
}
printReport(report);
