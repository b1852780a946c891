package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// Endpoints for resource servers: the revocation feed, RFC 7662
// introspection and RFC 7009 revocation, all authenticated as a
// registered client (clients.go): client_secret_basic, client_secret_post
// or the secret (or an earlier release's resource key) as Bearer.

// keyFailures throttles wrong resource keys per client address (IPv6 per
// /64), so the OAuth endpoints cannot be used to guess keys (or as a token
// oracle by someone without one). A caller presenting a valid key is never
// limited, whatever others at its address got wrong: one misconfigured
// neighbour behind a shared egress address must not take every guard there
// down.
type keyFailures struct {
	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	start time.Time
	n     int
}

const maxKeyFailuresPerMinute = 20

func (k *keyFailures) blocked(ip string, now time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := k.m[ip]
	if w == nil || now.Sub(w.start) >= time.Minute || w.n < maxKeyFailuresPerMinute {
		return 0
	}
	return w.start.Add(time.Minute).Sub(now)
}

func (k *keyFailures) fail(ip string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m) > 100_000 {
		k.m = map[string]*window{}
	}
	w := k.m[ip]
	if w == nil || now.Sub(w.start) >= time.Minute {
		w = &window{start: now}
		k.m[ip] = w
	}
	w.n++
}

// resource wraps a handler for registered clients. The credential is
// checked first (a hash and one indexed lookup), so only wrong ones are
// throttled: a caller with a valid secret is never refused for what others
// at its address got wrong.
func (h *handler) resource(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if err := parseForm(w, r); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		c, err := h.authenticateClient(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	}
}

// authenticateClient authenticates the request's client, throttling
// failures per address (IPv6 per /64).
func (h *handler) authenticateClient(r *http.Request) (store.ResourceKey, error) {
	id, secret, err := clientCredentials(r)
	if err != nil {
		return store.ResourceKey{}, err
	}
	c, err := h.svc.AuthenticateClient(r.Context(), id, secret)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, auth.ErrInvalidClient) {
		return c, err
	}
	addr, now := throttle.AddressKey(h.clientIP(r)), time.Now()
	if wait := h.keyFails.blocked(addr, now); wait > 0 {
		return c, &auth.RateLimitError{RetryAfter: wait}
	}
	h.keyFails.fail(addr, now)
	return c, err
}

type clientKey struct{}

// clientCredentials reads a client's credentials (RFC 6749 §2.3.1):
// HTTP Basic (client_secret_basic; id and secret form-urlencoded), the
// client_id and client_secret form fields (client_secret_post), or the
// secret as a Bearer token (resource keys of earlier releases). More than
// one method is invalid_request (§2.3); none is invalid_client.
func clientCredentials(r *http.Request) (id, secret string, err error) {
	methods := 0
	if scheme, v, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok {
		switch strings.ToLower(scheme) {
		case "basic":
			raw, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
			u, p, ok := strings.Cut(string(raw), ":")
			if derr != nil || !ok {
				return "", "", auth.ErrInvalidClient
			}
			if id, err = url.QueryUnescape(u); err != nil {
				return "", "", auth.ErrInvalidClient
			}
			if secret, err = url.QueryUnescape(p); err != nil {
				return "", "", auth.ErrInvalidClient
			}
			methods++
		case "bearer":
			secret = strings.TrimSpace(v)
			methods++
		}
	}
	if r.PostForm.Has("client_secret") {
		if len(r.PostForm["client_secret"]) != 1 || len(r.PostForm["client_id"]) != 1 {
			return "", "", errInvalidRequest("client_secret_post needs exactly one client_id and one client_secret.")
		}
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		methods++
	}
	if methods > 1 {
		return "", "", errInvalidRequest("Use one client authentication method, not several.")
	}
	if methods == 0 {
		return "", "", auth.ErrInvalidClient
	}
	return id, secret, nil
}

// maxFeedWait caps ?wait= (below the server's write timeout).
const maxFeedWait = 25 * time.Second

type feedJSON struct {
	Cursor          string            `json:"cursor"`
	GlobalNotBefore *string           `json:"global_not_before"`
	Sessions        []feedSessionJSON `json:"sessions"`
	Users           []feedUserJSON    `json:"users"`
}

