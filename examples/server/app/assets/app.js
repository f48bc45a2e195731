// The demo page: plain JavaScript over the JSON API, no build step.
// Tokens live in sessionStorage for the demo; a production page would rather keep the refresh
// token in an HttpOnly cookie.
"use strict";

const $ = (id) => document.getElementById(id);
const VIEWS = ["view-login", "view-register", "view-verify", "view-code", "view-profile"];

const state = {
  challenge: null,      // the login challenge token (opaque)
  methods: [],          // methods the challenge accepts
  backupMode: false,    // whether the code field takes a backup code
  prompt: "",           // what the code step asks for
  email: false,         // whether an email code is on its way
  codeDeadline: 0,      // when the emailed code expires (ms since epoch)
  resendAt: 0,          // when a resend is allowed
  challengeDeadline: 0, // when the challenge expires
  timer: null,
  registering: null,    // username awaiting its email verification
  backupCodes: [],      // the codes on screen, shown once
  keyOptions: null,     // the challenge's options for navigator.credentials.get, if a key is on offer
  keys: [],             // the user's security keys
  removing: null,       // the key the remove form is about
  afterReauth: null,    // what to do once a recent check is done
};

// WebAuthn with the JSON helpers (Chromium 129+, Firefox 119+, Safari 18.4+), in a secure
// context: https, or http on localhost.
const webauthn = window.isSecureContext && typeof PublicKeyCredential !== "undefined" &&
  typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function";

// ---------- session ----------

function saveTokens(t) {
  sessionStorage.setItem("access_token", t.access_token);
  sessionStorage.setItem("refresh_token", t.refresh_token);
}
function clearTokens() {
  sessionStorage.removeItem("access_token");
  sessionStorage.removeItem("refresh_token");
}
const signedIn = () => !!sessionStorage.getItem("access_token");

// ---------- API ----------

async function call(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (_) { data = null; }
  }
  return { status: res.status, ok: res.ok, data: data || {}, retryAfter: Number(res.headers.get("Retry-After") || 0) };
}

// A call with the access token; on 401 it tries the refresh token once.
async function authed(method, path, body) {
  let r = await call(method, path, body, sessionStorage.getItem("access_token"));
  if (r.status === 401 && r.data.error === "unauthorized" && sessionStorage.getItem("refresh_token")) {
    const f = await call("POST", "/auth/refresh", { refresh_token: sessionStorage.getItem("refresh_token") });
    if (f.ok) {
      saveTokens(f.data);
      r = await call(method, path, body, f.data.access_token);
    } else {
      clearTokens();
      go("#/login");
      flash("Your session has ended. Please sign in again.");
    }
  }
  return r;
}

// ---------- views and messages ----------

function show(view) {
  for (const v of VIEWS) $(v).hidden = v !== view;
  const first = document.querySelector("#" + view + " input");
  if (first && view !== "view-profile") first.focus();
}

function flash(message, kind) {
  const f = $("flash");
  f.textContent = message;
  f.className = "flash" + (kind === "info" ? " info" : "");
  f.setAttribute("role", kind === "info" ? "status" : "alert");
  f.hidden = !message;
}
const clearFlash = () => flash("");

function errorText(r) {
  return r.data.message || "Something went wrong (" + r.status + "). Please try again.";
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function route() {
  stopTimer();
  const h = location.hash || "#/login";
  if (h === "#/register") { show("view-register"); return; }
  if (h === "#/profile") {
    if (!signedIn()) { go("#/login"); return; }
    show("view-profile");
    loadProfile();
    return;
  }
  $("whoami").hidden = true;
  show("view-login");
}

function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function busy(button, on) { button.disabled = on; }

// ---------- register ----------

$("register-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  const body = {
    username: $("register-username").value.trim(),
    email: $("register-email").value.trim(),
    password: $("register-password").value,
  };
  busy($("register-submit"), true);
  const r = await call("POST", "/auth/register", body);
  busy($("register-submit"), false);
  if (!r.ok) { flash(errorText(r)); return; }
  state.registering = body.username;
  $("verify-email").textContent = body.email;
  $("verify-code").value = "";
  show("view-verify");
});

