package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
)

// DPoP (RFC 9449, API.md "Sender-constrained tokens"). The middleware
// verifies a request's proof once, against the request's public URL under
// the issuer, and leaves the key's thumbprint in the context: login,
// refresh and MFA bind new sessions to it (meta), protected routes compare
// it with the token's cnf.jkt (checkBinding).

const (
	dpopHeader      = "DPoP"
	dpopNonceHeader = "DPoP-Nonce"
)

type dpopKey struct{}

var (
	errDPoPDowngrade = &apiError{http.StatusUnauthorized, "invalid_dpop_proof",
		"This access token is bound to a DPoP key: send it as Authorization: DPoP with a proof by that key."}
	errDPoPMissing = &apiError{http.StatusUnauthorized, "invalid_dpop_proof",
		"A DPoP proof by the key this access token is bound to is required."}
	errDPoPForeign = &apiError{http.StatusUnauthorized, "invalid_dpop_proof",
		"The DPoP proof was made with another key than the one this access token is bound to."}
	errDPoPUnbound = &apiError{http.StatusUnauthorized, "invalid_token",
		"This access token is not bound to a DPoP key: send it as Authorization: Bearer."}
	errDPoPHeaders = &apiError{http.StatusUnauthorized, "invalid_dpop_proof", "Send exactly one DPoP header."}
	errUseNonce    = &apiError{http.StatusUnauthorized, "use_dpop_nonce",
		"This server requires a nonce in DPoP proofs: use the one in the DPoP-Nonce header."}
)

// authScheme is the request's Authorization scheme, lower case: "bearer",
// "dpop", another scheme, or "" without the header.
func authScheme(r *http.Request) string {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.ToLower(scheme)
}

// publicURL is the URL a client addresses path at: under the issuer (the
// server's public origin, whatever proxy is in front). A WebSocket's is
// ws:// or wss://.
func (h *handler) publicURL(path string) string {
	base := strings.TrimSuffix(h.svc.Config().Issuer, "/")
	if path == "/v1/ws" {
		if rest, ok := strings.CutPrefix(base, "https://"); ok {
			base = "wss://" + rest
		} else if rest, ok := strings.CutPrefix(base, "http://"); ok {
			base = "ws://" + rest
		}
	}
	return base + path
}

// checkDPoP verifies the request's DPoP proof, if it has one, and returns
// the request carrying the key's thumbprint. A request without a proof is
// returned as it is: whether it needed one is the route's question.
func (h *handler) checkDPoP(w http.ResponseWriter, r *http.Request) (*http.Request, error) {
	proofs := r.Header.Values(dpopHeader)
	if len(proofs) == 0 || r.URL.Path == verifyPath {
		return r, nil // forward auth checks a proof against the forwarded request (verify.go)
	}
	if n := h.dpop.Nonce(); n != "" {
		// Every answer to a proof carries the nonce to use next.
		w.Header().Set(dpopNonceHeader, n)
	}
	if len(proofs) > 1 {
		return r, errDPoPHeaders
	}
	var at string
	if authScheme(r) == "dpop" {
		_, at, _ = strings.Cut(r.Header.Get("Authorization"), " ")
		at = strings.TrimSpace(at)
	}
	p, err := h.dpop.Verify(proofs[0], dpop.Request{Method: r.Method, URL: h.publicURL(r.URL.Path), AccessToken: at})
	if err != nil {
		h.metrics.dpopRefused.Inc()
		return r, err
	}
	return r.WithContext(context.WithValue(r.Context(), dpopKey{}, p.Thumbprint)), nil
}

// proofKey is the thumbprint of the request's verified proof ("" if none).
func proofKey(ctx context.Context) string {
	k, _ := ctx.Value(dpopKey{}).(string)
	return k
}

// checkBinding enforces a DPoP-bound token's binding: only as
// Authorization: DPoP, with a proof by the bound key (never from the
// cookie, never as Bearer); and a bearer token is not sent as DPoP.
func checkBinding(r *http.Request, p auth.Principal) error {
	scheme := authScheme(r)
	if p.DPoPJKT == "" {
		if scheme == "dpop" {
			return errDPoPUnbound
		}
		return nil
	}
	switch key := proofKey(r.Context()); {
	case scheme != "dpop":
		return errDPoPDowngrade
	case key == "":
		return errDPoPMissing
	case key != p.DPoPJKT:
		return errDPoPForeign
	}
	return nil
}

// dpopAPIError maps the verifier's errors (wrapped ErrInvalid carries a
// fixed reason, never the proof).
func dpopAPIError(err error) (*apiError, bool) {
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return errUseNonce, true
	case errors.Is(err, dpop.ErrInvalid):
		return &apiError{http.StatusUnauthorized, "invalid_dpop_proof", sentence(err.Error())}, true
	}
	return nil, false
}
