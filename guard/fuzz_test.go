package guard

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/accesstoken"
)

// The seed corpora live in testdata/fuzz/<target>; the seeds added in code
// are the ones that need this run's key.

var fuzzNow = time.Unix(1_800_000_000, 0)

// fuzzGuard is a Guard with one key and a fresh feed, and no network: the
// JWKS was fetched "just now", so no header makes it fetch again.
func fuzzGuard(t testing.TB) (*Guard, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	g := &Guard{
		cfg: Config{Issuer: "https://auth.example.com", Now: func() time.Time { return fuzzNow },
			MaxStaleness: time.Minute, JWKSMinInterval: time.Hour},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), sessions: map[string]int64{}, users: map[string]int64{},
		lastJWKS: time.Now(), verified: accesstoken.NewCache(0), // the cached path is fuzzed too
	}
	keys := map[string]crypto.PublicKey{header("EdDSA", "k1"): priv.Public().(ed25519.PublicKey)}
	g.keys.Store(&keys)
	g.lastContact.Store(fuzzNow.UnixNano())
	return g, priv
}

func sign(priv ed25519.PrivateKey, claims string) string {
	enc := base64.RawURLEncoding
	signing := header("EdDSA", "k1") + "." + enc.EncodeToString([]byte(claims))
	return signing + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(signing)))
}

// FuzzVerify: a token is accepted only if it is, byte for byte, one this
// key signed; any change anywhere (header, claims, signature, encoding) is
// a refusal, never a panic.
func FuzzVerify(f *testing.F) {
	g, priv := fuzzGuard(f)
	signed := map[string]bool{}
	for _, claims := range []string{
		`{"iss":"https://auth.example.com","sub":"u1","sid":"s1","jti":"j1","role":"user","iat":1799999990,"exp":1800000300}`,
		`{"iss":"https://auth.example.com","sub":"u1","sid":"s1","jti":"j2","role":"admin","iat":1799999990.5,"exp":1800000300.25,"auth_time":1799999000,"permissions":["a","b"]}`,
		`{"iss":"https://other.example.com","sub":"u1","sid":"s1","role":"user","iat":1799999990,"exp":1800000300}`,
		`{"iss":"https://auth.example.com","sub":"u1","sid":"s1","role":"user","iat":1799999990,"exp":1799999999}`,
		`{"iss":"https://auth.example.com","sub":"u1","sid":"s1","role":"user","iat":"x","exp":1800000300}`,
	} {
		tok := sign(priv, claims)
		signed[tok] = true
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := g.Verify(tok)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		if !signed[tok] {
			t.Fatalf("accepted a token the key never signed: %q", tok)
		}
		if c.Subject == "" || c.SessionID == "" || c.Role == "" || !fuzzNow.Before(c.ExpiresAt) {
			t.Fatalf("accepted incomplete or expired claims %+v", c)
		}
	})
}

// FuzzParseJWKS: whatever the network sends, only well-formed Ed25519 keys
// are kept, each under the exact header Gatehouse writes for its kid.
func FuzzParseJWKS(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(bytes.NewReader(data))
		if err != nil {
			if keys != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for h, k := range keys {
			// Every key kept is of a supported kind, filed under the
			// header of exactly its own algorithm.
			alg := accesstoken.Algorithm(k)
			if alg == "" {
				t.Fatalf("kept an unsupported key %T", k)
			}
			raw, err := base64.RawURLEncoding.DecodeString(h)
			var hdr struct{ Alg, Kid, Typ string }
			if err != nil || json.Unmarshal(raw, &hdr) != nil || hdr.Alg != alg || hdr.Typ != "at+jwt" || header(hdr.Alg, hdr.Kid) != h {
				t.Fatalf("kept a key under header %q", h)
			}
		}
	})
}

// FuzzFeed: a feed answer can only add revocations. Whatever it holds, a
// user's not-before and the global not-before never move back, a revoked
// session that has not expired stays revoked, and nothing panics.
func FuzzFeed(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		g, _ := fuzzGuard(t)
		g.sessions["s-live"] = fuzzNow.Add(time.Hour).UnixNano()
		g.users["u1"] = fuzzNow.UnixNano()
		g.global.Store(fuzzNow.Add(-time.Hour).UnixNano())
		page, err := decodeFeed(bytes.NewReader(data))
		if err != nil {
			return
		}
		g.apply(page)
		if _, ok := g.sessions["s-live"]; !ok {
			t.Fatal("a live session revocation was dropped")
		}
		if g.users["u1"] < fuzzNow.UnixNano() {
			t.Fatal("a user's not-before moved back")
		}
		if g.global.Load() < fuzzNow.Add(-time.Hour).UnixNano() {
			t.Fatal("the global not-before moved back")
		}
		if g.cursor != page.Cursor {
			t.Fatal("cursor not taken from the page")
		}
		for sid, until := range g.sessions {
			if until < fuzzNow.UnixNano() && !strings.HasPrefix(sid, "s-live") {
				t.Fatalf("kept an expired entry %q", sid)
			}
		}
	})
}
