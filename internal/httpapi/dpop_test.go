package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/dpop"
)

// The public URL every proof names: the issuer, not the address the test
// server listens on (as behind a proxy).
const issuerURL = "http://gatehouse.test"

func newKey(t *testing.T, alg string) *dpop.Signer {
	t.Helper()
	k, err := dpop.NewSigner(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// withProof returns headers with a fresh proof by k for method path (and
// the access token, sent as Authorization: DPoP, when not empty).
func (s *server) withProof(k *dpop.Signer, method, path, access string) map[string]string {
	h := map[string]string{"DPoP": k.Proof(method, issuerURL+path, access, "", s.clock.Now())}
	if access != "" {
		h["Authorization"] = "DPoP " + access
	}
	return h
}

// dpopLogin logs user in with a proof by k and returns the bound tokens.
func (s *server) dpopLogin(t *testing.T, user string, k *dpop.Signer) tokens {
	t.Helper()
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": user, "password": "pw-" + user + "-long"},
		s.withProof(k, "POST", "/v1/auth/login", ""))
	if r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("login with a proof: %d %s", r.status, r.raw)
	}
	return tokens{r.body["access_token"].(string), r.body["refresh_token"].(string), r.body["session_id"].(string)}
}

func wantDPoPRefusal(t *testing.T, what string, r response, code string) {
	t.Helper()
	if r.status != 401 || r.errCode() != code {
		t.Fatalf("%s: %d %s, want 401 %s", what, r.status, r.raw, code)
	}
	if code == "invalid_dpop_proof" && r.header.Get("WWW-Authenticate") != `DPoP error="invalid_token", algs="ES256 EdDSA"` {
		t.Fatalf("%s: WWW-Authenticate %q", what, r.header.Get("WWW-Authenticate"))
	}
}

// A session opened with a proof is bound to the key: its access tokens
// carry cnf.jkt and work only as DPoP with a proof by that key; every way
// of presenting them otherwise is refused.
func TestDPoPBoundAccessToken(t *testing.T) {
	for _, alg := range dpop.Algorithms {
		t.Run(alg, func(t *testing.T) {
			s := newServer(t, options{})
			s.register(t, "ann")
			k, thief := newKey(t, alg), newKey(t, "ES256")
			tk := s.dpopLogin(t, "ann", k)
			cnf, _ := claimsOf(t, tk.access)["cnf"].(map[string]any)
			if cnf["jkt"] != k.Thumbprint {
				t.Fatalf("cnf = %v, want jkt %s", cnf, k.Thumbprint)
			}
			if r := s.do(t, "GET", "/v1/me", nil, s.withProof(k, "GET", "/v1/me", tk.access)); r.status != 200 {
				t.Fatalf("bound token with its proof: %d %s", r.status, r.raw)
			}
			proof := func(edit func(h map[string]string)) map[string]string {
				h := s.withProof(k, "GET", "/v1/me", tk.access)
				edit(h)
				return h
			}
			replayed := s.withProof(k, "GET", "/v1/me", tk.access)
			if r := s.do(t, "GET", "/v1/me", nil, replayed); r.status != 200 {
				t.Fatal(r.raw)
			}
			now := s.clock.Now()
			for name, h := range map[string]map[string]string{
				"as Bearer (downgrade)":    bearer(tk.access),
				"as Bearer with its proof": proof(func(h map[string]string) { h["Authorization"] = "Bearer " + tk.access }),
				"no proof":                 {"Authorization": "DPoP " + tk.access},
				"a thief's proof":          s.withProof(thief, "GET", "/v1/me", tk.access),
				"replayed proof":           replayed,
				"proof for another token":  proof(func(h map[string]string) { h["DPoP"] = k.Proof("GET", issuerURL+"/v1/me", "other", "", now) }),
				"proof without ath":        proof(func(h map[string]string) { h["DPoP"] = k.Proof("GET", issuerURL+"/v1/me", "", "", now) }),
				"wrong method":             proof(func(h map[string]string) { h["DPoP"] = k.Proof("POST", issuerURL+"/v1/me", tk.access, "", now) }),
				"wrong path":               proof(func(h map[string]string) { h["DPoP"] = k.Proof("GET", issuerURL+"/v1/sessions", tk.access, "", now) }),
				"the listener's URL":       proof(func(h map[string]string) { h["DPoP"] = k.Proof("GET", s.URL+"/v1/me", tk.access, "", now) }),
				"stale proof": proof(func(h map[string]string) {
					h["DPoP"] = k.Proof("GET", issuerURL+"/v1/me", tk.access, "", now.Add(-2*time.Minute))
				}),
				"alg none": proof(func(h map[string]string) {
					p := strings.Split(k.Proof("GET", issuerURL+"/v1/me", tk.access, "", now), ".")
					h["DPoP"] = b64json(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": k.JWK()}) + "." + p[1] + "."
				}),
				"HS256": proof(func(h map[string]string) {
					h["DPoP"] = k.Sign(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": k.JWK()},
						map[string]any{"jti": "x1", "htm": "GET", "htu": issuerURL + "/v1/me", "iat": now.Unix(), "ath": dpop.TokenHash(tk.access)})
				}),
				"private key in jwk": proof(func(h map[string]string) {
					jwk := map[string]string{"d": "c2VjcmV0"}
					for n, v := range k.JWK() {
						jwk[n] = v
					}
					h["DPoP"] = k.Sign(map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk},
						map[string]any{"jti": "x2", "htm": "GET", "htu": issuerURL + "/v1/me", "iat": now.Unix(), "ath": dpop.TokenHash(tk.access)})
				}),
			} {
				wantDPoPRefusal(t, name, s.do(t, "GET", "/v1/me", nil, h), "invalid_dpop_proof")
			}
			// From the access cookie (which carries no proof): refused too.
			c := s.do(t, "GET", "/v1/me", nil, map[string]string{"Cookie": "__Host-gatehouse_access=" + tk.access})
			wantDPoPRefusal(t, "from the cookie", c, "invalid_dpop_proof")
			// Introspection says what it is.
			st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tk.access}})
			if cnf, _ := out["cnf"].(map[string]any); st != 200 || out["token_type"] != "DPoP" || cnf["jkt"] != k.Thumbprint {
				t.Fatalf("introspection of a bound token: %d %v", st, out)
			}
		})
	}
}

