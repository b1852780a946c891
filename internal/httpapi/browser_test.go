package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/httpapi"
)

// Tests of the browser-facing contract (API.md "Transport", "CORS",
// "WebSocket"): what a page on another origin may and may not do.

const appOrigin = "https://app.example.com"

func TestCORSPreflight(t *testing.T) {
	s := newServer(t, options{origins: []string{appOrigin + "/"}}) // a trailing slash in the flag is tolerated
	preflight := func(path, origin, method string) response {
		t.Helper()
		return s.do(t, "OPTIONS", path, nil, map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method,
			"Access-Control-Request-Headers": "authorization, content-type, gatehouse-transport",
		})
	}
	r := preflight("/v1/auth/login", appOrigin, "POST")
	if r.status != 204 {
		t.Fatalf("preflight: %d %s", r.status, r.raw)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      appOrigin,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "POST",
		"Access-Control-Allow-Headers":     "Authorization, Content-Type, Gatehouse-Transport",
		"Access-Control-Max-Age":           "600",
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary = %v, want Origin", r.header.Values("Vary"))
	}
	// The route's own methods, from the mux.
	if got := preflight("/v1/sessions", appOrigin, "DELETE").header.Get("Access-Control-Allow-Methods"); got != "GET, DELETE" {
		t.Errorf("methods of /v1/sessions = %q", got)
	}
	if got := preflight("/v1/admin/users/u1", appOrigin, "PATCH").header.Get("Access-Control-Allow-Methods"); got != "GET, PATCH, DELETE" {
		t.Errorf("methods of /v1/admin/users/{id} = %q", got)
	}

	// Anything but an exact listed origin: no CORS header at all.
	for _, o := range []string{"null", "https://evil.example", "https://app.example.com.evil.net", "http://app.example.com",
		"https://app.example.com:444", "https://sub.app.example.com", "HTTPS://APP.EXAMPLE.COM/x"} {
		r := preflight("/v1/auth/login", o, "POST")
		if r.status != 403 || r.errCode() != "csrf_failed" {
			t.Errorf("preflight from %q: %d %s", o, r.status, r.raw)
		}
		for k := range r.header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("preflight from %q got %s: %q", o, k, r.header.Get(k))
			}
		}
	}
	// An unknown path is 404 even for a listed origin.
	if r := preflight("/v1/nope", appOrigin, "GET"); r.status != 404 {
		t.Errorf("preflight of unknown path: %d", r.status)
	}
	// A plain OPTIONS (not a preflight) says what the path serves.
	if r := s.do(t, "OPTIONS", "/v1/auth/refresh", nil, nil); r.status != 204 || r.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("plain OPTIONS: %d Allow=%q", r.status, r.header.Get("Allow"))
	}
}

func TestCORSActualResponses(t *testing.T) {
	s := newServer(t, options{origins: []string{appOrigin}})
	s.register(t, "ann")
	h := map[string]string{"Origin": appOrigin}
	for _, path := range []string{"/v1/me", "/gatehouse.js", "/.well-known/jwks.json", "/healthz"} {
		r := s.do(t, "GET", path, nil, h)
		if r.header.Get("Access-Control-Allow-Origin") != appOrigin || r.header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("GET %s: ACAO=%q ACAC=%q", path, r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Access-Control-Allow-Credentials"))
		}
		if exp := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Retry-After") || !strings.Contains(exp, "WWW-Authenticate") {
			t.Errorf("GET %s: expose = %q", path, exp)
		}
		if r.header.Get("Access-Control-Allow-Origin") == "*" {
			t.Errorf("wildcard origin")
		}
	}
	r := s.do(t, "GET", "/v1/me", nil, map[string]string{"Origin": "null"})
	if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("null origin got CORS headers: %v", r.header)
	}
	if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("no Vary: Origin for an unlisted origin")
	}
}

func TestAllowedOriginMustBeAnOrigin(t *testing.T) {
	for _, bad := range []string{"*", "null", "app.example.com", "https://app.example.com/path", "ftp://x", "https://"} {
		if _, err := httpapi.New(nil, httpapi.Config{AllowedOrigins: []string{bad}}); err == nil {
			t.Errorf("--allowed-origin %q accepted", bad)
		}
	}
}

