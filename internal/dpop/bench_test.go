package dpop

import (
	"crypto/ed25519"
	"strconv"
	"testing"
	"time"
)

// BenchmarkVerifyProof is the proof check a DPoP-bound request adds, per
// algorithm; BenchmarkEd25519Verify is the floor it is compared with.
func BenchmarkVerifyProof(b *testing.B) {
	for _, alg := range Algorithms {
		b.Run(alg, func(b *testing.B) {
			s := signer(b, alg)
			now := time.Now()
			proofs := make([]string, 4096)
			for i := range proofs {
				proofs[i] = s.Proof("GET", target, "tok", "", now)
			}
			v := NewVerifier(0, nil, func() time.Time { return now })
			req := Request{Method: "GET", URL: target, AccessToken: "tok"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%len(proofs) == 0 && i > 0 {
					v = NewVerifier(0, nil, func() time.Time { return now }) // fresh jtis
				}
				if _, err := v.Verify(proofs[i%len(proofs)], req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := []byte("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyIn0")
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkReplayCache(b *testing.B) {
	c := NewReplayCache(0)
	now := time.Now()
	jtis := make([]string, 1<<16)
	for i := range jtis {
		jtis[i] = strconv.Itoa(i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = c.Use("thumbprint-of-the-client-key-43-characters-", jtis[i%len(jtis)], now)
	}
}
