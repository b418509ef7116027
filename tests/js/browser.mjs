// Real-browser end-to-end checks of the chat page (web/index.html) served by the workers.
//
// Usage: node browser.mjs URL [main|fallback|reconnect]
//
// Drives the Debian Chromium (/usr/bin/chromium) through playwright-core (no browser
// downloads). Each browser context has its own cookie jar, so HAProxy may send the users to
// different workers. Scenarios:
// - main: presence (B in A's `Online` list within 5 s), a direct message sent with Enter from
//   a conversation opened from that list, the `delivered` mark, rooms, conversation switching
//   with unread counts and kept history, leaving a room, errors in the `role="alert"`, a
//   375 px wide layout without sideways scrolling. With BROWSER_SCREENSHOT set, A's page (in
//   the direct conversation) is saved there as a PNG.
// - fallback: URL is a proxy that refuses WebSocket upgrades; the pages must say they run on
//   HTTP long-polling and still chat (both ways, with receipts).
// - reconnect: with HANDSHAKE_DIR set, writes HANDSHAKE_DIR/ready holding B's username, waits
//   for HANDSHAKE_DIR/killed (the caller SIGKILLs B's worker meanwhile), then B must log in
//   again by itself and receive a new message.
// Prints {"ok":true} and exits 0 on success; prints the error and exits 1 on any failure or
// after 75 s.
import { chromium } from "playwright-core";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const OVERALL_MS = 75_000;
const STEP_MS = 10_000;
const PRESENCE_MS = 5_000;

const [url, mode = "main"] = process.argv.slice(2);
if (!url || !["main", "fallback", "reconnect"].includes(mode)) {
  console.error("usage: node browser.mjs URL [main|fallback|reconnect]");
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
  console.error(`browser test (${mode}) failed:`, err && err.stack ? err.stack : err);
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
const online = (page) => page.getByRole("list", { name: "Online", exact: true });
const convs = (page) => page.getByRole("list", { name: "Conversations", exact: true });
const status = (page) => page.locator("#status");

async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what}: ${e.message}`);
  }
}

async function logins(page) {
  return Number((await status(page).getAttribute("data-logins")) || 0);
}

async function login(page, name) {
  await field(page, "Username").fill(name);
  await button(page, "Log in").click();
  await step(`log in as ${name}`, () =>
    status(page).filter({ hasText: `logged in as ${name}` }).waitFor({ timeout: STEP_MS }),
  );
}

// A message line of the open conversation that contains every piece of `texts`.
function line(page, texts) {
  let l = chatLog(page).locator("p");
  for (const t of texts) l = l.filter({ hasText: t });
  return l.first();
}

async function logShows(page, texts, what, timeout = STEP_MS) {
  try {
    await line(page, texts).waitFor({ timeout });
  } catch (e) {
    const seen = await chatLog(page).innerText().catch(() => "(unreadable)");
    throw new Error(`${what}: no line with ${JSON.stringify(texts)} within ${timeout / 1000} s; the log shows:\n${seen}`);
  }
}

async function logLacks(page, text, what) {
  const n = await chatLog(page).locator("p", { hasText: text }).count();
  if (n) throw new Error(`${what}: the log shows ${JSON.stringify(text)} but should not`);
}

async function alertSays(page, pattern, what) {
  const alert = page.getByRole("alert");
  try {
    await alert.filter({ hasText: pattern }).waitFor({ timeout: STEP_MS });
  } catch (e) {
    const seen = await alert.innerText().catch(() => "(unreadable)");
    throw new Error(`${what}: the alert does not match ${pattern} within ${STEP_MS / 1000} s; it says: ${JSON.stringify(seen)}`);
  }
}

// A direct message from `from` to `to` with Send, received by `toPage`, marked delivered.
async function directWithReceipt(fromPage, toPage, fromName, toName, text) {
  await field(fromPage, "To").fill(toName);
  await field(fromPage, "Message").fill(text);
  await button(fromPage, "Send").click();
  // The receiver may be looking at another conversation: open the sender's.
  await convs(toPage).getByRole("button", { name: fromName, exact: true }).click();
  await logShows(toPage, [text, fromName], `direct message ${fromName} -> ${toName}`);
  await logShows(fromPage, [text, "delivered"], `delivered mark on ${fromName}'s own entry`);
}

