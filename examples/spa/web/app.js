// The page: gatehouse.js from Gatehouse itself, the access token in memory
// only, bound to a key of this browser (dpop: true), the API called with
// gh.fetch (refreshes as needed).
const meta = (n) => document.querySelector(`meta[name="${n}"]`).content;
const { createClient } = await import(meta("gatehouse") + "/gatehouse.js");
const gh = createClient({ baseUrl: meta("gatehouse"), dpop: true });
window.gh = gh; // for the example's test

const $ = (id) => document.getElementById(id);
const show = (user) => {
  $("login").hidden = !!user;
  $("orders").hidden = !user;
  $("who").textContent = user ? user.username : "";
};

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    show(await gh.login(f.get("username"), f.get("password")));
    $("status").textContent = "";
  } catch (err) {
    $("status").textContent = "Sign-in failed: " + err.code;
  }
});
$("load").addEventListener("click", async () => {
  const res = await gh.fetch(meta("api") + "/api/orders");
  const body = await res.json();
  $("list").replaceChildren(...(body.orders || []).map((o) => Object.assign(document.createElement("li"), { textContent: o.item })));
  $("status").textContent = res.ok ? `${body.orders.length} orders` : "API said " + body.error;
});
$("logout").addEventListener("click", () => gh.logout());
gh.on("signedout", (reason) => {
  show(null);
  $("status").textContent = "Signed out: " + reason;
});
show(await gh.restore());
window.ready = true;
