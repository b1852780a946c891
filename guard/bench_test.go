package guard_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// BenchmarkGuardVerify compares the guard's full check (exact-header key
// lookup, Ed25519, claims, expiry, revocation lookup with 1,000 revoked
// sessions known) with a bare ed25519.Verify of the same token.
// Target: Verify within 1.10× of Bare.
func BenchmarkGuardVerify(b *testing.B) {
	g := startGatehouse(b)
	for i := range 1000 {
		tk := g.login(b, fmt.Sprintf("user%d", i%10))
		g.svc.Logout(context.Background(), tk.RefreshToken, "", auth.Meta{})
	}
	gd := newGuard(b, g, nil)
	tk := g.login(b, "ann")
	if _, err := gd.Verify(tk.AccessToken); err != nil {
		b.Fatal(err)
	}
	dot := strings.LastIndexByte(tk.AccessToken, '.')
	msg := []byte(tk.AccessToken[:dot])
	sig, _ := base64.RawURLEncoding.DecodeString(tk.AccessToken[dot+1:])
	res, _ := http.Get(g.URL + "/.well-known/jwks.json")
	var jwks struct{ Keys []struct{ X string } }
	json.NewDecoder(res.Body).Decode(&jwks)
	res.Body.Close()
	pub, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].X)

	b.Run("Bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("bad")
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := gd.Verify(tk.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRevocationPropagation measures, over 200 revocations, the time
// from the revoking call returning at Gatehouse to the guard refusing the
// session's token. Reported as p50 and p99 (target p99 < 1s).
func BenchmarkRevocationPropagation(b *testing.B) {
	g := startGatehouse(b)
	gd := newGuard(b, g, nil)
	const n = 200
	tokens := make([]auth.Tokens, n)
	for i := range tokens {
		tokens[i] = g.login(b, fmt.Sprintf("user%d", i%20))
	}
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := range n {
		if err := g.svc.Logout(context.Background(), tokens[i].RefreshToken, "", auth.Meta{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			if _, err := gd.Verify(tokens[i].AccessToken); err == guard.ErrRevoked {
				break
			}
			if time.Since(start) > 5*time.Second {
				b.Fatal("revocation never reached the guard")
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[n-1].Microseconds()), "max-µs")
}
