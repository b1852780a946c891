// Type declarations for gatehouse.js, the Gatehouse browser client.

export interface User {
  id: string;
  username: string;
  role: string;
  permissions?: string[];
  disabled: boolean;
  /** The account has an active second factor. */
  mfa: boolean;
  created_at: string;
}

export interface Session {
  id: string;
  created_at: string;
  last_used_at: string;
  idle_expires_at: string;
  expires_at: string;
  ip: string;
  user_agent: string;
  /** The device read from user_agent ("Firefox 128 on Linux"); "" when not recognised. */
  device: string;
  current: boolean;
}

/** Why the session ended, as reported in every tab of the origin. */
export type SignedOutReason = "logout" | "revoked" | "expired" | "reused";

export interface AccessTokenSource {
  /**
   * A live access token (refreshed if needed), for transports the client does
   * not wrap, such as a Socket.IO handshake's `auth`. Use it at once; never store it.
   */
  accessToken(): Promise<string>;
}

export interface ClientOptions {
  /** Gatehouse's base URL, e.g. "https://auth.example.com". Default: the page's origin. */
  baseUrl?: string;
  /** The fetch implementation (tests). Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /**
   * Milliseconds after which a request to Gatehouse is abandoned and fails
   * with `network_error` (then backs off). Default 15000.
   */
  requestTimeout?: number;
  /**
   * Milliseconds to wait for another tab's refresh (the cross-tab lock);
   * past it this tab refreshes without the lock. Default 20000.
   */
  lockTimeout?: number;
  /**
   * Bind the session to a key of this browser (DPoP, RFC 9449): a
   * non-extractable P-256 key made at sign-in, kept in IndexedDB for the
   * origin's tabs and deleted at sign-out; every Gatehouse call, `fetch` and
   * the socket carry a proof signed with it, so a stolen refresh cookie or
   * access token is useless elsewhere. Needs a secure context (https: or
   * localhost): createClient throws `dpop_unavailable` without WebCrypto.
   * `baseUrl` must be Gatehouse's public URL (its `--issuer`). Default false.
   */
  dpop?: boolean;
}

/** Every rejection: `code` is the API's `error` code, or `network_error`. */
export class GatehouseError extends Error {
  readonly code: string;
  /** HTTP status, 0 for network failures. */
  readonly status: number;
}

/** A WebSocket-like connection authenticated by its first message. */
export interface GatehouseSocket extends EventTarget {
  readonly url: string;
  /** 0 connecting, 1 open, 3 closed (as WebSocket). */
  readonly readyState: number;
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open", listener: (ev: Event) => void): void;
  addEventListener(type: "message", listener: (ev: MessageEvent<string>) => void): void;
  addEventListener(type: "close", listener: (ev: CloseEvent) => void): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null): void;
}

export interface Factor {
  id: string;
  type: "totp" | "webauthn";
  label: string;
  created_at: string;
  last_used_at: string | null;
  active: boolean;
}

export interface MFAChallenge {
  mfaRequired: true;
  factors: { id: string; type: "totp" | "webauthn"; label: string }[];
}

export interface Client extends AccessTokenSource {
  /** The signed-in user, or null. */
  readonly user: User | null;
  readonly baseUrl: string;
  register(username: string, password: string): Promise<User>;
  /** The User, or, for an account with a second factor, a challenge to complete with verifyMfa or verifyMfaWithPasskey. */
  login(username: string, password: string): Promise<User | MFAChallenge>;
  /** Complete a login with a TOTP or recovery code (invalid_mfa_code: try again; invalid_token: log in again). */
  verifyMfa(code: string): Promise<User>;
  /** Complete a login with a passkey. */
  verifyMfaWithPasskey(): Promise<User>;
  /** Sign in with a discoverable passkey, no password. */
  loginWithPasskey(): Promise<User>;
  factors(): Promise<{ factors: Factor[]; recoveryCodesLeft: number }>;
  /** Start a TOTP factor (step-up); activate it with verifyFactor. */
  enrollTotp(label?: string): Promise<{ factor: Factor; secret: string; otpauthUri: string }>;
  /** Activate a pending factor; the first also returns ten recovery codes, shown once. */
  verifyFactor(id: string, code: string): Promise<{ factor: Factor; recoveryCodes: string[] | null }>;
  /** Register a passkey (step-up). */
  enrollPasskey(label?: string): Promise<{ factor: Factor; recoveryCodes: string[] | null }>;
  /** Remove a factor (step-up with the second factor); other sessions are revoked. */
  removeFactor(id: string): Promise<void>;
  regenerateRecoveryCodes(): Promise<string[]>;
  /** Resume after a page load (another tab's token, else the refresh cookie); null when signed out. */
  restore(): Promise<User | null>;
  /** fetch with the Bearer token; refreshes once and retries when the token is refused. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Step-up: prove the password (and/or a code, or a passkey) again; new access token with auth_time = now. */
  reauthenticate(proof: string | { password?: string; code?: string } | { passkey: true }): Promise<User>;
  sessions(): Promise<Session[]>;
  revokeSession(id: string): Promise<void>;
  /** End this session; every tab of the origin signs out. */
  logout(): Promise<void>;
  /** End every session of the user (may need reauthenticate first). */
  logoutEverywhere(): Promise<void>;
  socket(path?: string): GatehouseSocket;
  on(type: "signedout", fn: (reason: SignedOutReason) => void): () => void;
  on(type: "refreshed" | "signedin", fn: (user: User) => void): () => void;
  off(type: string, fn: (...args: any[]) => void): void;
}

export function createClient(options?: ClientOptions): Client;
