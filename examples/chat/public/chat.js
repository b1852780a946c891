// The chat page: sign in with gatehouse.js, then a Socket.IO connection
// authenticated by its handshake (auth.token). The server ends it when the
// session ends; the page says why.
const gatehouse = document.querySelector('meta[name="gatehouse"]').content;
const { createClient } = await import(gatehouse + "/gatehouse.js");
const gh = createClient({ baseUrl: gatehouse });
const $ = (id) => document.getElementById(id);
const log = (text, cls) => $("log").append(Object.assign(document.createElement("li"), { textContent: text, className: cls || "" }));
let socket = null;

async function connect(user) {
  $("login").hidden = true;
  $("say").hidden = false;
  // io() is the Socket.IO client the server serves. auth is a function:
  // every (re)connection presents a fresh token.
  socket = io({ auth: async (cb) => cb({ token: await gh.accessToken(), name: user.username }), transports: ["websocket"] });
  socket.on("connect", () => log("connected", "system"));
  socket.on("message", (m) => log(`${m.from}: ${m.text}`));
  socket.on("system", (t) => log(t, "system"));
  socket.on("gatehouse:revoked", (why) => log(`session ended (${why})`, "ended"));
  socket.on("disconnect", (why) => log(`disconnected: ${why}`, "ended"));
  socket.on("connect_error", (e) => log(`refused: ${e.data?.error || e.message}`, "ended"));
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    connect(await gh.login(f.get("username"), f.get("password")));
  } catch (err) {
    log("sign-in failed: " + err.code, "ended");
  }
});
$("say").addEventListener("submit", (e) => {
  e.preventDefault();
  socket.emit("say", e.target.text.value);
  e.target.reset();
});
const user = await gh.restore();
if (user) connect(user);
window.chat = { gh, get socket() { return socket; } };
window.ready = true;
