package httpapi_test

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// post sends a form with extra headers.
func (s *server) post(t *testing.T, path string, form url.Values, hdr map[string]string) response {
	t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range hdr {
		h[k] = v
	}
	return s.do(t, "POST", path, form.Encode(), h)
}

func basicAuth(id, secret string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))}
}

func (s *server) addClient(t *testing.T, spec auth.ClientSpec) (id, secret string) {
	t.Helper()
	secret, c, err := s.svc.AddClient(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID, secret
}

func TestMetadata(t *testing.T) {
	s := newServer(t, options{})
	a := s.do(t, "GET", "/.well-known/oauth-authorization-server", nil, nil)
	b := s.do(t, "GET", "/.well-known/openid-configuration", nil, nil)
	if a.status != 200 || a.raw != b.raw || a.header.Get("Cache-Control") != "public, max-age=3600" {
		t.Fatalf("metadata: %d %q %s / %s", a.status, a.header.Get("Cache-Control"), a.raw, b.raw)
	}
	for k, want := range map[string]string{"issuer": issuerURL, "jwks_uri": issuerURL + "/.well-known/jwks.json",
		"token_endpoint": issuerURL + "/v1/oauth/token", "introspection_endpoint": issuerURL + "/v1/oauth/introspect",
		"revocation_endpoint": issuerURL + "/v1/oauth/revoke"} {
		if a.body[k] != want {
			t.Errorf("%s = %v, want %s", k, a.body[k], want)
		}
	}
	if a.body["authorization_response_iss_parameter_supported"] != false || !strings.Contains(a.raw, `"client_secret_basic"`) ||
		!strings.Contains(a.raw, `"dpop_signing_alg_values_supported":["ES256","EdDSA"]`) || !strings.Contains(a.raw, `"client_credentials"`) {
		t.Fatalf("metadata: %s", a.raw)
	}
}

// Client authentication as RFC 6749 §2.3.1 says, at introspection: Basic,
// form fields, Bearer; wrong ones are invalid_client.
func TestClientAuthentication(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	id, secret := s.addClient(t, auth.ClientSpec{Name: "orders", Kind: "resource", Audience: "https://orders.example"})
	form := url.Values{"token": {tk.access}}
	for name, hdr := range map[string]map[string]string{
		"client_secret_basic": basicAuth(id, secret),
		"Bearer secret":       bearer(secret),
		"legacy resource key": bearer(resourceKey),
	} {
		if r := s.post(t, "/v1/oauth/introspect", form, hdr); r.status != 200 || r.body["active"] != true {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	post := url.Values{"token": {tk.access}, "client_id": {id}, "client_secret": {secret}}
	if r := s.post(t, "/v1/oauth/introspect", post, nil); r.status != 200 || r.body["active"] != true {
		t.Errorf("client_secret_post: %d %s", r.status, r.raw)
	}
	other, _ := s.addClient(t, auth.ClientSpec{Name: "billing", Kind: "resource"})
	for name, c := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"wrong secret":              {form, basicAuth(id, secret+"x")},
		"another client's id":       {form, basicAuth(other, secret)},
		"unknown id":                {form, basicAuth("nobody", secret)},
		"post with a wrong secret":  {url.Values{"token": {tk.access}, "client_id": {id}, "client_secret": {"ghs_x"}}, nil},
		"an access token as secret": {form, bearer(tk.access)},
		"nothing":                   {form, nil},
	} {
		r := s.post(t, "/v1/oauth/introspect", c.form, c.hdr)
		if r.status != 401 || r.errCode() != "invalid_client" || r.header.Get("WWW-Authenticate") != `Basic realm="gatehouse"` {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if r := s.post(t, "/v1/oauth/introspect", post, basicAuth(id, secret)); r.status != 400 || r.errCode() != "invalid_request" {
		t.Errorf("two methods at once: %d %s", r.status, r.raw)
	}
}

// The token endpoint's refresh_token grant is /v1/auth/refresh's rotation
// and reuse detection with RFC 6749's errors.
func TestTokenEndpointRefresh(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	grant := func(rt string) response {
		return s.post(t, "/v1/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, nil)
	}
	r := grant(tk.refresh)
	if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["refresh_token"] == nil || r.header.Get("Pragma") != "no-cache" {
		t.Fatalf("refresh grant: %d %s", r.status, r.raw)
	}
	next := r.body["refresh_token"].(string)
	s.clock.Advance(time.Minute) // past the grace window
	if r := grant(tk.refresh); r.status != 400 || r.errCode() != "invalid_grant" {
		t.Fatalf("reuse: %d %s", r.status, r.raw)
	}
	if r := grant(next); r.status != 400 || r.errCode() != "invalid_grant" {
		t.Fatalf("the session after reuse: %d %s", r.status, r.raw)
	}
	for name, f := range map[string]url.Values{
		"no grant":                            {"refresh_token": {next}},
		"unknown grant":                       {"grant_type": {"password"}, "username": {"ann"}},
		"repeated token":                      {"grant_type": {"refresh_token"}, "refresh_token": {next, next}},
		"no refresh token":                    {"grant_type": {"refresh_token"}},
		"unknown resource":                    {"grant_type": {"refresh_token"}, "refresh_token": {next}, "resource": {"https://nowhere.example"}},
		"client_credentials without a client": {"grant_type": {"client_credentials"}},
	} {
		r := s.post(t, "/v1/oauth/token", f, nil)
		want := map[string]string{"no grant": "invalid_request", "unknown grant": "unsupported_grant_type", "repeated token": "invalid_request",
			"no refresh token": "invalid_request", "unknown resource": "invalid_target", "client_credentials without a client": "invalid_client"}[name]
		if r.errCode() != want {
			t.Errorf("%s: %d %s, want %s", name, r.status, r.raw, want)
		}
	}
	// DPoP refusals are 400 at the token endpoint (RFC 9449 §5).
	tk = s.login(t, "ann")
	k := newKey(t, "EdDSA")
	h := map[string]string{"DPoP": k.Proof("POST", issuerURL+"/v1/oauth/token", "", "", s.clock.Now().Add(-5*time.Minute))}
	if r := s.post(t, "/v1/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.refresh}}, h); r.status != 400 || r.errCode() != "invalid_dpop_proof" {
		t.Fatalf("stale proof at the token endpoint: %d %s", r.status, r.raw)
	}
}

// client_credentials: a machine token with the client's role and
// permissions, no session; scope narrows; the client's removal refuses
// its tokens at once; a service client with role admin drives the admin
// API without step-up, its calls recorded as its own.
func TestClientCredentials(t *testing.T) {
	s := newServer(t, options{audiences: []string{issuerURL, "https://reports.example"}})
	s.register(t, "ann")
	id, secret := s.addClient(t, auth.ClientSpec{Name: "nightly", Kind: "service", Role: "admin", Permissions: []string{"reports:read", "reports:write"}})
	cc := func(extra url.Values) response {
		f := url.Values{"grant_type": {"client_credentials"}}
		for k, v := range extra {
			f[k] = v
		}
		return s.post(t, "/v1/oauth/token", f, basicAuth(id, secret))
	}
	r := cc(nil)
	if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["refresh_token"] != nil || r.body["scope"] != "reports:read reports:write" {
		t.Fatalf("client_credentials: %d %s", r.status, r.raw)
	}
	at := r.body["access_token"].(string)
	c := claimsOf(t, at)
	if c["sub"] != id || c["client_id"] != id || c["role"] != "admin" || c["sid"] != id {
		t.Fatalf("machine token claims: %v", c)
	}
	if r := cc(url.Values{"scope": {"reports:read"}}); r.status != 200 || r.body["scope"] != "reports:read" {
		t.Fatalf("narrowed scope: %d %s", r.status, r.raw)
	}
	if r := cc(url.Values{"scope": {"reports:read admin:everything"}}); r.status != 400 || r.errCode() != "invalid_scope" {
		t.Fatalf("scope beyond the client's: %d %s", r.status, r.raw)
	}
	if r := cc(url.Values{"resource": {"https://reports.example"}}); r.status != 200 || claimsOf(t, r.body["access_token"].(string))["aud"] != "https://reports.example" {
		t.Fatalf("resource: %d %s", r.status, r.raw)
	}
	rid, rsecret := s.addClient(t, auth.ClientSpec{Name: "api", Kind: "resource"})
	if r := s.post(t, "/v1/oauth/token", url.Values{"grant_type": {"client_credentials"}}, basicAuth(rid, rsecret)); r.status != 400 || r.errCode() != "unauthorized_client" {
		t.Fatalf("a resource client asking for tokens: %d %s", r.status, r.raw)
	}
	// The admin API, without step-up; not the account routes.
	ann, _ := s.svc.FindUser(context.Background(), "ann")
	if r := s.do(t, "PATCH", "/v1/admin/users/"+ann.ID, map[string]any{"permissions": []string{"x"}}, bearer(at)); r.status != 200 {
		t.Fatalf("admin change by a service client: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(at)); r.status != 403 {
		t.Fatalf("a machine token on /v1/me: %d %s", r.status, r.raw)
	}
	evs, _, err := s.svc.Events(context.Background(), auth.EventQuery{UserID: ann.ID, Type: auth.EventPermissionsChanged, Limit: 5})
	if err != nil || len(evs) != 1 || !strings.Contains(evs[0].Detail, "by service client "+id) {
		t.Fatalf("the change's event does not name the client: %+v %v", evs, err)
	}
	// Removed: its tokens die at once.
	if err := s.svc.RemoveClient(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(at)); r.status != 401 || r.errCode() != "token_revoked" {
		t.Fatalf("a removed client's token: %d %s", r.status, r.raw)
	}
	if r := cc(nil); r.status != 401 || r.errCode() != "invalid_client" {
		t.Fatalf("a removed client's secret: %d %s", r.status, r.raw)
	}
	feed := s.do(t, "GET", "/v1/revocations", nil, bearer(resourceKey))
	if !strings.Contains(feed.raw, `"user_id":"`+id+`"`) {
		t.Fatalf("the feed does not carry the removed client's cutoff: %s", feed.raw)
	}
}

// RFC 8707: a token narrowed to one registered audience; an unknown one
// is invalid_target and changes nothing (no session, no rotation).
func TestAudiences(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	s.addClient(t, auth.ClientSpec{Name: "orders", Kind: "resource", Audience: "https://orders.example"})
	tk := s.login(t, "ann")
	if aud := claimsOf(t, tk.access)["aud"]; aud != issuerURL {
		t.Fatalf("default aud %v", aud)
	}
	login := func(resource string) response {
		return s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long", "resource": resource}, nil)
	}
	sessions := func() int {
		l, _ := s.svc.ListSessions(context.Background(), auth.Principal{UserID: s.userOf(t, "ann")})
		return len(l)
	}
	before := sessions()
	if r := login("https://nowhere.example"); r.status != 400 || r.errCode() != "invalid_target" || sessions() != before {
		t.Fatalf("login with an unknown resource: %d %s (sessions %d → %d)", r.status, r.raw, before, sessions())
	}
	r := login("https://orders.example")
	if r.status != 200 || claimsOf(t, r.body["access_token"].(string))["aud"] != "https://orders.example" {
		t.Fatalf("login narrowed: %d %s", r.status, r.raw)
	}
	rt := r.body["refresh_token"].(string)
	if r := s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": rt, "resource": "https://nowhere.example"}, nil); r.errCode() != "invalid_target" {
		t.Fatalf("refresh with an unknown resource: %s", r.raw)
	}
	// The refused refresh spent nothing: the same token rotates, to any
	// registered audience (the session was not narrowed).
	r = s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": rt}, nil)
	if r.status != 200 || claimsOf(t, r.body["access_token"].(string))["aud"] != issuerURL {
		t.Fatalf("refresh after the refused one: %d %s", r.status, r.raw)
	}
}

func (s *server) userOf(t *testing.T, name string) string {
	u, err := s.svc.FindUser(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// A browser refresh that comes without its cookie is told why, and a page
// on another host name than the issuer's is named in the log, once.
func TestRefreshWithoutItsCookieSaysWhy(t *testing.T) {
	s := newServer(t, options{origins: []string{"http://localhost:3000"}})
	h := map[string]string{"Gatehouse-Transport": "refresh-cookie", "Origin": "http://localhost:3000"}
	for range 3 {
		r := s.do(t, "POST", "/v1/auth/refresh", nil, h)
		if r.status != 401 || r.errCode() != "invalid_refresh_token" || !strings.Contains(r.body["error_description"].(string), "localhost and 127.0.0.1") {
			t.Fatalf("refresh without its cookie: %d %s", r.status, r.raw)
		}
	}
	if n := strings.Count(s.logs.String(), "refreshes by cookie from another host name"); n != 1 {
		t.Fatalf("%d warnings for one origin, want 1:\n%s", n, s.logs.String())
	}
	// An API client (body transport, no Origin) gets the plain answer.
	if r := s.do(t, "POST", "/v1/auth/refresh", map[string]string{}, nil); r.body["error_description"] != "A refresh token is required." {
		t.Fatalf("body refresh without a token: %s", r.raw)
	}
}
