// A chat server on Socket.IO, protected by the Node guard: every socket
// authenticates with its handshake's auth.token (never the URL), carries
// its user's claims, and is disconnected within a second when the user is
// banned, the session revoked, or everyone signed out.
//
//   GATEHOUSE_RESOURCE_KEY=… npm start      (see README.md)
import http from "node:http";
import { readFile } from "node:fs/promises";
import { Server } from "socket.io";
import { createGuard } from "../../clients/node/guard.js";

const gatehouse = process.env.GATEHOUSE_URL || "http://127.0.0.1:8080";
const [host, port] = (process.env.CHAT_ADDR || "127.0.0.1:3002").split(":");
const guard = await createGuard({ issuer: gatehouse, resourceKey: process.env.GATEHOUSE_RESOURCE_KEY });

const page = (await readFile(new URL("./public/index.html", import.meta.url), "utf8")).replaceAll("{{GATEHOUSE}}", gatehouse);
const script = await readFile(new URL("./public/chat.js", import.meta.url));
const server = http.createServer((req, res) => {
  if (req.url === "/") {
    res.writeHead(200, {
      "Content-Type": "text/html; charset=utf-8",
      "Content-Security-Policy": `default-src 'self'; script-src 'self' ${gatehouse}; connect-src 'self' ws: ${gatehouse}`,
    }).end(page);
  } else if (req.url === "/chat.js") {
    res.writeHead(200, { "Content-Type": "text/javascript" }).end(script);
  } else {
    res.writeHead(404).end();
  }
});
const io = new Server(server, { serveClient: true });
io.use(guard.socketio());
io.on("connection", (socket) => {
  const { sub, role } = socket.data.gatehouse;
  const name = socket.handshake.auth.name || sub;
  io.emit("system", `${name} joined`);
  socket.on("say", (text) => io.emit("message", { from: name, role, text: String(text).slice(0, 500) }));
  socket.on("disconnect", (why) => io.emit("system", `${name} left (${why})`));
});
server.listen(Number(port), host, () => console.log(`chat at http://${host}:${port}, Gatehouse at ${gatehouse}`));
process.on("SIGINT", () => { guard.close(); io.close(); process.exit(0); });
process.on("SIGTERM", () => { guard.close(); io.close(); process.exit(0); });
