// The Node guard against a real Gatehouse, started by e2e/node_guard_test.go
// (go test ./e2e -run TestNodeGuard), which passes its address, a resource
// key and an admin account in the environment. Access tokens live 4 s there.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import express from "express";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import * as jose from "jose";
import { createGuard, GuardError } from "../guard.js";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through go test ./e2e -run TestNodeGuard`);
  return v;
};
const GH = env("GH_URL");
const KEY = env("GH_RESOURCE_KEY");
const guards = [];
const guard = async (o = {}) => {
  const g = await createGuard({ issuer: GH, resourceKey: KEY, ...o });
  guards.push(g);
  return g;
};
after(() => guards.forEach((g) => g.close()));

async function call(method, path, body, token, headers = {}) {
  const res = await fetch(GH + path, {
    method,
    headers: { ...(body ? { "Content-Type": "application/json" } : {}), ...(token ? { Authorization: "Bearer " + token } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

let n = 0;
async function user(role) {
  const name = `u${process.pid}x${n++}`;
  const r = await call("POST", "/v1/auth/register", { username: name, password: "password-" + name });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const l = await call("POST", "/v1/auth/login", { username: name, password: "password-" + name });
  assert.equal(l.status, 200);
  return { name, id: r.body.user.id, access: l.body.access_token, refresh: l.body.refresh_token };
}

async function admin() {
  const l = await call("POST", "/v1/auth/login", { username: env("GH_ADMIN"), password: env("GH_ADMIN_PASSWORD") });
  assert.equal(l.status, 200);
  return l.body.access_token;
}

// refusedWithin polls verify until it throws code; returns the milliseconds.
async function refusedWithin(g, token, code, limit = 1000) {
  const start = Date.now();
  for (;;) {
    try {
      await g.verify(token);
    } catch (e) {
      assert.equal(e.code, code, e.message);
      return Date.now() - start;
    }
    assert.ok(Date.now() - start < limit, `still accepted after ${limit} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("a valid token's claims; tampered and foreign tokens refused", async () => {
  const g = await guard();
  const u = await user();
  const c = await g.verify(u.access);
  assert.equal(c.sub, u.id);
  assert.equal(c.role, "user");
  assert.equal(c.clientId, "gatehouse");
  assert.deepEqual(c.audience, [GH]);
  JSON.stringify(c); // claims are plain JSON
  const [h, p, s] = u.access.split(".");
  const claims = JSON.parse(Buffer.from(p, "base64url"));
  const forged = Buffer.from(JSON.stringify({ ...claims, role: "admin" })).toString("base64url");
  await assert.rejects(g.verify(`${h}.${forged}.${s}`), { code: "invalid_token" });
  // Signed by another key under the same header: refused.
  const { privateKey } = await jose.generateKeyPair("EdDSA");
  const header = JSON.parse(Buffer.from(h, "base64url"));
  const foreign = await new jose.SignJWT({ ...claims }).setProtectedHeader(header).sign(privateKey);
  await assert.rejects(g.verify(foreign), { code: "invalid_token" });
  await assert.rejects(g.verify("not.a.token"), { code: "invalid_token" });
  await assert.rejects(g.verify(u.refresh), { code: "invalid_token" });
});

test("logout, ban, role change: refused within a second", async () => {
  const g = await guard();
  const a = await user();
  await call("POST", "/v1/auth/logout", { refresh_token: a.refresh });
  const ms1 = await refusedWithin(g, a.access, "token_revoked");
  const b = await user();
  const root = await admin();
  assert.equal((await call("PATCH", `/v1/admin/users/${b.id}`, { disabled: true }, root)).status, 200);
  const ms2 = await refusedWithin(g, b.access, "token_revoked");
  const c = await user();
  assert.equal((await call("PATCH", `/v1/admin/users/${c.id}`, { role: "admin" }, root)).status, 200);
  const ms3 = await refusedWithin(g, c.access, "token_revoked");
  // The same user's new token, issued after the change (same millisecond
  // or not), passes: cut-offs are compared at their full precision.
  const again = await call("POST", "/v1/auth/refresh", { refresh_token: c.refresh });
  assert.equal(again.status, 200);
  assert.equal((await g.verify(again.body.access_token)).role, "admin");
  console.log(`refused after ${ms1} ms (logout), ${ms2} ms (ban), ${ms3} ms (role change)`);
});

test("expiry", async () => {
  const g = await guard();
  const u = await user();
  await g.verify(u.access);
  const exp = JSON.parse(Buffer.from(u.access.split(".")[1], "base64url")).exp;
  await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
  await assert.rejects(g.verify(u.access), { code: "token_expired" });
});

