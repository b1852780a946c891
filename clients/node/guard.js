// @gatehouse-auth/guard — verify Gatehouse access tokens in Node, with the
// Go guard's semantics: tokens are verified locally (the JWKS, the key's own
// algorithm, issuer, typ at+jwt, expiry, audience), and the revocation feed
// is followed by long poll, so a logout, ban, role change or revoke-all is
// refused within a second. It fails closed: if the feed has not answered
// for longer than maxStaleness, every token is refused ("unavailable").
//
// Cut-offs are compared at the nanosecond precision the feed carries and
// tokens' iat at its microseconds (BigInt: a JavaScript Date holds only
// milliseconds, which would let a token issued in the same millisecond as a
// ban through, or refuse one issued just after).
import { createHash } from "node:crypto";
import * as jose from "jose";

const ALGORITHMS = ["EdDSA", "ES256", "RS256"];
const DPOP_ALGORITHMS = ["ES256", "EdDSA"];
const DPOP_WINDOW = 60; // seconds either way
const MAX_JTIS = 1 << 20;

/** Every refusal: `code` is Gatehouse's error code; `status` the HTTP status to answer. */
export class GuardError extends Error {
  constructor(code, message, status = 401) {
    super(message);
    this.name = "GuardError";
    this.code = code;
    this.status = status;
  }
}

/** createGuard fetches the JWKS and a revocation snapshot, then follows the feed until close(). */
export async function createGuard(options) {
  const g = new Guard(options || {});
  await g._start();
  return g;
}

