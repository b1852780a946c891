package token

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const iss = "https://auth.example.test"

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func claims() Claims {
	return Claims{Issuer: iss, Subject: "user-1", SessionID: "sess-1", ID: "jti-1", Role: "user",
		IssuedAt: NumericDate{Time: t0.Add(123456 * time.Microsecond)}, ExpiresAt: NumericDate{Time: t0.Add(5 * time.Minute)}}
}

// signRaw signs arbitrary header and payload JSON with priv, as an attacker
// holding a key (or replaying our key on a doctored header) would.
func signRaw(signer crypto.Signer, header, payload string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return in + "." + enc.EncodeToString(ed25519.Sign(signer.(ed25519.PrivateKey), []byte(in)))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := GenerateKey()
	ks := NewKeySet(k)
	tok, err := ks.Sign(claims())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ks.Verify(tok, iss, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := claims()
	if got.Subject != want.Subject || got.SessionID != want.SessionID || got.ID != want.ID || got.Role != want.Role ||
		!got.IssuedAt.Equal(want.IssuedAt.Time) || !got.ExpiresAt.Equal(want.ExpiresAt.Time) {
		t.Fatalf("Verify = %+v, want %+v", got, want)
	}
}

// TestTokensAreStandardJWTs checks our tokens with an independent JOSE
// implementation using only the JWKS, as a resource server would.
func TestTokensAreStandardJWTs(t *testing.T) {
	k := GenerateKey()
	ks := NewKeySet(k)
	tok, _ := ks.Sign(claims())
	jwk := ks.JWKS().Keys[0]
	x, _ := base64.RawURLEncoding.DecodeString(jwk.X)
	var mc jwt.MapClaims
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(iss),
		jwt.WithTimeFunc(func() time.Time { return t0 })).ParseWithClaims(tok, &mc,
		func(tk *jwt.Token) (any, error) {
			if tk.Header["kid"] != jwk.KeyID || tk.Header["typ"] != "at+jwt" {
				return nil, fmt.Errorf("header %v", tk.Header)
			}
			return ed25519.PublicKey(x), nil
		})
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt rejects our token: %v", err)
	}
	if mc["sid"] != "sess-1" || mc["role"] != "user" {
		t.Fatalf("claims = %v", mc)
	}
	if jwk.KeyID != Thumbprint(k.Public) || jwk.KeyType != "OKP" || jwk.Curve != "Ed25519" {
		t.Fatalf("JWK = %+v", jwk)
	}
}

