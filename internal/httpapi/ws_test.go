package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

func (s *server) dial(t *testing.T, path string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+path, &websocket.DialOptions{HTTPHeader: hdr})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, res, err
}

// socket opens an authenticated socket with the Authorization header and
// returns it with its hello message.
func (s *server) socket(t *testing.T, access string) (*websocket.Conn, wsMsg) {
	t.Helper()
	c, _, err := s.dial(t, "/v1/ws", bearerHeader(access))
	if err != nil {
		t.Fatal(err)
	}
	hello, err := read(t, c, 2*time.Second)
	if err != nil || hello.Type != "hello" {
		t.Fatalf("hello = %+v, %v", hello, err)
	}
	return c, hello
}

type wsMsg struct {
	Type      string         `json:"type"`
	User      map[string]any `json:"user"`
	SessionID string         `json:"session_id"`
	Event     map[string]any `json:"event"`
	Error     string         `json:"error"`
}

func read(t *testing.T, c *websocket.Conn, timeout time.Duration) (wsMsg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, data, err := c.Read(ctx)
	var m wsMsg
	if err == nil {
		json.Unmarshal(data, &m)
	}
	return m, err
}

// closedWith reads until the socket closes and checks the code, returning
// how long that took.
func closedWith(t *testing.T, c *websocket.Conn, code websocket.StatusCode, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, err := read(t, c, limit)
		if err == nil {
			continue // events may arrive first
		}
		if got := websocket.CloseStatus(err); got != code {
			t.Fatalf("socket ended with %v (status %d), want %d", err, got, code)
		}
		return time.Since(start)
	}
}

func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func TestWebSocketAuth(t *testing.T) {
	s := newServer(t, options{realClock: true})
	s.register(t, "ann")
	tk := s.login(t, "ann")

	_, hello := s.socket(t, tk.access)
	if hello.SessionID != tk.session || hello.User["username"] != "ann" {
		t.Fatalf("hello = %+v", hello)
	}
	// Cookie, same origin.
	cookie := http.Header{"Cookie": {"__Host-gatehouse_access=" + tk.access}, "Origin": {s.URL}}
	c2, _, err := s.dial(t, "/v1/ws", cookie)
	if err != nil {
		t.Fatalf("cookie auth: %v", err)
	}
	if m, _ := read(t, c2, 2*time.Second); m.Type != "hello" {
		t.Fatalf("cookie hello %+v", m)
	}
	// Cross-site WebSocket hijacking: a page elsewhere opening a socket
	// with the victim's cookie.
	evil := http.Header{"Cookie": {"__Host-gatehouse_access=" + tk.access}, "Origin": {"https://evil.example"}}
	if _, res, err := s.dial(t, "/v1/ws", evil); err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("cross-site upgrade: %v %v", err, res)
	}
	// Query-string tokens are refused.
	if _, res, err := s.dial(t, "/v1/ws?access_token="+tk.access, nil); err == nil || res == nil || res.StatusCode != 400 {
		t.Fatalf("query token: %v %v", err, res)
	}
	for _, h := range []http.Header{nil, bearerHeader("garbage"), bearerHeader(tk.refresh)} {
		if _, res, err := s.dial(t, "/v1/ws", h); err == nil || res == nil || res.StatusCode != 401 {
			t.Fatalf("bad credentials %v: %v %v", h, err, res)
		}
	}
}

func TestWebSocketQueryTokenWhenAllowed(t *testing.T) {
	s := newServer(t, options{realClock: true, allowQueryToken: true})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	c, _, err := s.dial(t, "/v1/ws?access_token="+tk.access, nil)
	if err != nil {
		t.Fatalf("query token with --allow-query-token: %v", err)
	}
	if m, _ := read(t, c, 2*time.Second); m.Type != "hello" {
		t.Fatalf("hello %+v", m)
	}
	if strings.Contains(s.logs.String(), tk.access) {
		t.Fatal("the query-string token was logged")
	}
	// Only the WebSocket endpoint takes it.
	if r := s.do(t, "GET", "/v1/me?access_token="+tk.access, nil, nil); r.status != 400 {
		t.Fatalf("query token on /v1/me: %d", r.status)
	}
}

