package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// WebSocket close codes (API.md "WebSocket").
const (
	closeTokenExpired  websocket.StatusCode = 4001
	closeSessionRevoke websocket.StatusCode = 4003
)

// freshnessCheck is how often a socket checks that the revocation state is
// still being followed (see auth.Service.RevocationsFresh).
var freshnessCheck = time.Second

// sameOrigin checks the Origin of a WebSocket upgrade. Browsers send
// cookies on cross-site WebSocket handshakes and CrossOriginProtection lets
// GET through, so without this any page could open an authenticated socket
// (cross-site WebSocket hijacking). Requests without Origin are not from a
// browser page.
func (h *handler) sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, allowed := range h.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(allowed, "/"), o) {
			return true
		}
	}
	return false
}

type wsOut struct {
	Type      string     `json:"type"`
	User      *userJSON  `json:"user,omitempty"`
	SessionID string     `json:"session_id,omitempty"`
	Event     *eventJSON `json:"event,omitempty"`
	ExpiresAt string     `json:"expires_at,omitempty"`
	Error     string     `json:"error,omitempty"`
}

type wsIn struct {
	Type        string `json:"type"`
	AccessToken string `json:"access_token"`
}

func (h *handler) websocket(w http.ResponseWriter, r *http.Request) {
	tok, err := h.accessToken(r)
	if err == errMissingToken && h.cfg.AllowQueryToken {
		// Deprecated and off by default; the middleware already kept the
		// query string out of the logs.
		if q := r.URL.Query().Get("access_token"); q != "" {
			tok, err = q, nil
		}
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !h.sameOrigin(r) {
		h.svc.Event(r.Context(), auth.EventCSRFFailed, h.meta(r), "", "", "cross-site WebSocket upgrade")
		h.writeError(w, r, errCSRF)
		return
	}
	p, err := h.svc.Authenticate(tok)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	u, _, err := h.svc.Me(r.Context(), p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// The server's read/write timeouts are for requests, not sockets.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // Origin checked above
	if err != nil {
		return // Accept has answered the client
	}
	defer c.CloseNow()
	// r.Context() ends with the server (shutdown): sockets close with it.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	send := func(m wsOut) error {
		wctx, done := context.WithTimeout(ctx, 5*time.Second)
		defer done()
		b, _ := json.Marshal(m)
		return c.Write(wctx, websocket.MessageText, b)
	}
	// Subscribe before the hello: an event right after the client sees
	// hello must not be lost.
	events, unsubscribe := h.svc.Subscribe(p.UserID)
	defer unsubscribe()
	uj := toUserJSON(u)
	if send(wsOut{Type: "hello", User: &uj, SessionID: p.SessionID}) != nil {
		return
	}

	reauth := make(chan string)
	go func() {
		defer cancel()
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var in wsIn
			if json.Unmarshal(data, &in) == nil && in.Type == "reauth" {
				select {
				case reauth <- in.AccessToken:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	expiry := time.NewTimer(p.ExpiresAt.Sub(h.svc.Now()))
	defer expiry.Stop()
	fresh := time.NewTicker(freshnessCheck)
	defer fresh.Stop()
	for {
		changed := h.svc.RevocationsChanged()
		if h.svc.Revocations().Revoked(p.SessionID, p.UserID, p.IssuedAt) {
			c.Close(closeSessionRevoke, "session revoked")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-fresh.C:
			if !h.svc.RevocationsFresh() {
				// Fail closed: revocations elsewhere could not reach us.
				c.Close(websocket.StatusTryAgainLater, "revocation status unknown")
				return
			}
		case <-expiry.C:
			c.Close(closeTokenExpired, "access token expired")
			return
		case e := <-events:
			ej := toEventJSON(e)
			if send(wsOut{Type: "event", Event: &ej}) != nil {
				return
			}
		case t := <-reauth:
			np, err := h.svc.Authenticate(t)
			if err != nil || np.SessionID != p.SessionID || np.UserID != p.UserID {
				if send(wsOut{Type: "error", Error: "invalid_token"}) != nil {
					return
				}
				continue
			}
			p = np
			expiry.Reset(p.ExpiresAt.Sub(h.svc.Now()))
			if send(wsOut{Type: "reauth_ok", ExpiresAt: rfc3339(p.ExpiresAt)}) != nil {
				return
			}
		}
	}
}