$("verify-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("verify-submit"), true);
  const r = await call("POST", "/auth/register/verify", { username: state.registering, code: $("verify-code").value });
  busy($("verify-submit"), false);
  if (!r.ok) { flash(errorText(r)); return; }
  saveTokens(r.data);
  $("register-password").value = "";
  flash("Your address is verified and your account is ready.", "info");
  go("#/profile");
});

// ---------- login ----------

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("login-submit"), true);
  const r = await call("POST", "/auth/login", {
    username: $("login-username").value.trim(),
    password: $("login-password").value,
  });
  busy($("login-submit"), false);
  if (r.status === 200) {
    $("login-password").value = "";
    saveTokens(r.data);
    go("#/profile");
  } else if (r.status === 202 && r.data.two_fa_required) {
    $("login-password").value = "";
    startCodeStep(r.data);
  } else {
    flash(errorText(r));
  }
});

// ---------- the code step ----------

function startCodeStep(ch) {
  const now = Date.now();
  state.challenge = ch.challenge;
  state.methods = ch.methods || [];
  state.challengeDeadline = now + (ch.expires_in || 300) * 1000;
  const email = state.methods.includes("email");
  const totp = state.methods.includes("totp");
  const where = ch.email_hint ? " to " + ch.email_hint : "";
  state.keyOptions = ch.security_key || null;
  const key = !!state.keyOptions && webauthn;
  state.prompt =
    key ? "Use your security key, or enter " + (
      totp && email ? "the code from your authenticator app or the code we emailed" + where
      : totp ? "the 6-digit code from your authenticator app"
      : email ? "the 6-digit code we emailed" + where
      : "a backup code") + "."
    : totp && email ? "Enter the code from your authenticator app, or the code we emailed" + where + "."
    : totp ? "Enter the 6-digit code from your authenticator app."
    : "We emailed a 6-digit code" + where + ". Enter it below.";
  $("use-key").hidden = !key;
  state.email = email;
  $("resend").hidden = !email;
  if (email && ch.email_sent === false) {
    // The send cap was reached: the app (or a backup code) still works; resend may later.
    state.prompt = "We could not send an email code just now. Use your authenticator app or a backup code, or resend later.";
    state.codeDeadline = now;
    state.resendAt = now;
  } else if (email) {
    state.codeDeadline = Math.min(now + (ch.code_expires_in || 300) * 1000, state.challengeDeadline);
    state.resendAt = now + (ch.resend_after || 60) * 1000;
  }
  $("use-backup").hidden = !state.methods.includes("backup_code");
  setBackupMode(false);
  show("view-code");
  tick();
  state.timer = setInterval(tick, 1000);
}

function stopTimer() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function tick() {
  const now = Date.now();
  if (now >= state.challengeDeadline) {
    stopTimer();
    state.challenge = null;
    go("#/login");
    flash("This sign-in attempt has expired. Please sign in again.");
    return;
  }
  if (state.email) {
    const left = state.codeDeadline - now;
    $("email-countdown").textContent = left > 0 ? mmss(left) : "0:00 (expired: send a new code)";
    const wait = state.resendAt - now;
    $("resend").disabled = wait > 0;
    $("resend").textContent = wait > 0 ? "Resend code (" + mmss(wait) + ")" : "Resend code";
  }
}