// ns is a feed time (RFC 3339 with up to nine fractional digits) in
// nanoseconds since the epoch.
function ns(rfc3339) {
  const m = /^(.*?T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(rfc3339);
  if (!m) throw new Error("bad feed time " + rfc3339);
  const secs = BigInt(Date.parse(m[1] + m[3])) / 1000n;
  return secs * 1_000_000_000n + BigInt((m[2] || "").padEnd(9, "0"));
}

// iatNs is a token's iat in nanoseconds, read from the token's own JSON
// text: as a JavaScript number it would lose its microseconds.
function iatNs(token) {
  const json = Buffer.from(token.split(".")[1], "base64url").toString();
  const m = /"iat":(\d+)(?:\.(\d{1,9}))?[,}]/.exec(json);
  if (!m) throw new GuardError("invalid_token", "The access token is invalid.");
  return BigInt(m[1]) * 1_000_000_000n + BigInt((m[2] || "").padEnd(9, "0"));
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n;

class Guard {
  constructor(o) {
    if (!o.issuer) throw new TypeError("createGuard: issuer is required");
    if (!o.resourceKey && !(o.clientId && o.clientSecret)) throw new TypeError("createGuard: resourceKey, or clientId and clientSecret, is required");
    this.issuer = o.issuer;
    this.base = String(o.baseUrl || o.issuer).replace(/\/+$/, "");
    this.audience = o.audience || null;
    this.url = o.url ? String(o.url).replace(/\/+$/, "") : null; // this server's public URL, for DPoP
    this.maxStaleness = o.maxStaleness > 0 ? o.maxStaleness : 30000;
    this._fetch = o.fetch || globalThis.fetch;
    this._auth = o.resourceKey ? "Bearer " + o.resourceKey
      : "Basic " + Buffer.from(encodeURIComponent(o.clientId) + ":" + encodeURIComponent(o.clientSecret)).toString("base64");
    this._jwks = jose.createRemoteJWKSet(new URL(this.base + "/.well-known/jwks.json"), { cooldownDuration: 10000 });
    this._sessions = new Map(); // sid -> until (ns)
    this._users = new Map(); // sub -> not-before (ns)
    this._global = 0n;
    this._cursor = null;
    this._lastContact = 0;
    this._stop = new AbortController();
    this._watchers = new Set(); // {claims, iat, onRevoked}
    this._jtis = new Map(); // DPoP jti -> expiry (ms)
  }

  async _start() {
    await this._poll(0);
    this._loop = this._follow();
  }

  /** close stops following the feed (pending verifications then fail closed). */
  close() {
    this._stop.abort();
    for (const w of this._watchers) clearTimeout(w.timer);
    this._watchers.clear();
  }

  async _follow() {
    let delay = 0;
    while (!this._stop.signal.aborted) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      try {
        await this._poll(Math.max(1, Math.min(25, Math.floor(this.maxStaleness / 3000))));
        delay = 0;
      } catch {
        // Retry soon: while the feed is silent every token is refused.
        delay = Math.min(1000, (delay || 125) * 2);
      }
    }
  }

  async _poll(waitSeconds) {
    const q = this._cursor === null ? "" : `?since=${this._cursor}&wait=${waitSeconds}s`;
    const res = await this._fetch(this.base + "/v1/revocations" + q, {
      headers: { Authorization: this._auth },
      signal: AbortSignal.any([this._stop.signal, AbortSignal.timeout((waitSeconds + 10) * 1000)]),
    });
    if (!res.ok) throw new Error("revocation feed: HTTP " + res.status);
    const page = await res.json();
    if (this._cursor === null) {
      this._sessions.clear();
      this._users.clear();
      this._global = 0n;
    }
    for (const s of page.sessions || []) this._sessions.set(s.sid, ns(s.exp));
    for (const u of page.users || []) {
      const nb = ns(u.not_before);
      if (!(this._users.get(u.user_id) >= nb)) this._users.set(u.user_id, nb);
    }
    if (page.global_not_before) {
      const g = ns(page.global_not_before);
      if (g > this._global) this._global = g;
    }
    this._cursor = page.cursor;
    this._lastContact = Date.now();
    this._prune();
    for (const w of this._watchers) if (this._revoked(w.claims.sid, w.claims.sub, w.iat)) w.onRevoked("revoked");
  }

  _prune() {
    const now = nowNs();
    for (const [sid, until] of this._sessions) if (until <= now) this._sessions.delete(sid);
    const ms = Date.now();
    for (const [jti, exp] of this._jtis) if (exp <= ms) this._jtis.delete(jti);
  }

  _revoked(sid, sub, iat) {
    const until = this._sessions.get(sid);
    if (until !== undefined && until > nowNs()) return true;
    const u = this._users.get(sub) || 0n;
    const nb = u > this._global ? u : this._global;
    return iat < nb;
  }

  /** stale reports whether the feed has been silent for longer than maxStaleness. */
  get stale() {
    return Date.now() - this._lastContact > this.maxStaleness;
  }

  /**
   * verify checks an access token and returns its claims. A DPoP-bound token
   * (cnf.jkt) needs { dpopProof, method, url }: a proof by its key for this
   * request. Throws GuardError.
   */
  async verify(token, req = {}) {
    if (this.stale) throw new GuardError("unavailable", "Token revocation status is unknown; retry shortly.", 503);
    if (typeof token !== "string" || token.length > 4096 || token.split(".").length !== 3) {
      throw new GuardError("invalid_token", "The access token is invalid.");
    }
    let payload;
    try {
      ({ payload } = await jose.jwtVerify(token, this._jwks, {
        issuer: this.issuer, typ: "at+jwt", algorithms: ALGORITHMS, clockTolerance: 0,
        requiredClaims: ["sub", "sid", "jti", "iat", "exp"],
        ...(this.audience ? { audience: this.audience } : {}),
      }));
    } catch (e) {
      if (e && e.code === "ERR_JWT_EXPIRED") throw new GuardError("token_expired", "The access token has expired.");
      throw new GuardError("invalid_token", "The access token is invalid.");
    }
    if (typeof payload.role !== "string" || !payload.role) throw new GuardError("invalid_token", "The access token is invalid.");
    // jose compares exp with whole seconds; Gatehouse's exp carries
    // microseconds and a token lives exactly its lifetime.
    if (payload.exp * 1000 <= Date.now()) throw new GuardError("token_expired", "The access token has expired.");
    const iat = iatNs(token);
    if (this._revoked(payload.sid, payload.sub, iat)) throw new GuardError("token_revoked", "The access token has been revoked.");
    if (payload.cnf?.jkt) await this._checkProof(token, payload.cnf.jkt, req);
    else if (req.scheme === "dpop") throw new GuardError("invalid_dpop_proof", "This access token is not DPoP-bound: send it as Bearer.");
    return toClaims(payload, iat);
  }

  // _checkProof verifies a DPoP proof (RFC 9449) for a bound token: typ,
  // algorithm, a public embedded key whose thumbprint is cnf.jkt, htm and
  // htu of this request, ath of this token, a fresh iat, an unseen jti.
  async _checkProof(token, jkt, req) {
    const fail = (why) => new GuardError("invalid_dpop_proof", "Invalid DPoP proof: " + why + ".");
    if (req.scheme && req.scheme !== "dpop") throw fail("the access token is DPoP-bound: send it as Authorization: DPoP with a proof");
    if (!req.dpopProof || !req.method || !req.url) throw fail("a proof by the token's key is required");
    let payload, protectedHeader;
    try {
      ({ payload, protectedHeader } = await jose.jwtVerify(req.dpopProof, jose.EmbeddedJWK, { typ: "dpop+jwt", algorithms: DPOP_ALGORITHMS }));
    } catch {
      throw fail("its signature, header or claims are invalid");
    }
    if ((await jose.calculateJwkThumbprint(protectedHeader.jwk, "sha256")) !== jkt) throw fail("it was made with another key than the token is bound to");
    const u = new URL(req.url);
    const htu = URL.canParse(payload.htu) ? new URL(payload.htu) : null;
    if (payload.htm !== req.method || !htu || htu.origin !== u.origin || htu.pathname !== u.pathname) throw fail("htm or htu is not this request's");
    if (payload.ath !== createHash("sha256").update(token).digest("base64url")) throw fail("ath is not the token's hash");
    if (typeof payload.iat !== "number" || Math.abs(payload.iat - Date.now() / 1000) > DPOP_WINDOW) throw fail("iat is not within 60 seconds");
    if (typeof payload.jti !== "string" || !payload.jti || payload.jti.length > 256) throw fail("jti is missing");
    const key = jkt + " " + payload.jti;
    if (this._jtis.has(key)) throw fail("replayed");
    if (this._jtis.size >= MAX_JTIS) throw fail("too many proofs in flight, retry");
    this._jtis.set(key, Date.now() + 4 * DPOP_WINDOW * 1000);
  }

  // watch calls onRevoked once when the token's session, user or everyone
  // is revoked, or when it expires; returns a function that stops watching.
  watch(claims, onRevoked) {
    const w = { claims, iat: claims._iatNs, onRevoked: null };
    const stop = () => {
      clearTimeout(w.timer);
      this._watchers.delete(w);
    };
    w.onRevoked = (why) => {
      stop();
      onRevoked(why);
    };
    w.timer = setTimeout(() => w.onRevoked("expired"), Math.max(0, claims.exp * 1000 - Date.now()));
    this._watchers.add(w);
    return stop;
  }

  /** express returns middleware that puts the claims in req.gatehouse. */
  express() {
    return async (req, res, next) => {
      try {
        if (req.query && ("access_token" in req.query || "token" in req.query)) {
          throw new GuardError("query_token_disabled", "Tokens are not accepted in the query string.", 400);
        }
        const [scheme, token] = (req.headers.authorization || "").split(" ");
        const s = (scheme || "").toLowerCase();
        if (!token || (s !== "bearer" && s !== "dpop")) throw new GuardError("invalid_token", "An access token is required.");
        const url = (this.url || `${req.protocol}://${req.get("host")}`) + req.originalUrl.split("?")[0];
        req.gatehouse = await this.verify(token, { scheme: s, dpopProof: req.headers.dpop, method: req.method, url });
        next();
      } catch (e) {
        sendError(res, e);
      }
    };
  }

  /** requireRole, requirePermission and requireRecentAuth go after express(). */
  requireRole(role) {
    return (req, res, next) => req.gatehouse?.role === role ? next()
      : sendError(res, new GuardError("forbidden", `This needs the ${role} role.`, 403));
  }

  requirePermission(permission) {
    return (req, res, next) => req.gatehouse?.permissions.includes(permission) ? next()
      : sendError(res, new GuardError("forbidden", `This needs the ${permission} permission.`, 403));
  }

  requireRecentAuth(maxAgeSeconds) {
    return (req, res, next) => {
      const t = req.gatehouse?.authTime;
      if (t && Date.now() / 1000 - t <= maxAgeSeconds) return next();
      res.set("WWW-Authenticate", `Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age=${maxAgeSeconds}`);
      sendError(res, new GuardError("insufficient_user_authentication", "This needs a recent sign-in: re-authenticate, then retry."));
    };
  }

  /**
   * socketio returns Socket.IO middleware: the handshake's auth.token (never
   * the query string) is verified, the claims are in socket.data.gatehouse,
   * and the socket is disconnected when its session is revoked, its user
   * banned or changed, on revoke-all, or when the token expires.
   */
  socketio() {
    return async (socket, next) => {
      try {
        const q = socket.handshake.query || {};
        if ("access_token" in q || "token" in q) throw new GuardError("query_token_disabled", "Tokens are not accepted in the query string.", 400);
        const token = socket.handshake.auth?.token;
        if (!token) throw new GuardError("invalid_token", "An access token is required in auth.token.");
        const claims = await this.verify(token, { dpopProof: socket.handshake.auth?.dpop, method: "GET", url: this.url ? this.url + "/socket.io/" : undefined });
        socket.data.gatehouse = claims;
        const stop = this.watch(claims, (why) => {
          socket.emit("gatehouse:revoked", why);
          socket.disconnect(true);
        });
        socket.on("disconnect", stop);
        next();
      } catch (e) {
        const err = new Error(e.message);
        err.data = { error: e.code || "invalid_token" };
        next(err);
      }
    };
  }
}