// The refresh chain is bound, not only the access tokens: a stolen
// refresh token (body or cookie) without the key rotates nothing, revokes
// nothing, and is recorded.
func TestDPoPBoundRefresh(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	k, thief := newKey(t, "ES256"), newKey(t, "EdDSA")
	tk := s.dpopLogin(t, "ann", k)
	body := map[string]string{"refresh_token": tk.refresh}
	wantDPoPRefusal(t, "refresh without a proof", s.do(t, "POST", "/v1/auth/refresh", body, nil), "invalid_dpop_proof")
	wantDPoPRefusal(t, "refresh with a thief's proof", s.do(t, "POST", "/v1/auth/refresh", body, s.withProof(thief, "POST", "/v1/auth/refresh", "")), "invalid_dpop_proof")
	// The thief's attempts did not rotate the chain (the same token
	// rotates now) nor count as reuse (the session lives).
	r := s.do(t, "POST", "/v1/auth/refresh", body, s.withProof(k, "POST", "/v1/auth/refresh", ""))
	if r.status != 200 || r.body["token_type"] != "DPoP" || r.body["session_id"] != tk.session {
		t.Fatalf("refresh with the key: %d %s", r.status, r.raw)
	}
	next := r.body["refresh_token"].(string)
	if cnf, _ := claimsOf(t, r.body["access_token"].(string))["cnf"].(map[string]any); cnf["jkt"] != k.Thumbprint {
		t.Fatalf("refreshed token cnf = %v", cnf)
	}
	// The fast path (the session is cached now) refuses the same way.
	wantDPoPRefusal(t, "second refresh without a proof", s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": next}, nil), "invalid_dpop_proof")
	if r := s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": next}, s.withProof(k, "POST", "/v1/auth/refresh", "")); r.status != 200 {
		t.Fatalf("second refresh: %d %s", r.status, r.raw)
	}
	evs := s.events(t, "ann")
	if !contains(evs, "dpop_mismatch") || contains(evs, "refresh_token_reused") {
		t.Fatalf("events %v: want dpop_mismatch, no reuse", evs)
	}
	// A dead session says so, even without the key: a browser that lost
	// its key with its session is not a theft.
	mismatches := count(evs, "dpop_mismatch")
	if r := s.do(t, "DELETE", "/v1/sessions/"+tk.session, nil, s.withProof(k, "DELETE", "/v1/sessions/"+tk.session, tk.access)); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": next}, nil); r.errCode() != "session_revoked" {
		t.Fatalf("refresh of the revoked session without a proof: %d %s", r.status, r.raw)
	}
	if n := count(s.events(t, "ann"), "dpop_mismatch"); n != mismatches {
		t.Fatalf("dpop_mismatch recorded for a dead session (%d, was %d)", n, mismatches)
	}
}

