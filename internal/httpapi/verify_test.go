package httpapi_test

import (
	"context"
	"net/netip"
	"net/url"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// Forward auth: the identity in headers, or 401; revocation at once; a
// DPoP-bound token only with a proof for the forwarded request.
func TestForwardAuth(t *testing.T) {
	s := newServer(t, options{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	ann, _ := s.svc.FindUser(context.Background(), "ann")
	if _, err := s.svc.ChangeUser(context.Background(), ann.ID, auth.UserChange{Permissions: &[]string{"orders:read", "orders:write"}}, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	tk = s.login(t, "ann")
	r := s.do(t, "GET", "/v1/auth/verify", nil, bearer(tk.access))
	want := map[string]string{"Gatehouse-User-Id": ann.ID, "Gatehouse-Username": "ann", "Gatehouse-Role": "user",
		"Gatehouse-Permissions": "orders:read orders:write", "Gatehouse-Session-Id": tk.session}
	if r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	for k, v := range want {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The cookie works too; nothing at all is 401 with a challenge.
	if r := s.do(t, "GET", "/v1/auth/verify", nil, map[string]string{"Cookie": "__Host-gatehouse_access=" + tk.access}); r.status != 200 {
		t.Fatalf("verify by cookie: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/auth/verify", nil, nil); r.status != 401 || r.header.Get("WWW-Authenticate") != "Bearer" || r.header.Get("Gatehouse-User-Id") != "" {
		t.Fatalf("verify without a token: %d %v", r.status, r.header)
	}
	// An unsafe cross-site request carried by the cookie is refused.
	csrf := map[string]string{"Cookie": "__Host-gatehouse_access=" + tk.access, "X-Forwarded-Method": "POST", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	if r := s.do(t, "GET", "/v1/auth/verify", nil, csrf); r.status != 403 || r.errCode() != "csrf_failed" {
		t.Fatalf("cross-site POST by cookie: %d %s", r.status, r.raw)
	}
	// Revoked: refused at once.
	s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": tk.refresh}, nil)
	if r := s.do(t, "GET", "/v1/auth/verify", nil, bearer(tk.access)); r.status != 401 || r.errCode() != "token_revoked" {
		t.Fatalf("verify a revoked token: %d %s", r.status, r.raw)
	}
	// DPoP: the proof names the forwarded request, not /v1/auth/verify.
	k := newKey(t, "ES256")
	bound := s.dpopLogin(t, "ann", k)
	site := "https://shop.example/orders/7"
	fwd := map[string]string{"Authorization": "DPoP " + bound.access, "DPoP": k.Proof("DELETE", site, bound.access, "", s.clock.Now()),
		"X-Forwarded-Method": "DELETE", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example", "X-Forwarded-Uri": "/orders/7?force=1"}
	if r := s.do(t, "GET", "/v1/auth/verify", nil, fwd); r.status != 200 || r.header.Get("Gatehouse-User-Id") != ann.ID {
		t.Fatalf("bound token with a proof for the forwarded request: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/auth/verify", nil, fwd); r.errCode() != "invalid_dpop_proof" {
		t.Fatalf("the same proof again: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/auth/verify", nil, bearer(bound.access)); r.errCode() != "invalid_dpop_proof" {
		t.Fatalf("bound token as Bearer: %d %s", r.status, r.raw)
	}
	other := map[string]string{}
	for k2, v := range fwd {
		other[k2] = v
	}
	other["DPoP"] = k.Proof("GET", site, bound.access, "", s.clock.Now()) // for another method
	if r := s.do(t, "GET", "/v1/auth/verify", nil, other); r.errCode() != "invalid_dpop_proof" {
		t.Fatalf("a proof for another method: %d %s", r.status, r.raw)
	}
	// A service client's token: its id, no username.
	id, secret := s.addClient(t, auth.ClientSpec{Name: "nightly", Kind: "service"})
	cc := s.post(t, "/v1/oauth/token", url.Values{"grant_type": {"client_credentials"}}, basicAuth(id, secret))
	if r := s.do(t, "GET", "/v1/auth/verify", nil, bearer(cc.body["access_token"].(string))); r.status != 200 || r.header.Get("Gatehouse-User-Id") != id || r.header.Get("Gatehouse-Username") != "" {
		t.Fatalf("a service token: %d %v", r.status, r.header)
	}
}

// Verified tokens are cached, revocation is not: a token answered from the
// cache a moment ago is refused on every path once its session is revoked.
func TestCachedTokenRefusedAfterRevocation(t *testing.T) {
	for _, revoke := range []struct {
		name string
		do   func(s *server, root, ann tokens, id string)
	}{
		{"logout", func(s *server, _, ann tokens, _ string) {
			s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": ann.refresh}, nil)
		}},
		{"disabled", func(s *server, root, _ tokens, id string) {
			s.do(t, "PATCH", "/v1/admin/users/"+id, map[string]any{"disabled": true}, bearer(root.access))
		}},
		{"revoke-all", func(s *server, root, _ tokens, _ string) {
			s.do(t, "POST", "/v1/admin/revoke-all", nil, bearer(root.access))
		}},
	} {
		t.Run(revoke.name, func(t *testing.T) {
			s := newServer(t, options{})
			root, tk, id := s.adminAndUser(t, "ann")
			for range 3 { // verified, then cached (the token, /v1/me's snapshot, the name)
				if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.status != 200 {
					t.Fatal(r.raw)
				}
				if r := s.do(t, "GET", "/v1/auth/verify", nil, bearer(tk.access)); r.status != 200 {
					t.Fatal(r.raw)
				}
				if st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tk.access}}); st != 200 || out["active"] != true {
					t.Fatalf("introspection: %d %v", st, out)
				}
			}
			revoke.do(s, root, tk, id)
			if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.errCode() != "token_revoked" {
				t.Fatalf("/v1/me: %d %s", r.status, r.raw)
			}
			if r := s.do(t, "GET", "/v1/auth/verify", nil, bearer(tk.access)); r.errCode() != "token_revoked" {
				t.Fatalf("forward auth: %d %s", r.status, r.raw)
			}
			if st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tk.access}}); st != 200 || out["active"] != false {
				t.Fatalf("introspection: %d %v", st, out)
			}
			if _, res, err := s.dial(t, "/v1/ws", bearerHeader(tk.access)); err == nil || res == nil || res.StatusCode != 401 {
				t.Fatalf("socket: %v %v", res, err)
			}
		})
	}
}