// Cross-origin unsafe cookie requests: an allowed origin passes, every other
// origin is refused and changes nothing.
func TestCSRFWithAllowedOrigins(t *testing.T) {
	s := newServer(t, options{devCookies: true, origins: []string{appOrigin}})
	s.register(t, "ann")
	login := func(origin, site string) response {
		return s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
			map[string]string{"Origin": origin, "Sec-Fetch-Site": site, "Gatehouse-Transport": "refresh-cookie"})
	}
	if r := login(appOrigin, "same-site"); r.status != 200 {
		t.Fatalf("login from allowed origin: %d %s", r.status, r.raw)
	}
	for _, o := range []string{"https://evil.example", "null", "https://app.example.com.evil.net"} {
		r := login(o, "cross-site")
		if r.status != 403 || r.errCode() != "csrf_failed" || r.header.Get("Set-Cookie") != "" {
			t.Fatalf("login from %s: %d %s", o, r.status, r.raw)
		}
	}
	// The refused logins created no session: one from the allowed login,
	// one from this check.
	tk := s.login(t, "ann")
	if r := s.do(t, "GET", "/v1/sessions", nil, bearer(tk.access)); len(r.body["sessions"].([]any)) != 2 {
		t.Fatalf("sessions after refused logins: %s", r.raw)
	}
}

func TestRefreshCookieTransport(t *testing.T) {
	s := newServer(t, options{origins: []string{appOrigin}})
	s.register(t, "ann")
	hdr := map[string]string{"Gatehouse-Transport": "refresh-cookie", "Origin": appOrigin}
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, hdr)
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	at, _ := r.body["access_token"].(string)
	if at == "" || r.body["refresh_token"] != nil {
		t.Fatalf("body must carry the access token only: %s", r.raw)
	}
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != "__Secure-gatehouse_refresh" {
		t.Fatalf("want only the refresh cookie, got %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || !c.Secure || c.Path != "/v1/auth" || c.SameSite != http.SameSiteStrictMode || !strings.HasPrefix(c.Value, "ghr_") {
		t.Fatalf("refresh cookie attributes: %+v", c)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response cacheable")
	}
	// The access token works as a Bearer.
	if me := s.do(t, "GET", "/v1/me", nil, bearer(at)); me.status != 200 {
		t.Fatalf("me: %d", me.status)
	}
	// A refresh needs no body: the cookie carries the token; the answer is
	// again refresh-cookie shaped.
	hdr["Cookie"] = c.Name + "=" + c.Value
	r2 := s.do(t, "POST", "/v1/auth/refresh", nil, hdr)
	if r2.status != 200 {
		t.Fatalf("refresh: %d %s", r2.status, r2.raw)
	}
	if r2.body["access_token"] == "" || r2.body["refresh_token"] != nil {
		t.Fatalf("refresh body: %s", r2.raw)
	}
	nc := (&http.Response{Header: r2.header}).Cookies()
	if len(nc) != 1 || nc[0].Name != c.Name || nc[0].Value == c.Value {
		t.Fatalf("refresh must rotate the refresh cookie only: %v", nc)
	}
	// Without the header a cookie refresh answers as cookie (both cookies).
	delete(hdr, "Gatehouse-Transport")
	hdr["Cookie"] = c.Name + "=" + nc[0].Value
	r3 := s.do(t, "POST", "/v1/auth/refresh", nil, hdr)
	if r3.status != 200 || r3.body["access_token"] != nil || len((&http.Response{Header: r3.header}).Cookies()) != 2 {
		t.Fatalf("headerless cookie refresh: %d %s %v", r3.status, r3.raw, r3.header.Values("Set-Cookie"))
	}
	// An unknown transport is a clear 400.
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"Gatehouse-Transport": "localStorage"}); r.status != 400 || r.errCode() != "invalid_request" {
		t.Fatalf("bad transport: %d %s", r.status, r.raw)
	}
}

func TestClientScript(t *testing.T) {
	s := newServer(t, options{})
	r := s.do(t, "GET", "/gatehouse.js", nil, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("gatehouse.js: %d %q", r.status, r.header.Get("Content-Type"))
	}
	if !strings.Contains(r.raw, "export function createClient") {
		t.Fatalf("not the client")
	}
	etag := r.header.Get("ETag")
	if etag == "" || strings.Contains(r.header.Get("Cache-Control"), "no-store") {
		t.Fatalf("not cacheable: ETag=%q Cache-Control=%q", etag, r.header.Get("Cache-Control"))
	}
	if r := s.do(t, "GET", "/gatehouse.js", nil, map[string]string{"If-None-Match": etag}); r.status != 304 {
		t.Fatalf("revalidation: %d", r.status)
	}
}