async function launch() {
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
}

const pageErrors = [];

async function openPage(who, viewport = { width: 1000, height: 720 }) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => pageErrors.push(`${who}: ${e.message}`));
  await page.goto(url, { waitUntil: "load", timeout: STEP_MS });
  return page;
}

async function main() {
  const tag = process.pid;
  const ann = `ann${tag}`;
  const ben = `ben${tag}`;
  const room = `r${tag}`;
  const pageA = await openPage("A");
  const pageB = await openPage("B");

  await login(pageA, ann);
  await login(pageB, ben);

  // Where nothing refuses it, the link upgrades from polling to WebSocket (so the fallback
  // run below really tests something different).
  await step("status names WebSocket", () =>
    status(pageA).filter({ hasText: "connected over WebSocket" }).waitFor(),
  );

  // Presence: B appears in A's Online list within 5 s of logging in.
  await step(`${ben} in ${ann}'s Online list within 5 s`, () =>
    online(pageA).getByRole("button", { name: ben, exact: true }).waitFor({ timeout: PRESENCE_MS }),
  );

  // Clicking a name opens the conversation; Enter in Message sends to it.
  await online(pageA).getByRole("button", { name: ben, exact: true }).click();
  await step("conversation title", () =>
    pageA.getByRole("heading", { name: `Conversation with ${ben}` }).waitFor(),
  );
  if ((await field(pageA, "To").inputValue()) !== ben) throw new Error("opening a conversation did not fill To");
  const hello = "hello from the browser";
  await field(pageA, "Message").fill(hello);
  await field(pageA, "Message").press("Enter");
  await logShows(pageB, [hello, ann], "direct message to B (sent with Enter)");
  await logShows(pageA, [hello, "delivered"], "delivered mark on A's own entry");

  // The old SPEC fields: To + Message + Send, the other way round.
  await directWithReceipt(pageB, pageA, ben, ann, "hi ann, from the Send button");

  // Rooms: both join, B sends to the room while A looks at the direct conversation.
  for (const p of [pageA, pageB]) {
    await field(p, "Room").fill(room);
    await button(p, "Join").click();
    await logShows(p, [`joined ${room}`], "join room");
  }
  await convs(pageA).getByRole("button", { name: ben, exact: true }).click();
  await logShows(pageA, [hello], "back in the direct conversation (its history kept)");
  const roomText = "room hello";
  await field(pageB, "Message").fill(roomText);
  await button(pageB, "Send to room").click();
  await step("unread count on the room", () =>
    convs(pageA).locator("li", { hasText: `#${room}` }).filter({ hasText: "1 unread" }).waitFor(),
  );
  await logLacks(pageA, roomText, "a room message in the direct conversation");

  // Switching shows the room's messages, and the unread count goes away.
  await convs(pageA).getByRole("button", { name: `#${room}`, exact: true }).click();
  await logShows(pageA, [roomText, ben], "room message after switching to the room");
  await logLacks(pageA, hello, "a direct message in the room conversation");
  const badges = await convs(pageA).locator("li", { hasText: `#${room}` }).locator(".badge").count();
  if (badges) throw new Error("the open room still shows an unread count");

  // Enter in the open room conversation sends to the room.
  const reply = "room reply with Enter";
  await field(pageA, "Message").fill(reply);
  await field(pageA, "Message").press("Enter");
  await logShows(pageB, [reply, ann], "room message from A (Enter) at B");

  // For the README: A's page in the direct conversation, a room with news beside it.
  await convs(pageA).getByRole("button", { name: ben, exact: true }).click();
  await logShows(pageA, [hello], "back in the direct conversation");
  await field(pageB, "Message").fill("anyone up for lunch?");
  await button(pageB, "Send to room").click();
  await step("unread count for the screenshot", () =>
    convs(pageA).locator("li", { hasText: `#${room}` }).filter({ hasText: "1 unread" }).waitFor(),
  );
  const shot = process.env.BROWSER_SCREENSHOT;
  if (shot) await pageA.screenshot({ path: shot, fullPage: true });

  // Errors, in words, in the alert.
  await field(pageA, "Room").fill("no spaces allowed");
  await button(pageA, "Join").click();
  await alertSays(pageA, /room name/i, "invalid_room");
  await field(pageA, "To").fill(ben);
  await field(pageA, "Message").fill("x".repeat(17_000));
  await button(pageA, "Send").click();
  await alertSays(pageA, /too long/i, "message_too_large");
  await logShows(pageA, ["not sent"], "the refused entry");
  // A success clears the alert.
  await directWithReceipt(pageA, pageB, ann, ben, "after the error");
  await step("the alert clears after a success", () =>
    pageA.waitForFunction(() => !document.getElementById("alert").textContent, null, { timeout: STEP_MS }),
  );

  // Leaving a room removes it from the conversations.
  await convs(pageA).getByRole("button", { name: `Leave ${room}`, exact: true }).click();
  await step("room gone after Leave", () =>
    convs(pageA).getByRole("button", { name: `#${room}`, exact: true }).waitFor({ state: "detached" }),
  );

  // A phone-sized window: everything fits without sideways scrolling.
  const phone = await openPage("phone", { width: 375, height: 740 });
  await login(phone, `cat${tag}`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`at 375 px the page scrolls sideways by ${overflow} px`);

}

