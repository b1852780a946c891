// The admin console: users, a user's page, events, the emergency switch.
import { h, field, notice, status, busy, time } from "./dom.js";
import { api, explain } from "./client.js";
import { act, stepUp } from "./dialogs.js";
import { EVENT_NAMES, deviceName, eventItem, sessionItem } from "./items.js";
import { page, tabbedPage, onLeave, go, signOutReason } from "./shell.js";

const ADMIN_TABS = [["/admin", "Users"], ["/admin/events", "Events"], ["/admin/emergency", "Emergency"]];

export async function adminPage(sub) {
  const active = sub && sub !== "users" ? `/admin/${sub}` : "/admin";
  const section = tabbedPage("Admin console", ADMIN_TABS, active);
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

export async function adminUserPage(id) {
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
      h("dt", {}, "Two-factor"), h("dd", {}, u.mfa ? "On" : "Off"),
      h("dt", {}, "Permissions"), h("dd", {}, u.permissions.length ? u.permissions.join(", ") : "None"),
      h("dt", {}, "Created"), h("dd", {}, time(u.created_at)),
      h("dt", {}, "ID"), h("dd", {}, h("code", {}, u.id)));
    role.value = u.role;
    perms.value = u.permissions.join(", ");
    toggle.textContent = u.disabled ? "Enable account" : "Disable account";
    resetMFA.hidden = !u.mfa; // nothing to reset
  }
  async function loadSessions() {
    const r = await api("GET", `/v1/admin/users/${encodeURIComponent(id)}/sessions`);
    sessions.replaceChildren(...(r.sessions.length
      ? r.sessions.map((s) => sessionItem({ ...s, current: false }, { onEnd: endOne, endLabel: "Revoke" }))
      : [h("li", { class: "item muted" }, "No active sessions.")]));
    revokeAll.hidden = !r.sessions.length; // nothing to revoke
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
  const resetMFA = h("button", { class: "danger", type: "button", onclick: async () => {
          const ok = await act({ title: `Reset two-factor sign-in of ${u.username}?`, text: "Every second factor and recovery code is removed and every session ends. They sign in with the password alone and can enrol again.",
            label: "Reset two-factor", run: () => api("DELETE", `/v1/admin/users/${encodeURIComponent(id)}/factors`), done: "Two-factor sign-in was reset." });
          if (ok) {
            u = (await api("GET", `/v1/admin/users/${encodeURIComponent(id)}`)).user;
            show();
            await loadSessions();
          }
        } }, "Reset two-factor");
  const revokeAll = h("button", { class: "danger", type: "button", onclick: async () => {
    const ok = await act({ title: `Revoke every session of ${u.username}?`, text: "They are signed out everywhere at once.", label: "Revoke all",
      run: () => api("DELETE", `/v1/admin/users/${encodeURIComponent(id)}/sessions`), done: "Every session was revoked." });
    if (ok) await loadSessions();
  } }, "Revoke all sessions");
  page(u.username,
    h("p", {}, h("a", { href: "/admin", "data-link": true }, "← All users")),
    h("section", { class: "card", "aria-labelledby": "u-h" }, h("h2", { id: "u-h" }, "Account"), facts,
      h("div", { class: "actions" }, toggle, resetMFA,
        h("a", { class: "button secondary", href: `/admin/events?user_id=${encodeURIComponent(id)}`, "data-link": true }, "View events"))),
    h("section", { class: "card", "aria-labelledby": "ch-h" }, h("h2", { id: "ch-h" }, "Change"), roleForm, permForm, pwForm),
    h("section", { class: "card", "aria-labelledby": "s-h" }, h("h2", { id: "s-h" }, "Sessions"), sessions,
      h("div", { class: "actions" }, revokeAll)),
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
  onLeave(() => clearInterval(poll));
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
      if (ok) signOutReason("revoked");
    } }, "Revoke all sessions…")));
}