function setBackupMode(on) {
  state.backupMode = on;
  const input = $("code-input");
  input.value = "";
  $("code-prompt").textContent = on ? "Enter one of your backup codes. Each works only once." : state.prompt;
  $("email-timer").hidden = on || !state.email;
  if (on) {
    $("code-label").textContent = "Backup code";
    input.setAttribute("inputmode", "text");
    input.setAttribute("autocomplete", "off");
    input.setAttribute("autocapitalize", "characters");
    input.removeAttribute("pattern");
    input.setAttribute("maxlength", "20");
    input.placeholder = "XXXX-XXXX-XXXX";
  } else {
    $("code-label").textContent = "Code";
    input.setAttribute("inputmode", "numeric");
    input.setAttribute("autocomplete", "one-time-code");
    input.removeAttribute("autocapitalize");
    input.setAttribute("pattern", "[0-9 ]*");
    input.setAttribute("maxlength", "12");
    input.placeholder = "123456";
  }
  $("use-backup").hidden = on || !state.methods.includes("backup_code");
  $("use-otp").hidden = !on;
  input.focus();
}

$("use-backup").addEventListener("click", () => setBackupMode(true));
$("use-otp").addEventListener("click", () => setBackupMode(false));
$("code-cancel").addEventListener("click", () => { state.challenge = null; stopTimer(); });

$("resend").addEventListener("click", async () => {
  clearFlash();
  $("resend").disabled = true;
  const r = await call("POST", "/auth/login/resend", { challenge: state.challenge });
  const now = Date.now();
  if (r.ok) {
    state.resendAt = now + (r.data.resend_after || 60) * 1000;
    // A code never outlives its challenge.
    state.codeDeadline = Math.min(now + (r.data.code_expires_in || 300) * 1000, state.challengeDeadline);
    flash("We sent a new code. The previous one no longer works.", "info");
  } else {
    if (r.retryAfter) state.resendAt = now + r.retryAfter * 1000;
    flash(errorText(r));
  }
  tick();
});

$("code-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("code-submit"), true);
  const r = await call("POST", "/auth/login/two-factor", { challenge: state.challenge, code: $("code-input").value });
  busy($("code-submit"), false);
  codeStepAnswered(r);
});

// The browser asks the key to sign the challenge's options; the signature answers the challenge.
$("use-key").addEventListener("click", async () => {
  clearFlash();
  busy($("use-key"), true);
  let assertion;
  try {
    assertion = await keyAssertion(state.keyOptions);
  } catch (e) {
    busy($("use-key"), false);
    flash(keyError(e));
    return;
  }
  const r = await call("POST", "/auth/login/two-factor", { challenge: state.challenge, assertion });
  busy($("use-key"), false);
  codeStepAnswered(r);
});

function codeStepAnswered(r) {
  if (r.ok) {
    stopTimer();
    state.challenge = null;
    state.keyOptions = null;
    saveTokens(r.data);
    if (r.data.method === "backup_code") {
      flash("You signed in with a backup code. " + r.data.backup_codes_remaining + " left.", "info");
    } else if (r.data.method === "security_key") {
      flash("You signed in with your security key.", "info");
    }
    go("#/profile");
    return;
  }
  $("code-input").value = "";
  $("code-input").focus();
  if (r.data.error === "too_many_attempts") {
    stopTimer();
    go("#/login");
  }
  flash(errorText(r));
}

// ---------- profile ----------

async function loadProfile() {
  const [me, st] = await Promise.all([authed("GET", "/auth/me"), authed("GET", "/auth/2fa/status")]);
  if (!me.ok || !st.ok) { if (signedIn()) flash(errorText(me.ok ? st : me)); return; }
  $("whoami").textContent = me.data.username;
  $("whoami").hidden = false;
  $("st-username").textContent = me.data.username;
  $("st-email").textContent = me.data.email;
  const s = st.data;
  $("st-enabled").textContent = s.enabled ? "On" : "Off";
  $("st-enabled").className = s.enabled ? "on" : "off";
  const names = { totp: "Authenticator app", email: "Email codes", backup_code: "Backup codes", security_key: "Security keys" };
  $("st-methods").textContent = s.methods.length ? s.methods.map((m) => names[m] || m).join(", ") : "None";
  $("st-backup").textContent = String(s.backup_codes_remaining);
  $("st-keys").textContent = String(s.security_keys || 0);
  $("st-last").textContent = s.last_verified_at ? new Date(s.last_verified_at * 1000).toLocaleString() : "Never";
  $("start-totp").hidden = s.methods.includes("totp");
  $("start-email").hidden = s.methods.includes("email");
  $("manage").hidden = !s.enabled;
  $("step-up-line").hidden = !s.methods.includes("email");
  // A key is added beside a code factor, so that a lost key is no lock-out.
  $("keys-card").hidden = !s.enabled;
  if (s.enabled) await loadKeys();
  else state.keys = [];
}

