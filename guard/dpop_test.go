package guard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
)

const apiURL = "https://api.example.com"

// boundLogin logs name in through the domain with a DPoP key: the session
// and its tokens are bound to k.
func (g *gatehouse) boundLogin(tb testing.TB, name string, k *dpop.Signer) auth.Tokens {
	tb.Helper()
	g.login(tb, name) // registers
	tk, err := g.svc.Login(context.Background(), name, "password-"+name, auth.Meta{IP: "127.0.0.1", DPoP: k.Thumbprint})
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

func signerFor(tb testing.TB, alg string) *dpop.Signer {
	tb.Helper()
	k, err := dpop.NewSigner(alg)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

type answer struct {
	code   int
	err    string
	header http.Header
	claims *guard.Claims
}

func serve(h http.Handler, method, path string, hdr map[string]string) answer {
	r := httptest.NewRequest(method, "http://10.0.0.7:8080"+path, nil) // the proxy's view, not the public URL
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	var got *guard.Claims
	h.ServeHTTP(w, r)
	var e map[string]string
	json.Unmarshal(w.Body.Bytes(), &e)
	if w.Code == 200 {
		json.Unmarshal(w.Body.Bytes(), &got)
	}
	return answer{w.Code, e["error"], w.Header(), got}
}

func claimsEcho(gd *guard.Guard) http.Handler {
	return gd.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFrom(r.Context())
		json.NewEncoder(w).Encode(c)
	}))
}

// A DPoP-bound token passes guard only as DPoP with a fresh proof by its
// key for this request at the configured public URL; every other way of
// presenting it is refused, and a guard without DPoP refuses it too.
func TestGuardDPoP(t *testing.T) {
	g := startGatehouse(t)
	for _, alg := range dpop.Algorithms {
		t.Run(alg, func(t *testing.T) {
			k, thief := signerFor(t, alg), signerFor(t, "ES256")
			tk := g.boundLogin(t, "ann-"+alg, k)
			gd := newGuard(t, g, func(c *guard.Config) { c.DPoP = &guard.DPoPConfig{URL: apiURL} })
			h := claimsEcho(gd)
			proof := func(k *dpop.Signer, method, path, at string) string {
				return k.Proof(method, apiURL+path, at, "", time.Now())
			}
			good := map[string]string{"Authorization": "DPoP " + tk.AccessToken, "DPoP": proof(k, "GET", "/orders", tk.AccessToken)}
			a := serve(h, "GET", "/orders", good)
			if a.code != 200 || a.claims.Confirmation == nil || a.claims.Confirmation.JKT != k.Thumbprint {
				t.Fatalf("bound token with its proof: %+v", a)
			}
			for name, hdr := range map[string]map[string]string{
				"replayed proof":       good,
				"as Bearer":            {"Authorization": "Bearer " + tk.AccessToken},
				"as Bearer with proof": {"Authorization": "Bearer " + tk.AccessToken, "DPoP": proof(k, "GET", "/orders", tk.AccessToken)},
				"no proof":             {"Authorization": "DPoP " + tk.AccessToken},
				"a thief's proof":      {"Authorization": "DPoP " + tk.AccessToken, "DPoP": proof(thief, "GET", "/orders", tk.AccessToken)},
				"wrong path":           {"Authorization": "DPoP " + tk.AccessToken, "DPoP": proof(k, "GET", "/admin", tk.AccessToken)},
				"wrong method":         {"Authorization": "DPoP " + tk.AccessToken, "DPoP": proof(k, "POST", "/orders", tk.AccessToken)},
				"the internal URL":     {"Authorization": "DPoP " + tk.AccessToken, "DPoP": k.Proof("GET", "http://10.0.0.7:8080/orders", tk.AccessToken, "", time.Now())},
				"no ath":               {"Authorization": "DPoP " + tk.AccessToken, "DPoP": proof(k, "GET", "/orders", "")},
				"stale":                {"Authorization": "DPoP " + tk.AccessToken, "DPoP": k.Proof("GET", apiURL+"/orders", tk.AccessToken, "", time.Now().Add(-2*time.Minute))},
			} {
				a := serve(h, "GET", "/orders", hdr)
				if a.code != 401 || a.err != "invalid_dpop_proof" || !strings.Contains(a.header.Get("WWW-Authenticate"), `DPoP error="invalid_token", algs="ES256 EdDSA"`) {
					t.Errorf("%s: %+v", name, a)
				}
			}
			// A guard that does not speak DPoP never takes it as bearer.
			plain := claimsEcho(newGuard(t, g, nil))
			if a := serve(plain, "GET", "/orders", map[string]string{"Authorization": "Bearer " + tk.AccessToken}); a.code != 401 || a.err != "invalid_dpop_proof" {
				t.Fatalf("guard without DPoP, bound token as Bearer: %+v", a)
			}
		})
	}
	// Bearer tokens: fine as Bearer, refused as DPoP, refused when
	// DPoPConfig.Required.
	bob := g.login(t, "bob")
	k := signerFor(t, "EdDSA")
	h := claimsEcho(newGuard(t, g, func(c *guard.Config) { c.DPoP = &guard.DPoPConfig{URL: apiURL} }))
	if a := serve(h, "GET", "/x", map[string]string{"Authorization": "Bearer " + bob.AccessToken}); a.code != 200 || a.claims.Confirmation != nil {
		t.Fatalf("bearer token: %+v", a)
	}
	if a := serve(h, "GET", "/x", map[string]string{"Authorization": "DPoP " + bob.AccessToken, "DPoP": k.Proof("GET", apiURL+"/x", bob.AccessToken, "", time.Now())}); a.code != 401 || a.err != "invalid_dpop_proof" {
		t.Fatalf("bearer token as DPoP: %+v", a)
	}
	strict := claimsEcho(newGuard(t, g, func(c *guard.Config) { c.DPoP = &guard.DPoPConfig{URL: apiURL, Required: true} }))
	if a := serve(strict, "GET", "/x", map[string]string{"Authorization": "Bearer " + bob.AccessToken}); a.code != 401 || a.header.Get("WWW-Authenticate") != `DPoP error="invalid_token", algs="ES256 EdDSA"` {
		t.Fatalf("bearer token where DPoP is required: %+v", a)
	}
}

