package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestMethodNotAllowed(t *testing.T) {
	s := newServer(t, options{})
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/v1/auth/login", "POST, OPTIONS"},
		{"PUT", "/v1/me", "GET, DELETE, HEAD, OPTIONS"},
		{"PROPFIND", "/v1/sessions", "GET, DELETE, HEAD, OPTIONS"},
		{"POST", "/v1/admin/users/x", "GET, PATCH, DELETE, HEAD, OPTIONS"},
	} {
		r := s.do(t, c.method, c.path, nil, nil)
		if r.status != 405 || r.errCode() != "method_not_allowed" || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d %s Allow=%q, want 405 Allow=%q", c.method, c.path, r.status, r.raw, r.header.Get("Allow"), c.allow)
		}
	}
	if r := s.do(t, "GET", "/v1/nothing", nil, nil); r.status != 404 {
		t.Errorf("unknown path: %d", r.status)
	}
}

func TestWWWAuthenticateOn401(t *testing.T) {
	s := newServer(t, options{devCookies: true})
	// No token at all: a bare challenge.
	if r := s.do(t, "GET", "/v1/me", nil, nil); r.status != 401 || r.header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("no token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	// A bad token, by header or by cookie: invalid_token.
	for _, hdr := range []map[string]string{{"Authorization": "Bearer garbage"}, {"Cookie": "gatehouse_access=garbage"}} {
		if r := s.do(t, "GET", "/v1/me", nil, hdr); r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
			t.Fatalf("%v: %d %q", hdr, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	// Login failures are not a Bearer challenge.
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "nobody", "password": "long enough"}, nil); r.header.Get("WWW-Authenticate") != "" {
		t.Fatalf("login 401 carries %q", r.header.Get("WWW-Authenticate"))
	}
}

func TestHSTSOnlyForHTTPSIssuer(t *testing.T) {
	s := newServer(t, options{})
	if r := s.do(t, "GET", "/healthz", nil, nil); r.header.Get("Strict-Transport-Security") != "" {
		t.Fatal("HSTS with an http:// issuer")
	}
	h := newServer(t, options{issuer: "https://auth.example.com"})
	if r := h.do(t, "GET", "/healthz", nil, nil); !strings.HasPrefix(r.header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("no HSTS with an https:// issuer: %v", r.header)
	}
}

// The CSRF exemption is for requests whose credential is the Authorization
// header; any header used to let a cross-site form act on the refresh cookie.
func TestCSRFExemptionNeedsTheHeaderCredential(t *testing.T) {
	s := newServer(t, options{devCookies: true})
	s.register(t, "ann")
	cookie := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"Gatehouse-Transport": "cookie"})
	var refresh string
	for _, c := range (&http.Response{Header: cookie.header}).Cookies() {
		if c.Name == "gatehouse_refresh" {
			refresh = c.Value
		}
	}
	cross := func(extra map[string]string) map[string]string {
		h := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Cookie": "gatehouse_refresh=" + refresh}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	for _, auth := range []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer anything", "Negotiate x"} {
		if r := s.do(t, "POST", "/v1/auth/refresh", nil, cross(map[string]string{"Authorization": auth})); r.status != 403 || r.errCode() != "csrf_failed" {
			t.Fatalf("cross-site refresh with Authorization %q: %d %s", auth, r.status, r.raw)
		}
	}
	if r := s.do(t, "POST", "/v1/auth/logout", nil, cross(map[string]string{"Authorization": "Basic x"})); r.status != 403 {
		t.Fatalf("cross-site logout with Basic: %d %s", r.status, r.raw)
	}
	// The session was not touched: the cookie still refreshes.
	if r := s.do(t, "POST", "/v1/auth/refresh", nil, map[string]string{"Cookie": "gatehouse_refresh=" + refresh}); r.status != 200 {
		t.Fatalf("refresh after refused attempts: %d %s", r.status, r.raw)
	}
}

// A logout carrying a Bearer token of one session and the cookie of
// another ends the Bearer's session, not the cookie's.
func TestLogoutPrecedence(t *testing.T) {
	s := newServer(t, options{devCookies: true})
	s.register(t, "ann")
	bearerSession := s.login(t, "ann")
	cookieSession := s.login(t, "ann")
	r := s.do(t, "POST", "/v1/auth/logout", nil, map[string]string{
		"Authorization": "Bearer " + bearerSession.access, "Cookie": "gatehouse_refresh=" + cookieSession.refresh})
	if r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(bearerSession.access)); r.status != 401 {
		t.Fatalf("the Bearer's session survived: %d", r.status)
	}
	if r := s.refresh(t, cookieSession.refresh); r.status != 200 {
		t.Fatalf("the cookie's session was ended: %d %s", r.status, r.raw)
	}
	// A bad header never falls back to the cookie.
	other := s.login(t, "ann")
	s.do(t, "POST", "/v1/auth/logout", nil, map[string]string{"Authorization": "Bearer garbage", "Cookie": "gatehouse_refresh=" + other.refresh})
	if r := s.refresh(t, other.refresh); r.status != 200 {
		t.Fatalf("a bad header's logout ended the cookie's session: %d", r.status)
	}
}

// The web UI is served at / and its pages only when enabled (serve --ui,
// the default); without it those paths are the API's 404 and the browser
// client stays.
func TestUIToggle(t *testing.T) {
	on, off := newServer(t, options{ui: true}), newServer(t, options{})
	for _, p := range []string{"/", "/login", "/account", "/admin/events", "/ui/app.js"} {
		if r := on.do(t, "GET", p, nil, nil); r.status != 200 {
			t.Errorf("--ui: GET %s = %d", p, r.status)
		}
		if r := off.do(t, "GET", p, nil, nil); r.status != 404 || r.errCode() != "not_found" {
			t.Errorf("--ui=false: GET %s = %d %s", p, r.status, r.raw)
		}
	}
	for _, s := range []*server{on, off} {
		if r := s.do(t, "GET", "/gatehouse.js", nil, nil); r.status != 200 {
			t.Errorf("/gatehouse.js: %d", r.status)
		}
	}
	// The API's own rules hold under the UI: a page is not a way around 405.
	if r := on.do(t, "POST", "/login", nil, nil); r.status != 405 || r.header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("POST /login: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := on.do(t, "GET", "/v1/me", nil, nil); r.status != 401 {
		t.Errorf("API under the UI: %d", r.status)
	}
}
