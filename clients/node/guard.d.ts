// Type declarations for @gatehouse-auth/guard.

export interface GuardOptions {
  /** Gatehouse's --issuer, e.g. "https://auth.example.com". */
  issuer: string;
  /** Where to fetch the JWKS and the revocation feed, when not the issuer (an internal address). */
  baseUrl?: string;
  /** A resource key or client secret (sent as Bearer)... */
  resourceKey?: string;
  /** ...or a registered client's id and secret (client_secret_basic). */
  clientId?: string;
  clientSecret?: string;
  /** Refuse tokens whose aud does not name this API. */
  audience?: string;
  /** This server's public base URL: DPoP proofs name it (behind a proxy the request's own URL differs). */
  url?: string;
  /** Milliseconds the feed may be silent before every token is refused (default 30000). */
  maxStaleness?: number;
  fetch?: typeof fetch;
}

export interface Claims {
  issuer: string;
  /** The user id, or a service client's id. */
  sub: string;
  subject: string;
  sid: string;
  jti: string;
  role: string;
  permissions: string[];
  audience: string[];
  /** "gatehouse" for sign-ins, a service client's id for its own tokens. */
  clientId: string;
  /** "aal1", or "aal2" for two factors. */
  acr: string;
  amr: string[];
  /** When the person last proved who they are (seconds), 0 if unknown. */
  authTime: number;
  iat: number;
  exp: number;
  /** The DPoP key a bound token is tied to. */
  cnf: { jkt: string } | null;
}

/** Every refusal: code is Gatehouse's error code, status the HTTP status to answer with. */
export class GuardError extends Error {
  readonly code: "invalid_token" | "token_expired" | "token_revoked" | "unavailable" | "invalid_dpop_proof" | "query_token_disabled" | "forbidden" | "insufficient_user_authentication";
  readonly status: number;
}

export interface VerifyRequest {
  /** The Authorization scheme used, lower case ("bearer" or "dpop"). */
  scheme?: string;
  /** The DPoP header, for a DPoP-bound token. */
  dpopProof?: string;
  method?: string;
  /** The request's public URL (query ignored). */
  url?: string;
}

export interface Guard {
  /** Verifies a token locally and against the revocation state; rejects with GuardError. */
  verify(token: string, req?: VerifyRequest): Promise<Claims>;
  /** Calls onRevoked once when the token's session, user or everyone is revoked, or it expires. */
  watch(claims: Claims, onRevoked: (why: "revoked" | "expired") => void): () => void;
  /** True when the feed has been silent for longer than maxStaleness (every token is refused). */
  readonly stale: boolean;
  /** Express middleware: req.gatehouse holds the claims. */
  express(): (req: any, res: any, next: (err?: any) => void) => void;
  requireRole(role: string): (req: any, res: any, next: () => void) => void;
  requirePermission(permission: string): (req: any, res: any, next: () => void) => void;
  /** RFC 9470 step-up: 401 insufficient_user_authentication with max_age unless auth_time is recent. */
  requireRecentAuth(maxAgeSeconds: number): (req: any, res: any, next: () => void) => void;
  /** Socket.IO middleware: socket.handshake.auth.token, claims in socket.data.gatehouse, disconnected on revocation. */
  socketio(): (socket: any, next: (err?: Error) => void) => void;
  /** Stops following the feed. */
  close(): void;
}

export function createGuard(options: GuardOptions): Promise<Guard>;
