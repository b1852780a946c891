// How events, sessions and users read on the page.
import { h, time } from "./dom.js";
import { api } from "./client.js";

export const EVENT_NAMES = {
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
  mfa_enrolled: "Second factor added",
  mfa_removed: "Second factor removed",
  mfa_failed: "Wrong second-factor code",
  mfa_succeeded: "Second factor confirmed",
  recovery_code_used: "Recovery code used",
  recovery_codes_regenerated: "New recovery codes made",
  mfa_reset: "Two-factor reset by an administrator",
  webauthn_clone_suspected: "Passkey refused: it may have been copied",
  dpop_mismatch: "Session token used without this browser's key (possibly stolen)",
};

export const SIGNED_OUT = {
  logout: "You signed out.",
  revoked: "Your session was ended: signed out from another device, revoked by an administrator, or the account was disabled.",
  expired: "Your session expired. Sign in again.",
  reused: "Your session was ended because a sign-in token was used twice, which can mean it was stolen. Sign in again and check your devices.",
  deleted: "Your account was deleted.",
  password: "Your password was changed. Sign in again.",
};

export function deviceName(x) {
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

export function eventItem(e, { showUser } = {}) {
  const badges = e.type === "login_succeeded" ? noveltyBadges(e.detail) : [];
  const bad = ["refresh_token_reused", "login_failed", "csrf_failed", "rate_limited", "dpop_mismatch", "webauthn_clone_suspected", "mfa_failed"].includes(e.type);
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

export function userLink(id) {
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

export function sessionItem(s, { onEnd, endLabel = "End session" } = {}) {
  return h("li", { class: "item", "data-session": s.id },
    h("div", { class: "main" },
      h("div", { class: "title" }, h("bdi", {}, deviceName(s)), s.current ? h("span", { class: "badge this" }, "This device") : null),
      h("div", { class: "meta" }, "IP ", h("bdi", {}, s.ip || "unknown"), " · signed in ", time(s.created_at), " · last used ", time(s.last_used_at)),
      s.user_agent ? h("span", { class: "meta ua", title: s.user_agent }, s.user_agent) : null),
    onEnd && !s.current ? h("button", { class: "secondary", type: "button", "aria-label": `${endLabel}: ${deviceName(s)}, IP ${s.ip || "unknown"}`, onclick: () => onEnd(s) }, endLabel) : null);
}