function toClaims(p, iat) {
  const c = {
    issuer: p.iss, subject: p.sub, sub: p.sub, sid: p.sid, jti: p.jti, role: p.role,
    permissions: Array.isArray(p.permissions) ? p.permissions : [],
    audience: p.aud === undefined ? [] : [].concat(p.aud), clientId: p.client_id || "gatehouse",
    acr: p.acr || "aal1", amr: p.amr || [], authTime: p.auth_time || 0,
    iat: p.iat, exp: p.exp, cnf: p.cnf || null,
  };
  // The exact iat, for watch(); not enumerable, so the claims stay JSON.
  Object.defineProperty(c, "_iatNs", { value: iat });
  return c;
}

function sendError(res, e) {
  const code = e instanceof GuardError ? e.code : "invalid_token";
  const status = e instanceof GuardError ? e.status : 401;
  if (status === 401 && !res.get?.("WWW-Authenticate")) {
    res.set?.("WWW-Authenticate", code === "invalid_dpop_proof" ? 'DPoP error="invalid_token", algs="ES256 EdDSA"' : 'Bearer error="invalid_token"');
  }
  if (status === 503) res.set?.("Retry-After", "1");
  res.status(status).json({ error: code, error_description: e instanceof GuardError ? e.message : "The access token is invalid." });
}
