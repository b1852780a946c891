package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// WebSocket close codes (API.md "WebSocket").
const (
	closeTokenExpired  websocket.StatusCode = 4001
	closeSessionRevoke websocket.StatusCode = 4003
	// closeTooManySockets: the account already has MaxSocketsPerUser open
	// on this instance.
	closeTooManySockets websocket.StatusCode = 4008
	// closeEventsLost: the client read too slowly and events were dropped;
	// it should reconnect and resync (GET /v1/me/events).
	closeEventsLost websocket.StatusCode = 4009
)

// freshnessCheck is how often a socket checks that the revocation state is
// still being followed (see auth.Service.RevocationsFresh).
var freshnessCheck = time.Second

// sameOrigin checks the Origin of a WebSocket upgrade. Browsers send
// cookies on cross-site WebSocket handshakes and CrossOriginProtection lets
// GET through, so without this any page could open an authenticated socket
// (cross-site WebSocket hijacking). An --allowed-origin passes first, as its
// POSTs do: a page there is on another site, so its browser says
// Sec-Fetch-Site: cross-site. Requests without Origin are not from a
// browser page.
func (h *handler) sameOrigin(r *http.Request) bool {
	if h.corsOrigin(r) != "" {
		return true // an --allowed-origin, exactly as CORS matches it
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
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
	// DPoP is the proof for a DPoP-bound token (htm GET, htu the socket's
	// ws:// or wss:// URL, ath the token's hash).
	DPoP string `json:"dpop,omitempty"`
}

// In-band authentication (API.md "WebSocket"): a browser holding its access
// token in memory cannot put it in a header, and must not put it in the URL,
// so it opens the socket with no credential and sends it as the first
// message. Such sockets cost the server until they authenticate: they get a
// short deadline, a small first message, a global cap, and the same Origin
// check as every other socket.
var authDeadline = 5 * time.Second // a variable for tests

// firstMessageLimit bounds the auth message: the largest access token
// (under 4096 bytes) and a DPoP proof (at most 4096) with their JSON.
const firstMessageLimit = 8448

func (h *handler) websocket(w http.ResponseWriter, r *http.Request) {
	// Origin first: a cross-site page gets 403 with or without credentials.
	if !h.sameOrigin(r) {
		h.svc.Event(r.Context(), auth.EventCSRFFailed, h.meta(r), "", "", "cross-site WebSocket upgrade")
		h.writeError(w, r, errCSRF)
		return
	}
	tok, err := h.accessToken(r)
	if err == errMissingToken && h.cfg.AllowQueryToken {
		// Deprecated and off by default; the middleware already kept the
		// query string out of the logs.
		if q := r.URL.Query().Get("access_token"); q != "" {
			tok, err = q, nil
		}
	}
	inBand := err == errMissingToken
	if inBand && r.Header.Get("Origin") == "" {
		// Not a browser: such clients can and must send the header.
		h.writeError(w, r, errMissingToken)
		return
	}
	if err != nil && !inBand {
		h.writeError(w, r, err)
		return
	}
	var p auth.Principal
	var u store.User
	if inBand {
		release, err := h.sockets.wait(h.clientIP(r))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		defer release()
		c, err := h.acceptSocket(w, r)
		if err != nil {
			return
		}
		defer c.CloseNow()
		p, u, err = h.authenticateInBand(r.Context(), c)
		release()
		if err != nil {
			c.Close(closeTokenExpired, wsAuthFailure(err))
			return
		}
		done, err := h.sockets.open(p.UserID)
		if err != nil {
			c.Close(closeTooManySockets, "too many sockets for this account")
			return
		}
		defer done()
		h.serveSocket(r.Context(), c, p, u)
		return
	}
	p, u, err = h.socketPrincipal(r.Context(), tok)
	if err == nil {
		err = checkBinding(r, p) // a proof at the upgrade was verified by the middleware
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	done, err := h.sockets.open(p.UserID)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer done()
	c, err := h.acceptSocket(w, r)
	if err != nil {
		return
	}
	defer c.CloseNow()
	h.serveSocket(r.Context(), c, p, u)
}

// socketLimits bounds what sockets can hold: a global number waiting for
// their first message, one address's share of those (IPv6 per /64), and
// one account's authenticated sockets.
type socketLimits struct {
	mu                        sync.Mutex
	maxPending, maxPerAddress int
	maxPerUser                int
	pending                   int
	byAddress                 map[string]int
	byUser                    map[string]int
}

func newSocketLimits(cfg Config) *socketLimits {
	return &socketLimits{maxPending: cfg.MaxPendingSockets, maxPerAddress: cfg.MaxPendingSocketsPerAddress,
		maxPerUser: cfg.MaxSocketsPerUser, byAddress: map[string]int{}, byUser: map[string]int{}}
}

// wait takes a slot for a socket from ip awaiting its first message;
// release (idempotent) gives it back.
func (l *socketLimits) wait(ip string) (release func(), err error) {
	addr := throttle.AddressKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byAddress[addr] >= l.maxPerAddress:
		return nil, &auth.RateLimitError{RetryAfter: authDeadline}
	case l.pending >= l.maxPending:
		return nil, errTooManySockets
	}
	l.pending++
	l.byAddress[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.pending--
			if l.byAddress[addr]--; l.byAddress[addr] <= 0 {
				delete(l.byAddress, addr)
			}
		})
	}, nil
}