func count(list []string, s string) (n int) {
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// The refresh cookie is bound the same way: the browser's case.
func TestDPoPBoundRefreshCookie(t *testing.T) {
	s := newServer(t, options{origins: []string{appOrigin}})
	s.register(t, "ann")
	k := newKey(t, "ES256")
	h := s.withProof(k, "POST", "/v1/auth/login", "")
	h["Gatehouse-Transport"], h["Origin"] = "refresh-cookie", appOrigin
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, h)
	if r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "DPoP-Nonce") {
		t.Errorf("a DPoP client cannot read DPoP-Nonce: %q", r.header.Get("Access-Control-Expose-Headers"))
	}
	cookie := cookieMap(r.header)["__Secure-gatehouse_refresh"]
	if cookie == nil {
		t.Fatal("no refresh cookie")
	}
	stolen := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value, "Gatehouse-Transport": "refresh-cookie", "Origin": appOrigin}
	wantDPoPRefusal(t, "the stolen cookie alone", s.do(t, "POST", "/v1/auth/refresh", nil, stolen), "invalid_dpop_proof")
	stolen["DPoP"] = s.withProof(k, "POST", "/v1/auth/refresh", "")["DPoP"]
	if r := s.do(t, "POST", "/v1/auth/refresh", nil, stolen); r.status != 200 {
		t.Fatalf("the cookie with the key's proof: %d %s", r.status, r.raw)
	}
}

// Unbound sessions stay bearer: a proof on their refresh does not bind
// them, and a bearer token sent as DPoP is refused.
func TestDPoPUnboundStaysBearer(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	k := newKey(t, "EdDSA")
	wantDPoPRefusal(t, "bearer token as DPoP", s.do(t, "GET", "/v1/me", nil, s.withProof(k, "GET", "/v1/me", tk.access)), "invalid_token")
	r := s.do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": tk.refresh}, s.withProof(k, "POST", "/v1/auth/refresh", ""))
	if r.status != 200 || r.body["token_type"] != "Bearer" || claimsOf(t, r.body["access_token"].(string))["cnf"] != nil {
		t.Fatalf("refresh of an unbound session with a proof: %d %s", r.status, r.raw)
	}
	// A bad proof is refused even where none is needed, and changes nothing.
	bad := s.withProof(k, "POST", "/v1/auth/login", "")
	bad["DPoP"] += "x"
	r = s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, bad)
	wantDPoPRefusal(t, "login with a broken proof", r, "invalid_dpop_proof")
	r = s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"DPoP": k.Proof("POST", issuerURL+"/v1/auth/login", "", "", s.clock.Now()) + ", " + k.Proof("POST", issuerURL+"/v1/auth/login", "", "", s.clock.Now())})
	wantDPoPRefusal(t, "two proofs in one header", r, "invalid_dpop_proof")
}

// The second factor's step binds the session it opens.
func TestDPoPWithSecondFactor(t *testing.T) {
	s := newServer(t, options{})
	ann := s.enrolTOTP(t, "ann")
	k := newKey(t, "ES256")
	tok := s.startLogin(t, ann)
	s.clock.Advance(30 * time.Second) // the enrolment's step was consumed
	r := s.do(t, "POST", "/v1/auth/mfa", map[string]string{"mfa_token": tok, "code": totpAt(t, ann.secret, s.clock.Now())},
		s.withProof(k, "POST", "/v1/auth/mfa", ""))
	if r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("mfa with a proof: %d %s", r.status, r.raw)
	}
	at := r.body["access_token"].(string)
	// Re-authentication of a bound session: the proof rides along.
	re := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": ann.password, "code": totpAt(t, ann.secret, s.clock.Now().Add(30*time.Second))},
		s.withProof(k, "POST", "/v1/auth/reauthenticate", at))
	if re.status != 200 || re.body["token_type"] != "DPoP" {
		t.Fatalf("reauthenticate: %d %s", re.status, re.raw)
	}
	wantDPoPRefusal(t, "reauthenticate as Bearer", s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": ann.password}, bearer(at)), "invalid_dpop_proof")
}

