package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/httpapi"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// These tests drive the real handler over HTTP on a random loopback port,
// using only the public contract (API.md).

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type server struct {
	*httptest.Server
	svc   *auth.Service
	clock *clock
	logs  *syncbuf.Buffer
	close func() error // closes the store
	db    string       // the SQLite file, for a second process's view
}

type options struct {
	closedRegistration bool
	devCookies         bool
	origins            []string
	trusted            []netip.Prefix
	realClock          bool
	accessTTL          time.Duration
	allowQueryToken    bool
	follow             bool          // run the service's background loop
	maxSyncAge         time.Duration // with follow
	maxPendingSockets  int
	issuer             string // default http://gatehouse.test
	metricsElsewhere   bool
	ui                 bool
	hashParams         password.Params // default: cheap test parameters
	hashConcurrency    int
	throttle           throttle.Config
	maxUserSockets     int
	maxAddrPending     int
	sendBuffer         int // SO_SNDBUF of accepted connections, if set
	requireMFA         []string
	dpopNonceKey       []byte // demand DPoP nonces under this key
	audiences          []string
	// open makes the store (default: SQLite in a temporary directory).
	open func(t testing.TB) store.Store
}

const resourceKey = "resource-key-for-tests-0123456789abcdef0123"

func newServer(t testing.TB, opt options) *server {
	t.Helper()
	db := filepath.Join(t.TempDir(), "api.db")
	var st store.Store
	if opt.open != nil {
		st = opt.open(t)
	} else {
		var err error
		if st, err = sqlite.Open(context.Background(), db, sqlite.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := &clock{t: time.Now().UTC()}
	now := c.Now
	if opt.realClock {
		now = time.Now
	}
	issuer := "http://gatehouse.test"
	if opt.issuer != "" {
		issuer = opt.issuer
	}
	reg := prometheus.NewRegistry()
	hp := opt.hashParams
	if hp == (password.Params{}) {
		hp = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	}
	svc := auth.New(auth.Config{
		Issuer: issuer, Audiences: opt.audiences, RegistrationOpen: !opt.closedRegistration, Metrics: reg,
		HashParams: hp, HashConcurrency: opt.hashConcurrency, Throttle: opt.throttle,
		Now: now, Logger: log, AccessTTL: opt.accessTTL, ResourceKeys: []string{resourceKey},
		SyncInterval: 20 * time.Millisecond, MaxSyncAge: opt.maxSyncAge, RequireMFARoles: opt.requireMFA,
	}, st, token.NewKeySet(token.GenerateKey()), make([]byte, 32))
	var nonces *dpop.Nonces
	if opt.dpopNonceKey != nil {
		nonces = dpop.NewNonces(opt.dpopNonceKey)
	}
	h, err := httpapi.New(svc, httpapi.Config{DPoP: dpop.NewVerifier(0, nonces, now), Logger: log, Registry: reg, MetricsElsewhere: opt.metricsElsewhere, InsecureDevCookies: opt.devCookies, AllowedOrigins: opt.origins,
		TrustedProxies: opt.trusted, AllowQueryToken: opt.allowQueryToken, MaxPendingSockets: opt.maxPendingSockets, UI: opt.ui,
		MaxSocketsPerUser: opt.maxUserSockets, MaxPendingSocketsPerAddress: opt.maxAddrPending})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	if opt.sendBuffer > 0 {
		ts.Listener = smallSendBuffers{ts.Listener, opt.sendBuffer}
	}
	ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	if opt.follow {
		go svc.Run(ctx)
	}
	t.Cleanup(func() { cancel(); ts.Close(); st.Close() })
	return &server{Server: ts, svc: svc, clock: c, logs: logs, close: st.Close, db: db}
}

// smallSendBuffers shrinks the kernel's send buffer of each accepted
// connection, so a client that stops reading holds the server's writer
// after a few messages rather than after the megabytes loopback allows.
type smallSendBuffers struct {
	net.Listener
	size int
}

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(l.size)
	}
	return c, err
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) errCode() string { s, _ := r.body["error"].(string); return s }

