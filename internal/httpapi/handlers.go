package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/device"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Wire types (API.md "Objects").

type userJSON struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	Role        string   `json:"role"`
	Permissions []string `json:"permissions"`
	Disabled    bool     `json:"disabled"`
	MFA         bool     `json:"mfa"`
	CreatedAt   string   `json:"created_at"`
}

type sessionJSON struct {
	ID            string `json:"id"`
	CreatedAt     string `json:"created_at"`
	LastUsedAt    string `json:"last_used_at"`
	IdleExpiresAt string `json:"idle_expires_at"`
	ExpiresAt     string `json:"expires_at"`
	IP            string `json:"ip"`
	UserAgent     string `json:"user_agent"`
	Device        string `json:"device"` // readable, from user_agent: "Firefox 128 on Linux"
	Current       bool   `json:"current"`
}

type tokenResponse struct {
	AccessToken      string   `json:"access_token,omitempty"`
	TokenType        string   `json:"token_type"`
	ExpiresIn        int      `json:"expires_in"`
	RefreshToken     string   `json:"refresh_token,omitempty"`
	RefreshExpiresIn int      `json:"refresh_expires_in"`
	SessionID        string   `json:"session_id"`
	User             userJSON `json:"user"`
	ElevationToken   string   `json:"elevation_token,omitempty"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toUserJSON(u store.User) userJSON {
	perms := u.Permissions
	if perms == nil {
		perms = []string{} // always an array
	}
	return userJSON{ID: u.ID, Username: u.Username, Role: u.Role, Permissions: perms, Disabled: u.Disabled,
		MFA: u.MFA, CreatedAt: rfc3339(u.CreatedAt)}
}

func toSessionJSON(s store.Session, currentID string) sessionJSON {
	return sessionJSON{
		ID: s.ID, CreatedAt: rfc3339(s.CreatedAt), LastUsedAt: rfc3339(s.LastUsedAt),
		IdleExpiresAt: rfc3339(s.IdleExpiresAt), ExpiresAt: rfc3339(s.ExpiresAt),
		IP: s.IP, UserAgent: s.UserAgent, Device: device.Parse(s.UserAgent).String(), Current: s.ID == currentID,
	}
}

// --- public ---

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	var in credentials
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	u, err := h.svc.Register(r.Context(), in.Username, in.Password, h.meta(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": toUserJSON(u)})
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Resource string `json:"resource"` // RFC 8707: narrow the token's aud
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	tr, _, err := requestedTransport(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var in loginRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.checkResource(r, in.Resource); err != nil {
		h.writeError(w, r, err)
		return
	}
	t, err := h.svc.Login(r.Context(), in.Username, in.Password, h.meta(r))
	if err == nil {
		t, err = h.narrow(r, t, in.Resource)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeTokens(w, t, tr)
}

// warnHostMismatch logs, once per origin, a page whose host name is not
// the issuer's asking to refresh by cookie: its cookies may never arrive.
func (h *handler) warnHostMismatch(r *http.Request) {
	origin := r.Header.Get("Origin")
	o, err1 := url.Parse(origin)
	iss, err2 := url.Parse(h.svc.Config().Issuer)
	if origin == "" || err1 != nil || err2 != nil || o.Hostname() == iss.Hostname() {
		return
	}
	if _, seen := h.hostWarned.LoadOrStore(origin, true); seen {
		return
	}
	h.log.Warn("a page refreshes by cookie from another host name than the issuer's: browsers keep cookies per site, "+
		"so the refresh cookie may never be sent; serve the page and Gatehouse under one site (localhost and 127.0.0.1 differ)",
		"origin", origin, "issuer", h.svc.Config().Issuer)
}

// checkResource refuses an unregistered resource before anything changes.
func (h *handler) checkResource(r *http.Request, resource string) error {
	if resource == "" {
		return nil
	}
	return h.svc.CheckResource(r.Context(), resource)
}

// narrow narrows t's access token to resource, if one was asked for.
func (h *handler) narrow(r *http.Request, t auth.Tokens, resource string) (auth.Tokens, error) {
	if resource == "" {
		return t, nil
	}
	return h.svc.Narrow(r.Context(), t, resource)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
	Resource     string `json:"resource"`
}

func (h *handler) refresh(w http.ResponseWriter, r *http.Request) {
	var in refreshRequest
	if err := decodeJSON(w, r, &in, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	tok, fromCookie := in.RefreshToken, false
	if tok == "" {
		tok, fromCookie = h.refreshFromCookie(r), true
	}
	if tok == "" {
		if tr, _, _ := requestedTransport(r); tr != transportBody || r.Header.Get("Origin") != "" {
			// A browser that should have sent the refresh cookie did not:
			// signed out, or (the newcomer's trap) a page on another host
			// name than the issuer's (localhost and 127.0.0.1 are
			// different sites), or blocked third-party cookies. Say so in
			// the answer, and in the log once per such page origin.
			h.warnHostMismatch(r)
			h.writeError(w, r, errNoRefreshCookie)
			return
		}
		h.writeError(w, r, errMissingRefresh)
		return
	}
	// Decided before anything rotates: a refused answer spends nothing.
	tr, err := answerTransport(r, fromCookie)
	if err == nil {
		err = h.checkResource(r, in.Resource)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	t, err := h.svc.Refresh(r.Context(), tok, h.meta(r))
	if err == nil {
		t, err = h.narrow(r, t, in.Resource)
	}
	if err != nil {
		if fromCookie && toAPIError(err).status == http.StatusUnauthorized {
			h.clearCookies(w) // a dead refresh cookie is of no use to keep
		}
		h.writeError(w, r, err)
		return
	}
	h.writeTokens(w, t, tr)
}

// writeTokens answers a login, refresh or re-authentication in transport tr.
func (h *handler) writeTokens(w http.ResponseWriter, t auth.Tokens, tr transport) {
	h.writeTokensElevated(w, t, tr, "")
}

// writeTokensElevated is writeTokens with a one-time elevation token.
func (h *handler) writeTokensElevated(w http.ResponseWriter, t auth.Tokens, tr transport, elevation string) {
	now := t.IssuedAt
	typ := "Bearer"
	if t.Session.DPoPJKT != "" {
		typ = "DPoP"
	}
	resp := tokenResponse{
		TokenType:        typ,
		ExpiresIn:        secondsUntil(t.AccessExpiresAt, now),
		RefreshExpiresIn: secondsUntil(t.RefreshExpiresAt, now),
		SessionID:        t.Session.ID,
		User:             toUserJSON(t.User),
		ElevationToken:   elevation,
	}
	switch tr {
	case transportCookie:
		h.setAccessCookie(w, t, now)
		h.setRefreshCookie(w, t, now)
	case transportRefreshCookie:
		h.setRefreshCookie(w, t, now)
		resp.AccessToken = t.AccessToken
	default:
		resp.AccessToken, resp.RefreshToken = t.AccessToken, t.RefreshToken
	}
	w.Header()["Pragma"] = valNoCache
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	var in refreshRequest
	if err := decodeJSON(w, r, &in, true); err != nil {
		h.writeError(w, r, err)
		return
	}
	// A request with an Authorization header acts on that credential alone:
	// never on a cookie (of possibly another session) beside it, and not
	// on the cookie when the header's token is bad.
	var rt, at string
	if r.Header.Get("Authorization") != "" {
		at, _ = h.accessToken(r)
	} else {
		rt = in.RefreshToken
		if rt == "" {
			rt = h.refreshFromCookie(r)
		}
		at, _ = h.accessToken(r) // the access cookie
	}
	if err := h.svc.Logout(r.Context(), rt, at, h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.clearCookies(w)
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) jwks(w http.ResponseWriter, r *http.Request) {
	// Public keys only; resource servers may cache briefly.
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, h.svc.Keys().JWKS())
}

// openAPI serves docs/openapi.yaml as JSON. It is public and changes only
// with the binary, so it may be cached briefly.
func (h *handler) openAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := h.openapiDoc()
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(doc)
}

// withServer names this server (its --issuer, the public URL) as the
// document's one server: tools that try the API call it, not the default
// listen address.
func withServer(doc []byte, issuer string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	m["servers"] = []map[string]string{{"url": issuer, "description": "this server (its --issuer)"}}
	return json.Marshal(m)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.svc.Ping(ctx); err != nil {
		h.writeError(w, r, errUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// --- authenticated ---

type authedHandler func(http.ResponseWriter, *http.Request, auth.Principal)

// authed verifies the access token (no database involved) before next.
func (h *handler) authed(next authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, err := h.accessToken(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		p, err := h.svc.Authenticate(tok)
		if err == nil {
			err = checkBinding(r, p)
		}
		if err == nil && p.Service() {
			// A service client acts on the admin API only; its calls are
			// recorded as its own.
			if !strings.HasPrefix(r.URL.Path, "/v1/admin/") {
				err = errServiceClient
			}
			r = r.WithContext(context.WithValue(r.Context(), serviceKey{}, p.ClientID))
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if !enrolmentExempt(r.URL.Path) {
			if err := h.svc.RequireEnrollment(r.Context(), p); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		next(w, r, p)
	}
}

// serviceKey carries the acting service client's id in the context.
type serviceKey struct{}

var errServiceClient = &apiError{http.StatusForbidden, "forbidden", "A service client's token is for the admin API only: there is no account behind it."}

// enrolmentExempt reports whether path stays open to an account that
// must enrol a second factor first (--require-mfa): its own account pages
// and factor enrolment (/v1/me*), and re-authentication (the step-up
// enrolment needs). Logout and refresh take no access token.
func enrolmentExempt(path string) bool {
	return path == "/v1/me" || strings.HasPrefix(path, "/v1/me/") || path == "/v1/auth/reauthenticate"
}

type meResponse struct {
	User    userJSON    `json:"user"`
	Session sessionJSON `json:"session"`
}

func (h *handler) me(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	u, s, err := h.svc.Me(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, meResponse{User: toUserJSON(u), Session: toSessionJSON(s, p.SessionID)})
}

func (h *handler) listSessions(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	list, err := h.svc.ListSessions(r.Context(), p)
	h.writeSessions(w, r, list, p.SessionID, err)
}

// writeSessions answers a session list (the caller's own, or a user's for
// an admin), marking the caller's current one; or err.
func (h *handler) writeSessions(w http.ResponseWriter, r *http.Request, list []store.Session, current string, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, toSessionJSON(s, current))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (h *handler) deleteSession(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := h.svc.RevokeOwnSession(r.Context(), p, r.PathValue("id"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) deleteSessions(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var all bool
	switch r.URL.Query().Get("scope") {
	case "others":
	case "all":
		all = true
	default:
		h.writeError(w, r, errInvalidRequest(`scope must be "others" or "all".`))
		return
	}
	if err := h.svc.RevokeOwnSessions(r.Context(), p, all, h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	if all {
		h.clearCookies(w)
	}
	w.WriteHeader(http.StatusNoContent)
}

type reauthRequest struct {
	Password string          `json:"password"`
	Code     string          `json:"code"`
	WebAuthn json.RawMessage `json:"webauthn"`
}

// oneTime, as Gatehouse-Elevation on a re-authentication, asks for a
// one-time elevation token instead of renewing the session's proof.
const oneTime = "one-time"

// reauthenticate is the step-up: the password, a code, both, or a passkey
// for the caller's own session; new tokens (auth_time = now) in the
// requested transport, or a one-time elevation.
func (h *handler) reauthenticate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	// The answer carries the session's current refresh token: where the
	// browser holds it as the cookie, never in a body.
	tr, err := answerTransport(r, h.refreshFromCookie(r) != "")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var in reauthRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	elev := r.Header.Get(elevationHeader)
	if elev != "" && elev != oneTime {
		h.writeError(w, r, errInvalidRequest(`Gatehouse-Elevation at re-authentication must be "one-time".`))
		return
	}
	t, elevation, err := h.svc.Reauthenticate(r.Context(), p, auth.ReauthInput{Password: in.Password, Code: in.Code,
		WebAuthn: rawOrNil(in.WebAuthn), OneTime: elev == oneTime}, h.meta(r))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeTokensElevated(w, t, tr, elevation)
}

// rawOrNil is a JSON value as bytes, nil when absent or null.
func rawOrNil(v json.RawMessage) []byte {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

// deleteMe deletes the caller's account (step-up required).
func (h *handler) deleteMe(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := h.svc.DeleteUser(r.Context(), p.UserID, h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.clearCookies(w)
	w.WriteHeader(http.StatusNoContent)
}

type passwordChangeRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (h *handler) changePassword(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in passwordChangeRequest
	if err := decodeJSON(w, r, &in, false); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.svc.ChangePassword(r.Context(), p, in.CurrentPassword, in.NewPassword, h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
