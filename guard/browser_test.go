package guard_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// protected is a guard-protected handler that counts its calls.
func protected(gd *guard.Guard) (http.Handler, *int) {
	var calls int
	var mu sync.Mutex
	return gd.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		c, _ := guard.ClaimsFrom(r.Context())
		w.Write([]byte(c.Subject))
	})), &calls
}

func serveOne(h http.Handler, method, target string, hdr map[string]string, cookie *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestGuardCookieMode(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, func(c *guard.Config) {
		c.AccessCookie = guard.AccessCookie
		c.TrustedOrigins = []string{"https://admin.example.com"}
	})
	h, calls := protected(gd)
	ann := g.login(t, "ann")
	bob := g.login(t, "bob")
	cookie := &http.Cookie{Name: guard.AccessCookie, Value: ann.AccessToken}
	const site = "https://api.example.com/orders"

	// Safe methods with the cookie: accepted.
	if w := serveOne(h, "GET", site, nil, cookie); w.Code != 200 || w.Body.String() != ann.User.ID {
		t.Fatalf("GET with cookie: %d %s", w.Code, w.Body)
	}
	// Same-origin unsafe request (as a browser marks it): accepted.
	if w := serveOne(h, "POST", site, map[string]string{"Sec-Fetch-Site": "same-origin"}, cookie); w.Code != 200 {
		t.Fatalf("same-origin POST: %d %s", w.Code, w.Body)
	}
	// A trusted origin: accepted.
	if w := serveOne(h, "POST", site, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://admin.example.com"}, cookie); w.Code != 200 {
		t.Fatalf("trusted-origin POST: %d %s", w.Code, w.Body)
	}
	// A cross-site form POST riding on the cookie: 403, handler not called.
	before := *calls
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://evil.example.com"},
		{"Origin": "https://evil.example"}, // an older browser: no Sec-Fetch-Site
	} {
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			w := serveOne(h, m, site, hdr, cookie)
			if w.Code != 403 || !strings.Contains(w.Body.String(), `"csrf_failed"`) {
				t.Fatalf("%s %v: %d %s", m, hdr, w.Code, w.Body)
			}
		}
	}
	if *calls != before {
		t.Fatal("handler ran for a refused cross-site request")
	}
	// A header request is not subject to the cookie's check, and the header
	// wins over the cookie.
	w := serveOne(h, "POST", site, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example",
		"Authorization": "Bearer " + bob.AccessToken}, cookie)
	if w.Code != 200 || w.Body.String() != bob.User.ID {
		t.Fatalf("header + cookie: %d %s (want bob)", w.Code, w.Body)
	}
	// A bad header never falls back to the cookie.
	for _, v := range []string{"Bearer garbage", "Basic YWxhZGRpbjpvcGVu", "Bearer"} {
		if w := serveOne(h, "GET", site, map[string]string{"Authorization": v}, cookie); w.Code != 401 {
			t.Fatalf("Authorization %q with a good cookie: %d", v, w.Code)
		}
	}
	// Without cookie mode, the cookie is ignored.
	plain, _ := protected(newGuard(t, g, nil))
	if w := serveOne(plain, "GET", site, nil, cookie); w.Code != 401 {
		t.Fatalf("cookie accepted without AccessCookie: %d", w.Code)
	}
}

// A private CA and an internal address: BaseURL and HTTPClient are used for
// the JWKS and the feed, while Issuer still checks iss.
func TestGuardBaseURLAndClient(t *testing.T) {
	g := startGatehouse(t)
	target, _ := url.Parse(g.URL)
	internal := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	defer internal.Close()

	// Without the CA, the TLS address cannot be used.
	if _, err := guard.New(t.Context(), guard.Config{Issuer: g.URL, BaseURL: internal.URL, ResourceKey: resourceKey}); err == nil {
		t.Fatal("guard trusted an unknown CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(internal.Certificate())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	gd := newGuard(t, g, func(c *guard.Config) {
		c.BaseURL = internal.URL
		c.HTTPClient = client
	})
	ann := g.login(t, "ann")
	if _, err := gd.Verify(ann.AccessToken); err != nil {
		t.Fatalf("verify via BaseURL: %v", err)
	}
	if err := g.svc.Logout(t.Context(), ann.RefreshToken, "", auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, gd, ann.AccessToken, guard.ErrRevoked, 2*time.Second)
	if _, err := guard.New(t.Context(), guard.Config{Issuer: g.URL, BaseURL: "ftp://x", ResourceKey: resourceKey}); err == nil {
		t.Fatal("ftp BaseURL accepted")
	}
}

// Configuration mismatches are logged once per reason; bad tokens are not.
func TestGuardLogsConfigurationMismatchOnce(t *testing.T) {
	g := startGatehouse(t)
	other := startGatehouse(t) // another Gatehouse: keys this guard does not have
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	gd := newGuard(t, g, func(c *guard.Config) {
		c.Issuer = "https://auth.example.com" // not the server's --issuer
		c.BaseURL = g.URL
		c.Logger = logger
	})
	ann := g.login(t, "ann")
	stranger := other.login(t, "sam")
	for range 3 {
		if _, err := gd.Verify(ann.AccessToken); err == nil {
			t.Fatal("wrong issuer accepted")
		}
		if _, err := gd.Verify(stranger.AccessToken); err == nil {
			t.Fatal("foreign key accepted")
		}
		gd.Verify("garbage.garbage.garbage")
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, "issuer is not Config.Issuer"); n != 1 {
		t.Errorf("issuer mismatch logged %d times:\n%s", n, out)
	}
	if !strings.Contains(out, "token_iss="+g.URL) {
		t.Errorf("issuer log does not say which issuer:\n%s", out)
	}
	if n := strings.Count(out, "key the JWKS does not have"); n != 1 {
		t.Errorf("unknown key logged %d times:\n%s", n, out)
	}
	if strings.Contains(out, ann.AccessToken) || strings.Contains(out, stranger.AccessToken) || strings.Contains(out, "garbage") {
		t.Errorf("a token reached the log:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
