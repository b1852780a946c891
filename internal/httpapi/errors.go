package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// apiError is an error as the contract shows it:
// {"error": code, "error_description": description} with status.
type apiError struct {
	status      int
	code        string
	description string
}

func (e *apiError) Error() string { return e.code + ": " + e.description }

func errInvalidRequest(desc string) *apiError {
	return &apiError{http.StatusBadRequest, "invalid_request", desc}
}

var (
	errNotFound           = &apiError{http.StatusNotFound, "not_found", "No such resource."}
	errMethodNotAllowed   = &apiError{http.StatusMethodNotAllowed, "method_not_allowed", "This path does not serve that method; see the Allow header."}
	errTooLarge           = &apiError{http.StatusRequestEntityTooLarge, "request_too_large", "The request body is larger than 64 KiB."}
	errQueryToken         = &apiError{http.StatusBadRequest, "query_token_disabled", "Tokens are not accepted in the query string; send an Authorization header or the cookie."}
	errCSRF               = &apiError{http.StatusForbidden, "csrf_failed", "Cross-site request refused."}
	errCORS               = &apiError{http.StatusForbidden, "csrf_failed", "Cross-origin requests from this origin are not allowed."}
	errMissingToken       = &apiError{http.StatusUnauthorized, "invalid_token", "An access token is required."}
	errMissingRefresh     = &apiError{http.StatusUnauthorized, "invalid_refresh_token", "A refresh token is required."}
	errNoRefreshCookie    = &apiError{http.StatusUnauthorized, "invalid_refresh_token", "No refresh cookie came with this request: signed out, or the browser did not send it (the page and Gatehouse on different sites: localhost and 127.0.0.1 are different hosts; or third-party cookies blocked)."}
	errUnavailable        = &apiError{http.StatusServiceUnavailable, "unavailable", "The service is temporarily unavailable; nothing was changed."}
	errCookieToBody       = errInvalidRequest("A refresh token sent as the cookie is never answered in a body: use Gatehouse-Transport: refresh-cookie or cookie.")
	errTooManyUserSockets = &apiError{http.StatusTooManyRequests, "rate_limited", "This account has too many open sockets; close one and retry."}
	errTooManySockets     = &apiError{http.StatusServiceUnavailable, "unavailable", "Too many sockets are waiting to authenticate; retry shortly."}
	errForbidden          = &apiError{http.StatusForbidden, "forbidden", "This requires the admin role."}
)

// domainErrors maps every domain sentinel to what the client sees. The
// descriptions are fixed sentences: an error's own text (which may wrap
// driver messages) never reaches a client.
var domainErrors = []struct {
	err error
	api apiError
}{
	{auth.ErrInvalidRequest, apiError{400, "invalid_request", ""}}, // description from the error
	{auth.ErrWeakPassword, apiError{400, "weak_password", ""}},
	{auth.ErrUsernameTaken, apiError{409, "username_taken", "That username is taken."}},
	{auth.ErrRegistrationDisabled, apiError{403, "registration_disabled", "Registration is closed on this server."}},
	{auth.ErrInvalidCredentials, apiError{401, "invalid_credentials", "Wrong username or password."}},
	{auth.ErrAccountDisabled, apiError{403, "account_disabled", "This account is disabled."}},
	{auth.ErrInvalidToken, apiError{401, "invalid_token", "The access token is invalid."}},
	{auth.ErrTokenExpired, apiError{401, "token_expired", "The access token has expired."}},
	{auth.ErrTokenRevoked, apiError{401, "token_revoked", "The access token has been revoked."}},
	{auth.ErrInvalidRefreshToken, apiError{401, "invalid_refresh_token", "The refresh token is invalid."}},
	{auth.ErrRefreshTokenReused, apiError{401, "refresh_token_reused", "The refresh token was already used; the session has been revoked."}},
	{auth.ErrSessionExpired, apiError{401, "session_expired", "The session has expired; log in again."}},
	{auth.ErrSessionRevoked, apiError{401, "session_revoked", "The session has been revoked; log in again."}},
	{auth.ErrNotFound, apiError{404, "not_found", "No such resource."}},
	{auth.ErrRateLimited, apiError{429, "rate_limited", "Too many requests; retry later."}},
	{auth.ErrStepUpRequired, apiError{401, "insufficient_user_authentication", "This needs a recent sign-in: re-authenticate with POST /v1/auth/reauthenticate, then retry."}},
	{auth.ErrLastAdmin, apiError{409, "last_admin", "This would leave no enabled admin; make another admin first."}},
	{auth.ErrMFARequired, apiError{403, "mfa_required", "A second factor is required: send it with the mfa_token to POST /v1/auth/mfa."}},
	{auth.ErrInvalidMFACode, apiError{401, "invalid_mfa_code", "The code or passkey was not accepted."}},
	{auth.ErrMFAEnrollmentRequired, apiError{403, "mfa_enrollment_required", "This account must enrol a second factor first (POST /v1/me/factors/totp or a passkey)."}},
	{auth.ErrInvalidClient, apiError{401, "invalid_client", "Client authentication failed."}},
	{auth.ErrInvalidTarget, apiError{400, "invalid_target", "The resource is not a registered audience."}},
	{auth.ErrInvalidScope, apiError{400, "invalid_scope", "The scope asks for permissions this client does not have."}},
	{auth.ErrUnauthorizedClient, apiError{400, "unauthorized_client", "This client may not use this grant."}},
	{auth.ErrDPoPMismatch, apiError{401, "invalid_dpop_proof", "This session is bound to a DPoP key: refresh it with a proof by that key."}},
}