$("logout").addEventListener("click", async () => {
  clearFlash();
  // Ends the session on the server: its access token stops working at once.
  await call("POST", "/auth/logout", { refresh_token: sessionStorage.getItem("refresh_token") || "" },
    sessionStorage.getItem("access_token"));
  clearTokens();
  hideSecrets();
  go("#/login");
  flash("You are signed out.", "info");
});

function hideSecrets() {
  $("totp-setup").hidden = true;
  $("email-setup").hidden = true;
  $("reauth").hidden = true;
  state.afterReauth = null;
  closeRemoveKey();
  $("totp-secret").textContent = "";
  $("totp-qr").removeAttribute("src");
  showBackupCodes([]);
}

function showBackupCodes(codes) {
  state.backupCodes = codes;
  const list = $("backup-codes");
  list.replaceChildren(...codes.map((c) => { const li = document.createElement("li"); li.textContent = c; return li; }));
  $("backup-panel").hidden = codes.length === 0;
}

$("start-totp").addEventListener("click", async () => {
  clearFlash();
  const r = await authed("POST", "/auth/2fa/totp/setup");
  if (!r.ok) { flash(errorText(r)); return; }
  // The SVG scales crisply; the PNG data URI is there for clients that want a bitmap.
  $("totp-qr").src = "data:image/svg+xml;base64," + btoa(r.data.qr_svg);
  $("totp-secret").textContent = r.data.secret.replace(/(.{4})(?=.)/g, "$1 ");
  $("totp-uri").href = r.data.otpauth_uri;
  $("totp-code").value = "";
  $("totp-setup").hidden = false;
  showBackupCodes(r.data.backup_codes);
  $("totp-code").focus();
});

$("copy-secret").addEventListener("click", () => copy($("totp-secret").textContent.replace(/ /g, "")));

$("totp-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("totp-enable"), true);
  const r = await authed("POST", "/auth/2fa/totp/enable", { code: $("totp-code").value });
  busy($("totp-enable"), false);
  if (!r.ok) { flash(errorText(r)); return; }
  $("totp-setup").hidden = true;
  $("totp-secret").textContent = "";
  flash("Two-factor authentication is on. Keep your backup codes somewhere safe.", "info");
  loadProfile();
});

$("start-email").addEventListener("click", startEmail);

async function startEmail() {
  clearFlash();
  const r = await authed("POST", "/auth/2fa/email/setup", {});
  if (r.data.error === "reauth_required") { askReauth(startEmail); return; }
  if (!r.ok) { flash(errorText(r)); return; }
  $("email-setup-address").textContent = r.data.email;
  $("email-code").value = "";
  $("email-setup").hidden = false;
  $("email-code").focus();
}

$("email-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("email-confirm"), true);
  const r = await authed("POST", "/auth/2fa/email/confirm", { code: $("email-code").value });
  busy($("email-confirm"), false);
  if (!r.ok) { flash(errorText(r)); return; }
  $("email-setup").hidden = true;
  flash("Email codes are on.", "info");
  loadProfile();
});

// A step-up code confirms the change it was mailed for: one link per change.
for (const [id, query] of [["send-step-up", ""], ["send-step-up-regen", "?action=regenerate"]]) {
  $(id).addEventListener("click", async () => {
    clearFlash();
    const r = await authed("POST", "/auth/2fa/step-up" + query);
    if (!r.ok) { flash(errorText(r)); return; }
    flash("We emailed you a code. Enter it below.", "info");
  });
}

