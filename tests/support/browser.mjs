// The headless Chromium every browser test drives: Debian's (or $CHROMIUM) through
// playwright-core, on a fresh profile directory of its own. Copied by CMake next to each test's
// scripts, so `playwright-core` resolves from that test's node_modules.
//
//   const browser = await openBrowser({ width, height }, "quire-viewer-");
//   ... browser.page ...
//   await browser.close();   // never throws: the report is printed either way
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const kArgs = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// Removes a profile directory Chromium may still be writing to as it exits (a crash reporter or
// the cache flushing): a few attempts, then left behind in /tmp rather than failing the test.
function removeProfile(dir) {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  } catch (e) {
    process.stderr.write(`browser.mjs: left ${dir} behind: ${e.code || e}\n`);
  }
}

// A first launch on a loaded machine (two browsers and a build on 2 cores) can take longer than
// the launch timeout; a second try on a fresh profile is what a person would do.
export async function openBrowser(viewport, prefix = "quire-chromium-") {
  let lastError;
  for (let attempt = 1; attempt <= 2; attempt++) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    try {
      // A persistent context is how Playwright runs Chromium on a --user-data-dir of our own.
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
        headless: true,
        timeout: 60000,
        viewport,
        deviceScaleFactor: 1,
        args: kArgs,
      });
      const page = context.pages()[0] || (await context.newPage());
      return {
        context,
        page,
        async close() {
          await context.close().catch(() => {});
          removeProfile(profile);
        },
      };
    } catch (e) {
      lastError = e;
      process.stderr.write(`browser.mjs: launch ${attempt} failed: ${e.message || e}\n`);
      removeProfile(profile);
    }
  }
  throw lastError;
}

// The one JSON line each script prints for its C++ test to judge. No process.exit(): on a pipe it
// can cut off a long line that is still being written.
export function printReport(report) {
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exitCode = report.error ? 1 : 0;
}