func (s *server) do(t *testing.T, method, path string, body any, hdr map[string]string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 && res.Header.Get("Content-Type") != "application/json" && res.StatusCode < 400 {
		return out // /metrics
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	if res.StatusCode >= 400 {
		if out.errCode() == "" || out.body["error_description"] == "" {
			t.Fatalf("%s %s: error not in contract format: %s", method, path, raw)
		}
	}
	if res.StatusCode >= 500 && res.StatusCode != 503 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	return out
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

type tokens struct{ access, refresh, session string }

func (s *server) register(t *testing.T, user string) {
	t.Helper()
	r := s.do(t, "POST", "/v1/auth/register", map[string]string{"username": user, "password": "pw-" + user + "-long"}, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", user, r.status, r.raw)
	}
}

func (s *server) login(t *testing.T, user string) tokens {
	t.Helper()
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": user, "password": "pw-" + user + "-long"}, nil)
	if r.status != 200 {
		t.Fatalf("login %s: %d %s", user, r.status, r.raw)
	}
	return tokens{r.body["access_token"].(string), r.body["refresh_token"].(string), r.body["session_id"].(string)}
}

func (s *server) refresh(t *testing.T, rt string) response {
	t.Helper()
	return s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": rt}, nil)
}

func TestRegister(t *testing.T) {
	s := newServer(t, options{})
	r := s.do(t, "POST", "/v1/auth/register", map[string]string{"username": "Ann", "password": "long enough"}, nil)
	if r.status != 201 {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	u := r.body["user"].(map[string]any)
	if u["username"] != "Ann" || u["role"] != "user" || u["disabled"] != false || u["id"] == "" || u["created_at"] == "" {
		t.Fatalf("user = %v", u)
	}
	if _, ok := u["password_hash"]; ok || strings.Contains(r.raw, "argon2") {
		t.Fatal("the password hash leaked into the response")
	}
	for _, tc := range []struct {
		name, user, pw string
		status         int
		code           string
	}{
		{"taken, other case", "ANN", "long enough", 409, "username_taken"},
		{"short password", "bob", "short", 400, "weak_password"},
		{"long password", "bob", strings.Repeat("x", 1025), 400, "weak_password"},
		{"bad username", "bob smith", "long enough", 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/v1/auth/register", map[string]string{"username": tc.user, "password": tc.pw}, nil)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
		})
	}
	closed := newServer(t, options{closedRegistration: true})
	r = closed.do(t, "POST", "/v1/auth/register", map[string]string{"username": "ann", "password": "long enough"}, nil)
	if r.status != 403 || r.errCode() != "registration_disabled" {
		t.Fatalf("closed registration: %d %s", r.status, r.raw)
	}
}

func TestLoginAndMe(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"User-Agent": "tour/1.0"})
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("token response headers: %v", r.header)
	}
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatal("body transport set cookies")
	}
	at, _ := r.body["access_token"].(string)
	rt, _ := r.body["refresh_token"].(string)
	if r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(300) ||
		r.body["refresh_expires_in"] != float64(14*24*3600) || !strings.HasPrefix(rt, "ghr_") || at == "" {
		t.Fatalf("token response: %s", r.raw)
	}
	// The access token's header and claims are what API.md promises.
	parts := strings.Split(at, ".")
	var hdr, claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(hb, &hdr)
	json.Unmarshal(cb, &claims)
	if hdr["alg"] != "EdDSA" || hdr["typ"] != "at+jwt" || hdr["kid"] == nil {
		t.Fatalf("header %v", hdr)
	}
	for _, c := range []string{"iss", "sub", "sid", "jti", "iat", "exp", "role"} {
		if claims[c] == nil {
			t.Errorf("claim %s missing: %v", c, claims)
		}
	}
	if claims["sid"] != r.body["session_id"] {
		t.Errorf("sid %v != session_id %v", claims["sid"], r.body["session_id"])
	}
	// A token lives exactly the access TTL (exp is not rounded to whole
	// seconds, which would shorten some tokens by up to a second).
	if life := claims["exp"].(float64) - claims["iat"].(float64); life < 300-1e-6 || life > 300+1e-6 {
		t.Errorf("exp - iat = %v s, want 300", life)
	}
	me := s.do(t, "GET", "/v1/me", nil, bearer(at))
	if me.status != 200 {
		t.Fatalf("/v1/me: %d %s", me.status, me.raw)
	}
	sess := me.body["session"].(map[string]any)
	if me.body["user"].(map[string]any)["username"] != "ann" || sess["current"] != true ||
		sess["id"] != r.body["session_id"] || sess["ip"] != "127.0.0.1" || sess["user_agent"] != "tour/1.0" {
		t.Fatalf("/v1/me = %s", me.raw)
	}
	for _, f := range []string{"created_at", "last_used_at", "idle_expires_at", "expires_at"} {
		if _, err := time.Parse(time.RFC3339, sess[f].(string)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	wrong := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "not her password"}, nil)
	unknown := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "nobody", "password": "not her password"}, nil)
	if wrong.status != 401 || wrong.raw != unknown.raw || unknown.status != 401 || wrong.errCode() != "invalid_credentials" {
		t.Fatalf("wrong password %d %s vs unknown user %d %s", wrong.status, wrong.raw, unknown.status, unknown.raw)
	}
}

