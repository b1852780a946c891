package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// Endpoints for resource servers: the revocation feed, RFC 7662
// introspection and RFC 7009 revocation, all authenticated by a
// resource-server key in the Authorization header.

var errBadResourceKey = &apiError{http.StatusUnauthorized, "invalid_token", "A valid resource-server key is required."}

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

// resource wraps a handler for callers holding a resource-server key. The
// key is checked first (a hash and, for stored keys, one indexed lookup),
// so only wrong keys are throttled.
func (h *handler) resource(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		ok := false
		if strings.EqualFold(scheme, "Bearer") {
			var err error
			if ok, err = h.svc.CheckResourceKey(r.Context(), strings.TrimSpace(key)); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		if ok {
			next(w, r)
			return
		}
		addr, now := throttle.AddressKey(h.clientIP(r)), time.Now()
		if wait := h.keyFails.blocked(addr, now); wait > 0 {
			h.writeError(w, r, &auth.RateLimitError{RetryAfter: wait})
			return
		}
		h.keyFails.fail(addr, now)
		h.writeError(w, r, errBadResourceKey)
	}
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

// readForm parses an application/x-www-form-urlencoded body (the OAuth
// endpoints, as the RFCs say) under the body limit.
func readForm(w http.ResponseWriter, r *http.Request) error {
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
	if len(r.PostForm["token"]) != 1 || r.PostForm.Get("token") == "" {
		return errInvalidRequest("Exactly one token parameter is required.")
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
	out := map[string]any{
		"active": true, "token_type": res.TokenType, "sub": res.Subject, "sid": res.SessionID,
		"role": res.Role, "iat": res.IssuedAt.Unix(), "exp": res.ExpiresAt.Unix(), "iss": h.svc.Config().Issuer,
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
