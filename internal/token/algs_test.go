package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/accesstoken"
)

// Every --signing-alg: tokens sign and verify, the JWK says what the key
// is, and the algorithm is the key's: the same key's token relabelled with
// another alg, or MACed with the public key, is refused.
func TestSigningAlgorithms(t *testing.T) {
	now := time.Now()
	for _, alg := range Algorithms {
		t.Run(alg, func(t *testing.T) {
			k, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			ks := NewKeySet(k)
			c := Claims{Issuer: "https://gh.test", Subject: "u", SessionID: "s", ID: "j", Role: "user",
				IssuedAt: NumericDate{Time: now}, ExpiresAt: NumericDate{Time: now.Add(time.Minute)}}
			tok, err := ks.Sign(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ks.Verify(tok, "https://gh.test", now)
			if err != nil || got.Subject != "u" {
				t.Fatalf("verify: %v", err)
			}
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
			if !strings.Contains(string(hdr), `"alg":"`+alg+`"`) {
				t.Fatalf("header %s", hdr)
			}
			jwk := ks.JWKS().Keys[0]
			want := map[string]string{"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}[alg]
			if jwk.Algorithm != alg || jwk.KeyType != want || jwk.KeyID != k.ID || jwk.KeyID != Thumbprint(k.Public) {
				t.Fatalf("JWK %+v", jwk)
			}
			if b, _ := json.Marshal(jwk); alg == "RS256" && (strings.Contains(string(b), `"x"`) || !strings.Contains(string(b), `"e":"AQAB"`)) {
				t.Fatalf("RSA JWK %s", b)
			}
			// The same key's signature under another alg label.
			parts := strings.Split(tok, ".")
			for _, other := range append(Algorithms, "HS256", "none") {
				if other == alg {
					continue
				}
				h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + other + `","kid":"` + k.ID + `","typ":"at+jwt"}`))
				if _, err := ks.Verify(h+"."+parts[1]+"."+parts[2], "https://gh.test", now); !errors.Is(err, ErrInvalid) {
					t.Errorf("relabelled %s: %v", other, err)
				}
			}
			// HS256 keyed with the public key's JWK bytes.
			pubJSON, _ := json.Marshal(jwk)
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + k.ID + `","typ":"at+jwt"}`))
			m := hmac.New(sha256.New, pubJSON)
			m.Write([]byte(h + "." + parts[1]))
			if _, err := ks.Verify(h+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(m.Sum(nil)), "https://gh.test", now); !errors.Is(err, ErrInvalid) {
				t.Errorf("HS256 with the public key: %v", err)
			}
		})
	}
	if _, err := Generate("HS256"); err == nil {
		t.Fatal("HS256 keys can be generated")
	}
}

// BenchmarkSignVerify: issuing and verifying a token per --signing-alg.
func BenchmarkSignVerify(b *testing.B) {
	now := time.Now()
	for _, alg := range Algorithms {
		k, err := Generate(alg)
		if err != nil {
			b.Fatal(err)
		}
		ks := NewKeySet(k)
		c := Claims{Issuer: "https://gh.test", Subject: "u", SessionID: "s", ID: "j", Role: "user",
			IssuedAt: NumericDate{Time: now}, ExpiresAt: NumericDate{Time: now.Add(time.Hour)}}
		tok, _ := ks.Sign(c)
		b.Run("Sign/"+alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := ks.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Verify/"+alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ks.Verify(tok, "https://gh.test", now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A token verified once is answered from the cache, but a key that leaves
// the set stops verifying at once, cached tokens included.
func TestVerifiedCacheFollowsTheKeys(t *testing.T) {
	now := time.Now()
	old, next := GenerateKey(), GenerateKey()
	ks := NewKeySet(old)
	tok, _ := ks.Sign(Claims{Issuer: "https://gh.test", Subject: "u", SessionID: "s", ID: "j", Role: "user",
		IssuedAt: NumericDate{Time: now}, ExpiresAt: NumericDate{Time: now.Add(time.Minute)}})
	for range 2 {
		if _, err := ks.Verify(tok, "https://gh.test", now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ks.Verify(tok, "https://other.test", now); err == nil {
		t.Fatal("a cached token verified for another issuer")
	}
	ks.Replace(next, old) // rotation: the old key still verifies
	if _, err := ks.Verify(tok, "https://gh.test", now); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	ks.Replace(next) // the old key gone (compromised, or past its grace)
	if _, err := ks.Verify(tok, "https://gh.test", now); err == nil {
		t.Fatal("a cached token of a removed key still verifies")
	}
}

// BenchmarkVerifyRepeat: the same token verified again (every request of
// a session) against the first verification. Target ≤ 1 µs, no allocation.
func BenchmarkVerifyRepeat(b *testing.B) {
	now := time.Now()
	ks := NewKeySet(GenerateKey())
	tok, _ := ks.Sign(Claims{Issuer: "https://gh.test", Subject: "u", SessionID: "s", ID: "j", Role: "user",
		Permissions: []string{"a:b"}, IssuedAt: NumericDate{Time: now}, ExpiresAt: NumericDate{Time: now.Add(time.Hour)}})
	b.Run("First", func(b *testing.B) {
		for b.Loop() {
			if _, err := accesstoken.Verify(tok, ks.key, "https://gh.test", now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Repeat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ks.Verify(tok, "https://gh.test", now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