$("regen-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("regen-submit"), true);
  const r = await authed("POST", "/auth/2fa/backup-codes/regenerate", { code: $("regen-code").value });
  busy($("regen-submit"), false);
  $("regen-code").value = "";
  if (!r.ok) { flash(errorText(r)); return; }
  showBackupCodes(r.data.backup_codes);
  flash("New backup codes: the old ones no longer work.", "info");
  loadProfile();
});

$("regen-with-key").addEventListener("click", async () => {
  clearFlash();
  const assertion = await keyStepUp();
  if (!assertion) return;
  const r = await authed("POST", "/auth/2fa/backup-codes/regenerate", { code: assertion });
  if (!r.ok) { flash(errorText(r)); return; }
  showBackupCodes(r.data.backup_codes);
  flash("New backup codes: the old ones no longer work.", "info");
  loadProfile();
});

$("disable-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("disable-submit"), true);
  await disableWith($("disable-code").value);
  busy($("disable-submit"), false);
});

$("disable-with-key").addEventListener("click", async () => {
  clearFlash();
  if (!$("disable-password").value) { flash("Enter your password first."); $("disable-password").focus(); return; }
  const assertion = await keyStepUp();
  if (assertion) await disableWith(assertion);
});

async function disableWith(code) {
  const r = await authed("POST", "/auth/2fa/disable", { password: $("disable-password").value, code });
  $("disable-password").value = "";
  $("disable-code").value = "";
  if (!r.ok) { flash(errorText(r)); return; }
  hideSecrets();
  flash("Two-factor authentication is off.", "info");
  loadProfile();
}

// ---------- a recent check before a factor is added ----------

function askReauth(then) {
  state.afterReauth = then;
  $("reauth-code").value = "";
  $("reauth-with-key").hidden = !(webauthn && state.keys.length);
  $("reauth").hidden = false;
  flash("Please confirm with a current code first.");
  $("reauth-code").focus();
}

async function reauthWith(code) {
  const r = await authed("POST", "/auth/2fa/reauthenticate", { code });
  $("reauth-code").value = "";
  if (!r.ok) { flash(errorText(r)); return; }
  $("reauth").hidden = true;
  clearFlash();
  const then = state.afterReauth;
  state.afterReauth = null;
  if (then) await then();
}

$("reauth-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("reauth-submit"), true);
  await reauthWith($("reauth-code").value);
  busy($("reauth-submit"), false);
});
$("reauth-with-key").addEventListener("click", async () => {
  clearFlash();
  const assertion = await keyStepUp();
  if (assertion) await reauthWith(assertion);
});
$("reauth-cancel").addEventListener("click", () => {
  $("reauth").hidden = true;
  state.afterReauth = null;
  clearFlash();
});

// ---------- security keys and passkeys (WebAuthn) ----------

// navigator.credentials.get with options from the server ({"publicKey": …}, base64url fields):
// the assertion as JSON, for the server.
async function keyAssertion(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
  const credential = await navigator.credentials.get({ publicKey });
  return credential.toJSON();
}

// A step-up with a security key: the server's options, signed. null (with a message) on failure.
async function keyStepUp() {
  const r = await authed("POST", "/auth/2fa/security-keys/step-up/start");
  if (!r.ok) { flash(errorText(r)); return null; }
  try {
    return await keyAssertion(r.data);
  } catch (e) {
    flash(keyError(e));
    return null;
  }
}

function keyError(e) {
  const name = e && e.name;
  if (name === "NotAllowedError") return "The security key did not answer: the request was cancelled or timed out.";
  if (name === "InvalidStateError") return "This security key is already registered.";
  if (name === "SecurityError") return "Security keys do not work at this address. Open the page at localhost or over https.";
  return "The security key could not be used" + (e && e.message ? ": " + e.message : ".");
}

function when(secs) {
  return secs ? new Date(secs * 1000).toLocaleString() : "never";
}