func TestWebSocketEventsAndReauth(t *testing.T) {
	s := newServer(t, options{realClock: true})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	c, _ := s.socket(t, tk.access)
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "wrong-password"}, nil)
	m, err := read(t, c, 2*time.Second)
	if err != nil || m.Type != "event" || m.Event["type"] != "login_failed" {
		t.Fatalf("live event: %+v, %v", m, err)
	}
	next := s.refresh(t, tk.refresh)
	msg, _ := json.Marshal(map[string]string{"type": "reauth", "access_token": next.body["access_token"].(string)})
	c.Write(context.Background(), websocket.MessageText, msg)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "reauth_ok" {
		t.Fatalf("reauth: %+v, %v", m, err)
	}
	other := s.login(t, "ann")
	msg, _ = json.Marshal(map[string]string{"type": "reauth", "access_token": other.access})
	c.Write(context.Background(), websocket.MessageText, msg)
	for {
		m, err := read(t, c, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == "event" {
			continue
		}
		if m.Type != "error" || m.Error != "invalid_token" {
			t.Fatalf("reauth with another session's token: %+v", m)
		}
		break
	}
}

func TestWebSocketClosesOnExpiry(t *testing.T) {
	s := newServer(t, options{realClock: true, accessTTL: 2 * time.Second})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	c, _ := s.socket(t, tk.access)
	took := closedWith(t, c, 4001, 5*time.Second)
	t.Logf("closed 4001 %v after connecting (token lifetime 2s)", took)
}

// TestWebSocketClosesOnRevocation: every way a session can end closes its
// sockets with 4003 within a second.
func TestWebSocketClosesOnRevocation(t *testing.T) {
	paths := []struct {
		name   string
		revoke func(s *server, tk tokens)
	}{
		{"logout elsewhere", func(s *server, tk tokens) {
			s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": tk.refresh}, nil)
		}},
		{"admin revokes the session", func(s *server, tk tokens) {
			s.svc.RevokeSession(context.Background(), tk.session, auth.Meta{})
		}},
		{"reuse detection", func(s *server, tk tokens) {
			// Two rotations on, the first token is reuse.
			r := s.refresh(t, tk.refresh)
			s.refresh(t, r.body["refresh_token"].(string))
			if r := s.refresh(t, tk.refresh); r.errCode() != "refresh_token_reused" {
				t.Fatalf("setup: %s", r.raw)
			}
		}},
		{"account disabled", func(s *server, tk tokens) {
			id := s.userID(t, tk)
			yes := true
			s.svc.UpdateUser(context.Background(), id, nil, &yes, auth.Meta{})
		}},
		{"revoke-all", func(s *server, tk tokens) { s.svc.RevokeAll(context.Background(), auth.Meta{}) }},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			s := newServer(t, options{realClock: true})
			s.register(t, "ann")
			tk := s.login(t, "ann")
			c, _ := s.socket(t, tk.access)
			start := time.Now()
			p.revoke(s, tk)
			closedWith(t, c, 4003, 3*time.Second)
			took := time.Since(start)
			t.Logf("closed 4003 %v after the revocation started", took)
			if took > time.Second {
				t.Errorf("close took %v, want within 1s", took)
			}
		})
	}
}

// TestWebSocketFailsClosedWhenRevocationsAreUnknown: an instance that can
// no longer follow the revocation log closes its sockets (1013) rather than
// keep serving sessions that may have been revoked elsewhere.
func TestWebSocketFailsClosedWhenRevocationsAreUnknown(t *testing.T) {
	s := newServer(t, options{realClock: true, follow: true, maxSyncAge: 200 * time.Millisecond})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	c, _ := s.socket(t, tk.access)
	s.close() // the database is gone
	took := closedWith(t, c, websocket.StatusTryAgainLater, 5*time.Second)
	t.Logf("closed 1013 %v after the database went away (bound 200ms, checked every second)", took)
}