type feedSessionJSON struct {
	SessionID string `json:"sid"`
	Exp       string `json:"exp"`
}

type feedUserJSON struct {
	UserID    string `json:"user_id"`
	NotBefore string `json:"not_before"`
}

// Feed times carry nanoseconds: cutoffs are compared with tokens' iat to
// the microsecond.
func feedTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (h *handler) revocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cursor := int64(-1) // no since: a full snapshot
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			h.writeError(w, r, errInvalidRequest("since must be a cursor this server returned."))
			return
		}
		cursor = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.Atoi(v)
			d, err = time.Duration(secs)*time.Second, serr
		}
		if err != nil || d < 0 {
			h.writeError(w, r, errInvalidRequest("wait must be a duration such as 25s."))
			return
		}
		wait = min(d, maxFeedWait)
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
	if wait > 0 {
		h.metrics.longPolls.Inc()
		defer h.metrics.longPolls.Dec()
	}
	page, err := h.svc.Feed(r.Context(), cursor, wait)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := feedJSON{Cursor: strconv.FormatInt(page.Cursor, 10),
		Sessions: make([]feedSessionJSON, 0, len(page.Sessions)), Users: make([]feedUserJSON, 0, len(page.Users))}
	if !page.GlobalNotBefore.IsZero() {
		g := feedTime(page.GlobalNotBefore)
		out.GlobalNotBefore = &g
	}
	for _, s := range page.Sessions {
		out.Sessions = append(out.Sessions, feedSessionJSON{SessionID: s.SessionID, Exp: feedTime(s.Until)})
	}
	for _, u := range page.Users {
		out.Users = append(out.Users, feedUserJSON{UserID: u.UserID, NotBefore: feedTime(u.NotBefore)})
	}
	writeJSON(w, http.StatusOK, out)
}

// readForm parses the form of introspection and revocation: parseForm,
// and exactly one token parameter.
func readForm(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(w, r); err != nil {
		return err
	}
	if len(r.PostForm["token"]) != 1 || r.PostForm.Get("token") == "" {
		return errInvalidRequest("Exactly one token parameter is required.")
	}
	return nil
}

// parseForm parses an application/x-www-form-urlencoded body (the OAuth
// endpoints, as the RFCs say) under the body limit, once.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	if r.PostForm != nil {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return errInvalidRequest("Content-Type must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return errInvalidRequest("The form body could not be parsed.")
	}
	return nil
}

func (h *handler) introspect(w http.ResponseWriter, r *http.Request) {
	if err := readForm(w, r); err != nil {
		h.writeError(w, r, err)
		return
	}
	res, err := h.svc.Introspect(r.Context(), r.PostForm.Get("token"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !res.Active {
		// Nothing but the verdict: introspection is not an oracle.
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	c := res.Claims
	perms := c.Permissions
	if perms == nil {
		perms = []string{}
	}
	acr := c.ACR
	if acr == "" && c.ClientID == auth.FirstPartyClient {
		acr = auth.ACR1
	}
	// RFC 7662 §2.2's fields, and Gatehouse's claims beside them.
	out := map[string]any{
		"active": true, "scope": strings.Join(perms, " "), "client_id": c.ClientID, "token_type": res.TokenType,
		"exp": c.ExpiresAt.Unix(), "iat": c.IssuedAt.Unix(), "nbf": c.IssuedAt.Unix(),
		"sub": c.Subject, "aud": c.Audience, "iss": c.Issuer, "jti": c.ID,
		"sid": c.SessionID, "role": c.Role, "permissions": perms,
	}
	if res.Username != "" {
		out["username"] = res.Username
	}
	if acr != "" {
		out["acr"] = acr
	}
	if len(c.AMR) > 0 {
		out["amr"] = c.AMR
	}
	if c.ClientID == "" {
		out["client_id"] = auth.FirstPartyClient // a token of an earlier release
	}
	if c.Audience == nil {
		out["aud"] = []string{c.Issuer}
	}
	if res.JKT != "" {
		out["cnf"] = map[string]string{"jkt": res.JKT}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := readForm(w, r); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.svc.RevokeToken(r.Context(), r.PostForm.Get("token"), h.meta(r)); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK) // also for unknown tokens (RFC 7009 §2.2)
}