// open counts an authenticated socket of userID until done.
func (l *socketLimits) open(userID string) (done func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byUser[userID] >= l.maxPerUser {
		return nil, errTooManyUserSockets
	}
	l.byUser[userID]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.byUser[userID]--; l.byUser[userID] <= 0 {
			delete(l.byUser, userID)
		}
	}, nil
}

func (l *socketLimits) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending
}

// acceptSocket upgrades the connection. The Origin has been checked.
func (h *handler) acceptSocket(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	// The server's read/write timeouts are for requests, not sockets.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true}) // Origin checked by sameOrigin
}

// errAuthTimeout and friends say why in-band authentication failed; the
// text goes in the close frame's reason, never a token.
var (
	errAuthTimeout  = errors.New("authentication timed out")
	errAuthTooLarge = errors.New("first message too large")
	errAuthMessage  = errors.New(`first message must be {"type":"auth","access_token":…}`)
)

func wsAuthFailure(err error) string {
	switch {
	case errors.Is(err, errAuthTimeout), errors.Is(err, errAuthTooLarge), errors.Is(err, errAuthMessage):
		return err.Error()
	case errors.Is(err, auth.ErrTokenExpired):
		return "access token expired"
	case errors.Is(err, auth.ErrTokenRevoked), errors.Is(err, auth.ErrSessionRevoked):
		return "access token revoked"
	case errors.Is(err, dpop.ErrInvalid), errors.Is(err, dpop.ErrUseNonce), err == errDPoPMissing, err == errDPoPForeign:
		return "invalid DPoP proof"
	}
	return "invalid access token"
}

