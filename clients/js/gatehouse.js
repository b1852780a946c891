// gatehouse.js — the browser client for Gatehouse. An ES module with no
// dependencies; the server serves this very file at GET /gatehouse.js.
//
// It uses the refresh-cookie transport: the refresh token lives only in an
// HttpOnly cookie that JavaScript cannot read, the access token only in this
// module's memory. Nothing is written to cookies, localStorage or
// sessionStorage. Across the tabs of one origin, at most one refresh runs at
// a time (Web Locks) and its result is shared (BroadcastChannel), so N tabs
// cost one refresh per access-token lifetime.
//
// With createClient({ dpop: true }) the session is bound to a key that never
// leaves the browser (DPoP, RFC 9449): a non-extractable P-256 key made by
// WebCrypto at sign-in, kept as a CryptoKey in IndexedDB for the origin's
// tabs (the one thing stored there), deleted at sign-out. Every Gatehouse
// call, gh.fetch and the socket carry a proof signed with it; the refresh
// cookie and the access token are then useless anywhere else.

const SESSION_ERRORS = {
  refresh_token_reused: "reused",
  session_expired: "expired",
  invalid_refresh_token: "expired",
  session_revoked: "revoked",
  account_disabled: "revoked",
  invalid_dpop_proof: "expired", // the session's DPoP key is gone (site data cleared)
};
const TOKEN_ERRORS = ["token_expired", "invalid_token", "token_revoked", "invalid_dpop_proof"];
const MAX_BACKOFF = 60000;
const SETTLE = 100;
// A request to Gatehouse that has not answered in this long is abandoned
// (and counts as a network failure, with back-off): one stalled request
// must not hold the cross-tab refresh lock, and every tab with it, forever.
const REQUEST_TIMEOUT = 15000;
// Waiting longer than this for another tab's refresh (a tab frozen while it
// held the lock) gives up the lock: this tab refreshes on its own, and the
// server's grace window reconciles the two.
const LOCK_TIMEOUT = 20000;

/** An API error: `code` is the server's `error` code (or `network_error`). */
export class GatehouseError extends Error {
  constructor(code, message, status, body) {
    super(message || code);
    this.name = "GatehouseError";
    this.code = code;
    this.status = status || 0;
    if (body && body.mfa_token) {
      this._mfaToken = body.mfa_token; // the login's ticket: kept by the client, not the app
      this.factors = body.factors || [];
    }
  }
}

// The WebAuthn calls: JSON options in, PublicKeyCredential.toJSON() out
// (Level 3's parse…FromJSON, in every current browser).
async function createCredential(options) {
  const cred = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
  return cred.toJSON();
}

async function getCredential(options) {
  const cred = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
  return cred.toJSON();
}

export function createClient(options) {
  return new Client(options || {});
}

// --- DPoP: the key and its proofs ---

const KEY_DB = "gatehouse-dpop";
const KEY_STORE = "keys";

const enc = new TextEncoder();

function b64url(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const b64json = (v) => b64url(enc.encode(JSON.stringify(v)));
const sha256 = async (s) => new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(s)));

// keyDB runs fn on the key store in one transaction; resolves its result.
// Any failure (no IndexedDB, private browsing) resolves undefined: the
// key then lives in this tab's memory only.
function keyDB(mode, fn) {
  return new Promise((resolve) => {
    let open;
    try {
      open = indexedDB.open(KEY_DB, 1);
    } catch {
      return resolve(undefined);
    }
    open.onupgradeneeded = () => open.result.createObjectStore(KEY_STORE);
    open.onerror = () => resolve(undefined);
    open.onsuccess = () => {
      const db = open.result;
      try {
        const tx = db.transaction(KEY_STORE, mode);
        const req = fn(tx.objectStore(KEY_STORE));
        tx.oncomplete = () => (db.close(), resolve(req.result));
        tx.onerror = tx.onabort = () => (db.close(), resolve(undefined));
      } catch {
        db.close();
        resolve(undefined);
      }
    };
  });
}

