// The account pages: devices, security activity, password, deletion.
import { h, field, notice, status, busy } from "./dom.js";
import { gh, api, explain } from "./client.js";
import { act, stepUp } from "./dialogs.js";
import { EVENT_NAMES, deviceName, eventItem, sessionItem } from "./items.js";
import { tabbedPage, socketListeners, onLeave, signOut, signOutReason } from "./shell.js";

const ACCOUNT_TABS = [["/account", "Devices"], ["/account/activity", "Security activity"], ["/account/password", "Password"], ["/account/security", "Two-factor"], ["/account/delete", "Delete account"]];

export async function accountPage(sub) {
  const active = sub ? `/account/${sub}` : "/account";
  const section = tabbedPage("Your account", ACCOUNT_TABS, active);
  if (!sub || sub === "devices") return devices(section);
  if (sub === "activity") return activity(section);
  if (sub === "password") return passwordForm(section);
  if (sub === "security") return twoFactor(section);
  if (sub === "delete") return deleteForm(section);
}

async function devices(section) {
  const list = h("ul", { class: "list", "aria-label": "Signed-in devices" });
  const card = h("section", { class: "card", "aria-labelledby": "devices-h" },
    h("h2", { id: "devices-h" }, "Where you’re signed in"),
    h("p", { class: "muted" }, "Every device and browser signed in to your account. End any you don’t recognise."),
    list,
    h("div", { class: "actions" }, h("button", { class: "danger", type: "button", onclick: endOthers, id: "end-others" }, "Sign out all other devices")));
  section.replaceChildren(card);
  async function load() {
    const sessions = await gh.sessions();
    list.replaceChildren(...sessions.map((s) => sessionItem(s, { onEnd: endOne })));
    // Nothing to sign out when this is the only device.
    card.querySelector("#end-others").hidden = !sessions.some((s) => !s.current);
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
  onLeave(() => socketListeners.delete(onMsg));
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
        signOutReason("deleted");
        await signOut();
      }
    } }, "Delete account…"))));
}

const FACTOR_KINDS = { totp: "Authenticator app", webauthn: "Passkey" };

// twoFactor lists the second factors and enrols new ones. Secrets and
// recovery codes are shown once, here, and kept nowhere else.
async function twoFactor(section) {
  const list = h("ul", { class: "list", "aria-label": "Second factors" });
  const summary = h("p", { class: "muted" });
  const work = h("div", { "aria-live": "polite" });
  const addApp = h("button", { type: "button", onclick: () => enrolApp().catch(fail) }, "Add an authenticator app");
  const addKey = h("button", { class: "secondary", type: "button", onclick: () => enrolPasskey().catch(fail) }, "Add a passkey");
  const regen = h("button", { class: "secondary", type: "button", onclick: () => regenerate().catch(fail) }, "New recovery codes");
  section.replaceChildren(h("section", { class: "card", "aria-labelledby": "mfa-h" },
    h("h2", { id: "mfa-h" }, "Two-factor sign-in"),
    h("p", { class: "muted" }, "With a second factor, your password alone cannot sign in to your account."),
    summary, list, work, h("div", { class: "actions" }, addApp, addKey, regen)));
  function fail(e) {
    if (e.code !== "cancelled") status("error", explain(e));
  }
  async function load() {
    const r = await gh.factors();
    const active = r.factors.filter((f) => f.active);
    summary.textContent = active.length
      ? `On: ${active.length} factor${active.length > 1 ? "s" : ""}, ${r.recoveryCodesLeft} recovery code${r.recoveryCodesLeft === 1 ? "" : "s"} left.`
      : "Off: only your password protects this account.";
    regen.hidden = !active.length;
    list.replaceChildren(...active.map((f) => h("li", { class: "item" },
      h("div", {}, h("div", { class: "title" }, FACTOR_KINDS[f.type] || f.type, f.label !== FACTOR_KINDS[f.type] ? [": ", h("bdi", {}, f.label)] : null),
        h("div", { class: "muted" }, `Added ${new Date(f.created_at).toLocaleString()}`, f.last_used_at ? ` · last used ${new Date(f.last_used_at).toLocaleString()}` : "")),
      h("button", { class: "danger", type: "button", onclick: () => remove(f) }, "Remove"))));
  }
  async function remove(f) {
    const ok = await act({ title: "Remove this factor?", text: `${FACTOR_KINDS[f.type]} “${f.label}” stops working, and every other device is signed out.`, label: "Remove",
      run: () => gh.removeFactor(f.id), done: "The factor was removed. Every other device was signed out." });
    if (ok) {
      await gh.restore();
      await load();
    }
  }
  async function enrolApp() {
    const e = await stepUp(() => gh.enrollTotp("Authenticator app"));
    const { qrSVG } = await import("./qr.js"); // loaded only by the few who enrol
    const code = h("input", { autocomplete: "one-time-code", inputmode: "numeric", required: true, spellcheck: "false" });
    const err = h("div", {});
    const form = h("form", { class: "narrow" },
      h("h3", {}, "Add an authenticator app"),
      h("p", {}, "Scan this QR code with your authenticator app (or type in the key below it), then enter the code the app shows."),
      qrSVG(e.otpauthUri, "QR code of the authenticator key"),
      h("p", {}, "Key: ", h("code", { class: "secret" }, e.secret.replace(/(.{4})/g, "$1 ").trim())),
      h("p", {}, h("a", { href: e.otpauthUri }, "Open in an authenticator app")),
      err, field("Code", code), h("div", { class: "actions" }, h("button", { type: "submit" }, "Turn on")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.replaceChildren();
      try {
        const r = await busy(form, () => gh.verifyFactor(e.factor.id, code.value.trim()));
        await enrolled(r);
      } catch (x) {
        err.replaceChildren(notice("error", explain(x)));
      }
    });
    work.replaceChildren(form);
    code.focus();
  }
  async function enrolPasskey() {
    const r = await stepUp(() => gh.enrollPasskey("Passkey"));
    await enrolled(r);
  }
  async function enrolled(r) {
    await gh.restore();
    work.replaceChildren(r.recoveryCodes ? codesCard(r.recoveryCodes) : notice("ok", "The factor was added."));
    status("ok", "Two-factor sign-in is on.");
    await load();
  }
  async function regenerate() {
    const ok = await act({ title: "Make new recovery codes?", text: "Your current recovery codes stop working.", label: "Make new codes", danger: false,
      run: async () => work.replaceChildren(codesCard(await gh.regenerateRecoveryCodes())) });
    if (ok) await load();
  }
  await load();
}

// codesCard shows recovery codes once, with copy and download.
function codesCard(codes) {
  const text = codes.join("\n") + "\n";
  return h("div", { class: "notice ok" },
    h("p", {}, "Your recovery codes. Each works once, in place of a code from your app. Keep them somewhere safe: they are not shown again."),
    h("ul", { class: "codes", "aria-label": "Recovery codes" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: async () => {
        await navigator.clipboard.writeText(text);
        status("ok", "The recovery codes were copied.");
      } }, "Copy"),
      h("a", { class: "button secondary", download: "gatehouse-recovery-codes.txt", href: URL.createObjectURL(new Blob([text], { type: "text/plain" })) }, "Download")));
}