// Nonces: demanded, offered, accepted by another guard with the key.
func TestGuardDPoPNonce(t *testing.T) {
	g := startGatehouse(t)
	k := signerFor(t, "ES256")
	tk := g.boundLogin(t, "ann", k)
	key := []byte("a nonce key shared by the api's instances")
	cfg := func(c *guard.Config) { c.DPoP = &guard.DPoPConfig{URL: apiURL, NonceKey: key} }
	one, two := claimsEcho(newGuard(t, g, cfg)), claimsEcho(newGuard(t, g, cfg))
	req := func(nonce string) map[string]string {
		return map[string]string{"Authorization": "DPoP " + tk.AccessToken, "DPoP": k.Proof("GET", apiURL+"/x", tk.AccessToken, nonce, time.Now())}
	}
	a := serve(one, "GET", "/x", req(""))
	nonce := a.header.Get("DPoP-Nonce")
	if a.code != 401 || a.err != "use_dpop_nonce" || nonce == "" || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) {
		t.Fatalf("no nonce: %+v", a)
	}
	if a := serve(two, "GET", "/x", req(nonce)); a.code != 200 {
		t.Fatalf("the other instance's nonce: %+v", a)
	}
	if _, err := guard.New(context.Background(), guard.Config{Issuer: g.URL, ResourceKey: resourceKey, DPoP: &guard.DPoPConfig{URL: apiURL, NonceKey: []byte("short")}}); err == nil {
		t.Fatal("a short nonce key is accepted")
	}
	if _, err := guard.New(context.Background(), guard.Config{Issuer: g.URL, ResourceKey: resourceKey, DPoP: &guard.DPoPConfig{URL: "api.example.com"}}); err == nil {
		t.Fatal("a DPoP.URL without scheme is accepted")
	}
}

// Config.Audience: a token for another API is refused; one narrowed to
// this API (RFC 8707) or carrying it among its audiences passes.
func TestGuardAudience(t *testing.T) {
	g := startGatehouse(t)
	if _, _, err := g.svc.AddClient(context.Background(), auth.ClientSpec{Name: "orders", Kind: "resource", Audience: "https://orders.example"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.svc.AddClient(context.Background(), auth.ClientSpec{Name: "billing", Kind: "resource", Audience: "https://billing.example"}); err != nil {
		t.Fatal(err)
	}
	orders := newGuard(t, g, func(c *guard.Config) { c.Audience = "https://orders.example" })
	tk := g.login(t, "ann")
	if _, err := orders.Verify(tk.AccessToken); err != guard.ErrInvalidToken {
		t.Fatalf("a token for the issuer at the orders API: %v", err)
	}
	forOrders, err := g.svc.Narrow(context.Background(), tk, "https://orders.example")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := orders.Verify(forOrders.AccessToken); err != nil || len(c.Audience) != 1 || c.Audience[0] != "https://orders.example" || c.ClientID != "gatehouse" {
		t.Fatalf("a token narrowed to orders: %+v %v", c, err)
	}
	forBilling, _ := g.svc.Narrow(context.Background(), tk, "https://billing.example")
	if _, err := orders.Verify(forBilling.AccessToken); err != guard.ErrInvalidToken {
		t.Fatalf("a billing token at the orders API: %v", err)
	}
	// Without Config.Audience, any audience passes (as before).
	if _, err := newGuard(t, g, nil).Verify(forBilling.AccessToken); err != nil {
		t.Fatalf("no audience configured: %v", err)
	}
}

// CORS: a listed origin's preflight is answered without a token; others
// get nothing; actual responses expose what gatehouse.js reads.
func TestGuardCORS(t *testing.T) {
	called := 0
	h := guard.CORS([]string{"https://app.example.com"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called++
		w.WriteHeader(401)
	}))
	pre := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("OPTIONS", "/api/orders", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "GET")
		r.Header.Set("Access-Control-Request-Headers", "authorization, dpop")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := pre("https://app.example.com"); w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "DPoP") || called != 0 {
		t.Fatalf("preflight from the app: %d %v (handler called %d)", w.Code, w.Header(), called)
	}
	if w := pre("https://evil.example"); w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from elsewhere: %d %v", w.Code, w.Header())
	}
	r := httptest.NewRequest("GET", "/api/orders", nil)
	r.Header.Set("Origin", "https://app.example.com")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if called != 1 || w.Header().Get("Access-Control-Expose-Headers") != "WWW-Authenticate, DPoP-Nonce" {
		t.Fatalf("actual request: called %d, %v", called, w.Header())
	}
}

// guard caches verified tokens, not their revocation state.
func TestGuardCachedTokenRevoked(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, nil)
	tk := g.login(t, "ann")
	for range 3 {
		if _, err := gd.Verify(tk.AccessToken); err != nil {
			t.Fatal(err)
		}
	}
	g.svc.Logout(context.Background(), tk.RefreshToken, "", auth.Meta{})
	deadline := time.Now().Add(time.Second)
	for {
		if _, err := gd.Verify(tk.AccessToken); err == guard.ErrRevoked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a cached token still passes after its session was revoked")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