// newKey makes a P-256 key whose private half cannot be exported: script
// on the page can sign with it while the page is open, never copy it.
async function newKey() {
  const kp = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const pub = await crypto.subtle.exportKey("jwk", kp.publicKey);
  const jwk = { kty: "EC", crv: "P-256", x: pub.x, y: pub.y };
  const jkt = b64url(await sha256(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`));
  return { priv: kp.privateKey, jwk, jkt };
}

// proof signs a DPoP proof for method url (query and fragment dropped),
// with ath when a token is presented and the server's nonce when known.
async function proof(key, method, url, token, nonce) {
  const u = new URL(url);
  const claims = { jti: b64url(crypto.getRandomValues(new Uint8Array(16))), htm: method, htu: u.origin + u.pathname, iat: Math.floor(Date.now() / 1000) };
  if (token) claims.ath = b64url(await sha256(token));
  if (nonce) claims.nonce = nonce;
  const input = b64json({ typ: "dpop+jwt", alg: "ES256", jwk: key.jwk }) + "." + b64json(claims);
  // WebCrypto's ECDSA signature is r||s, the JWS form.
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.priv, enc.encode(input));
  return input + "." + b64url(sig);
}

// cnfOf is a token's cnf.jkt, "" for a bearer token.
function cnfOf(tok) {
  return claimsOf(tok).cnf?.jkt || "";
}

// claimsOf reads a token's claims ({} if it cannot): never trusted, only
// for the client's own bookkeeping (lifetime, key binding).
function claimsOf(tok) {
  try {
    return JSON.parse(atob(tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

class Client {
  constructor(o) {
    this.baseUrl = String(o.baseUrl || location.origin).replace(/\/+$/, "");
    this.user = null;
    this._fetch = o.fetch || globalThis.fetch.bind(globalThis);
    this._requestTimeout = o.requestTimeout > 0 ? o.requestTimeout : REQUEST_TIMEOUT;
    this._lockTimeout = o.lockTimeout > 0 ? o.lockTimeout : LOCK_TIMEOUT;
    this._token = null;
    this._exp = 0; // ms since the epoch
    this._ttl = 0;
    this._sid = null;
    this._handlers = {};
    this._inflight = null; // this tab's refresh, shared by its callers
    this._failures = 0;
    this._retryAt = 0;
    this._timer = 0;
    this._sockets = new Set();
    this._lock = "gatehouse-refresh " + this.baseUrl;
    this._dpop = !!o.dpop;
    if (this._dpop && !globalThis.crypto?.subtle) {
      // Refuse rather than quietly send bearer tokens the app asked to bind.
      throw new GatehouseError("dpop_unavailable", "DPoP needs WebCrypto, which browsers offer only in secure contexts (https:// or localhost)");
    }
    this._keyRec = null; // {priv, jwk, jkt}: the session's DPoP key
    this._pendingKey = null; // the key of a sign-in waiting for its second factor
    this._nonces = {}; // origin -> the DPoP-Nonce it last sent
    this._bc = typeof BroadcastChannel == "function" ? new BroadcastChannel("gatehouse " + this.baseUrl) : null;
    if (this._bc) this._bc.onmessage = (e) => this._onMessage(e.data || {});
    if (typeof document != "undefined") {
      const wake = () => {
        if (document.visibilityState != "hidden") this._wake();
      };
      document.addEventListener("visibilitychange", wake);
      addEventListener("online", wake);
      addEventListener("pageshow", wake);
    }
  }

  on(type, fn) {
    (this._handlers[type] ||= new Set()).add(fn);
    return () => this._handlers[type].delete(fn);
  }

  off(type, fn) {
    this._handlers[type]?.delete(fn);
  }

  _emit(type, arg) {
    for (const fn of this._handlers[type] || []) {
      try {
        fn(arg);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  async register(username, password) {
    return (await this._req("POST", "/v1/auth/register", { body: { username, password } })).user;
  }

  // login resolves to the User, or, for an account with a second factor,
  // to {mfaRequired: true, factors}: complete it with verifyMfa(code) or
  // verifyMfaWithPasskey() (no token exists until then).
  async login(username, password) {
    const key = await this._signInKey();
    let r;
    try {
      r = await this._req("POST", "/v1/auth/login", {
        body: { username, password },
        transport: true,
        key,
      });
    } catch (e) {
      if (e.code != "mfa_required") throw e;
      this._mfaToken = e._mfaToken;
      return { mfaRequired: true, factors: e.factors };
    }
    await this._signedIn(r, key);
    return this.user;
  }

  // _signInKey is a new key for a sign-in (one key per session), kept
  // until the second factor if one is asked for; null without DPoP.
  async _signInKey() {
    if (!this._dpop) return null;
    this._pendingKey = await newKey();
    return this._pendingKey;
  }

  // _signedIn adopts a sign-in's tokens and, with DPoP, its key: stored
  // for the other tabs and the next page load, replacing the last one.
  async _signedIn(r, key) {
    if (key) {
      this._keyRec = key;
      this._pendingKey = null;
      await keyDB("readwrite", (s) => s.put(key, this.baseUrl));
    }
    this._accept(r, "login");
  }

  // _key is the session's DPoP key: this tab's, or the one another tab
  // stored (after its sign-in), or null.
  async _key() {
    if (!this._dpop) return null;
    if (this._keyRec && (!this._jkt || this._keyRec.jkt == this._jkt)) return this._keyRec;
    this._keyRec = (await keyDB("readonly", (s) => s.get(this.baseUrl))) || this._keyRec;
    return this._keyRec;
  }

  // verifyMfa completes a login with a TOTP or a recovery code. A wrong
  // code rejects with invalid_mfa_code (try again); a dead ticket with
  // invalid_token (log in again).
  async verifyMfa(code) {
    return this._completeMfa({ code });
  }

  async verifyMfaWithPasskey() {
    const opts = await this._req("POST", "/v1/auth/mfa/webauthn/options", { body: { mfa_token: this._mfaPending() } });
    return this._completeMfa({ webauthn: await getCredential(opts) });
  }

  _mfaPending() {
    if (!this._mfaToken) throw new GatehouseError("invalid_token", "No sign-in is waiting for a second factor");
    return this._mfaToken;
  }

  async _completeMfa(answer) {
    const key = this._pendingKey;
    let r;
    try {
      r = await this._req("POST", "/v1/auth/mfa", { body: { mfa_token: this._mfaPending(), ...answer }, transport: true, key });
    } catch (e) {
      if (e.code == "invalid_token") this._mfaToken = null;
      throw e;
    }
    this._mfaToken = null;
    await this._signedIn(r, key);
    return this.user;
  }

  // loginWithPasskey signs in with a discoverable passkey, no password.
  async loginWithPasskey() {
    const opts = await this._req("POST", "/v1/auth/passkey/options", {});
    const key = await this._signInKey();
    const r = await this._req("POST", "/v1/auth/passkey", { body: { assertion: await getCredential(opts) }, transport: true, key });
    await this._signedIn(r, key);
    return this.user;
  }

  // --- second factors ---

  async factors() {
    const r = await this._authed("GET", "/v1/me/factors");
    return { factors: r.factors, recoveryCodesLeft: r.recovery_codes_left };
  }

  // enrollTotp starts a TOTP factor: show secret/otpauthUri, then
  // verifyFactor(factor.id, code) activates it.
  async enrollTotp(label) {
    const r = await this._authed("POST", "/v1/me/factors/totp", label ? { label } : {});
    return { factor: r.factor, secret: r.secret, otpauthUri: r.otpauth_uri };
  }

  // verifyFactor activates a pending factor; the account's first also
  // returns its recovery codes (shown once).
  async verifyFactor(id, code) {
    const r = await this._authed("POST", "/v1/me/factors/" + encodeURIComponent(id) + "/verify", { code });
    return { factor: r.factor, recoveryCodes: r.recovery_codes || null };
  }

  async enrollPasskey(label) {
    const opts = await this._authed("POST", "/v1/me/factors/webauthn/options", label ? { label } : {});
    const r = await this._authed("POST", "/v1/me/factors/webauthn", await createCredential(opts));
    return { factor: r.factor, recoveryCodes: r.recovery_codes || null };
  }

  async removeFactor(id) {
    await this._authed("DELETE", "/v1/me/factors/" + encodeURIComponent(id));
  }

  async regenerateRecoveryCodes() {
    return (await this._authed("POST", "/v1/me/recovery-codes")).recovery_codes;
  }

  // restore resumes a session after a page load: from another tab if one
  // holds a token, else with the refresh cookie. Resolves null when there is
  // no session, without a signedout event.
  async restore() {
    if (this._usable()) return this.user;
    if (await this._ask()) return this.user;
    try {
      await this._refresh(null);
      return this.user;
    } catch (e) {
      if (e.code in SESSION_ERRORS) return null;
      throw e;
    }
  }

  // fetch calls any API with the access token (Bearer, or DPoP with a
  // proof when the session is bound); on a 401 that says the token is bad
  // it refreshes once and retries, and on use_dpop_nonce it retries once
  // with the server's nonce. A body that is a stream cannot be sent twice:
  // pass a string, Blob, FormData or URLSearchParams.
  async fetch(input, init) {
    init = init || {};
    let tok = await this._valid();
    let res = await this._apiFetch(input, init, tok);
    if (res.status == 401 && (await isTokenFailure(res))) {
      tok = await this._refresh(tok);
      res = await this._apiFetch(input, init, tok);
    }
    return res;
  }

  async _apiFetch(input, init, tok) {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    const method = String(init.method || (input instanceof Request ? input.method : "GET")).toUpperCase();
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(init.headers);
      const key = cnfOf(tok) ? await this._key() : null;
      if (key) {
        headers.set("Authorization", "DPoP " + tok);
        headers.set("DPoP", await proof(key, method, url.href, tok, this._nonces[url.origin]));
      } else {
        headers.set("Authorization", "Bearer " + tok);
      }
      const res = await this._fetch(input, { ...init, headers });
      const nonce = res.headers.get("DPoP-Nonce");
      if (nonce) this._nonces[url.origin] = nonce;
      if (!key || attempt || res.status != 401 || !nonce || !/use_dpop_nonce/.test(res.headers.get("WWW-Authenticate") || "")) return res;
    }
  }

  // accessToken resolves to a live access token (refreshed if needed), for
  // transports this client does not wrap, such as a Socket.IO handshake's
  // auth. Use it at once; never store it.
  async accessToken() {
    return this._valid();
  }

  // reauthenticate is the step-up: reauthenticate(password), or
  // reauthenticate({password, code}), ({code}) or ({passkey: true}).
  async reauthenticate(proof) {
    let body = typeof proof == "string" ? { password: proof } : { ...proof };
    if (body.passkey) {
      const opts = await this._authed("POST", "/v1/auth/reauthenticate/webauthn/options");
      body = { webauthn: await getCredential(opts) };
    }
    const r = await this._authed("POST", "/v1/auth/reauthenticate", body);
    this._accept(r, "reauth");
    return this.user;
  }

  async sessions() {
    return (await this._authed("GET", "/v1/sessions")).sessions;
  }

  async revokeSession(id) {
    await this._authed("DELETE", "/v1/sessions/" + encodeURIComponent(id));
    if (id == this._sid) this._signOut("logout", true);
  }

  async logout() {
    let err = null;
    try {
      await this._req("POST", "/v1/auth/logout", { token: this._token });
    } catch (e) {
      err = e;
    }
    this._signOut("logout", true);
    if (err) throw err;
  }

  async logoutEverywhere() {
    await this._authed("DELETE", "/v1/sessions?scope=all");
    this._signOut("logout", true);
  }

  socket(path) {
    return new Socket(this, path || "/v1/ws");
  }

  // --- tokens ---

  // _usable: the token has some life left for the request's own latency
  // (2 s, or a twentieth of very short lifetimes).
  _usable() {
    return !!this._token && this._exp - Date.now() > Math.min(2000, this._ttl / 20);
  }

  // _margin is how long before expiry the proactive refresh starts: a
  // tenth of the lifetime, at most 30 s. Sockets re-authenticate then,
  // before the server would close them.
  _margin() {
    return Math.min(30000, this._ttl / 10);
  }

  async _valid() {
    if (this._usable()) return this._token;
    return this._refresh(this._token);
  }

  // _refresh returns a token newer than stale, refreshing only if no tab has
  // one yet. Within this tab, concurrent callers share one attempt; across
  // tabs the Web Lock makes the others wait and then find the new token,
  // broadcast by the tab that refreshed. That tab keeps the lock a moment
  // longer (SETTLE) so the broadcast is delivered before the next tab in
  // line looks: its callers have their token already.
  _refresh(stale) {
    if (this._token && this._token != stale && this._usable()) return Promise.resolve(this._token);
    if (!this._inflight) {
      this._inflight = new Promise((resolve, reject) => {
        const run = async () => {
          try {
            const did = await this._refreshLocked(stale);
            resolve(this._token);
            if (did) await new Promise((r) => setTimeout(r, SETTLE));
          } catch (e) {
            reject(e);
          }
        };
        (navigator.locks ? this._locked(run) : run()).catch(reject);
      }).finally(() => (this._inflight = null));
    }
    return this._inflight;
  }

  // _locked runs fn under the cross-tab refresh lock, waiting at most
  // lockTimeout for it; past that, without it.
  async _locked(fn) {
    const signal = timeoutSignal(this._lockTimeout);
    let granted = false;
    try {
      return await navigator.locks.request(this._lock, { signal }, () => {
        granted = true;
        return fn();
      });
    } catch (e) {
      if (granted || !signal.aborted) throw e;
      return fn(); // the wait timed out: fn has not run
    }
  }

  // _refreshLocked runs under the lock; it reports whether it refreshed.
  async _refreshLocked(stale) {
    if (this._token && this._token != stale && this._usable()) return false; // another tab did it
    if (Date.now() < this._retryAt) throw new GatehouseError("network_error", "refresh backing off after a failure");
    let r;
    try {
      r = await this._req("POST", "/v1/auth/refresh", { transport: true });
    } catch (e) {
      const reason = SESSION_ERRORS[e.code];
      if (reason) {
        if (this.user) this._signOut(reason, true);
      } else {
        // Network, 5xx, 429: back off, exponentially with jitter, in every tab.
        const d = Math.min(MAX_BACKOFF, 1000 * 2 ** this._failures++) * (0.5 + Math.random() / 2);
        this._retryAt = Date.now() + d;
        this._post({ t: "backoff", until: this._retryAt });
        this._schedule();
      }
      throw e;
    }
    this._accept(r, "refresh");
    return true;
  }

  _accept(r, why) {
    const ttl = r.expires_in * 1000;
    this._set(r.access_token, Date.now() + remaining(r.access_token, ttl), ttl, r.user, r.session_id);
    this._post({ t: "token", token: this._token, exp: this._exp, ttl: this._ttl, user: this.user, sid: this._sid, why });
    this._after(why);
  }

  _set(token, exp, ttl, user, sid) {
    this._token = token;
    this._jkt = cnfOf(token);
    this._exp = exp;
    this._ttl = ttl;
    this.user = user;
    this._sid = sid;
    this._failures = 0;
    this._retryAt = 0;
    this._schedule();
  }

  _after(why) {
    for (const s of this._sockets) s._reauth();
    this._emit(why == "login" ? "signedin" : "refreshed", this.user);
  }

  _schedule() {
    clearTimeout(this._timer);
    if (!this._token) return;
    const at = Math.max(this._exp - this._margin(), this._retryAt);
    this._timer = setTimeout(() => this._wake(), Math.max(0, at - Date.now()));
  }

  // _wake refreshes ahead of expiry: from the timer, and when a tab becomes
  // visible or the network returns (timers stall in sleeping tabs).
  _wake() {
    if (!this._token) return;
    if (this._exp - Date.now() > this._margin()) return this._schedule();
    this._refresh(this._token).catch(() => {});
  }

  _signOut(reason, broadcast) {
    const had = !!this.user;
    clearTimeout(this._timer);
    if (this._dpop) {
      this._keyRec = null;
      // The tab that ends the session deletes its key for every tab.
      if (broadcast) keyDB("readwrite", (s) => s.delete(this.baseUrl));
    }
    this._token = null;
    this._exp = 0;
    this.user = null;
    this._sid = null;
    if (broadcast) this._post({ t: "signedout", reason });
    for (const s of this._sockets) s._end(4003, "signed out");
    if (had) this._emit("signedout", reason);
  }

  // --- other tabs ---

  _post(m) {
    try {
      this._bc?.postMessage(m);
    } catch {}
  }

  _onMessage(m) {
    switch (m.t) {
      case "token":
        if (m.exp > this._exp || m.sid != this._sid) {
          this._set(m.token, m.exp, m.ttl, m.user, m.sid);
          this._after(m.why);
        }
        break;
      case "signedout":
        if (this.user || this._token) this._signOut(m.reason, false);
        break;
      case "need":
        if (this._usable()) this._post({ t: "token", token: this._token, exp: this._exp, ttl: this._ttl, user: this.user, sid: this._sid, why: "refresh" });
        break;
      case "backoff":
        this._retryAt = Math.max(this._retryAt, m.until);
        this._schedule();
    }
  }

  // _ask asks the other tabs for a live token; resolves true if one came.
  _ask() {
    if (!this._bc) return Promise.resolve(false);
    return new Promise((resolve) => {
      const off = this.on("refreshed", () => done(true));
      const timer = setTimeout(() => done(false), 150);
      const done = (v) => {
        off();
        clearTimeout(timer);
        resolve(v);
      };
      this._post({ t: "need" });
    });
  }

  // --- HTTP ---

  async _authed(method, path, body) {
    let tok = await this._valid();
    try {
      return await this._req(method, path, { body, token: tok, transport: true });
    } catch (e) {
      if (!TOKEN_ERRORS.includes(e.code)) throw e;
      tok = await this._refresh(tok);
      return this._req(method, path, { body, token: tok, transport: true });
    }
  }

  // _req calls Gatehouse. With DPoP every call carries a proof by the
  // session's key (o.key for a sign-in), a bound token goes as DPoP, and a
  // use_dpop_nonce answer is retried once with the nonce it brings.
  async _req(method, path, o) {
    const key = o.key !== undefined ? o.key : await this._key();
    const bound = !!o.token && !!key && cnfOf(o.token) == key.jkt;
    for (let attempt = 0; ; attempt++) {
      const headers = {};
      if (o.body !== undefined) headers["Content-Type"] = "application/json";
      if (o.token) headers.Authorization = (bound ? "DPoP " : "Bearer ") + o.token;
      if (o.transport) headers["Gatehouse-Transport"] = "refresh-cookie";
      if (key) headers.DPoP = await proof(key, method, this.baseUrl + path, bound ? o.token : null, this._nonces[this.baseUrl]);
      let res;
      const signal = timeoutSignal(this._requestTimeout); // covers the body too
      try {
        res = await this._fetch(this.baseUrl + path, {
          method,
          headers,
          body: o.body === undefined ? undefined : JSON.stringify(o.body),
          credentials: "include",
          cache: "no-store",
          signal,
        });
      } catch (e) {
        if (signal.aborted) throw new GatehouseError("network_error", "Gatehouse did not answer in " + this._requestTimeout + " ms");
        throw new GatehouseError("network_error", e && e.message);
      }
      const nonce = res.headers.get("DPoP-Nonce");
      if (nonce) this._nonces[this.baseUrl] = nonce;
      if (res.status == 204) return null;
      let data = null;
      try {
        data = await res.json();
      } catch {
        if (signal.aborted) throw new GatehouseError("network_error", "Gatehouse did not answer in " + this._requestTimeout + " ms");
      }
      if (!res.ok) {
        if (key && !attempt && nonce && data && data.error == "use_dpop_nonce") continue;
        throw new GatehouseError((data && data.error) || "http_" + res.status, data && data.error_description, res.status, data);
      }
      return data;
    }
  }
}

// timeoutSignal is AbortSignal.timeout where the browser has it.
function timeoutSignal(ms) {
  if (typeof AbortSignal.timeout == "function") return AbortSignal.timeout(ms);
  const c = new AbortController();
  setTimeout(() => c.abort(new DOMException("timed out", "TimeoutError")), ms);
  return c.signal;
}

// remaining is how long a fresh token lives, from its own claims (iat and
// exp carry microseconds; expires_in is rounded up to whole seconds, and a
// token capped by its session's end lives less): exp - iat needs no
// agreement between the two clocks.
function remaining(tok, fallback) {
  const c = claimsOf(tok);
  const ms = (c.exp - c.iat) * 1000;
  return ms > 0 && ms <= fallback ? ms : fallback;
}

async function isTokenFailure(res) {
  if (/error="?invalid_token/.test(res.headers.get("WWW-Authenticate") || "")) return true;
  try {
    return TOKEN_ERRORS.includes((await res.clone().json()).error);
  } catch {
    return false;
  }
}

// Socket is a WebSocket-like connection to a Gatehouse socket endpoint. It
// authenticates with its first message (never the URL), re-authenticates
// in-band after every refresh, reconnects after a drop, and turns a 4003
// close (session revoked) into a signedout event in every tab.
class Socket extends EventTarget {
  constructor(client, path) {
    super();
    this._c = client;
    this.url = client.baseUrl.replace(/^http/, "ws") + path;
    this._closed = false;
    this._tries = 0;
    this.readyState = 0;
    client._sockets.add(this);
    this._open();
  }

  async _open() {
    let tok;
    try {
      tok = await this._c._valid();
    } catch (e) {
      return this._fail(e);
    }
    if (this._closed) return;
    const ws = (this._ws = new WebSocket(this.url));
    ws.onopen = async () => {
      const at = this._c._token || tok;
      const msg = { type: "auth", access_token: at };
      const key = cnfOf(at) ? await this._c._key() : null;
      if (key) msg.dpop = await proof(key, "GET", this.url, at, this._c._nonces[this._c.baseUrl]);
      if (ws.readyState != 1) return;
      ws.send(JSON.stringify(msg));
      this.readyState = 1;
      this.dispatchEvent(new Event("open"));
    };
    ws.onmessage = (e) => {
      if (String(e.data).startsWith('{"type":"hello"')) this._tries = 0;
      this.dispatchEvent(new MessageEvent("message", { data: e.data }));
    };
    ws.onclose = (e) => this._onClose(e);
  }

  async _onClose(e) {
    this._ws = null;
    if (this._closed) return;
    if (e.code == 4003) {
      this._c._signOut("revoked", true);
    } else if (e.code == 4001 || e.code == 1006 || e.code == 1011 || e.code == 1012 || e.code == 1013) {
      // 4001: the token expired on the socket (a sleeping tab missed its
      // refresh). Refresh; if the session is gone that signs out, else
      // reconnect, backing off after drops.
      this.readyState = 0;
      const wait = Math.min(MAX_BACKOFF, 500 * 2 ** this._tries++);
      try {
        if (e.code == 4001) await this._c._refresh(this._c._token);
        await new Promise((r) => setTimeout(r, e.code == 4001 ? 0 : wait));
      } catch (err) {
        return this._fail(err, e);
      }
      if (!this._closed && this._c.user) return this._open();
    }
    this._end(e.code, e.reason);
  }

  _fail(err, e) {
    this._end(e ? e.code : 4001, err.code || "");
  }

  _end(code, reason) {
    if (this._closed && this.readyState == 3) return;
    this._closed = true;
    this.readyState = 3;
    this._c._sockets.delete(this);
    if (this._ws) this._ws.close(1000);
    this._ws = null;
    this.dispatchEvent(new CloseEvent("close", { code, reason, wasClean: true }));
  }

  _reauth() {
    if (this._ws && this._ws.readyState == 1) this._ws.send(JSON.stringify({ type: "reauth", access_token: this._c._token }));
  }

  send(data) {
    if (!this._ws || this._ws.readyState != 1) throw new DOMException("socket is not open", "InvalidStateError");
    this._ws.send(data);
  }

  close(code, reason) {
    this._end(code || 1000, reason || "");
  }
}