func TestStrictRequestBodies(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tests := []struct {
		name   string
		body   string
		ctype  string
		status int
		code   string
	}{
		{"too large", `{"username":"ann","password":"` + strings.Repeat("x", 64<<10) + `"}`, "application/json", 413, "request_too_large"},
		{"unknown field", `{"username":"ann","password":"pw-ann-long","admin":true}`, "application/json", 400, "invalid_request"},
		{"duplicate key", `{"username":"ann","password":"wrong","password":"pw-ann-long"}`, "application/json", 400, "invalid_request"},
		{"case-variant key", `{"USERNAME":"ann","password":"pw-ann-long"}`, "application/json", 400, "invalid_request"},
		{"wrong type", `{"username":"ann","password":12345678}`, "application/json", 400, "invalid_request"},
		{"trailing data", `{"username":"ann","password":"pw-ann-long"} {}`, "application/json", 400, "invalid_request"},
		{"not JSON", `username=ann&password=pw-ann-long`, "application/json", 400, "invalid_request"},
		{"array", `[]`, "application/json", 400, "invalid_request"},
		{"empty", ``, "application/json", 400, "invalid_request"},
		{"form content type", `{"username":"ann","password":"pw-ann-long"}`, "application/x-www-form-urlencoded", 400, "invalid_request"},
		{"null values", `{"username":null,"password":null}`, "application/json", 401, "invalid_credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/v1/auth/login", tc.body, map[string]string{"Content-Type": tc.ctype})
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
		})
	}
}

