// The Gatehouse web UI: sign-in, the account pages and the admin console.
// Built on /gatehouse.js and the public API only. Every element is made
// with DOM calls and every value from the server goes in as text: the page
// runs under Trusted Types, so an HTML string could not reach the DOM even
// by mistake.
import { h, field, notice, status, busy } from "./dom.js";
import { gh, registrationOpen, returnTo, MESSAGES, explain } from "./client.js";
import { SIGNED_OUT } from "./items.js";
import { page, renderNav, ensureSocket, go, setRouter } from "./shell.js";
import { accountPage } from "./account.js";
import { adminPage, adminUserPage } from "./admin.js";

async function route() {
  status("", "");
  renderNav();
  const p = location.pathname;
  const routes = [
    [/^\/$/, home],
    [/^\/login$/, loginPage],
    [/^\/register$/, registerPage],
    [/^\/account(?:\/(devices|activity|password|security|delete))?$/, accountPage, true],
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
  // After sign-in: where the server said return_to may go, else the
  // console for an admin, the account for everyone else.
  if (returnTo && returnTo.startsWith("/") && !returnTo.startsWith("//")) return go(returnTo, true);
  if (returnTo) return location.assign(returnTo);
  go(gh.user?.role === "admin" ? "/admin" : "/account", true);
}

function loginPage() {
  if (gh.user) return leave();
  const reason = new URLSearchParams(location.search).get("reason");
  const user = h("input", { autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const pw = h("input", { type: "password", autocomplete: "current-password", required: true });
  const err = h("div", {});
  const form = h("form", { class: "card narrow" },
    // Only a sign-out of your own is good news; any other end is worth noticing.
    SIGNED_OUT[reason] ? notice(reason === "logout" ? "ok" : "warn", SIGNED_OUT[reason]) : null,
    err, field("Username", user), field("Password", pw),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")),
    registrationOpen ? h("p", { class: "muted" }, "No account? ", h("a", { href: withReturn("/register"), "data-link": true }, "Create one")) : null);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.replaceChildren();
    try {
      const r = await busy(form, () => gh.login(user.value, pw.value));
      if (r && r.mfaRequired) return secondFactorPage(r.factors);
      leave();
    } catch (x) {
      err.replaceChildren(notice("error", explain(x)));
      pw.value = "";
      pw.focus();
    }
  });
  const passkey = h("button", { class: "secondary", type: "button", onclick: async () => {
    err.replaceChildren();
    try {
      await busy(form, () => gh.loginWithPasskey());
      leave();
    } catch (x) {
      err.replaceChildren(notice("error", x.code === "invalid_credentials" ? "That passkey was not accepted." : explain(x)));
    }
  } }, "Sign in with a passkey");
  form.querySelector(".actions").append(passkey);
  page("Sign in", form);
  user.focus();
}

// secondFactorPage is the login's second step: a code from the app, a
// recovery code, or a passkey. No session exists until it succeeds.
function secondFactorPage(factors) {
  const hasPasskey = factors.some((f) => f.type === "webauthn");
  const hasApp = factors.some((f) => f.type === "totp");
  const code = h("input", { autocomplete: "one-time-code", inputmode: "numeric", required: true, spellcheck: "false" });
  const err = h("div", { "aria-live": "assertive" });
  const form = h("form", { class: "card narrow" }, err,
    h("p", {}, hasApp ? "Enter the code from your authenticator app, or one of your recovery codes." : "Use your passkey, or enter one of your recovery codes."),
    field(hasApp ? "Code" : "Recovery code", code),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Verify"),
      hasPasskey ? h("button", { class: "secondary", type: "button", onclick: () => answer(() => gh.verifyMfaWithPasskey()) }, "Use a passkey") : null));
  async function answer(fn) {
    err.replaceChildren();
    try {
      await busy(form, fn);
      leave();
    } catch (x) {
      if (x.code === "invalid_token") return go(withReturn("/login"), true);
      err.replaceChildren(notice("error", explain(x)));
      code.value = "";
      code.focus();
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    answer(() => gh.verifyMfa(code.value.trim()));
  });
  page("Two-factor sign-in", form);
  code.focus();
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

(async () => {
  try {
    await gh.restore();
  } catch {}
  if (gh.user) ensureSocket();
  setRouter(route);
  await go(location.pathname + location.search + location.hash, true);
  window.gatehouseUI.ready = true;
})();
