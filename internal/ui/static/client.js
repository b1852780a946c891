// The Gatehouse client this UI runs on, and calls to the public API.
import { createClient } from "/gatehouse.js";

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";

// The UI binds its sessions to a key of this browser (DPoP) wherever it
// can: proofs name the server's public URL (its issuer), so the page must
// be served there, and WebCrypto needs a secure context (https, localhost).
const issuerOrigin = URL.canParse(meta("gatehouse-issuer")) ? new URL(meta("gatehouse-issuer")).origin : "";
const dpop = issuerOrigin === location.origin && !!globalThis.crypto?.subtle && "indexedDB" in globalThis;

export const gh = createClient({ baseUrl: location.origin, dpop });
window.gatehouseUI = { gh, dpop }; // for the browser tests and the curious

export const registrationOpen = meta("gatehouse-registration") === "open";
export const returnTo = meta("gatehouse-return-to"); // validated by the server

export class APIError extends Error {
  constructor(code, message, status) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

export async function api(method, path, body) {
  const init = { method, headers: {}, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await gh.fetch(path, init);
  } catch (e) {
    throw new APIError(e.code || "network_error", e.message);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {}
  if (!res.ok) throw new APIError(data?.error || `http_${res.status}`, data?.error_description, res.status);
  return data;
}

export const MESSAGES = {
  invalid_credentials: "Wrong username or password.",
  account_disabled: "This account is disabled.",
  rate_limited: "Too many attempts. Wait a moment and try again.",
  username_taken: "That username is taken.",
  registration_disabled: "Registration is closed on this server.",
  network_error: "The server could not be reached. Check your connection and try again.",
  unavailable: "The service is temporarily unavailable. Try again shortly.",
  last_admin: "This would leave no enabled admin. Make another admin first.",
  not_found: "It no longer exists.",
  forbidden: "You are not allowed to do that.",
  cancelled: "Cancelled.",
  invalid_mfa_code: "That code was not accepted. Codes work once; wait for the next one.",
  invalid_token: "This sign-in expired. Start again.",
  mfa_enrollment_required: "Your account must set up two-factor sign-in first (Account, Two-factor).",
  NotAllowedError: "The passkey request was cancelled or timed out.",
};

// explain turns an error into one sentence for people. The server's
// descriptions are fixed sentences (never echoes of input), so they may be
// shown where no better message exists.
export function explain(e) {
  return MESSAGES[e?.code] || MESSAGES[e?.name] || e?.message || "Something went wrong.";
}