async function fallback() {
  const tag = process.pid;
  const ann = `fa${tag}`;
  const ben = `fb${tag}`;
  const pageA = await openPage("A");
  const pageB = await openPage("B");
  await login(pageA, ann);
  await login(pageB, ben);
  for (const p of [pageA, pageB]) {
    await step("status names long-polling", () =>
      status(p).filter({ hasText: "HTTP long-polling" }).waitFor(),
    );
  }
  await step(`${ben} in ${ann}'s Online list within 5 s`, () =>
    online(pageA).getByRole("button", { name: ben, exact: true }).waitFor({ timeout: PRESENCE_MS }),
  );
  await directWithReceipt(pageA, pageB, ann, ben, "over polling, A to B");
  await directWithReceipt(pageB, pageA, ben, ann, "over polling, B to A");
  // The upgrade was refused: still polling, and the status never claimed WebSocket.
  for (const p of [pageA, pageB]) {
    const s = await status(p).innerText();
    if (!s.includes("HTTP long-polling")) throw new Error(`status after chatting: ${s}`);
  }
}

async function reconnect() {
  const dir = process.env.HANDSHAKE_DIR;
  if (!dir) throw new Error("reconnect needs HANDSHAKE_DIR");
  const tag = process.pid;
  const ann = `ka${tag}`;
  const ben = `kb${tag}`;
  const pageA = await openPage("A");
  const pageB = await openPage("B");
  await login(pageA, ann);
  await login(pageB, ben);
  await directWithReceipt(pageA, pageB, ann, ben, "before the kill");

  const before = await logins(pageB);
  writeFileSync(join(dir, "ready"), ben);
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(dir, "killed"))) {
    if (Date.now() > deadline) throw new Error("no HANDSHAKE_DIR/killed within 20 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  await step(`${ben} logs in again after its worker died`, () =>
    pageB.waitForFunction(
      (n) => Number(document.getElementById("status").dataset.logins || 0) > n,
      before,
      { timeout: 25_000, polling: 100 },
    ),
  );
  // A may have been on the same worker: wait until it is connected too before sending.
  await step("A connected", () => status(pageA).filter({ hasText: "connected over" }).waitFor({ timeout: 25_000 }));
  await directWithReceipt(pageA, pageB, ann, ben, "after the kill");
  await logShows(pageB, ["before the kill"], "history kept across the reconnect");
}

async function run() {
  await launch();
  if (mode === "main") await main();
  else if (mode === "fallback") await fallback();
  else await reconnect();
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  await closeBrowser();
}

run().then(
  () => {
    if (finished) return;
    finished = true;
    clearTimeout(overall);
    console.log(JSON.stringify({ ok: true }));
    process.exit(0);
  },
  (err) => fail(err),
);
