// The page around the views: navigation, the header, the live socket and
// what happens when the session ends.
import { h, $main } from "./dom.js";
import { gh, registrationOpen } from "./client.js";

let current = null; // { path, cleanup }
let render = () => {};

// setRouter installs the function that draws the page for location.
export function setRouter(fn) {
  render = async () => {
    const first = current === null;
    current?.cleanup?.();
    current = { path: location.pathname };
    await fn();
    // After an in-app navigation a screen reader hears the new page: focus
    // its heading, unless the view focused a field itself (sign-in) or a
    // dialog is open. A page load is announced by the browser already.
    const main = $main();
    if (!first && !main.contains(document.activeElement) && !document.getElementById("dialog").open) {
      main.querySelector("h1")?.focus({ preventScroll: true });
    }
  };
}

// onLeave runs fn when the page is left (timers, socket listeners).
export function onLeave(fn) {
  current.cleanup = fn;
}

export function go(path, replace) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return render();
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

export function page(title, ...kids) {
  document.title = `${title} · Gatehouse`;
  const main = $main();
  main.replaceChildren(h("h1", { tabindex: "-1" }, title), ...kids.filter(Boolean));
}

// tabbedPage draws a page whose sections are tabs (items: [href, label])
// and returns the element the active section fills.
export function tabbedPage(title, items, active) {
  const section = h("div", {});
  page(title,
    h("nav", { "aria-label": "Sections" },
      h("ul", { class: "tabs" }, items.map(([href, label]) =>
        h("li", {}, h("a", { href, "data-link": true, "aria-current": href === active ? "page" : null }, label))))),
    section);
  return section;
}

export function renderNav() {
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

export async function signOut() {
  try {
    await gh.logout();
  } catch {}
}

// --- the live connection ---

let socket = null;
export const socketListeners = new Set();

export function ensureSocket() {
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
  socket.addEventListener("close", (e) => {
    (window.gatehouseUI.socketCloses ||= []).push(e.code); // for the browser tests
    socket = null;
    // Dropped for a reason other than sign-out (the client reconnects
    // after network drops itself): try again shortly while signed in.
    if (gh.user) setTimeout(ensureSocket, 2000);
  });
}

// Every sign-out, whatever ended the session and in whichever tab, lands
// on the sign-in page with the reason. A page that ends the session on
// purpose (account deletion) names its own reason first.
let pendingReason = null;
export function signOutReason(reason) {
  pendingReason = reason;
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
