// Drives the portal in headless Debian Chromium through playwright-core ($CHROMIUM or
// /usr/bin/chromium, fresh profile) the way a person would: by labels and button names. It
// records what it saw and prints one JSON line for portal_test.cc to judge; it asserts only
// what it must wait for (a timeout there is reported as `error`).
//
//   node portal.mjs <config.json>
// config: url, key, secret, customer, files[], csv, artefacts, fixFlag, fixedFlag, evilUrl
import { openBrowser, printReport } from "./browser.mjs";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const require = createRequire(import.meta.url);
// Injected through the DevTools protocol: the portal's CSP (rightly) refuses inline scripts.
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const report = { steps: [], pages: {}, consoleErrors: [], pageErrors: [], failedRequests: [],
                 badResponses: [], expectedBad: [] };
const step = (name, data = {}) => report.steps.push({ name, ...data });
let expectBad = false;  // while set, 4xx answers are the point (an error shown in words)
let browser, context;

async function until(page, fn, arg, timeout = 20000) {
  return page.waitForFunction(fn, arg, { timeout, polling: 50 });
}

// The batch page's progress bar: [valuenow, valuemax], or null before it is drawn.
function barOf(page, batch) {
  return page.evaluate((b) => {
    const bar = document.querySelector(`[role=progressbar][aria-label="Batch ${b} progress"]`);
    return bar ? [Number(bar.getAttribute("aria-valuenow")), Number(bar.getAttribute("aria-valuemax"))] : null;
  }, batch);
}

function rows(page) {
  return page.$$eval("table.images tbody tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.image, state: tr.querySelector(".state")?.textContent,
    error: tr.querySelector(".err")?.textContent, thumb: !!tr.querySelector("img.thumb") })));
}