// authenticateInBand waits for the first message, which must be an auth
// message with a valid access token. The server sends nothing before.
func (h *handler) authenticateInBand(ctx context.Context, c *websocket.Conn) (auth.Principal, store.User, error) {
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		// Read under a context that does not close the socket abruptly:
		// the deadline below closes it with 4001 and a reason instead.
		_, rd, err := c.Reader(context.WithoutCancel(ctx))
		if err != nil {
			got <- result{err: err}
			return
		}
		data, err := io.ReadAll(io.LimitReader(rd, firstMessageLimit+1))
		if err == nil && len(data) > firstMessageLimit {
			err = errAuthTooLarge
		}
		got <- result{data, err}
	}()
	timer := time.NewTimer(authDeadline)
	defer timer.Stop()
	var res result
	select {
	case res = <-got:
	case <-timer.C:
		return auth.Principal{}, store.User{}, errAuthTimeout
	case <-ctx.Done():
		return auth.Principal{}, store.User{}, ctx.Err()
	}
	if res.err != nil {
		if errors.Is(res.err, errAuthTooLarge) {
			return auth.Principal{}, store.User{}, errAuthTooLarge
		}
		return auth.Principal{}, store.User{}, fmt.Errorf("read first message: %w", res.err)
	}
	in, err := parseAuthMessage(res.data)
	if err != nil {
		return auth.Principal{}, store.User{}, err
	}
	p, u, err := h.socketPrincipal(ctx, in.AccessToken)
	if err != nil || p.DPoPJKT == "" {
		return p, u, err
	}
	// A bound token: the first message must carry a proof by its key,
	// made for this socket and this token.
	if in.DPoP == "" {
		return auth.Principal{}, store.User{}, errDPoPMissing
	}
	proof, err := h.dpop.Verify(in.DPoP, dpop.Request{Method: http.MethodGet, URL: h.publicURL("/v1/ws"), AccessToken: in.AccessToken})
	if err != nil {
		h.metrics.dpopRefused.Inc()
		return auth.Principal{}, store.User{}, err
	}
	if proof.Thumbprint != p.DPoPJKT {
		return auth.Principal{}, store.User{}, errDPoPForeign
	}
	return p, u, nil
}

// socketPrincipal authenticates a socket's access token, from the upgrade
// or from the first message alike: the token verified against the
// revocation state, then its session read (it must still exist).
func (h *handler) socketPrincipal(ctx context.Context, tok string) (auth.Principal, store.User, error) {
	p, err := h.svc.Authenticate(tok)
	if err != nil {
		return p, store.User{}, err
	}
	u, _, err := h.svc.Me(ctx, p)
	return p, u, err
}

// serveSocket runs an authenticated socket: hello, then events, reauth,
// and the closes of API.md until the client or the server ends it.
func (h *handler) serveSocket(parent context.Context, c *websocket.Conn, p auth.Principal, u store.User) {
	// The parent context ends with the server (shutdown): sockets close with it.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	h.metrics.sockets.Inc()
	defer h.metrics.sockets.Dec()

	send := func(m wsOut) error {
		wctx, done := context.WithTimeout(ctx, 5*time.Second)
		defer done()
		b, _ := json.Marshal(m)
		return c.Write(wctx, websocket.MessageText, b)
	}
	// Subscribe before the hello: an event right after the client sees
	// hello must not be lost.
	events, lost, unsubscribe, err := h.svc.Subscribe(ctx, p.UserID)
	if err != nil {
		h.log.Warn("socket: subscribe to events", slog.Any("err", err))
		c.Close(websocket.StatusTryAgainLater, "events unavailable")
		return
	}
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
			if decodeStrict(data, &in) == nil && in.Type == "reauth" {
				select {
				case reauth <- in.AccessToken:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	// Events were dropped rather than slow the server down: say so, so the
	// client resyncs instead of missing events silently.
	resync := func() { c.Close(closeEventsLost, "events dropped; reconnect and resync") }
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
		case <-lost:
			resync()
			return
		case e := <-events:
			select {
			case <-lost: // the queue overflowed: stop before sending more
				resync()
				return
			default:
			}
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

// parseAuthMessage reads a first message: exactly one JSON object
// {"type":"auth","access_token":…}, keys exact and once each (decodeStrict,
// as for request bodies).
func parseAuthMessage(data []byte) (wsIn, error) {
	if len(data) > firstMessageLimit {
		return wsIn{}, errAuthTooLarge
	}
	var in wsIn
	if decodeStrict(data, &in) != nil || in.Type != "auth" || in.AccessToken == "" {
		return wsIn{}, errAuthMessage
	}
	return in, nil
}