// dialOrigin opens a socket with an Origin header and nothing else.
func (s *server) dialOrigin(t *testing.T, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return s.dial(t, "/v1/ws", h)
}

func writeText(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketFirstMessageAuth(t *testing.T) {
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}})
	s.register(t, "ann")
	tk := s.login(t, "ann")

	// From an allowed origin, with no credential: accepted, silent until
	// the auth message, then hello.
	c, _, err := s.dialOrigin(t, appOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, c, 300*time.Millisecond); err == nil {
		t.Fatal("server spoke before authentication")
	}
	c, _, _ = s.dialOrigin(t, appOrigin) // the timed-out read closed the last one
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`"}`)
	m, err := read(t, c, 2*time.Second)
	if err != nil || m.Type != "hello" || m.SessionID != tk.session {
		t.Fatalf("hello: %+v %v", m, err)
	}

	// Same-host origin too.
	c, _, err = s.dialOrigin(t, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`"}`)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("same-host hello: %+v %v", m, err)
	}

	// No credential and no Origin: not a browser, 401.
	if _, res, err := s.dialOrigin(t, ""); err == nil || res == nil || res.StatusCode != 401 {
		t.Fatalf("headerless, originless upgrade: %v %v", res, err)
	}
	// Other origins: 403, with or without a credential.
	for _, h := range []http.Header{{"Origin": {"https://evil.example"}}, {"Origin": {"null"}},
		{"Origin": {"https://evil.example"}, "Authorization": {"Bearer " + tk.access}}} {
		if _, res, err := s.dial(t, "/v1/ws", h); err == nil || res == nil || res.StatusCode != 403 {
			t.Fatalf("upgrade with %v: %v %v", h, res, err)
		}
	}
}

func TestWebSocketFirstMessageBadInput(t *testing.T) {
	old := httpapi.SetAuthDeadline(300 * time.Millisecond)
	defer httpapi.SetAuthDeadline(old)
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	revoked := s.login(t, "ann")
	s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": revoked.refresh}, nil)

	cases := []struct {
		name, msg string
	}{
		{"not JSON", `{"type":"auth",`},
		{"not auth", `{"type":"reauth","access_token":"` + tk.access + `"}`},
		{"unknown field", `{"type":"auth","access_token":"` + tk.access + `","x":1}`},
		{"two values", `{"type":"auth","access_token":"` + tk.access + `"}{}`},
		{"bad token", `{"type":"auth","access_token":"eyJhbGciOiJub25lIn0.e30."}`},
		{"refresh token", `{"type":"auth","access_token":"` + tk.refresh + `"}`},
		{"revoked session", `{"type":"auth","access_token":"` + revoked.access + `"}`},
		{"too large", `{"type":"auth","access_token":"` + strings.Repeat("a", 5000) + `"}`},
		{"late", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := s.dialOrigin(t, appOrigin)
			if err != nil {
				t.Fatal(err)
			}
			if tc.msg != "" {
				writeText(t, c, tc.msg)
			}
			closedWith(t, c, 4001, 3*time.Second)
		})
	}
	if logs := s.logs.String(); strings.Contains(logs, tk.access) || strings.Contains(logs, tk.refresh) {
		t.Fatal("a token reached the logs")
	}
	// The server is still well.
	if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.status != 200 {
		t.Fatalf("me after bad sockets: %d", r.status)
	}
}

func TestWebSocketPendingCap(t *testing.T) {
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}, maxPendingSockets: 2})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	a, _, err := s.dialOrigin(t, appOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.dialOrigin(t, appOrigin); err != nil {
		t.Fatal(err)
	}
	_, res, err := s.dialOrigin(t, appOrigin)
	if err == nil || res == nil || res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("third waiting socket: %v %v", res, err)
	}
	// Header-authenticated sockets are not limited by the cap.
	if _, _, err := s.dial(t, "/v1/ws", bearerHeader(tk.access)); err != nil {
		t.Fatalf("authenticated socket refused: %v", err)
	}
	// Once one authenticates, its slot is free again.
	writeText(t, a, `{"type":"auth","access_token":"`+tk.access+`"}`)
	if m, err := read(t, a, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("hello: %+v %v", m, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, _, err := s.dialOrigin(t, appOrigin)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