func TestVerifyRejects(t *testing.T) {
	k := GenerateKey()
	other := GenerateKey()
	ks := NewKeySet(k)
	good, _ := ks.Sign(claims())
	h, p, s := split(good)
	headerJSON := func(extra string) string {
		return fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"typ":"at+jwt"%s}`, k.ID, extra)
	}
	payload := mustJSON(claims())
	expired := claims()
	expired.ExpiresAt = NumericDate{Time: t0.Add(-time.Second)}
	noSID := claims()
	noSID.SessionID = ""
	wrongIss := claims()
	wrongIss.Issuer = "https://evil.example"
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	hs := func(header string) string {
		enc := base64.RawURLEncoding
		in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		m := hmac.New(sha256.New, k.Public.(ed25519.PublicKey)) // the classic: public key as HMAC secret
		m.Write([]byte(in))
		return in + "." + enc.EncodeToString(m.Sum(nil))
	}
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"bad signature", h + "." + p + "." + flip(s, 10), ErrInvalid},
		{"altered payload", h + "." + flip(p, 20) + "." + s, ErrInvalid},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"alg":"none","kid":%q,"typ":"at+jwt"}`, k.ID))) + "." + p + ".", ErrInvalid},
		{"HS256 with the public key", hs(fmt.Sprintf(`{"alg":"HS256","kid":%q,"typ":"at+jwt"}`, k.ID)), ErrInvalid},
		{"other algorithm", signRaw(k.Private, fmt.Sprintf(`{"alg":"ES256","kid":%q,"typ":"at+jwt"}`, k.ID), payload), ErrInvalid},
		{"wrong key, its own kid", signRaw(other.Private, fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"typ":"at+jwt"}`, other.ID), payload), ErrInvalid},
		{"wrong key, our kid", signRaw(other.Private, headerJSON(""), payload), ErrInvalid},
		{"unknown kid", signRaw(k.Private, `{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}`, payload), ErrInvalid},
		{"wrong typ", signRaw(k.Private, fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"typ":"JWT"}`, k.ID), payload), ErrInvalid},
		{"no typ", signRaw(k.Private, fmt.Sprintf(`{"alg":"EdDSA","kid":%q}`, k.ID), payload), ErrInvalid},
		{"jku header", signRaw(k.Private, headerJSON(`,"jku":"https://evil.example/jwks"`), payload), ErrInvalid},
		{"embedded jwk", signRaw(k.Private, headerJSON(`,"jwk":{"kty":"OKP"}`), payload), ErrInvalid},
		{"crit header", signRaw(k.Private, headerJSON(`,"crit":["exp"]`), payload), ErrInvalid},
		{"wrong issuer", signRaw(k.Private, headerJSON(""), mustJSON(wrongIss)), ErrInvalid},
		{"missing sid", signRaw(k.Private, headerJSON(""), mustJSON(noSID)), ErrInvalid},
		{"payload not JSON", signRaw(k.Private, headerJSON(""), "not json"), ErrInvalid},
		{"expired", signRaw(k.Private, headerJSON(""), mustJSON(expired)), ErrExpired},
		{"expired and badly signed", func() string {
			x := signRaw(k.Private, headerJSON(""), mustJSON(expired))
			h, p, s := split(x)
			return h + "." + p + "." + flip(s, 5)
		}(), ErrInvalid},
		{"padded base64 signature", good + "==", ErrInvalid},
		{"four segments", good + ".x", ErrInvalid},
		{"two segments", h + "." + p, ErrInvalid},
		{"empty", "", ErrInvalid},
		{"refresh token", "ghr_" + strings.Repeat("A", 75), ErrInvalid},
		{"oversized", h + "." + strings.Repeat("A", MaxLength) + "." + s, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ks.Verify(tc.tok, iss, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// Sanity: the untouched token passes, so the cases above fail for
	// their own reason.
	if _, err := ks.Verify(good, iss, t0); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if _, err := ks.Verify(signRaw(k.Private, headerJSON(""), payload), iss, t0); err != nil {
		t.Fatalf("re-signed good token: %v", err)
	}
}

func TestKeyRotationKeepsOldKeysVerifying(t *testing.T) {
	k1, k2 := GenerateKey(), GenerateKey()
	ks := NewKeySet(k1)
	old, _ := ks.Sign(claims())
	ks.Replace(k2, k1)
	if _, err := ks.Verify(old, iss, t0); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	fresh, _ := ks.Sign(claims())
	if !strings.HasPrefix(fresh, k2.header+".") {
		t.Fatal("new tokens are not signed by the new key")
	}
	ks.Replace(k2)
	if _, err := ks.Verify(old, iss, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token of a dropped key: %v, want ErrInvalid", err)
	}
	if got := len(ks.JWKS().Keys); got != 1 {
		t.Fatalf("JWKS has %d keys, want 1", got)
	}
}

func TestNumericDateMicroseconds(t *testing.T) {
	d := NumericDate{Time: time.Unix(1700000000, 1500).UTC()} // 1.5 µs: rounds down to 1 µs
	b, _ := json.Marshal(d)
	if string(b) != "1700000000.000001" {
		t.Fatalf("marshal = %s", b)
	}
	var back NumericDate
	if err := json.Unmarshal(b, &back); err != nil || back.UnixMicro() != 1700000000000001 {
		t.Fatalf("unmarshal = %v, %v", back, err)
	}
	for _, bad := range []string{`"1"`, `-1`, `1e300`, `null`} {
		var x NumericDate
		if err := json.Unmarshal([]byte(bad), &x); err == nil && !x.IsZero() {
			t.Errorf("unmarshal(%s) accepted: %v", bad, x)
		}
	}
}

func split(tok string) (h, p, s string) {
	parts := strings.Split(tok, ".")
	return parts[0], parts[1], parts[2]
}

// FuzzVerifyAccess: no input may panic, and whatever verifies must have been
// signed by our key over exactly the bytes given.
func FuzzVerifyAccess(f *testing.F) {
	k := NewKey(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey), ed25519.NewKeyFromSeed(make([]byte, 32)))
	ks := NewKeySet(k)
	good, _ := ks.Sign(claims())
	// Tokens signed at run time; the fixed seeds are in testdata/fuzz/FuzzVerifyAccess.
	f.Add(good)
	f.Add(k.header + ".e30.")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ks.Verify(tok, iss, t0)
		if err != nil {
			return
		}
		h, p, s := split(tok)
		sig, _ := base64.RawURLEncoding.DecodeString(s)
		if h != k.header || !ed25519.Verify(k.Public.(ed25519.PublicKey), []byte(h+"."+p), sig) || c.SessionID == "" {
			t.Fatalf("accepted a token not signed by us: %q", tok)
		}
	})
}