async function loadKeys() {
  const r = await authed("GET", "/auth/2fa/security-keys");
  if (!r.ok) { flash(errorText(r)); return; }
  state.keys = r.data.security_keys || [];
  $("key-list").replaceChildren(...state.keys.map((k) => {
    const li = document.createElement("li");
    const about = document.createElement("div");
    const name = document.createElement("span");
    name.className = "key-name";
    name.textContent = k.label;
    const meta = document.createElement("span");
    meta.className = "hint";
    meta.textContent = "Added " + when(k.created_at) + " · last used " + when(k.last_used_at);
    about.append(name, meta);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "small secondary";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove " + k.label);
    remove.addEventListener("click", () => openRemoveKey(k));
    li.append(about, remove);
    return li;
  }));
  $("no-keys").hidden = state.keys.length > 0;
  $("no-webauthn").hidden = webauthn;
  $("key-form").hidden = !webauthn;
  const withKey = !webauthn || state.keys.length === 0;
  $("regen-with-key").hidden = withKey;
  $("disable-with-key").hidden = withKey;
  if (state.removing && !state.keys.some((k) => k.id === state.removing.id)) closeRemoveKey();
}

$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  busy($("add-key"), true);
  await addKey();
  busy($("add-key"), false);
});

async function addKey() {
  clearFlash();
  const label = $("key-label").value.trim() || "Security key";
  const r = await authed("POST", "/auth/2fa/security-keys/register/start", {});
  if (r.data.error === "reauth_required") { askReauth(addKey); return; }
  if (!r.ok) { flash(errorText(r)); return; }
  let credential;
  try {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(r.data.publicKey);
    credential = await navigator.credentials.create({ publicKey });
  } catch (e) {
    flash(keyError(e));
    return;
  }
  const f = await authed("POST", "/auth/2fa/security-keys/register/finish", { response: credential.toJSON(), label });
  if (!f.ok) { flash(errorText(f)); return; }
  $("key-label").value = "";
  flash("\u201c" + f.data.label + "\u201d is registered: you can sign in with it now.", "info");
  await loadProfile();
}

function openRemoveKey(key) {
  state.removing = key;
  $("key-remove-label").textContent = key.label;
  $("key-remove-password").value = "";
  $("key-remove-code").value = "";
  $("key-remove-form").hidden = false;
  $("key-remove-password").focus();
}

function closeRemoveKey() {
  state.removing = null;
  $("key-remove-form").hidden = true;
  $("key-remove-password").value = "";
  $("key-remove-code").value = "";
}

async function removeKeyWith(code) {
  const key = state.removing;
  if (!key) return;
  const r = await authed("DELETE", "/auth/2fa/security-keys/" + encodeURIComponent(key.id),
    { password: $("key-remove-password").value, code });
  if (!r.ok) { flash(errorText(r)); return; }
  closeRemoveKey();
  flash("\u201c" + key.label + "\u201d is removed.", "info");
  await loadProfile();
}

$("key-remove-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFlash();
  busy($("key-remove-submit"), true);
  await removeKeyWith($("key-remove-code").value);
  busy($("key-remove-submit"), false);
});
$("key-remove-with-key").addEventListener("click", async () => {
  clearFlash();
  if (!$("key-remove-password").value) { flash("Enter your password first."); $("key-remove-password").focus(); return; }
  const assertion = await keyStepUp();
  if (assertion) await removeKeyWith(assertion);
});
$("key-remove-cancel").addEventListener("click", closeRemoveKey);

// ---------- backup codes: copy and download ----------

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    flash("Copied.", "info");
  } catch (_) {
    flash("Copying is not allowed here: select the text and copy it by hand.");
  }
}

$("copy-codes").addEventListener("click", () => copy(state.backupCodes.join("\n")));
$("download-codes").addEventListener("click", () => {
  const text = "twofactor demo backup codes (each works once)\n\n" + state.backupCodes.join("\n") + "\n";
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = "backup-codes.txt";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
});
$("hide-codes").addEventListener("click", () => showBackupCodes([]));

window.addEventListener("hashchange", route);
route();