// --dpop-nonce: proofs without the server's nonce get use_dpop_nonce and
// the nonce; any instance with the same key accepts it; a nonce is
// accepted for at most five minutes.
func TestDPoPNonces(t *testing.T) {
	key := []byte("a shared master-derived key, 32b")
	s := newServer(t, options{dpopNonceKey: key})
	other := newServer(t, options{dpopNonceKey: key})
	for _, srv := range []*server{s, other} {
		srv.register(t, "ann")
	}
	k := newKey(t, "EdDSA")
	login := map[string]string{"username": "ann", "password": "pw-ann-long"}
	r := s.do(t, "POST", "/v1/auth/login", login, s.withProof(k, "POST", "/v1/auth/login", ""))
	if r.status != 401 || r.errCode() != "use_dpop_nonce" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) {
		t.Fatalf("proof without a nonce: %d %s %v", r.status, r.raw, r.header)
	}
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce offered")
	}
	with := func(srv *server, n string) map[string]string {
		return map[string]string{"DPoP": k.Proof("POST", issuerURL+"/v1/auth/login", "", n, srv.clock.Now())}
	}
	if r := s.do(t, "POST", "/v1/auth/login", login, with(s, nonce)); r.status != 200 || r.header.Get("DPoP-Nonce") == "" {
		t.Fatalf("login with the nonce: %d %s", r.status, r.raw)
	}
	if r := other.do(t, "POST", "/v1/auth/login", login, with(other, nonce)); r.status != 200 {
		t.Fatalf("another instance refuses the nonce: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/login", login, with(s, "forged-"+nonce[7:])); r.errCode() != "use_dpop_nonce" {
		t.Fatalf("forged nonce: %d %s", r.status, r.raw)
	}
	// A protected route demands it too.
	tk := s.do(t, "POST", "/v1/auth/login", login, with(s, nonce))
	at := tk.body["access_token"].(string)
	h := map[string]string{"Authorization": "DPoP " + at, "DPoP": k.Proof("GET", issuerURL+"/v1/me", at, "", s.clock.Now())}
	if r := s.do(t, "GET", "/v1/me", nil, h); r.errCode() != "use_dpop_nonce" {
		t.Fatalf("protected route without the nonce: %d %s", r.status, r.raw)
	}
	h["DPoP"] = k.Proof("GET", issuerURL+"/v1/me", at, nonce, s.clock.Now())
	if r := s.do(t, "GET", "/v1/me", nil, h); r.status != 200 {
		t.Fatalf("protected route with the nonce: %d %s", r.status, r.raw)
	}
	// Five minutes on, the nonce is stale everywhere.
	s.clock.Advance(5*time.Minute + time.Second)
	if r := s.do(t, "POST", "/v1/auth/login", login, with(s, nonce)); r.errCode() != "use_dpop_nonce" || r.header.Get("DPoP-Nonce") == nonce {
		t.Fatalf("a five-minute-old nonce: %d %s", r.status, r.raw)
	}
}

// WebSocket: a bound token needs a proof for the socket, in the first
// message (browsers) or at the upgrade (header clients).
func TestDPoPWebSocket(t *testing.T) {
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}})
	s.register(t, "ann")
	k := newKey(t, "ES256")
	tk := s.dpopLogin(t, "ann", k)
	wsURL := "ws://gatehouse.test/v1/ws"

	c, _, err := s.dialOrigin(t, appOrigin)
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`"}`)
	closedWith(t, c, 4001, 2*time.Second)

	c, _, _ = s.dialOrigin(t, appOrigin)
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`","dpop":"`+k.Proof("GET", "http://gatehouse.test/v1/ws", tk.access, "", time.Now())+`"}`)
	closedWith(t, c, 4001, 2*time.Second) // an http:// htu is not the socket's URL

	c, _, _ = s.dialOrigin(t, appOrigin)
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`","dpop":"`+k.Proof("GET", wsURL, tk.access, "", time.Now())+`"}`)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("first message with the proof: %+v %v", m, err)
	}

	// At the upgrade: Authorization: DPoP and a proof header.
	if _, res, err := s.dial(t, "/v1/ws", bearerHeader(tk.access)); err == nil || res.StatusCode != 401 {
		t.Fatalf("bound token as Bearer at the upgrade: %v %v", res, err)
	}
	h := http.Header{"Authorization": {"DPoP " + tk.access}, "Dpop": {k.Proof("GET", wsURL, tk.access, "", time.Now())}}
	c, _, err = s.dial(t, "/v1/ws", h)
	if err != nil {
		t.Fatalf("upgrade with a proof: %v", err)
	}
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("hello: %+v %v", m, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// A browser on another origin may send DPoP: the preflight allows it
// when asked, and only then.
func TestDPoPPreflight(t *testing.T) {
	s := newServer(t, options{origins: []string{appOrigin}})
	r := s.do(t, "OPTIONS", "/v1/me", nil, map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "GET",
		"Access-Control-Request-Headers": "authorization, dpop"})
	if r.status != 204 || r.header.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, Gatehouse-Transport, DPoP" {
		t.Fatalf("preflight asking for DPoP: %d %q", r.status, r.header.Get("Access-Control-Allow-Headers"))
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}
