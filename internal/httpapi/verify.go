package httpapi

import (
	"net/http"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
)

// Forward auth (API.md "Resource servers in any stack"): GET /v1/auth/verify
// for nginx auth_request, Caddy forward_auth and Traefik forwardAuth. The
// proxy sends the client's request headers; the answer is 200 with the
// identity in Gatehouse-* headers, or 401. Everything is decided from
// memory: the token's signature and claims, the in-memory revocation
// state, and the usernames learnt when tokens were issued.

// The identity headers. A proxy must overwrite (or strip) any the client
// sent itself: deploy/ has recipes that do.
const (
	hdrUserID      = "Gatehouse-User-Id"
	hdrUsername    = "Gatehouse-Username"
	hdrRole        = "Gatehouse-Role"
	hdrPermissions = "Gatehouse-Permissions"
	hdrSessionID   = "Gatehouse-Session-Id"
)

const verifyPath = "/v1/auth/verify"

func (h *handler) verify(w http.ResponseWriter, r *http.Request) {
	tok, err := h.accessToken(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	p, err := h.svc.Authenticate(tok)
	if err == nil && (p.DPoPJKT != "" || authScheme(r) == "dpop") {
		err = h.forwardedBinding(r, tok, p)
	}
	if err == nil && r.Header.Get("Authorization") == "" {
		// Authenticated by the cookie, which a browser attaches to
		// cross-site requests too: an unsafe forwarded request must pass
		// the same cross-origin check as Gatehouse's own.
		if m := r.Header.Get("X-Forwarded-Method"); m != "" && !isSafe(m) && h.fromTrustedProxy(r) {
			fwd := r.Clone(r.Context())
			fwd.Method = m
			if h.cop.Check(fwd) != nil {
				err = errCSRF
			}
		}
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	name := ""
	if !p.Service() {
		if name, err = h.svc.Username(r.Context(), p.UserID); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	hdr := w.Header()
	hdr.Set(hdrUserID, p.UserID)
	hdr.Set(hdrUsername, name)
	hdr.Set(hdrRole, p.Role)
	hdr.Set(hdrPermissions, strings.Join(p.Permissions, " "))
	hdr.Set(hdrSessionID, p.SessionID)
	w.WriteHeader(http.StatusOK)
}

// forwardedBinding checks a DPoP-bound token at forward auth. The proof
// was made for the client's request to the protected site, so it is
// checked against the URL and method the proxy says it forwarded
// (X-Forwarded-Method, -Proto, -Host, -Uri: Traefik's names; the deploy/
// recipes set them), believed only from --trusted-proxy addresses.
func (h *handler) forwardedBinding(r *http.Request, tok string, p auth.Principal) error {
	if authScheme(r) != "dpop" {
		return checkBinding(r, p) // downgrade, or a bearer token sent as DPoP
	}
	if p.DPoPJKT == "" {
		return errDPoPUnbound
	}
	proofs := r.Header.Values(dpopHeader)
	if len(proofs) != 1 {
		return errDPoPMissing
	}
	q := r.Header
	method, proto, host, uri := q.Get("X-Forwarded-Method"), q.Get("X-Forwarded-Proto"), q.Get("X-Forwarded-Host"), q.Get("X-Forwarded-Uri")
	if !h.fromTrustedProxy(r) || method == "" || proto == "" || host == "" || uri == "" {
		return &apiError{http.StatusUnauthorized, "invalid_dpop_proof",
			"DPoP-bound tokens at forward auth need the proxy's X-Forwarded-Method, -Proto, -Host and -Uri (from a --trusted-proxy)."}
	}
	path, _, _ := strings.Cut(uri, "?")
	proof, err := h.dpop.Verify(proofs[0], dpop.Request{Method: method, URL: proto + "://" + host + path, AccessToken: tok})
	if err != nil {
		h.metrics.dpopRefused.Inc()
		return err
	}
	if proof.Thumbprint != p.DPoPJKT {
		return errDPoPForeign
	}
	return nil
}