// Loads `url` afresh (as a reload or a bookmark does), waits for `ready`, scans it with axe and
// keeps screenshots at 1280 and 360 px.
async function visit(page, name, url, ready) {
  const before = report.consoleErrors.length;
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(url, { waitUntil: "load" });
  await page.locator(ready).first().waitFor({ timeout: 20000 });
  await page.waitForLoadState("networkidle").catch(() => {});
  await page.evaluate(axeSource);
  const axe = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  const shots = {};
  for (const width of [1280, 360]) {
    await page.setViewportSize({ width, height: 800 });
    await page.waitForTimeout(150);
    const file = path.join(cfg.artefacts, `${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    // Wider than the viewport means a sideways scroll of the whole page at that width.
    shots[width] = { file, scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth) };
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  report.pages[name] = { url, axe, shots, consoleErrors: report.consoleErrors.slice(before) };
}

try {
  browser = await openBrowser({ width: 1280, height: 800 }, "quire-portal-");
  context = browser.context;
  const page = browser.page;
  page.setDefaultTimeout(20000);
  page.on("console", (m) => { if (m.type() === "error") (expectBad ? report.expectedBad : report.consoleErrors).push(m.text()); });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  page.on("requestfailed", (r) => {
    const err = r.failure() && r.failure().errorText;
    // A stream the page closes on purpose, or a page left mid-request, is not a failure.
    if (err === "net::ERR_ABORTED") return;
    report.failedRequests.push({ url: r.url(), error: err });
  });
  page.on("response", (r) => {
    if (r.status() >= 400) (expectBad ? report.expectedBad : report.badResponses).push({ url: r.url(), status: r.status() });
  });
  const C = `${cfg.url}/portal/customers/${cfg.customer}`;

  // --- sign in
  await page.goto(`${cfg.url}/portal/`);
  await page.getByLabel("Key").waitFor();
  step("sign-in page", { url: page.url() });
  await page.getByLabel("Key").fill(cfg.key);
  await page.getByLabel("Secret").fill(cfg.secret);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Dashboard", exact: true }).waitFor();
  const cookie = (await context.cookies(cfg.url)).find((c) => c.name === "quire_session");
  step("signed in", { url: page.url(), cookie: cookie && { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite,
       expires: cookie.expires, secure: cookie.secure } });
  const dashboardEmpty = await page.locator("#active-batches .empty").textContent();

  // --- create a space
  await page.getByRole("link", { name: "Spaces", exact: true }).click();
  await page.getByLabel("Space").fill("books");
  await page.getByRole("button", { name: "Create space", exact: true }).click();
  await page.locator("tr", { hasText: "books" }).waitFor();
  step("space created", { dashboardEmpty });

  // --- upload 4 files by the file input and 1 origin by CSV
  await page.getByRole("link", { name: "Upload", exact: true }).click();
  await page.getByLabel("Files").setInputFiles(cfg.files);
  await page.getByLabel("CSV").setInputFiles(cfg.csv);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  const batchLink = page.locator(".upload-progress a", { hasText: /^Batch \d+$/ });
  await batchLink.waitFor();
  const batch = Number((await batchLink.textContent()).replace("Batch ", ""));
  const uploads = await page.$$eval(".file-list li", (lis) => lis.map((li) => li.textContent));
  step("uploaded", { batch, uploads });

  // --- the batch page: the bar reaches 100 % without a reload
  await batchLink.click();
  await page.getByRole("heading", { name: `Batch ${batch}`, exact: true }).waitFor();
  await page.locator("[role=progressbar]").waitFor();
  await page.evaluate(() => { window.__sameDocument = true; });
  const firstBar = await barOf(page, batch);
  const firstRows = await rows(page);
  await until(page, (b) => {
    const bar = document.querySelector(`[role=progressbar][aria-label="Batch ${b} progress"]`);
    return bar && bar.getAttribute("aria-valuenow") === bar.getAttribute("aria-valuemax") &&
           document.querySelectorAll('tr[data-state="error"]').length === 2;
  }, batch, 30000);
  const doneBar = await barOf(page, batch);
  const sameDocument = await page.evaluate(() => window.__sameDocument === true);
  const failedRows = (await rows(page)).filter((r) => r.state === "error");
  // The live region says so (announcements land a moment after the change they describe).
  await until(page, () => /finished/.test(document.getElementById("live").textContent), null, 5000)
    .catch(() => {});
  const announced = await page.locator("#live").textContent();
  step("batch finished", { firstBar, firstRows, doneBar, sameDocument, failedRows, announced,
                           rows: await rows(page), text: await page.locator(".progress .bar-text").textContent() });

  // --- fix the origin, press Retry failed, and watch the bar complete again
  fs.writeFileSync(cfg.fixFlag, "fix");
  for (let i = 0; i < 200 && !fs.existsSync(cfg.fixedFlag); i++) await page.waitForTimeout(50);
  await page.getByRole("button", { name: "Retry failed", exact: true }).click();
  await until(page, () => {
    const row = document.querySelector('tr[data-image="from-csv"]');
    return row && row.dataset.state === "completed";
  }, null, 30000);
  await until(page, (b) => {
    const bar = document.querySelector(`[role=progressbar][aria-label="Batch ${b} progress"]`);
    return bar && bar.closest(".progress").dataset.done === "true" &&
           bar.getAttribute("aria-valuenow") === bar.getAttribute("aria-valuemax");
  }, batch, 30000);
  step("retried", { bar: await barOf(page, batch), rows: await rows(page),
                    sameDocument: await page.evaluate(() => window.__sameDocument === true),
                    text: await page.locator(".progress .bar-text").textContent() });

  // --- Test works from the page
  await page.getByRole("button", { name: "Test", exact: true }).click();
  await page.waitForTimeout(300);
  step("tested", { live: await page.locator("#live").textContent(), error: await page.locator(".actions .error").count() });

  // --- time from opening the batch URL to a painted progress bar
  const paints = [];
  for (let i = 0; i < 5; i++) {
    await page.goto("about:blank");
    await page.goto(`${C}/batches/${batch}`, { waitUntil: "commit" });
    await page.locator("[role=progressbar]").waitFor();
    paints.push(await page.evaluate(() => new Promise((res) =>
      requestAnimationFrame(() => requestAnimationFrame(() => res(performance.now()))))));
  }
  step("paint", { ms: paints });

  // --- the image page and its deep-zoom viewer
  await page.locator("table.images a", { hasText: cfg.bigImage }).click();
  await page.getByRole("heading", { name: cfg.bigImage, exact: true }).waitFor();
  await until(page, () => window.viewerState && window.viewerState.opened && window.viewerState.tilesLoaded > 0);
  await page.waitForLoadState("networkidle").catch(() => {});
  await page.waitForTimeout(500);
  step("viewer", { state: await page.evaluate(() => window.viewerState),
                   urls: await page.$$eval(".copy-row input", (is) => is.map((i) => i.value)) });

  // --- every page: reload to the same view, no console errors, axe, screenshots
  const image = `${C}/images/${cfg.space}/${encodeURIComponent(cfg.bigImage)}`;
  await visit(page, "dashboard", `${C}/`, "#active-batches");
  await visit(page, "batches", `${C}/batches`, "table");
  await visit(page, "batch", `${C}/batches/${batch}`, "table.images tbody tr");
  await visit(page, "upload", `${C}/upload`, "#files");
  await visit(page, "image", image, ".copy-row");
  await page.waitForFunction(() => window.viewerState && window.viewerState.tilesLoaded > 0, null, { timeout: 20000 });
  await visit(page, "spaces", `${C}/spaces`, "tr[data-space]");
  await visit(page, "keys", `${C}/keys`, "table");

  // --- keyboard: Tab reaches the navigation with a visible focus ring
  await page.goto(`${C}/spaces`);
  await page.locator("tr[data-space]").first().waitFor();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const focus = await page.evaluate(() => {
    const a = document.activeElement;
    const s = getComputedStyle(a);
    return { tag: a.tagName, text: a.textContent, outline: s.outlineStyle, width: s.outlineWidth };
  });
  step("keyboard", { focus });

  // --- an API error in words: a space that holds images cannot be deleted
  expectBad = true;
  await page.locator("tr", { hasText: "books" }).getByRole("button", { name: "Delete", exact: true }).click();
  const refused = await page.locator("tr", { hasText: "books" }).locator(".error").textContent();
  await page.waitForTimeout(300);
  expectBad = false;
  step("delete refused", { refused });

  // --- create a key from the page
  await page.getByRole("link", { name: "Keys", exact: true }).click();
  await page.getByRole("button", { name: "Create key", exact: true }).click();
  await page.locator(".notice").waitFor();
  step("key created", { notice: await page.locator(".notice").textContent() });

  // --- Reingest and Delete from the image page
  await page.goto(`${C}/images/${cfg.space}/page-001.jpg`);
  await page.getByRole("button", { name: "Reingest", exact: true }).click();
  await page.locator(".meta dd", { hasText: /^(waiting|completed)$/ }).first().waitFor();
  const reingested = await page.locator(".meta").textContent();
  // Delete once the reingest has completed: a DELETE racing the worker that is writing the
  // image's derivatives can answer 500 (a server defect outside the portal, reported).
  for (let i = 0; i < 100; i++) {
    const state = await page.locator(".meta dd").first().textContent();
    if (state === "completed") break;
    await page.waitForTimeout(100);
    await page.reload();
    await page.locator(".meta dd").first().waitFor();
  }
  // The viewer on the page has drawn its tiles before the image goes: a tile still in flight
  // when the DELETE lands answers 404, rightly (the image is gone), and is not a defect.
  await until(page, () => window.viewerState && window.viewerState.tilesLoaded > 0);
  await page.waitForLoadState("networkidle").catch(() => {});
  page.once("dialog", (d) => d.accept());
  expectBad = true;
  await page.getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("heading", { name: "Dashboard", exact: true }).waitFor();
  expectBad = false;
  step("image actions", { reingested, after: page.url() });

  // --- sign out; the old cookie no longer works
  const oldCookie = (await context.cookies(cfg.url)).find((c) => c.name === "quire_session");
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.getByLabel("Key").waitFor();
  const old = await fetch(`${cfg.url}/customers/${cfg.customer}/spaces`, { headers: { Cookie: `quire_session=${oldCookie.value}` } });
  step("signed out", { url: page.url(), oldCookieStatus: old.status,
                       cookieLeft: (await context.cookies(cfg.url)).some((c) => c.name === "quire_session") });

  await visit(page, "sign-in", `${cfg.url}/portal/sign-in`, "#key");

  // --- cross-site POSTs without the CSRF token: from another origin's page in the browser,
  // and from a script holding a live cookie
  await page.getByLabel("Key").fill(cfg.key);
  await page.getByLabel("Secret").fill(cfg.secret);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Dashboard", exact: true }).waitFor();
  expectBad = true;
  await page.goto(cfg.evilUrl);
  const evil = await page.evaluate(async (target) => {
    try {
      await fetch(target, { method: "POST", mode: "no-cors", credentials: "include",
                            headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ name: "evil", exact: true }) });
      return "sent";
    } catch (e) { return "blocked: " + e.message; }
  }, `${cfg.url}/customers/${cfg.customer}/spaces`);
  await page.waitForTimeout(300);  // its console messages arrive after the fetch settles
  expectBad = false;
  const live = (await context.cookies(cfg.url)).find((c) => c.name === "quire_session");
  const forged = await fetch(`${cfg.url}/customers/${cfg.customer}/spaces`, { method: "POST",
    headers: { Cookie: `quire_session=${live.value}`, "Content-Type": "application/json", Origin: "http://evil.example" },
    body: JSON.stringify({ name: "forged", exact: true }) });
  step("cross-site", { evil, forgedStatus: forged.status, forgedBody: await forged.json() });

  // --- an administrator's session switches customer
  await page.goto(`${cfg.url}/portal/customers/${cfg.customer}/`);
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.getByLabel("Key").fill(cfg.adminKey);
  await page.getByLabel("Secret").fill(cfg.adminSecret);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Dashboard", exact: true }).waitFor();
  const adminHome = page.url();
  await page.locator(`#customer-switch option[value="${cfg.customer}"]`).waitFor({ state: "attached" });
  await page.getByLabel("Customer").selectOption(String(cfg.customer));
  await page.waitForURL(`**/portal/customers/${cfg.customer}/`);
  await page.getByRole("link", { name: "Batch 1", exact: true }).waitFor();
  step("admin switch", { adminHome, switched: page.url() });
} catch (e) {
  report.error = String((e && e.stack) || e);
} finally {
  if (browser) await browser.close();
}
printReport(report);
