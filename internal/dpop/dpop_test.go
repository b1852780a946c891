package dpop

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const target = "https://auth.example.com/v1/auth/refresh"

func signer(t testing.TB, alg string) *Signer {
	t.Helper()
	s, err := NewSigner(alg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The thumbprint of RFC 9449's example key is the jkt its §6.1 shows.
func TestThumbprintOfRFC9449Example(t *testing.T) {
	got := thumbprint(`{"crv":"P-256","kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}`)
	if got != "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestVerifyGoodProofs(t *testing.T) {
	now := time.Now()
	for _, alg := range Algorithms {
		s := signer(t, alg)
		v := NewVerifier(0, nil, func() time.Time { return now })
		p, err := v.Verify(s.Proof("POST", target, "", "", now), Request{Method: "POST", URL: target})
		if err != nil || p.Thumbprint != s.Thumbprint {
			t.Fatalf("%s: %+v %v", alg, p, err)
		}
		// The same URL written differently is the same URL; a query is ignored.
		p, err = v.Verify(s.Proof("GET", "HTTPS://Auth.Example.com:443/v1/me?x=1", "tok", "", now),
			Request{Method: "GET", URL: "https://auth.example.com/v1/me", AccessToken: "tok"})
		if err != nil || p.AccessTokenHash != TokenHash("tok") {
			t.Fatalf("%s normalised URL: %v", alg, err)
		}
	}
}

// Every rule, attacked: each proof is wrong in one way and refused, and
// a refused proof does not use up its jti.
func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	s := signer(t, "ES256")
	other := signer(t, "EdDSA")
	req := Request{Method: "POST", URL: target, AccessToken: "tok"}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"jti": "j1", "htm": "POST", "htu": target, "iat": now.Unix(), "ath": TokenHash("tok")}
		if edit != nil {
			edit(c)
		}
		return c
	}
	hdr := func(edit func(map[string]any)) map[string]any {
		h := map[string]any{"typ": Type, "alg": "ES256", "jwk": s.JWK()}
		if edit != nil {
			edit(h)
		}
		return h
	}
	private := map[string]string{}
	for k, v := range s.JWK() {
		private[k] = v
	}
	private["d"] = "c2VjcmV0"
	cases := map[string]string{
		"wrong htm":         s.Sign(hdr(nil), claims(func(c map[string]any) { c["htm"] = "GET" })),
		"wrong htu":         s.Sign(hdr(nil), claims(func(c map[string]any) { c["htu"] = "https://auth.example.com/v1/auth/login" })),
		"other host":        s.Sign(hdr(nil), claims(func(c map[string]any) { c["htu"] = "https://evil.example/v1/auth/refresh" })),
		"http not https":    s.Sign(hdr(nil), claims(func(c map[string]any) { c["htu"] = "http://auth.example.com/v1/auth/refresh" })),
		"wrong ath":         s.Sign(hdr(nil), claims(func(c map[string]any) { c["ath"] = TokenHash("other") })),
		"no ath":            s.Sign(hdr(nil), claims(func(c map[string]any) { delete(c, "ath") })),
		"stale iat":         s.Sign(hdr(nil), claims(func(c map[string]any) { c["iat"] = now.Add(-61 * time.Second).Unix() })),
		"future iat":        s.Sign(hdr(nil), claims(func(c map[string]any) { c["iat"] = now.Add(62 * time.Second).Unix() })),
		"iat string":        s.Sign(hdr(nil), claims(func(c map[string]any) { c["iat"] = "1700000000" })),
		"no jti":            s.Sign(hdr(nil), claims(func(c map[string]any) { delete(c, "jti") })),
		"long jti":          s.Sign(hdr(nil), claims(func(c map[string]any) { c["jti"] = strings.Repeat("j", 257) })),
		"typ JWT":           s.Sign(hdr(func(h map[string]any) { h["typ"] = "JWT" }), claims(nil)),
		"alg none":          s.Sign(hdr(func(h map[string]any) { h["alg"] = "none" }), claims(nil)),
		"alg HS256":         s.Sign(hdr(func(h map[string]any) { h["alg"] = "HS256" }), claims(nil)),
		"alg RS256":         s.Sign(hdr(func(h map[string]any) { h["alg"] = "RS256" }), claims(nil)),
		"alg EdDSA, EC key": s.Sign(hdr(func(h map[string]any) { h["alg"] = "EdDSA" }), claims(nil)),
		"private key":       s.Sign(hdr(func(h map[string]any) { h["jwk"] = private }), claims(nil)),
		"foreign key":       s.Sign(hdr(func(h map[string]any) { h["jwk"] = other.JWK(); h["alg"] = "EdDSA" }), claims(nil)),
		"crit":              s.Sign(hdr(func(h map[string]any) { h["crit"] = []string{"exp"} }), claims(nil)),
		"jku":               s.Sign(hdr(func(h map[string]any) { h["jku"] = "https://evil.example/jwks" }), claims(nil)),
		"kid":               s.Sign(hdr(func(h map[string]any) { h["kid"] = "k1" }), claims(nil)),
		"no jwk":            s.Sign(hdr(func(h map[string]any) { delete(h, "jwk") }), claims(nil)),
	}
	// Structural damage.
	good := s.Sign(hdr(nil), claims(nil))
	parts := strings.Split(good, ".")
	cases["unsigned"] = parts[0] + "." + parts[1] + "."
	cases["padded"] = parts[0] + "=." + parts[1] + "." + parts[2]
	cases["two parts"] = parts[0] + "." + parts[1]
	cases["four parts"] = good + ".x"
	cases["payload swapped"] = parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"j2","htm":"POST","htu":"`+target+`","iat":`+jsonNum(now)+`}`)) + "." + parts[2]
	cases["too long"] = strings.Repeat("a", MaxLength+1)
	v := NewVerifier(0, nil, func() time.Time { return now })
	for name, proof := range cases {
		if _, err := v.Verify(proof, req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// None of them used up j1: the good proof passes once, then is a replay.
	if _, err := v.Verify(good, req); err != nil {
		t.Fatalf("good proof after the refused ones: %v", err)
	}
	if _, err := v.Verify(good, req); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
}

func jsonNum(t time.Time) string { b, _ := json.Marshal(t.Unix()); return string(b) }

func TestReplayCacheGenerationsAndBound(t *testing.T) {
	c := NewReplayCache(4)
	t0 := time.Unix(1_700_000_000, 0)
	if err := c.Use("k", "a", t0); err != nil {
		t.Fatal(err)
	}
	// Still remembered for the whole window a proof stays acceptable.
	if err := c.Use("k", "a", t0.Add(2*Window-time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("within 2×Window: %v", err)
	}
	if err := c.Use("k", "a", t0.Add(3*Window)); !errors.Is(err, ErrReplay) {
		t.Fatalf("after one rotation: %v", err)
	}
	// Another key's identical jti is not a replay.
	if err := c.Use("other", "a", t0.Add(3*Window)); err != nil {
		t.Fatalf("other key: %v", err)
	}
	// Forgotten once a proof with that jti could no longer be fresh.
	if err := c.Use("k", "a", t0.Add(8*Window)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// Full: refuse rather than forget.
	now := t0.Add(8 * Window)
	for _, j := range []string{"b", "c", "d"} {
		if err := c.Use("k", j, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Use("k", "e", now); !errors.Is(err, ErrBusy) {
		t.Fatalf("full cache: %v", err)
	}
	if c.Len() != 4 {
		t.Fatalf("len %d", c.Len())
	}
}

func TestNonces(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	n := NewNonces(key)
	t0 := time.Unix(1_700_000_040, 0)
	nonce := n.Current(t0)
	if !n.Valid(nonce, t0) || !n.Valid(nonce, t0.Add(4*NonceStep)) {
		t.Fatal("a fresh nonce is refused")
	}
	if n.Valid(nonce, t0.Add(NonceSteps*NonceStep)) {
		t.Fatal("a nonce older than five minutes is accepted")
	}
	if n.Valid(nonce, t0.Add(-NonceStep)) {
		t.Fatal("a nonce from the future is accepted")
	}
	if n.Current(t0.Add(NonceStep)) == nonce {
		t.Fatal("the nonce does not rotate")
	}
	// Another instance with the same key accepts it; another key does not.
	if !NewNonces(key).Valid(nonce, t0) || NewNonces([]byte("another key, another deployment!")).Valid(nonce, t0) {
		t.Fatal("nonce key")
	}
	for _, bad := range []string{"", "x", nonce[:len(nonce)-1] + "A", strings.ToUpper(nonce), nonce + "A"} {
		if bad != nonce && n.Valid(bad, t0) {
			t.Errorf("%q accepted", bad)
		}
	}
	// The verifier demands it.
	s := signer(t, "EdDSA")
	v := NewVerifier(0, n, func() time.Time { return t0 })
	req := Request{Method: "POST", URL: target}
	if _, err := v.Verify(s.Proof("POST", target, "", "", t0), req); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("no nonce: %v", err)
	}
	if _, err := v.Verify(s.Proof("POST", target, "", "stale", t0), req); !errors.Is(err, ErrUseNonce) {
		t.Fatalf("bad nonce: %v", err)
	}
	if _, err := v.Verify(s.Proof("POST", target, "", v.Nonce(), t0), req); err != nil {
		t.Fatalf("with the nonce: %v", err)
	}
}

func TestReplayLookupAllocatesNothing(t *testing.T) {
	c := NewReplayCache(0)
	now := time.Now()
	_ = c.Use("thumb", "seen", now)
	if n := testing.AllocsPerRun(100, func() { _ = c.Use("thumb", "seen", now) }); n != 0 {
		t.Fatalf("replay lookup allocates %v times", n)
	}
}