func TestProtectedRoutesRejectBadTokens(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	parts := strings.Split(tk.access, ".")
	forgedKey := token.GenerateKey()
	other, _ := token.NewKeySet(forgedKey).Sign(token.Claims{Issuer: "http://gatehouse.test", Subject: "x", SessionID: tk.session,
		ID: "j", Role: "admin", IssuedAt: token.NumericDate{Time: time.Now()}, ExpiresAt: token.NumericDate{Time: time.Now().Add(time.Hour)}})
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	elevated := base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"role":"user"`), []byte(`"role":"admin"`), 1))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	_, priv, _ := ed25519.GenerateKey(nil)
	_ = priv
	tests := []struct {
		name string
		hdr  map[string]string
		code string
	}{
		{"no token", nil, "invalid_token"},
		{"garbage", bearer("garbage"), "invalid_token"},
		{"altered claims", bearer(parts[0] + "." + elevated + "." + parts[2]), "invalid_token"},
		{"alg none", bearer(none), "invalid_token"},
		{"signed by another key", bearer(other), "invalid_token"},
		{"refresh token as access token", bearer(tk.refresh), "invalid_token"},
		{"basic auth", map[string]string{"Authorization": "Basic YW5uOnB3"}, "invalid_token"},
		{"huge token", bearer(strings.Repeat("A", 32<<10)), "invalid_token"},
	}
	for _, tc := range tests {
		for _, path := range []string{"/v1/me", "/v1/sessions"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				r := s.do(t, "GET", path, nil, tc.hdr)
				if r.status != 401 || r.errCode() != tc.code {
					t.Fatalf("got %d %s, want 401 %s", r.status, r.raw, tc.code)
				}
				if tc.hdr != nil && r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
					t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	s.clock.Advance(5 * time.Minute)
	if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.status != 401 || r.errCode() != "token_expired" {
		t.Fatalf("expired: %d %s", r.status, r.raw)
	}
}

func TestQueryTokensRefused(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	for _, q := range []string{"access_token", "token"} {
		r := s.do(t, "GET", "/v1/me?"+q+"="+tk.access, nil, nil)
		if r.status != 400 || r.errCode() != "query_token_disabled" {
			t.Fatalf("?%s=: %d %s", q, r.status, r.raw)
		}
		// Even alongside a valid header: a token in a URL is a leak to stop.
		r = s.do(t, "GET", "/v1/me?"+q+"="+tk.access, nil, bearer(tk.access))
		if r.status != 400 {
			t.Fatalf("?%s= with a header: %d", q, r.status)
		}
	}
	if strings.Contains(s.logs.String(), tk.access) {
		t.Fatal("a query-string token reached the logs")
	}
}

func TestRefreshRotationOverHTTP(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	t1 := s.login(t, "ann")
	r2 := s.refresh(t, t1.refresh)
	if r2.status != 200 {
		t.Fatalf("refresh: %d %s", r2.status, r2.raw)
	}
	rt2 := r2.body["refresh_token"].(string)
	if rt2 == t1.refresh || r2.body["session_id"] != t1.session {
		t.Fatal("refresh did not rotate within the session")
	}
	// Lost response, retried: the previous token gets the same successor.
	again := s.refresh(t, t1.refresh)
	if again.status != 200 || again.body["refresh_token"] != rt2 {
		t.Fatalf("grace retry: %d %s", again.status, again.raw)
	}
	// Reuse after the grace window: the session dies.
	s.clock.Advance(11 * time.Second)
	reused := s.refresh(t, t1.refresh)
	if reused.status != 401 || reused.errCode() != "refresh_token_reused" {
		t.Fatalf("reuse: %d %s", reused.status, reused.raw)
	}
	if r := s.refresh(t, rt2); r.status != 401 || r.errCode() != "session_revoked" {
		t.Fatalf("current token after reuse: %d %s", r.status, r.raw)
	}
	for _, path := range []string{"/v1/me", "/v1/sessions"} {
		if r := s.do(t, "GET", path, nil, bearer(r2.body["access_token"].(string))); r.status != 401 || r.errCode() != "token_revoked" {
			t.Fatalf("%s with the session's access token after reuse: %d %s", path, r.status, r.raw)
		}
	}
	if r := s.refresh(t, "ghr_nonsense"); r.status != 401 || r.errCode() != "invalid_refresh_token" {
		t.Fatalf("nonsense refresh token: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/refresh", nil, nil); r.status != 401 || r.errCode() != "invalid_refresh_token" {
		t.Fatalf("no refresh token: %d %s", r.status, r.raw)
	}
}

func TestConcurrentRefreshOverHTTP(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	t1 := s.login(t, "ann")
	const n = 50
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]string{"refresh_token": t1.refresh})
			res, err := http.Post(s.URL+"/v1/auth/refresh", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var out map[string]any
			json.NewDecoder(res.Body).Decode(&out)
			if res.StatusCode != 200 {
				t.Errorf("refresh %d: %d %v", i, res.StatusCode, out)
				return
			}
			got[i] = out["refresh_token"].(string)
		}()
	}
	wg.Wait()
	for i := range n {
		if got[i] != got[0] {
			t.Fatalf("response %d carries a different refresh token: two live chains", i)
		}
	}
}

func cookieMap(h http.Header) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestCookieTransport(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	ct := map[string]string{"Gatehouse-Transport": "cookie"}
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, ct)
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["access_token"]; ok {
		t.Fatal("cookie transport put the access token in the body")
	}
	if _, ok := r.body["refresh_token"]; ok {
		t.Fatal("cookie transport put the refresh token in the body")
	}
	set := strings.Join(r.header.Values("Set-Cookie"), "\n")
	for _, want := range []string{
		"__Host-gatehouse_access=", "Path=/; Max-Age=300; HttpOnly; Secure; SameSite=Lax",
		"__Secure-gatehouse_refresh=", "Path=/v1/auth; Max-Age=1209600; HttpOnly; Secure; SameSite=Strict",
	} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie lacks %q:\n%s", want, set)
		}
	}
	cookies := cookieMap(r.header)
	access, refresh := cookies["__Host-gatehouse_access"], cookies["__Secure-gatehouse_refresh"]
	cookieHdr := func(cs ...*http.Cookie) map[string]string {
		var parts []string
		for _, c := range cs {
			parts = append(parts, c.Name+"="+c.Value)
		}
		return map[string]string{"Cookie": strings.Join(parts, "; ")}
	}
	if me := s.do(t, "GET", "/v1/me", nil, cookieHdr(access)); me.status != 200 {
		t.Fatalf("/v1/me by cookie: %d %s", me.status, me.raw)
	}
	// A Bearer header wins over the cookie.
	if me := s.do(t, "GET", "/v1/me", nil, map[string]string{"Cookie": access.Name + "=" + access.Value, "Authorization": "Bearer bad"}); me.status != 401 {
		t.Fatalf("header must take precedence over cookie: %d", me.status)
	}
	// Refresh by cookie (same-origin browser request), no body.
	rr := s.do(t, "POST", "/v1/auth/refresh", nil, cookieHdr(refresh))
	if rr.status != 200 || rr.body["refresh_token"] != nil {
		t.Fatalf("cookie refresh: %d %s", rr.status, rr.raw)
	}
	newCookies := cookieMap(rr.header)
	if newCookies["__Secure-gatehouse_refresh"] == nil || newCookies["__Secure-gatehouse_refresh"].Value == refresh.Value {
		t.Fatal("cookie refresh did not rotate the refresh cookie")
	}
	// Logout clears both cookies with matching attributes.
	lo := s.do(t, "POST", "/v1/auth/logout", nil, cookieHdr(newCookies["__Secure-gatehouse_refresh"], newCookies["__Host-gatehouse_access"]))
	if lo.status != 204 {
		t.Fatalf("logout: %d %s", lo.status, lo.raw)
	}
	cleared := strings.Join(lo.header.Values("Set-Cookie"), "\n")
	for _, want := range []string{
		"__Host-gatehouse_access=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
		"__Secure-gatehouse_refresh=; Path=/v1/auth; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
	} {
		if !strings.Contains(cleared, want) {
			t.Errorf("logout Set-Cookie lacks %q:\n%s", want, cleared)
		}
	}
	if me := s.do(t, "GET", "/v1/me", nil, cookieHdr(newCookies["__Host-gatehouse_access"])); me.status != 401 || me.errCode() != "token_revoked" {
		t.Fatalf("access cookie after logout: %d %s", me.status, me.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"Gatehouse-Transport": "carrier-pigeon"}); r.status != 400 {
		t.Fatalf("unknown transport: %d", r.status)
	}

	dev := newServer(t, options{devCookies: true})
	dev.register(t, "ann")
	r = dev.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, ct)
	set = strings.Join(r.header.Values("Set-Cookie"), "\n")
	if !strings.Contains(set, "gatehouse_access=") || strings.Contains(set, "__Host-") || strings.Contains(set, "Secure") {
		t.Fatalf("dev cookies:\n%s", set)
	}
}

func TestCSRF(t *testing.T) {
	s := newServer(t, options{origins: []string{"https://app.example"}})
	s.register(t, "ann")
	victim := s.login(t, "ann")
	other := s.login(t, "ann")
	cookie := "__Host-gatehouse_access=" + victim.access
	attacks := []map[string]string{
		{"Cookie": cookie, "Sec-Fetch-Site": "cross-site"},
		{"Cookie": cookie, "Origin": "https://evil.example"},
		{"Cookie": cookie, "Sec-Fetch-Site": "same-site"},
	}
	for i, hdr := range attacks {
		r := s.do(t, "DELETE", "/v1/sessions/"+other.session, nil, hdr)
		if r.status != 403 || r.errCode() != "csrf_failed" {
			t.Fatalf("attack %d: %d %s", i, r.status, r.raw)
		}
		r = s.do(t, "DELETE", "/v1/sessions?scope=all", nil, hdr)
		if r.status != 403 {
			t.Fatalf("attack %d on scope=all: %d", i, r.status)
		}
	}
	// Nothing changed.
	if r := s.do(t, "GET", "/v1/me", nil, bearer(other.access)); r.status != 200 {
		t.Fatalf("the targeted session died: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(victim.access)); r.status != 200 {
		t.Fatalf("the victim's session died: %d %s", r.status, r.raw)
	}
	// Login CSRF (logging the victim into the attacker's account) too.
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"Sec-Fetch-Site": "cross-site", "Gatehouse-Transport": "cookie"})
	if r.status != 403 || r.errCode() != "csrf_failed" {
		t.Fatalf("cross-site login: %d %s", r.status, r.raw)
	}
	// Allowed: same-origin, the configured origin, and Bearer requests.
	if r := s.do(t, "DELETE", "/v1/sessions/"+other.session, nil, map[string]string{"Cookie": cookie, "Origin": "https://app.example"}); r.status != 204 {
		t.Fatalf("allowed origin: %d %s", r.status, r.raw)
	}
	third := s.login(t, "ann")
	if r := s.do(t, "DELETE", "/v1/sessions/"+third.session, nil, map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}); r.status != 204 {
		t.Fatalf("same-origin: %d %s", r.status, r.raw)
	}
	h := bearer(victim.access)
	h["Sec-Fetch-Site"] = "cross-site"
	if r := s.do(t, "GET", "/v1/sessions", nil, h); r.status != 200 {
		t.Fatalf("cross-site Bearer GET: %d", r.status)
	}
	if !strings.Contains(s.logs.String(), `"type":"csrf_failed"`) {
		t.Fatal("no csrf_failed security event")
	}
}

func TestSessionsEndpoints(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	s.register(t, "bob")
	a := s.login(t, "ann")
	s.clock.Advance(time.Second)
	b := s.login(t, "ann")
	s.clock.Advance(time.Second)
	c := s.login(t, "ann")
	bob := s.login(t, "bob")

	r := s.do(t, "GET", "/v1/sessions", nil, bearer(b.access))
	list := r.body["sessions"].([]any)
	if r.status != 200 || len(list) != 3 {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	ids := []string{}
	for _, x := range list {
		m := x.(map[string]any)
		ids = append(ids, m["id"].(string))
		if (m["id"] == b.session) != (m["current"] == true) {
			t.Errorf("current flag wrong on %v", m)
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint([]string{c.session, b.session, a.session}) {
		t.Fatalf("order %v, want newest first", ids)
	}
	if r := s.do(t, "DELETE", "/v1/sessions/"+bob.session, nil, bearer(a.access)); r.status != 404 || r.errCode() != "not_found" {
		t.Fatalf("deleting bob's session as ann: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/sessions/no-such-session", nil, bearer(a.access)); r.status != 404 {
		t.Fatalf("deleting a missing session: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(bob.access)); r.status != 200 {
		t.Fatal("bob's session was harmed")
	}
	if r := s.do(t, "DELETE", "/v1/sessions/"+c.session, nil, bearer(a.access)); r.status != 204 {
		t.Fatalf("delete own: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(c.access)); r.errCode() != "token_revoked" {
		t.Fatalf("deleted session's token: %s", r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/sessions?scope=bogus", nil, bearer(a.access)); r.status != 400 {
		t.Fatalf("bad scope: %d", r.status)
	}
	if r := s.do(t, "DELETE", "/v1/sessions?scope=others", nil, bearer(a.access)); r.status != 204 {
		t.Fatalf("scope=others: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(b.access)); r.errCode() != "token_revoked" {
		t.Fatalf("b after scope=others: %s", r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a.access)); r.status != 200 {
		t.Fatalf("a after scope=others: %s", r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/sessions?scope=all", nil, bearer(a.access)); r.status != 204 {
		t.Fatalf("scope=all: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a.access)); r.errCode() != "token_revoked" {
		t.Fatalf("a after scope=all: %s", r.raw)
	}
	if r := s.refresh(t, a.refresh); r.errCode() != "session_revoked" {
		t.Fatalf("a's refresh after scope=all: %s", r.raw)
	}
}

func TestLogout(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	a := s.login(t, "ann")
	for i := range 2 {
		if r := s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": a.refresh}, nil); r.status != 204 {
			t.Fatalf("logout %d: %d %s", i, r.status, r.raw)
		}
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a.access)); r.errCode() != "token_revoked" {
		t.Fatalf("after logout: %s", r.raw)
	}
	b := s.login(t, "ann")
	if r := s.do(t, "POST", "/v1/auth/logout", nil, bearer(b.access)); r.status != 204 {
		t.Fatalf("logout by access token: %d", r.status)
	}
	if r := s.refresh(t, b.refresh); r.errCode() != "session_revoked" {
		t.Fatalf("refresh after logout by access token: %s", r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": "ghr_garbage"}, nil); r.status != 204 {
		t.Fatalf("logout with garbage: %d", r.status)
	}
}

func TestHealthJWKSAndOutage(t *testing.T) {
	s := newServer(t, options{})
	if r := s.do(t, "GET", "/healthz", nil, nil); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := s.do(t, "GET", "/readyz", nil, nil); r.status != 200 {
		t.Fatal(r.raw)
	}
	r := s.do(t, "GET", "/.well-known/jwks.json", nil, nil)
	keys := r.body["keys"].([]any)
	k := keys[0].(map[string]any)
	if len(keys) != 1 || k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["d"] != nil {
		t.Fatalf("jwks: %s", r.raw)
	}
	if r := s.do(t, "GET", "/no/such/route", nil, nil); r.status != 404 || r.errCode() != "not_found" {
		t.Fatalf("unknown route: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/metrics", nil, nil); r.status != 200 {
		// /metrics is text, not JSON: do() would have failed to parse it.
		t.Fatal(r.status)
	}
	s.register(t, "ann")
	tk := s.login(t, "ann")
	s.close() // the database goes away
	if r := s.do(t, "GET", "/readyz", nil, nil); r.status != 503 || r.errCode() != "unavailable" {
		t.Fatalf("readyz with the store down: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil); r.status != 503 {
		t.Fatalf("login with the store down: %d %s", r.status, r.raw)
	}
	if r := s.refresh(t, tk.refresh); r.status != 503 || r.errCode() != "unavailable" {
		t.Fatalf("refresh with the store down: %d %s", r.status, r.raw)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	r := s.refresh(t, tk.refresh)
	s.do(t, "GET", "/v1/me", nil, bearer(r.body["access_token"].(string)))
	s.do(t, "GET", "/v1/me?access_token=leaky", nil, nil)
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann\n{\"forged\":1}", "password": "pw-ann-long"}, nil)
	logs := s.logs.String()
	for _, secret := range []string{tk.access, tk.refresh, r.body["refresh_token"].(string), "pw-ann-long", "leaky", "argon2id"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret (%.12s…)", secret)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not one JSON record (injection?): %q", line)
		}
	}
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatal("no request log at all: the test would prove nothing")
	}
}
