package accesstoken

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func sign(priv ed25519.PrivateKey, header, claims string) string {
	enc := base64.RawURLEncoding
	msg := header + "." + enc.EncodeToString([]byte(claims))
	return msg + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(msg)))
}

// Every claim the server issues is required, by the server and guard alike
// (guard once accepted tokens without jti); a well-signed token of another
// issuer is told apart; the header must be exact.
func TestVerifyRequiresEveryClaim(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := Header(EdDSA, "k1")
	keys := func(header string) (crypto.PublicKey, bool) { return pub, header == h }
	now := time.Unix(1_800_000_000, 0)
	full := `{"iss":"https://gh.test","sub":"u","sid":"s","jti":"j","iat":1799999990.5,"exp":1800000300,"role":"user","auth_time":1799999990}`
	c, err := Verify(sign(priv, h, full), keys, "https://gh.test", now)
	if err != nil || c.Subject != "u" || c.ID != "j" || c.IssuedAt.UnixMicro() != 1799999990_500000 {
		t.Fatalf("a full token: %+v, %v", c, err)
	}
	for _, claim := range []string{`"sub":"u",`, `"sid":"s",`, `"jti":"j",`, `"iat":1799999990.5,`, `"role":"user",`} {
		if _, err := Verify(sign(priv, h, strings.Replace(full, claim, "", 1)), keys, "https://gh.test", now); !errors.Is(err, ErrInvalid) {
			t.Errorf("without %s: %v; want ErrInvalid", claim, err)
		}
	}
	if c, err := Verify(sign(priv, h, full), keys, "https://other.test", now); !errors.Is(err, ErrIssuer) || !errors.Is(err, ErrInvalid) || c.Issuer != "https://gh.test" {
		t.Fatalf("another issuer: %+v, %v; want ErrIssuer with the token's iss", c, err)
	}
	if _, err := Verify(sign(priv, h, full), keys, "https://gh.test", now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	other := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}`)) // same, reordered
	if _, err := Verify(sign(priv, other, full), keys, "https://gh.test", now); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a header not byte for byte ours: %v", err)
	}
	if _, err := Verify(strings.Repeat("a", MaxLength+1), keys, "https://gh.test", now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an oversized token: %v", err)
	}
}
