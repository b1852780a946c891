// The account pages: devices, security activity, password, deletion.
import { h, field, notice, status, busy } from "./dom.js";
import { gh, api, explain } from "./client.js";
import { act } from "./dialogs.js";
import { EVENT_NAMES, deviceName, eventItem, sessionItem } from "./items.js";
import { tabbedPage, socketListeners, onLeave, signOut, signOutReason } from "./shell.js";

const ACCOUNT_TABS = [["/account", "Devices"], ["/account/activity", "Security activity"], ["/account/password", "Password"], ["/account/delete", "Delete account"]];

export async function accountPage(sub) {
  const active = sub ? `/account/${sub}` : "/account";
  const section = tabbedPage("Your account", ACCOUNT_TABS, active);
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
