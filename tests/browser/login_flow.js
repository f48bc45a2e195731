// Headless Chromium test of the server example's page, driven by playwright-core.
//
//   BASE_URL=http://localhost:PORT SERVER_LOG=/path/to/server/stdout node login_flow.js
//
// It clicks through: register (email code read from the console mailer's output), enrol TOTP
// (codes computed here from the secret shown on the page, RFC 6238), sign out, sign in with
// TOTP, register a security key (Chromium's virtual authenticator, through the DevTools
// protocol), sign out, sign in with the key, sign out, sign in with a backup code, enrol email
// codes, sign out, sign in with the emailed code (the countdown and the resend button checked
// with a fast-forwarded page clock), remove the key with the password and the key itself.
// Screenshots go to ARTIFACTS_DIR (default ci-artifacts/ at the repository root).
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const BASE_URL = process.env.BASE_URL;
const SERVER_LOG = process.env.SERVER_LOG;
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(__dirname, "..", "..", "ci-artifacts");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

if (!BASE_URL || !SERVER_LOG) {
  console.error("skipped: BASE_URL and SERVER_LOG are not set (run through .ci/run)");
  process.exit(0);
}

// ---------- RFC 6238 TOTP with node's crypto ----------

function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const clean = text.replace(/[\s=]/g, "").toUpperCase();
  let bits = 0, value = 0;
  const out = [];
  for (const ch of clean) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error("not base32: " + ch);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function hotp(key, counter, digits = 6, algorithm = "sha1") {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac(algorithm, key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(bin).padStart(digits, "0");
}

function totp(key, unixSeconds, digits = 6, period = 30, algorithm = "sha1") {
  return hotp(key, Math.floor(unixSeconds / period), digits, algorithm);
}

// RFC 6238 Appendix B, before trusting the implementation with the page.
{
  const seed = Buffer.from("12345678901234567890");
  const vectors = [[59, "94287082"], [1111111109, "07081804"], [20000000000, "65353130"]];
  for (const [t, want] of vectors) {
    const got = totp(seed, t, 8);
    if (got !== want) throw new Error(`RFC 6238 vector at ${t}: got ${got}, want ${want}`);
  }
}

// ---------- codes from the console mailer ----------

function mails(to) {
  const log = fs.existsSync(SERVER_LOG) ? fs.readFileSync(SERVER_LOG, "utf8") : "";
  const re = /^---- mail to (\S+) \(not sent: development mailer\) ----\nSubject: (.*)\n([\s\S]*?)\n---- end of mail ----$/gm;
  const found = [];
  for (const m of log.matchAll(re)) {
    if (m[1] !== to) continue;
    const code = /^\s+(\d{3} \d{3})\s*$/m.exec(m[3]);
    found.push({ subject: m[2], code: code ? code[1].replace(/ /g, "") : null });
  }
  return found;
}

async function nextCode(to, seenBefore, subjectPart) {
  for (let i = 0; i < 100; i++) {
    const all = mails(to);
    const fresh = all.slice(seenBefore).filter((m) => m.code && m.subject.includes(subjectPart));
    if (fresh.length) return fresh[fresh.length - 1].code;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no "${subjectPart}" mail to ${to} in the server log`);
}

// ---------- the browser ----------

const { chromium } = require("playwright-core");

const results = [];
function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(require("node:os").tmpdir(), "twofactor-chromium-"));
  // A fresh profile directory (--user-data-dir) for every run.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    // A phone-width viewport: the page must be usable there.
    viewport: { width: 390, height: 844 },
    acceptDownloads: true,
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });
  // A controllable clock for the page's countdowns; it runs in real time until fast-forwarded.
  await page.clock.install();
  // A virtual security key (CTAP2 over USB, with user verification), answering at once: what
  // navigator.credentials.create and .get reach instead of a physical key.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2", transport: "usb", hasResidentKey: false, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  const keyCredentials = async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;

  const username = "alice" + crypto.randomBytes(3).toString("hex");
  const email = username + "@example.com";
  const password = "correct horse battery";
  const shot = async (name) => {
    const file = path.join(ARTIFACTS, name);
    await page.screenshot({ path: file, fullPage: true });
    console.log("  screenshot " + path.relative(process.cwd(), file));
  };
  const visible = (sel) => page.waitForSelector(sel, { state: "visible", timeout: 10000 });
  const text = async (sel) => (await page.textContent(sel)).trim();
  const step = async (name, fn) => {
    await fn();
    results.push(name);
    console.log("ok - " + name);
  };
  const signIn = async () => {
    await visible("#view-login");
    await page.fill("#login-username", username);
    await page.fill("#login-password", password);
    await page.click("#login-submit");
  };
  const signOut = async () => {
    await page.click("#logout");
    await visible("#view-login");
    check((await text("#flash")).includes("signed out"), "signed-out message");
  };

  let secret, backupCodes;
  try {
    await step("register with an emailed code", async () => {
      await page.goto(BASE_URL + "/");
      await visible("#view-login");
      await page.click("#to-register");
      await visible("#view-register");
      await page.fill("#register-username", username);
      await page.fill("#register-email", email);
      await page.fill("#register-password", password);
      const before = mails(email).length;
      await page.click("#register-submit");
      await visible("#view-verify");
      check((await text("#verify-email")) === email, "address shown on the verify step");
      const code = await nextCode(email, before, "verify your email");
      await page.fill("#verify-code", code);
      await page.click("#verify-submit");
      await visible("#view-profile");
      await page.waitForFunction((u) => document.getElementById("st-username").textContent === u, username);
      check((await text("#st-enabled")) === "Off", "two-factor off after registration");
    });

    await step("enrol TOTP from the QR page", async () => {
      await page.click("#start-totp");
      await visible("#totp-setup");
      await page.waitForFunction(() => {
        const img = document.getElementById("totp-qr");
        return img.complete && img.naturalWidth > 0;
      });
      secret = (await text("#totp-secret")).replace(/\s/g, "");
      check(/^[A-Z2-7]{32}$/.test(secret), "a 160-bit base32 secret is shown: " + secret.length + " chars");
      backupCodes = await page.$$eval("#backup-codes li", (lis) => lis.map((li) => li.textContent.trim()));
      check(backupCodes.length === 10, "ten backup codes shown");
      check(backupCodes.every((c) => /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/.test(c)), "backup code format");
      const uri = await page.getAttribute("#totp-uri", "href");
      check(uri.startsWith("otpauth://totp/") && uri.includes("secret=" + secret), "otpauth link carries the secret");
      check((await page.getAttribute("#totp-code", "inputmode")) === "numeric", "TOTP field is numeric");
      check((await page.getAttribute("#totp-code", "autocomplete")) === "one-time-code", "TOTP field autocompletes codes");
      // Download the backup codes as text, as a user would.
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-codes")]);
      const saved = fs.readFileSync(await download.path(), "utf8");
      check(backupCodes.every((c) => saved.includes(c)), "downloaded file holds every backup code");
      await shot("browser-qr-setup.png");
      await page.fill("#totp-code", totp(base32Decode(secret), Date.now() / 1000));
      await page.click("#totp-enable");
      await page.waitForFunction(() => document.getElementById("st-enabled").textContent === "On");
      check((await text("#st-methods")).includes("Authenticator app"), "status lists the app");
      check((await text("#st-backup")) === "10", "ten backup codes left");
      check(!(await page.isVisible("#totp-setup")), "setup panel closed");
      check(await page.isVisible("#backup-panel"), "backup codes stay on screen until dismissed");
      await page.click("#hide-codes");
      check(!(await page.isVisible("#backup-panel")), "backup codes dismissed");
    });

    await step("sign out", signOut);

    await step("sign in with a TOTP code", async () => {
      await signIn();
      await visible("#view-code");
      check((await page.getAttribute("#code-input", "inputmode")) === "numeric", "code field inputmode=numeric");
      check((await page.getAttribute("#code-input", "autocomplete")) === "one-time-code", "code field autocomplete=one-time-code");
      check((await text("#code-prompt")).includes("authenticator app"), "prompt names the app");
      check(!(await page.isVisible("#resend")), "no resend without an email factor");
      await shot("browser-code-step.png");
      // The enrolment used the current step; the next step's code is inside the ±1 window and
      // is not a replay.
      await page.fill("#code-input", totp(base32Decode(secret), Date.now() / 1000 + 30));
      await page.click("#code-submit");
      await visible("#view-profile");
      await page.waitForFunction(() => document.getElementById("st-enabled").textContent === "On");
    });

    await step("register a security key (virtual authenticator)", async () => {
      // Right after a sign-in with a code: recent enough to add a factor.
      await visible("#keys-card");
      check((await text("#no-keys")) === "No security key yet.", "no key listed yet");
      check((await text("#st-keys")) === "0", "status: no security key");
      await page.fill("#key-label", "Virtual key");
      await page.click("#add-key");
      await page.waitForFunction(() => document.querySelectorAll("#key-list li").length === 1);
      check((await text("#key-list li .key-name")) === "Virtual key", "the key is listed by its name");
      check((await text("#key-list li .hint")).includes("last used never"), "not used yet");
      check((await text("#flash")).includes("Virtual key"), "registration confirmed: " + (await text("#flash")));
      check((await text("#st-methods")).includes("Security keys"), "status lists security keys");
      check((await text("#st-keys")) === "1", "status: one security key");
      check(!(await page.isVisible("#no-keys")), "the empty-list line is gone");
      const creds = await keyCredentials();
      check(creds.length === 1 && creds[0].rpId === "localhost", "the authenticator holds one credential for localhost");
      await page.locator("#keys-card").scrollIntoViewIfNeeded();
      await shot("security-key-list.png");
    });

    await step("sign out", signOut);

    await step("sign in with the security key", async () => {
      const signedBefore = (await keyCredentials())[0].signCount;
      await signIn();
      await visible("#view-code");
      await visible("#use-key");
      check((await text("#code-prompt")).startsWith("Use your security key"), "prompt offers the key: " + (await text("#code-prompt")));
      await shot("security-key-code-step.png");
      await page.click("#use-key");
      await visible("#view-profile");
      await page.waitForFunction(() => document.getElementById("flash").textContent.includes("security key"));
      check((await text("#flash")) === "You signed in with your security key.", "the page says how: " + (await text("#flash")));
      await page.waitForFunction(() => document.getElementById("st-enabled").textContent === "On");
      await page.waitForFunction(() => !document.querySelector("#key-list li .hint").textContent.includes("last used never"));
      check((await keyCredentials())[0].signCount > signedBefore, "the key signed");
      await shot("security-key-login.png");
    });

    await step("sign out", signOut);

    await step("sign in with a backup code", async () => {
      await signIn();
      await visible("#view-code");
      await page.click("#use-backup");
      check((await page.getAttribute("#code-input", "inputmode")) === "text", "backup field takes letters");
      check(await page.isVisible("#use-otp"), "a way back to the code");
      await page.fill("#code-input", backupCodes[0]);
      await shot("browser-backup-code.png");
      await page.click("#code-submit");
      await visible("#view-profile");
      await page.waitForFunction(() => document.getElementById("st-backup").textContent === "9");
      check((await text("#flash")).includes("9 left"), "backup-code sign-in says how many are left");
    });

    await step("enrol email codes", async () => {
      const before = mails(email).length;
      await page.click("#start-email");
      await visible("#email-setup");
      const code = await nextCode(email, before, "two-factor email");
      await page.fill("#email-code", code);
      await page.click("#email-confirm");
      await page.waitForFunction(() => document.getElementById("st-methods").textContent.includes("Email codes"));
      await shot("browser-profile.png");
    });

    await step("sign out", signOut);

    await step("sign in with the emailed code (countdown and resend)", async () => {
      const before = mails(email).length;
      await signIn();
      await visible("#view-code");
      await visible("#email-timer");
      check(/^[45]:\d\d$/.test(await text("#email-countdown")), "countdown from 5:00");
      check(await page.isDisabled("#resend"), "resend disabled during the cooldown");
      check((await text("#resend")).startsWith("Resend code ("), "resend shows its countdown");
      await shot("browser-code-step-email.png");
      // Move the page's clock past the 60 s cooldown: the button comes alive.
      await page.clock.fastForward(61_000);
      await page.waitForFunction(() => !document.getElementById("resend").disabled);
      check((await text("#resend")) === "Resend code", "resend enabled after the cooldown");
      const code = await nextCode(email, before, "sign-in code");
      await page.fill("#code-input", code);
      await page.click("#code-submit");
      await visible("#view-profile");
      await page.waitForFunction(() => document.getElementById("st-last").textContent !== "Never");
    });

    await step("remove the security key with the password and the key", async () => {
      await page.click("#key-list li button");
      await visible("#key-remove-form");
      check((await text("#key-remove-label")) === "Virtual key", "the form names the key");
      await page.fill("#key-remove-password", password);
      await page.click("#key-remove-with-key");
      await page.waitForFunction(() => document.querySelectorAll("#key-list li").length === 0);
      check((await text("#flash")).includes("is removed"), "removal confirmed: " + (await text("#flash")));
      check(await page.isVisible("#no-keys"), "the list is empty");
      check((await text("#st-keys")) === "0", "status: no security key");
      check(!(await page.isVisible("#key-remove-form")), "the remove form is closed");
    });

    await step("regenerate backup codes with a backup code", async () => {
      await visible("#manage");
      await page.fill("#regen-code", backupCodes[1]);
      await page.click("#regen-submit");
      await visible("#backup-panel");
      const fresh = await page.$$eval("#backup-codes li", (lis) => lis.map((li) => li.textContent.trim()));
      check(fresh.length === 10 && !fresh.includes(backupCodes[2]), "a new set of ten codes");
      await page.waitForFunction(() => document.getElementById("st-backup").textContent === "10");
      backupCodes = fresh;
      await page.click("#hide-codes");
    });

    await step("turn two-factor off with the password and an emailed step-up code", async () => {
      const before = mails(email).length;
      await page.click("#send-step-up");
      const code = await nextCode(email, before, "confirm a security change");
      await page.fill("#disable-password", password);
      await page.fill("#disable-code", code);
      await page.click("#disable-submit");
      await page.waitForFunction(() => document.getElementById("st-enabled").textContent === "Off");
      check(!(await page.isVisible("#manage")), "nothing left to manage");
    });

    check(pageErrors.length === 0, "no page errors: " + pageErrors.join("; "));
  } catch (e) {
    console.error("not ok - " + e.message);
    try { await shot("browser-failure.png"); } catch (_) { /* the page may be gone */ }
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
    console.log(`browser: ${results.length} passed, 1 failed`);
    process.exit(1);
  }
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
  console.log(`browser: ${results.length} passed, 0 failed`);
}

main().catch((e) => {
  console.error(e);
  console.log("browser: 0 passed, 1 failed");
  process.exit(1);
});