// toAPIError maps any error to its contract form. Unknown errors (the store
// failing, a cancelled context) are 503 unavailable: every write path is a
// single transaction, so nothing is half-written.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if ae, ok := dpopAPIError(err); ok {
		return ae
	}
	for _, m := range domainErrors {
		if errors.Is(err, m.err) {
			out := m.api
			if out.description == "" {
				out.description = sentence(err.Error())
			}
			return &out
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	}
	return errUnavailable
}

// sentence turns a domain error text into a description (capitalised, with
// a full stop). Only used for errors whose text the domain wrote itself.
func sentence(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	if b[len(b)-1] != '.' {
		b = append(b, '.')
	}
	return string(b)
}

// writeError writes err in the contract format. A 503 that is not a
// plain outage is logged, without the request body or any token.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	if r.URL.Path == tokenPath {
		ae = tokenEndpointError(ae)
	}
	switch ae.code {
	case "csrf_failed":
		h.metrics.csrf.Inc()
	case "insufficient_user_authentication":
		h.metrics.stepUp.Inc()
	}
	if ae == errUnavailable && !errors.Is(err, context.Canceled) {
		h.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	hdr := w.Header()
	switch ae.status {
	case http.StatusUnauthorized:
		var su *auth.StepUpError
		switch {
		case errors.As(err, &su):
			// RFC 9470 §3: the challenge says what is missing and how recent.
			acr := ""
			if su.ACR != "" {
				acr = fmt.Sprintf(`, acr_values=%q`, su.ACR)
			}
			hdr.Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_user_authentication", error_description=%q%s, max_age=%d`,
				"A more recent authentication is required", acr, int(su.MaxAge.Seconds())))
		case ae.code == "invalid_client":
			// RFC 6749 §5.2: the scheme the client may authenticate with.
			hdr.Set("WWW-Authenticate", `Basic realm="gatehouse"`)
		case ae.code == "use_dpop_nonce":
			// RFC 9449 §9: the nonce to use is in DPoP-Nonce.
			hdr.Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="`+dpop.AlgorithmList+`"`)
			if n := h.dpop.Nonce(); n != "" {
				hdr.Set(dpopNonceHeader, n)
			}
		case ae.code == "invalid_dpop_proof":
			hdr.Set("WWW-Authenticate", `DPoP error="invalid_token", algs="`+dpop.AlgorithmList+`"`)
		case ae == errMissingToken:
			// RFC 6750 §3: no error code when no token was sent.
			hdr.Set("WWW-Authenticate", `Bearer`)
		case ae.code == "invalid_token" || ae.code == "token_expired" || ae.code == "token_revoked":
			if authScheme(r) == "dpop" {
				hdr.Set("WWW-Authenticate", `DPoP error="invalid_token", algs="`+dpop.AlgorithmList+`"`)
			} else {
				hdr.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
		}
	case http.StatusTooManyRequests:
		retry := 1
		var rl *auth.RateLimitError
		if errors.As(err, &rl) {
			retry = max(1, int(math.Ceil(rl.RetryAfter.Seconds())))
		}
		hdr.Set("Retry-After", strconv.Itoa(retry))
	case http.StatusServiceUnavailable:
		hdr.Set("Retry-After", "1")
	}
	var mfa *auth.MFARequiredError
	if errors.As(err, &mfa) {
		// The login's second step: the ticket and the factors to choose.
		factors := make([]factorRefJSON, 0, len(mfa.Factors))
		for _, f := range mfa.Factors {
			factors = append(factors, factorRefJSON{f.ID, f.Type, f.Label})
		}
		writeJSON(w, ae.status, struct {
			Error       string          `json:"error"`
			Description string          `json:"error_description"`
			MFAToken    string          `json:"mfa_token"`
			Factors     []factorRefJSON `json:"factors"`
		}{ae.code, ae.description, mfa.Token, factors})
		return
	}
	writeJSON(w, ae.status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{ae.code, ae.description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = valJSON
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}
