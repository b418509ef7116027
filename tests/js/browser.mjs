// Real-browser end-to-end check of the chat page (web/index.html) served by the workers.
//
// Usage: node browser.mjs URL
//
// Drives the Debian Chromium (/usr/bin/chromium) through playwright-core (no browser
// downloads): two browser contexts (separate cookie jars, so HAProxy may send them to
// different workers) log in as two users, exchange a direct message and a room message, and
// the receiver's log must show both. With BROWSER_SCREENSHOT set, the receiver's page is
// saved there as a PNG. Prints {"ok":true} and exits 0 on success; prints the error and exits
// 1 on any failure or after 45 s.
import { chromium } from "playwright-core";

const OVERALL_MS = 45_000;
const STEP_MS = 10_000;

const url = process.argv[2];
if (!url) {
  console.error("usage: node browser.mjs URL");
  process.exit(1);
}

let browser = null;
let finished = false;

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (!b) return;
  // A hung browser must not keep us from exiting: give close() 5 s.
  await Promise.race([
    b.close().catch(() => {}),
    new Promise((resolve) => setTimeout(resolve, 5_000).unref()),
  ]);
}

async function fail(err) {
  if (finished) return;
  finished = true;
  console.error("browser test failed:", err && err.stack ? err.stack : err);
  await closeBrowser();
  process.exit(1);
}

const overall = setTimeout(() => {
  fail(new Error(`timed out after ${OVERALL_MS / 1000} s`));
}, OVERALL_MS);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => fail(new Error(`got ${sig}`)));
}

// Accessible locators; `exact` matters: "To" is a substring of "Token", "Message" of the log's
// label "Messages", and "Send" of "Send to room".
const field = (page, label) => page.getByLabel(label, { exact: true });
const button = (page, name) => page.getByRole("button", { name, exact: true });
const chatLog = (page) => page.getByRole("log");

async function login(page, name) {
  await field(page, "Username").fill(name);
  await button(page, "Log in").click();
  await page
    .locator("#status", { hasText: `logged in as ${name}` })
    .waitFor({ timeout: STEP_MS });
}

// Waits until one line of the page's log contains every piece of `texts`.
async function logShows(page, texts, what) {
  let line = chatLog(page).locator("p");
  for (const t of texts) line = line.filter({ hasText: t });
  try {
    await line.first().waitFor({ timeout: STEP_MS });
  } catch (e) {
    const seen = await chatLog(page).innerText().catch(() => "(unreadable)");
    throw new Error(`${what}: no line with ${JSON.stringify(texts)} within ${STEP_MS / 1000} s; the log shows:\n${seen}`);
  }
}

async function main() {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    // playwright's launch uses a fresh temporary profile (--user-data-dir) per run.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 20_000,
  });

  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const pageA = await ctxA.newPage();
  const pageB = await ctxB.newPage();
  for (const p of [pageA, pageB]) p.setDefaultTimeout(STEP_MS);
  const consoleErrors = [];
  for (const [who, p] of [["A", pageA], ["B", pageB]]) {
    p.on("pageerror", (e) => consoleErrors.push(`${who}: ${e.message}`));
  }

  const ann = `ann${process.pid}`;
  const ben = `ben${process.pid}`;
  const room = `r${process.pid}`;

  await Promise.all([
    pageA.goto(url, { waitUntil: "load", timeout: STEP_MS }),
    pageB.goto(url, { waitUntil: "load", timeout: STEP_MS }),
  ]);
  await Promise.all([login(pageA, ann), login(pageB, ben)]);

  // Direct message A -> B.
  const hello = "hello from the browser";
  await field(pageA, "To").fill(ben);
  await field(pageA, "Message").fill(hello);
  await button(pageA, "Send").click();
  await logShows(pageB, [hello, ann], "direct message to B");

  // Room round trip: both join, A sends, B sees it.
  for (const p of [pageA, pageB]) {
    await field(p, "Room").fill(room);
    await button(p, "Join").click();
    await logShows(p, [`joined ${room}`], "join room");
  }
  const roomText = "room hello";
  await field(pageA, "Message").fill(roomText);
  await button(pageA, "Send to room").click();
  await logShows(pageB, [`[${room}] ${roomText}`, ann], "room message to B");

  if (consoleErrors.length) throw new Error(`page errors: ${consoleErrors.join("; ")}`);

  const shot = process.env.BROWSER_SCREENSHOT;
  if (shot) await pageB.screenshot({ path: shot, fullPage: true });

  await closeBrowser();
}

main().then(
  () => {
    if (finished) return;
    finished = true;
    clearTimeout(overall);
    console.log(JSON.stringify({ ok: true }));
    process.exit(0);
  },
  (err) => fail(err),
);