test("a stale feed fails closed, and recovers", async (t) => {
  let cut = false;
  const proxy = http.createServer(async (req, res) => {
    if (cut) {
      res.writeHead(503).end();
      return;
    }
    const r = await fetch(GH + req.url, { headers: { authorization: req.headers.authorization || "" } });
    res.writeHead(r.status, { "content-type": r.headers.get("content-type") || "text/plain" }).end(Buffer.from(await r.arrayBuffer()));
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  t.after(() => proxy.close());
  const g = await guard({ baseUrl: `http://127.0.0.1:${proxy.address().port}`, maxStaleness: 1500 });
  const u = await user();
  await g.verify(u.access);
  cut = true;
  await new Promise((r) => setTimeout(r, 2600));
  await assert.rejects(g.verify(u.access), (e) => e instanceof GuardError && e.code === "unavailable" && e.status === 503);
  cut = false;
  const fresh = await user();
  const start = Date.now();
  for (;;) {
    try {
      await g.verify(fresh.access);
      break;
    } catch (e) {
      assert.equal(e.code, "unavailable");
      assert.ok(Date.now() - start < 8000, "no recovery");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});

test("audience", async () => {
  const g = await guard({ audience: "https://orders.example" });
  const u = await user();
  await assert.rejects(g.verify(u.access), { code: "invalid_token" });
});

test("DPoP-bound tokens need a proof by their key for the request", async () => {
  const g = await guard();
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256");
  const jwk = await jose.exportJWK(publicKey);
  const proof = (htm, htu, ath) =>
    new jose.SignJWT({ jti: crypto.randomUUID(), htm, htu, ...(ath ? { ath } : {}) })
      .setProtectedHeader({ typ: "dpop+jwt", alg: "ES256", jwk }).setIssuedAt().sign(privateKey);
  const u = await user();
  const login = await call("POST", "/v1/auth/login", { username: u.name, password: "password-" + u.name }, null,
    { DPoP: await proof("POST", GH + "/v1/auth/login") });
  assert.equal(login.body.token_type, "DPoP");
  const at = login.body.access_token;
  const ath = (await import("node:crypto")).createHash("sha256").update(at).digest("base64url");
  const url = "https://api.example/orders";
  const c = await g.verify(at, { scheme: "dpop", dpopProof: await proof("GET", url, ath), method: "GET", url });
  assert.equal(c.cnf.jkt, await jose.calculateJwkThumbprint(jwk));
  await assert.rejects(g.verify(at), { code: "invalid_dpop_proof" });
  await assert.rejects(g.verify(at, { scheme: "bearer" }), { code: "invalid_dpop_proof" });
  await assert.rejects(g.verify(at, { scheme: "dpop", dpopProof: await proof("POST", url, ath), method: "GET", url }), { code: "invalid_dpop_proof" });
  const replay = await proof("GET", url, ath);
  await g.verify(at, { scheme: "dpop", dpopProof: replay, method: "GET", url });
  await assert.rejects(g.verify(at, { scheme: "dpop", dpopProof: replay, method: "GET", url }), { code: "invalid_dpop_proof" });
  const other = await jose.generateKeyPair("ES256");
  const foreign = await new jose.SignJWT({ jti: "x", htm: "GET", htu: url, ath }).setProtectedHeader({ typ: "dpop+jwt", alg: "ES256", jwk: await jose.exportJWK(other.publicKey) }).setIssuedAt().sign(other.privateKey);
  await assert.rejects(g.verify(at, { scheme: "dpop", dpopProof: foreign, method: "GET", url }), { code: "invalid_dpop_proof" });
});

test("Express middleware", async (t) => {
  const g = await guard();
  const app = express();
  app.get("/orders", g.express(), (req, res) => res.json(req.gatehouse));
  app.get("/admin", g.express(), g.requireRole("admin"), (req, res) => res.json({ ok: true }));
  app.get("/reports", g.express(), g.requirePermission("reports:read"), (req, res) => res.json({ ok: true }));
  app.get("/fresh", g.express(), g.requireRecentAuth(1), (req, res) => res.json({ ok: true }));
  const server = await new Promise((r) => { const s = app.listen(0, "127.0.0.1", () => r(s)); });
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  const u = await user();
  const get = (path, token) => fetch(base + path, { headers: token ? { Authorization: "Bearer " + token } : {} });
  let r = await get("/orders", u.access);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).sub, u.id);
  r = await get("/orders");
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate"), /^Bearer/);
  assert.equal((await r.json()).error, "invalid_token");
  r = await get("/orders?access_token=" + u.access);
  assert.equal(r.status, 400);
  assert.equal((await get("/admin", u.access)).status, 403);
  assert.equal((await get("/reports", u.access)).status, 403);
  await new Promise((res) => setTimeout(res, 1100));
  r = await get("/fresh", u.access);
  assert.equal(r.status, 401);
  assert.match(r.headers.get("www-authenticate"), /insufficient_user_authentication/);
});

test("Socket.IO: handshake auth.token, disconnected on a ban", async (t) => {
  const g = await guard();
  const server = http.createServer();
  const ioServer = new Server(server);
  ioServer.use(g.socketio());
  ioServer.on("connection", (s) => s.emit("hello", s.data.gatehouse.sub));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => ioServer.close());
  const url = `http://127.0.0.1:${server.address().port}`;
  const u = await user();
  // The query string is refused, even with a valid token.
  const viaQuery = connect(url, { query: { token: u.access }, transports: ["websocket"], reconnection: false });
  const refused = await new Promise((r) => viaQuery.on("connect_error", (e) => r(e.data?.error)));
  assert.equal(refused, "query_token_disabled");
  viaQuery.close();
  const client = connect(url, { auth: { token: u.access }, transports: ["websocket"], reconnection: false });
  assert.equal(await new Promise((r) => client.on("hello", r)), u.id);
  const closed = new Promise((r) => client.on("disconnect", () => r(Date.now())));
  const root = await admin();
  const start = Date.now();
  assert.equal((await call("PATCH", `/v1/admin/users/${u.id}`, { disabled: true }, root)).status, 200);
  const ms = (await closed) - start;
  assert.ok(ms < 1000, `disconnected after ${ms} ms`);
  console.log(`banned user's socket closed after ${ms} ms`);
  client.close();
});
