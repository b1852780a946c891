// The Gatehouse web UI: sign-in, the account pages and the admin console.
// Built on /gatehouse.js and the public API only. Every element is made
// with DOM calls and every value from the server goes in as text: the page
// runs under Trusted Types, so an HTML string could not reach the DOM even
// by mistake.
import { createClient } from "/gatehouse.js";

const gh = createClient({ baseUrl: location.origin });
window.gatehouseUI = { gh }; // for the browser tests and the curious

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
const registrationOpen = meta("gatehouse-registration") === "open";
const returnTo = meta("gatehouse-return-to"); // validated by the server

// --- DOM ---

// h builds an element: h("p", { class: "x" }, "text", child). Strings become
// text nodes; on* properties are listeners; null and false are skipped.
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const $main = () => document.getElementById("main");
let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

function field(label, input, hint) {
  input.id ||= nextId("f");
  const kids = [h("label", { for: input.id }, label), input];
  if (hint) {
    const hid = nextId("hint");
    input.setAttribute("aria-describedby", hid);
    kids.push(h("div", { class: "hint", id: hid }, hint));
  }
  return h("div", { class: "field" }, kids);
}

function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

// status shows a short message in the live region at the top.
function status(kind, text) {
  const s = document.getElementById("status");
  s.replaceChildren(text ? notice(kind, text) : "");
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function time(iso) {
  return h("time", { datetime: iso }, fmtTime(iso));
}

// busy disables a form's controls while fn runs.
async function busy(form, fn) {
  const controls = [...form.querySelectorAll("button, input, select")];
  controls.forEach((c) => (c.disabled = true));
  try {
    return await fn();
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}

// --- API ---

class APIError extends Error {
  constructor(code, message, status) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

async function api(method, path, body) {
  const init = { method, headers: {}, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await gh.fetch(path, init);
  } catch (e) {
    throw new APIError(e.code || "network_error", e.message);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {}
  if (!res.ok) throw new APIError(data?.error || `http_${res.status}`, data?.error_description, res.status);
  return data;
}

const MESSAGES = {
  invalid_credentials: "Wrong username or password.",
  account_disabled: "This account is disabled.",
  rate_limited: "Too many attempts. Wait a moment and try again.",
  username_taken: "That username is taken.",
  registration_disabled: "Registration is closed on this server.",
  network_error: "The server could not be reached. Check your connection and try again.",
  unavailable: "The service is temporarily unavailable. Try again shortly.",
  last_admin: "This would leave no enabled admin. Make another admin first.",
  not_found: "It no longer exists.",
  forbidden: "You are not allowed to do that.",
  cancelled: "Cancelled.",
};

// explain turns an error into one sentence for people. The server's
// descriptions are fixed sentences (never echoes of input), so they may be
// shown where no better message exists.
function explain(e) {
  return MESSAGES[e?.code] || e?.message || "Something went wrong.";
}

// --- dialogs ---

function dialog(title, body, buttons) {
  const d = document.getElementById("dialog");
  return new Promise((resolve) => {
    const close = (v) => {
      resolve(v);
      d.close();
    };
    // The close event of the previous dialog arrives as a task, possibly
    // after this one opened (a confirmation followed at once by the
    // step-up prompt): a close event while the dialog is open is stale.
    d.onclose = () => d.open || resolve(undefined);
    d.replaceChildren(h("h2", { id: "dialog-title" }, title), body, h("div", { class: "actions" }, buttons(close)));
    d.showModal();
    (d.querySelector("input") || d.querySelector("button.primary") || d.querySelector("button"))?.focus();
  });
}

// confirm asks before a change; typed, when given, must be typed exactly.
function confirmAction(title, text, label, { danger = true, typed = "" } = {}) {
  const input = typed ? h("input", { autocomplete: "off", spellcheck: "false" }) : null;
  const body = h("div", {}, h("p", {}, text), typed ? field(`Type “${typed}” to confirm`, input) : null);
  return dialog(title, body, (close) => {
    const ok = h("button", { class: danger ? "danger primary" : "primary", type: "button", onclick: () => close(true) }, label);
    if (typed) {
      ok.disabled = true;
      input.addEventListener("input", () => (ok.disabled = input.value !== typed));
      input.addEventListener("keydown", (e) => e.key === "Enter" && !ok.disabled && close(true));
    }
    return [ok, h("button", { class: "secondary", type: "button", onclick: () => close(false) }, "Cancel")];
  }).then((v) => v === true);
}

// askPassword is the step-up prompt: it re-authenticates this session and
// resolves true, or false when the person cancels.
function askPassword() {
  const pw = h("input", { type: "password", autocomplete: "current-password", required: true });
  const err = h("div", { "aria-live": "assertive" });
  const form = h("form", {},
    h("p", {}, "For your security, enter your password again to continue."),
    field("Password", pw), err);
  return dialog("Confirm it’s you", form, (close) => {
    const submit = async (e) => {
      e?.preventDefault();
      err.replaceChildren();
      try {
        await busy(form, () => gh.reauthenticate(pw.value));
        close(true);
      } catch (x) {
        err.replaceChildren(notice("error", x.code === "invalid_credentials" ? "Wrong password." : explain(x)));
        pw.focus();
      }
    };
    form.addEventListener("submit", submit);
    return [
      h("button", { class: "primary", type: "button", onclick: submit }, "Confirm"),
      h("button", { class: "secondary", type: "button", onclick: () => close(false) }, "Cancel"),
    ];
  }).then((v) => v === true);
}

// stepUp runs fn; when the server wants a recent sign-in it asks for the
// password, then runs fn again.
async function stepUp(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.code !== "insufficient_user_authentication") throw e;
    if (!(await askPassword())) throw new APIError("cancelled");
    return fn();
  }
}

// act confirms, runs with step-up, and reports the outcome.
async function act({ title, text, label, typed, danger, run, done }) {
  if (!(await confirmAction(title, text, label, { typed, danger }))) return false;
  try {
    await stepUp(run);
    if (done) status("ok", done);
    return true;
  } catch (e) {
    if (e.code !== "cancelled") status("error", explain(e));
    return false;
  }
}

// --- words ---

const EVENT_NAMES = {
  login_succeeded: "Signed in",
  login_failed: "Failed sign-in attempt",
  refresh_token_reused: "Session ended: a sign-in token was used twice",
  ip_changed: "Session used from a new IP address",
  session_revoked: "Session ended",
  sessions_revoked: "Sessions ended",
  password_changed: "Password changed",
  account_disabled: "Account disabled",
  account_enabled: "Account enabled",
  role_changed: "Role changed",
  global_revoke: "Every session ended by an administrator",
  session_limit_evicted: "Oldest session ended (too many sessions)",
  rate_limited: "Sign-in attempts slowed down",
  csrf_failed: "Cross-site request refused",
  reauthenticated: "Password confirmed",
  permissions_changed: "Permissions changed",
  password_reset: "Password reset by an administrator",
  account_deleted: "Account deleted",
};

const SIGNED_OUT = {
  logout: "You signed out.",
  revoked: "Your session was ended: signed out from another device, revoked by an administrator, or the account was disabled.",
  expired: "Your session expired. Sign in again.",
  reused: "Your session was ended because a sign-in token was used twice, which can mean it was stolen. Sign in again and check your devices.",
  deleted: "Your account was deleted.",
  password: "Your password was changed. Sign in again.",
};

function deviceName(x) {
  return x.device || "Unknown device";
}

function noveltyBadges(detail) {
  const out = [];
  for (const part of String(detail || "").split(", ")) {
    if (part === "new device") out.push(h("span", { class: "badge warn" }, "New device"));
    else if (part === "new network") out.push(h("span", { class: "badge warn" }, "New network"));
    else if (part === "first sign-in") out.push(h("span", { class: "badge" }, "First sign-in"));
  }
  return out;
}

function eventItem(e, { showUser } = {}) {
  const badges = e.type === "login_succeeded" ? noveltyBadges(e.detail) : [];
  const bad = ["refresh_token_reused", "login_failed", "csrf_failed", "rate_limited"].includes(e.type);
  return h("li", { class: "item", "data-event": e.id },
    h("div", { class: "main" },
      h("div", { class: "title" }, EVENT_NAMES[e.type] || e.type, bad ? h("span", { class: "badge bad" }, "Attention") : null, badges),
      h("div", { class: "meta" }, time(e.at), " · ", h("bdi", {}, deviceName(e)), e.ip ? [" · ", h("bdi", {}, e.ip)] : null),
      showUser && e.user_id ? h("div", { class: "meta" }, "User ", userLink(e.user_id)) : null,
      e.detail && !badges.length ? h("div", { class: "meta" }, h("bdi", {}, e.detail)) : null,
      e.user_agent ? h("span", { class: "meta ua", title: e.user_agent }, e.user_agent) : null));
}

// usernames caches id → name for the admin's event list: events carry
// user ids, people read names. A deleted account keeps its id.
const usernames = new Map();

function userLink(id) {
  const name = h("bdi", {}, id);
  const a = h("a", { href: `/admin/users/${encodeURIComponent(id)}`, "data-link": true }, name);
  if (!usernames.has(id)) {
    usernames.set(id, api("GET", `/v1/admin/users/${encodeURIComponent(id)}`).then((r) => r.user.username, (e) => (e.code === "not_found" ? null : undefined)));
  }
  usernames.get(id).then((n) => {
    if (n) name.textContent = n;
    else if (n === null) a.replaceWith(h("span", {}, "deleted account ", h("bdi", {}, id)));
    else usernames.delete(id); // try again next time
  });
  return a;
}

function sessionItem(s, { onEnd, endLabel = "End session" } = {}) {
  return h("li", { class: "item", "data-session": s.id },
    h("div", { class: "main" },
      h("div", { class: "title" }, h("bdi", {}, deviceName(s)), s.current ? h("span", { class: "badge this" }, "This device") : null),
      h("div", { class: "meta" }, "IP ", h("bdi", {}, s.ip || "unknown"), " · signed in ", time(s.created_at), " · last used ", time(s.last_used_at)),
      s.user_agent ? h("span", { class: "meta ua", title: s.user_agent }, s.user_agent) : null),
    onEnd && !s.current ? h("button", { class: "secondary", type: "button", "aria-label": `${endLabel}: ${deviceName(s)}, IP ${s.ip || "unknown"}`, onclick: () => onEnd(s) }, endLabel) : null);
}

// --- navigation ---

let current = null; // { path, cleanup }

function go(path, replace) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest?.("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const u = new URL(a.href);
  if (u.origin !== location.origin) return;
  e.preventDefault();
  go(u.pathname + u.search);
});
addEventListener("popstate", () => render());

function page(title, ...kids) {
  document.title = `${title} · Gatehouse`;
  const main = $main();
  main.replaceChildren(h("h1", {}, title), ...kids.filter(Boolean));
}

function tabs(items, active) {
  return h("nav", { "aria-label": "Sections" },
    h("ul", { class: "tabs" }, items.map(([href, label]) =>
      h("li", {}, h("a", { href, "data-link": true, "aria-current": href === active ? "page" : null }, label)))));
}

function renderNav() {
  const nav = document.getElementById("nav");
  if (!gh.user) {
    nav.replaceChildren(...[
      h("a", { href: "/login", "data-link": true }, "Sign in"),
      registrationOpen ? h("a", { href: "/register", "data-link": true }, "Create account") : null,
    ].filter(Boolean));
    return;
  }
  nav.replaceChildren(...[
    h("span", { class: "who" }, "Signed in as ", h("bdi", {}, gh.user.username)),
    h("a", { href: "/account", "data-link": true }, "Account"),
    gh.user.role === "admin" ? h("a", { href: "/admin", "data-link": true }, "Admin") : null,
    h("button", { class: "link", type: "button", onclick: signOut }, "Sign out"),
  ].filter(Boolean));
}

async function signOut() {
  try {
    await gh.logout();
  } catch {}
}

// --- the live connection ---

let socket = null;
const socketListeners = new Set();

function ensureSocket() {
  if (socket || !gh.user) return;
  socket = gh.socket("/v1/ws");
  socket.addEventListener("message", (m) => {
    let msg;
    try {
      msg = JSON.parse(m.data);
    } catch {
      return;
    }
    for (const fn of socketListeners) fn(msg);
  });
  socket.addEventListener("close", () => {
    socket = null;
    // Dropped for a reason other than sign-out (the client reconnects
    // after network drops itself): try again shortly while signed in.
    if (gh.user) setTimeout(ensureSocket, 2000);
  });
}

gh.on("signedout", (reason) => {
  socket?.close();
  socket = null;
  renderNav();
  const why = pendingReason || reason;
  pendingReason = null;
  go(`/login?reason=${encodeURIComponent(why)}`, true);
});
gh.on("signedin", () => {
  renderNav();
  ensureSocket();
});
let pendingReason = null;

// --- pages ---

async function render() {
  current?.cleanup?.();
  current = { path: location.pathname };
  status("", "");
  renderNav();
  const p = location.pathname;
  const routes = [
    [/^\/$/, home],
    [/^\/login$/, loginPage],
    [/^\/register$/, registerPage],
    [/^\/account(?:\/(devices|activity|password|delete))?$/, accountPage, true],
    [/^\/admin(?:\/(users|events|emergency))?$/, adminPage, true, true],
    [/^\/admin\/users\/([^/]+)$/, adminUserPage, true, true],
  ];
  for (const [re, fn, needsUser, needsAdmin] of routes) {
    const m = re.exec(p);
    if (!m) continue;
    if (needsUser && !gh.user) return go(`/login?return_to=${encodeURIComponent(p + location.search)}`, true);
    if (needsAdmin && gh.user.role !== "admin") {
      page("Not allowed", notice("error", "The admin console is for administrators."), h("a", { href: "/account", "data-link": true }, "Go to your account"));
      return;
    }
    try {
      await fn(m[1] ? decodeURIComponent(m[1]) : undefined);
    } catch (e) {
      if (gh.user) status("error", explain(e));
    }
    return;
  }
  page("Not found", h("p", {}, "There is no such page."), h("a", { href: "/", "data-link": true }, "Go home"));
}

function home() {
  go(gh.user ? "/account" : "/login", true);
}

// withReturn carries this page's return_to to another sign-in page.
function withReturn(path) {
  const rt = new URLSearchParams(location.search).get("return_to");
  return rt ? `${path}?return_to=${encodeURIComponent(rt)}` : path;
}

function leave() {
  // After sign-in: where the server said return_to may go, else the account.
  if (returnTo && returnTo.startsWith("/") && !returnTo.startsWith("//")) return go(returnTo, true);
  if (returnTo) return location.assign(returnTo);
  go("/account", true);
}

function loginPage() {
  if (gh.user) return leave();
  const reason = new URLSearchParams(location.search).get("reason");
  const user = h("input", { autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const pw = h("input", { type: "password", autocomplete: "current-password", required: true });
  const err = h("div", {});
  const form = h("form", { class: "card narrow" },
    SIGNED_OUT[reason] ? notice(reason === "reused" ? "warn" : "ok", SIGNED_OUT[reason]) : null,
    err, field("Username", user), field("Password", pw),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
    registrationOpen ? h("p", { class: "muted" }, "No account? ", h("a", { href: withReturn("/register"), "data-link": true }, "Create one")) : null);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.replaceChildren();
    try {
      await busy(form, () => gh.login(user.value, pw.value));
      leave();
    } catch (x) {
      err.replaceChildren(notice("error", explain(x)));
      pw.value = "";
      pw.focus();
    }
  });
  page("Sign in", form);
  user.focus();
}

function registerPage() {
  if (gh.user) return leave();
  if (!registrationOpen) {
    page("Create account", notice("warn", MESSAGES.registration_disabled), h("a", { href: "/login", "data-link": true }, "Sign in"));
    return;
  }
  const user = h("input", { autocomplete: "username", required: true, maxlength: 64, autocapitalize: "none", spellcheck: "false" });
  const pw = h("input", { type: "password", autocomplete: "new-password", required: true });
  const pw2 = h("input", { type: "password", autocomplete: "new-password", required: true });
  const err = h("div", {});
  const form = h("form", { class: "card narrow" }, err,
    field("Username", user, "Letters, digits and symbols, no spaces; up to 64 characters."),
    field("Password", pw, "Long is strong: a passphrase of a few words works well."),
    field("Repeat the password", pw2),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create account")),
    h("p", { class: "muted" }, "Have an account? ", h("a", { href: withReturn("/login"), "data-link": true }, "Sign in")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.replaceChildren();
    if (pw.value !== pw2.value) {
      err.replaceChildren(notice("error", "The two passwords differ."));
      return pw2.focus();
    }
    try {
      await busy(form, async () => {
        await gh.register(user.value, pw.value);
        await gh.login(user.value, pw.value);
      });
      leave();
    } catch (x) {
      err.replaceChildren(notice("error", explain(x)));
    }
  });
  page("Create account", form);
  user.focus();
}

// --- account ---

const ACCOUNT_TABS = [["/account", "Devices"], ["/account/activity", "Security activity"], ["/account/password", "Password"], ["/account/delete", "Delete account"]];

async function accountPage(sub) {
  const active = sub ? `/account/${sub}` : "/account";
  const section = h("div", {});
  page("Your account", tabs(ACCOUNT_TABS, active), section);
  ensureSocket();
  if (!sub || sub === "devices") return devices(section);
  if (sub === "activity") return activity(section);
  if (sub === "password") return passwordForm(section);
  if (sub === "delete") return deleteForm(section);
}

async function devices(section) {
  const list = h("ul", { class: "list", "aria-label": "Signed-in devices" });
  const card = h("section", { class: "card", "aria-labelledby": "devices-h" },
    h("h2", { id: "devices-h" }, "Where you’re signed in"),
    h("p", { class: "muted" }, "Every device and browser signed in to your account. End any you don’t recognise."),
    list,
    h("div", { class: "actions" }, h("button", { class: "danger", type: "button", onclick: endOthers }, "Sign out all other devices")));
  section.replaceChildren(card);
  async function load() {
    const sessions = await gh.sessions();
    list.replaceChildren(...sessions.map((s) => sessionItem(s, { onEnd: endOne })));
  }
  async function endOne(s) {
    const ok = await act({ title: "End this session?", text: `${deviceName(s)} (IP ${s.ip || "unknown"}) will be signed out at once.`, label: "End session",
      run: () => gh.revokeSession(s.id), done: "The session was ended." });
    if (ok) await load();
  }
  async function endOthers() {
    const ok = await act({ title: "Sign out all other devices?", text: "Every other device and browser will be signed out at once. This one stays signed in.", label: "Sign out others",
      run: () => api("DELETE", "/v1/sessions?scope=others"), done: "Every other device was signed out." });
    if (ok) await load();
  }
  await load();
}

async function activity(section) {
  const list = h("ul", { class: "list", "aria-label": "Security events" });
  const more = h("button", { class: "secondary", type: "button" }, "Show older");
  const live = h("p", { class: "muted", "aria-live": "polite" }, "New events appear here as they happen.");
  section.replaceChildren(h("section", { class: "card", "aria-labelledby": "activity-h" },
    h("h2", { id: "activity-h" }, "Security activity"), live, list, h("div", { class: "actions" }, more)));
  let cursor = null;
  const seen = new Set();
  const add = (events, atTop) => {
    for (const e of events) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      const li = eventItem(e);
      if (atTop) {
        li.classList.add("fresh");
        list.prepend(li);
      } else list.append(li);
    }
  };
  async function page() {
    const r = await api("GET", `/v1/me/events?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    add(r.events, false);
    cursor = r.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => page().catch((e) => status("error", explain(e))));
  const onMsg = (m) => {
    if (m.type === "event" && m.event) {
      add([m.event], true);
      live.textContent = `New: ${EVENT_NAMES[m.event.type] || m.event.type}`;
    }
  };
  socketListeners.add(onMsg);
  current.cleanup = () => socketListeners.delete(onMsg);
  await page();
}

function passwordForm(section) {
  const cur = h("input", { type: "password", autocomplete: "current-password", required: true });
  const pw = h("input", { type: "password", autocomplete: "new-password", required: true });
  const pw2 = h("input", { type: "password", autocomplete: "new-password", required: true });
  const out = h("div", {});
  const form = h("form", { class: "card narrow", "aria-labelledby": "pw-h" },
    h("h2", { id: "pw-h" }, "Change password"),
    h("p", { class: "muted" }, "Every other device is signed out when the password changes."),
    out, field("Current password", cur), field("New password", pw), field("Repeat the new password", pw2),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Change password")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    out.replaceChildren();
    if (pw.value !== pw2.value) return out.replaceChildren(notice("error", "The two new passwords differ."));
    try {
      await busy(form, () => api("POST", "/v1/me/password", { current_password: cur.value, new_password: pw.value }));
      form.reset();
      out.replaceChildren(notice("ok", "Your password was changed. Every other device was signed out."));
    } catch (x) {
      out.replaceChildren(notice("error", x.code === "invalid_credentials" ? "The current password is wrong." : explain(x)));
    }
  });
  section.replaceChildren(form);
}

function deleteForm(section) {
  const name = gh.user.username;
  section.replaceChildren(h("section", { class: "card narrow", "aria-labelledby": "del-h" },
    h("h2", { id: "del-h" }, "Delete your account"),
    h("p", {}, "This deletes the account for good: every device is signed out, your sessions are erased and the username becomes free. It cannot be undone."),
    h("div", { class: "actions" }, h("button", { class: "danger", type: "button", onclick: async () => {
      const ok = await act({ title: "Delete your account?", text: "There is no undo.", label: "Delete account", typed: name,
        run: () => api("DELETE", "/v1/me") });
      if (ok) {
        pendingReason = "deleted";
        await signOut();
      }
    } }, "Delete account…"))));
}

// --- admin ---

const ADMIN_TABS = [["/admin", "Users"], ["/admin/events", "Events"], ["/admin/emergency", "Emergency"]];

async function adminPage(sub) {
  const active = sub && sub !== "users" ? `/admin/${sub}` : "/admin";
  const section = h("div", {});
  page("Admin console", tabs(ADMIN_TABS, active), section);
  ensureSocket();
  if (!sub || sub === "users") return users(section);
  if (sub === "events") return adminEvents(section);
  if (sub === "emergency") return emergency(section);
}

async function users(section) {
  const params = new URLSearchParams(location.search);
  const q = h("input", { type: "search", value: params.get("q") || "", autocomplete: "off", spellcheck: "false" });
  const list = h("ul", { class: "list", "aria-label": "Users" });
  const next = h("button", { class: "secondary", type: "button" }, "Next page");
  const first = h("button", { class: "secondary", type: "button" }, "First page");
  const form = h("form", { role: "search", class: "row" }, field("Search by name", q), h("div", { class: "field" }, h("button", { type: "submit" }, "Search")));
  const create = createUserForm(() => load(null));
  section.replaceChildren(h("section", { class: "card", "aria-labelledby": "users-h" },
    h("h2", { id: "users-h" }, "Users"), form, list, h("div", { class: "actions" }, first, next)), create);
  let cursor = null;
  async function load(after) {
    const qs = new URLSearchParams({ limit: "20" });
    if (q.value) qs.set("q", q.value);
    if (after) qs.set("cursor", after);
    const r = await api("GET", `/v1/admin/users?${qs}`);
    list.replaceChildren(...(r.users.length ? r.users.map(userItem) : [h("li", { class: "item muted" }, "No users match.")]));
    cursor = r.next_cursor;
    next.hidden = !cursor;
    first.hidden = !after;
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    history.replaceState(null, "", q.value ? `/admin?q=${encodeURIComponent(q.value)}` : "/admin");
    load(null).catch((x) => status("error", explain(x)));
  });
  next.addEventListener("click", () => load(cursor).catch((x) => status("error", explain(x))));
  first.addEventListener("click", () => load(null).catch((x) => status("error", explain(x))));
  await load(null);
}

function userItem(u) {
  return h("li", { class: "item", "data-user": u.id },
    h("div", { class: "main" },
      h("div", { class: "title" }, h("a", { href: `/admin/users/${encodeURIComponent(u.id)}`, "data-link": true }, h("bdi", {}, u.username)),
        u.role === "admin" ? h("span", { class: "badge" }, "Admin") : null,
        u.disabled ? h("span", { class: "badge bad" }, "Disabled") : null),
      h("div", { class: "meta" }, "Created ", time(u.created_at), u.permissions.length ? ` · ${u.permissions.length} permission${u.permissions.length > 1 ? "s" : ""}` : "")));
}

function createUserForm(after) {
  const name = h("input", { autocomplete: "off", required: true, spellcheck: "false" });
  const pw = h("input", { type: "password", autocomplete: "new-password", required: true });
  const role = h("select", {}, h("option", { value: "user" }, "User"), h("option", { value: "admin" }, "Admin"));
  const out = h("div", {});
  const form = h("form", { class: "card", "aria-labelledby": "create-h" }, h("h2", { id: "create-h" }, "Create a user"), out,
    h("div", { class: "row" }, field("Username", name), field("Password", pw), field("Role", role)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create user")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    out.replaceChildren();
    try {
      const r = await busy(form, () => stepUp(() => api("POST", "/v1/admin/users", { username: name.value, password: pw.value, role: role.value })));
      form.reset();
      out.replaceChildren(notice("ok", `Created ${r.user.username}.`));
      await after();
    } catch (x) {
      if (x.code !== "cancelled") out.replaceChildren(notice("error", explain(x)));
    }
  });
  return form;
}

async function adminUserPage(id) {
  let u = (await api("GET", `/v1/admin/users/${encodeURIComponent(id)}`)).user;
  const facts = h("dl", { class: "facts" });
  const sessions = h("ul", { class: "list", "aria-label": "Sessions" });
  const role = h("select", {}, h("option", { value: "user" }, "User"), h("option", { value: "admin" }, "Admin"));
  const perms = h("input", { autocomplete: "off", spellcheck: "false" });
  const newPw = h("input", { type: "password", autocomplete: "new-password" });
  const patch = (body, what) => act({ ...what, run: async () => {
    u = (await api("PATCH", `/v1/admin/users/${encodeURIComponent(id)}`, body)).user;
  } }).then(async (ok) => {
    if (!ok) return;
    show();
    await loadSessions(); // disabling and password resets end sessions
  });
  function show() {
    facts.replaceChildren(
      h("dt", {}, "Username"), h("dd", {}, h("bdi", {}, u.username)),
      h("dt", {}, "Role"), h("dd", {}, u.role),
      h("dt", {}, "Status"), h("dd", {}, u.disabled ? "Disabled" : "Active"),
      h("dt", {}, "Permissions"), h("dd", {}, u.permissions.length ? u.permissions.join(", ") : "None"),
      h("dt", {}, "Created"), h("dd", {}, time(u.created_at)),
      h("dt", {}, "ID"), h("dd", {}, h("code", {}, u.id)));
    role.value = u.role;
    perms.value = u.permissions.join(", ");
    toggle.textContent = u.disabled ? "Enable account" : "Disable account";
  }
  async function loadSessions() {
    const r = await api("GET", `/v1/admin/users/${encodeURIComponent(id)}/sessions`);
    sessions.replaceChildren(...(r.sessions.length
      ? r.sessions.map((s) => sessionItem({ ...s, current: false }, { onEnd: endOne, endLabel: "Revoke" }))
      : [h("li", { class: "item muted" }, "No active sessions.")]));
  }
  async function endOne(s) {
    const ok = await act({ title: "Revoke this session?", text: `${deviceName(s)} (IP ${s.ip || "unknown"}) of ${u.username} is signed out at once.`, label: "Revoke",
      run: () => api("DELETE", `/v1/admin/sessions/${encodeURIComponent(s.id)}`), done: "The session was revoked." });
    if (ok) await loadSessions();
  }
  const toggle = h("button", { class: "danger", type: "button", onclick: () => patch({ disabled: !u.disabled }, u.disabled
    ? { title: `Enable ${u.username}?`, text: "They can sign in again. Their old sessions stay ended.", label: "Enable", danger: false, done: "The account was enabled." }
    : { title: `Disable ${u.username}?`, text: "Every session ends at once and they cannot sign in until enabled.", label: "Disable", done: "The account was disabled and signed out everywhere." }) });
  const roleForm = h("form", { class: "row" }, field("Role", role), h("div", { class: "field" }, h("button", { type: "submit" }, "Change role")));
  roleForm.addEventListener("submit", (e) => {
    e.preventDefault();
    patch({ role: role.value }, { title: `Make ${u.username} ${role.value === "admin" ? "an admin" : "a user"}?`, text: "Their current access tokens stop working; the next refresh carries the new role.", label: "Change role", danger: false, done: "The role was changed." });
  });
  const permForm = h("form", { class: "row" }, field("Permissions", perms, "Comma-separated, e.g. docs:read, billing.write"), h("div", { class: "field" }, h("button", { type: "submit" }, "Save permissions")));
  permForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const list = perms.value.split(",").map((p) => p.trim()).filter(Boolean);
    patch({ permissions: list }, { title: "Change permissions?", text: `${u.username} will have: ${list.join(", ") || "no permissions"}.`, label: "Save", danger: false, done: "Permissions were saved." });
  });
  const pwForm = h("form", { class: "row" }, field("New password", newPw, "Setting a password signs them out everywhere."), h("div", { class: "field" }, h("button", { type: "submit" }, "Reset password")));
  pwForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!newPw.value) return newPw.focus();
    patch({ password: newPw.value }, { title: `Reset the password of ${u.username}?`, text: "Every session of theirs ends at once.", label: "Reset password", done: "The password was reset." })
      .then(() => (newPw.value = ""));
  });
  page("User",
    h("p", {}, h("a", { href: "/admin", "data-link": true }, "← All users")),
    h("section", { class: "card", "aria-labelledby": "u-h" }, h("h2", { id: "u-h" }, h("bdi", {}, u.username)), facts,
      h("div", { class: "actions" }, toggle,
        h("a", { class: "button secondary", href: `/admin/events?user_id=${encodeURIComponent(id)}`, "data-link": true }, "View events"))),
    h("section", { class: "card", "aria-labelledby": "ch-h" }, h("h2", { id: "ch-h" }, "Change"), roleForm, permForm, pwForm),
    h("section", { class: "card", "aria-labelledby": "s-h" }, h("h2", { id: "s-h" }, "Sessions"), sessions,
      h("div", { class: "actions" }, h("button", { class: "danger", type: "button", onclick: async () => {
        const ok = await act({ title: `Revoke every session of ${u.username}?`, text: "They are signed out everywhere at once.", label: "Revoke all",
          run: () => api("DELETE", `/v1/admin/users/${encodeURIComponent(id)}/sessions`), done: "Every session was revoked." });
        if (ok) await loadSessions();
      } }, "Revoke all sessions"))),
    h("section", { class: "card", "aria-labelledby": "d-h" }, h("h2", { id: "d-h" }, "Delete"),
      h("p", {}, "Deleting erases the account and its sessions; the username becomes free."),
      h("button", { class: "danger", type: "button", onclick: async () => {
        const ok = await act({ title: `Delete ${u.username}?`, text: "There is no undo.", label: "Delete user", typed: u.username,
          run: () => api("DELETE", `/v1/admin/users/${encodeURIComponent(id)}`) });
        if (ok) {
          go("/admin");
          status("ok", `${u.username} was deleted.`); // after go, which clears the status
        }
      } }, "Delete user…")));
  show();
  await loadSessions();
}

const EVENT_TYPES = Object.keys(EVENT_NAMES);

async function adminEvents(section) {
  const params = new URLSearchParams(location.search);
  const type = h("select", {}, h("option", { value: "" }, "All types"), EVENT_TYPES.map((t) => h("option", { value: t }, EVENT_NAMES[t])));
  type.value = params.get("type") || "";
  const user = h("input", { autocomplete: "off", spellcheck: "false", value: params.get("user") || "" });
  let userId = params.get("user_id") || "";
  const list = h("ul", { class: "list", "aria-label": "Events" });
  const more = h("button", { class: "secondary", type: "button" }, "Show older");
  const live = h("p", { class: "muted", "aria-live": "polite" }, "New events appear at the top as they happen.");
  const form = h("form", { class: "row", role: "search" }, field("Type", type), field("User", user, userId && !user.value ? "Filtered by the user you came from." : null),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Filter")));
  section.replaceChildren(h("section", { class: "card", "aria-labelledby": "ev-h" }, h("h2", { id: "ev-h" }, "Security events"), form, live, list, h("div", { class: "actions" }, more)));
  let cursor = null;
  let seen = new Set();
  const query = (extra) => {
    const qs = new URLSearchParams({ limit: "25", ...extra });
    if (type.value) qs.set("type", type.value);
    if (userId) qs.set("user_id", userId);
    return `/v1/admin/events?${qs}`;
  };
  const add = (events, atTop) => {
    const fresh = [];
    for (const e of events) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      fresh.push(e);
    }
    const items = fresh.map((e) => eventItem(e, { showUser: true }));
    if (atTop) {
      items.forEach((li) => li.classList.add("fresh"));
      list.prepend(...items);
      if (items.length) live.textContent = `${items.length} new event${items.length > 1 ? "s" : ""}.`;
    } else list.append(...items);
  };
  async function load(reset) {
    if (reset) {
      seen = new Set();
      cursor = null;
      list.replaceChildren();
    }
    const r = await api("GET", query(cursor ? { cursor } : {}));
    add(r.events, false);
    cursor = r.next_cursor;
    more.hidden = !cursor;
    if (!list.children.length) list.append(h("li", { class: "item muted" }, "No events match."));
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      userId = "";
      if (user.value) {
        const r = await api("GET", `/v1/admin/users?${new URLSearchParams({ q: user.value, limit: "50" })}`);
        const match = r.users.find((u) => u.username.toLowerCase() === user.value.toLowerCase());
        if (!match) return status("error", "No user has that name.");
        userId = match.id;
      }
      const qs = new URLSearchParams();
      if (type.value) qs.set("type", type.value);
      if (user.value) qs.set("user", user.value);
      history.replaceState(null, "", `/admin/events${qs.size ? "?" + qs : ""}`);
      await load(true);
    } catch (x) {
      status("error", explain(x));
    }
  });
  more.addEventListener("click", () => load(false).catch((x) => status("error", explain(x))));
  // Live: the socket carries only the admin's own events, so the console
  // asks for the newest page every few seconds while it is visible.
  const poll = setInterval(async () => {
    if (document.visibilityState === "hidden") return;
    try {
      add((await api("GET", query({}))).events.reverse(), true);
    } catch {}
  }, 3000);
  current.cleanup = () => clearInterval(poll);
  if (user.value && !userId) {
    form.requestSubmit();
    return;
  }
  await load(true);
}

function emergency(section) {
  const phrase = "revoke all sessions";
  section.replaceChildren(h("section", { class: "card", "aria-labelledby": "em-h" },
    h("h2", { id: "em-h" }, "Revoke every session"),
    h("p", {}, "The emergency switch: every session and every access token issued before now stops working at once, on every instance and every resource server, yours included. Everyone must sign in again."),
    h("button", { class: "danger", type: "button", onclick: async () => {
      const ok = await act({ title: "Revoke every session?", text: "Everyone, including you, is signed out at once.", label: "Revoke everything", typed: phrase,
        run: () => api("POST", "/v1/admin/revoke-all") });
      if (ok) pendingReason = "revoked";
    } }, "Revoke all sessions…")));
}

// --- start ---

(async () => {
  try {
    await gh.restore();
  } catch {}
  if (gh.user) ensureSocket();
  await render();
  window.gatehouseUI.ready = true;
})();
