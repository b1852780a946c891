package dpop

import (
	"crypto/ed25519"
	"runtime"
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
		// The first pass records each jti; later passes are replays.
		err := c.Use("thumbprint-of-the-client-key-43-characters-", jtis[i%len(jtis)], now)
		if (i < len(jtis)) != (err == nil) {
			b.Fatalf("use %d: %v", i, err)
		}
	}
}

// BenchmarkReplayCacheFlood fills a cache with a flood of distinct valid
// proofs (each op is one more) and reports the heap per remembered proof:
// the memory an attacker can make a server hold is entries × that, and
// entries are bounded by the cache's maximum (DefaultMaxEntries).
func BenchmarkReplayCacheFlood(b *testing.B) {
	const n = 1 << 20
	jtis := make([]string, n)
	for i := range jtis {
		jtis[i] = strconv.Itoa(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := NewReplayCache(n)
	now := time.Now()
	for i := 0; i < n; i++ {
		if err := c.Use("thumbprint-of-the-client-key-43-characters-", jtis[i], now); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := float64(after.HeapAlloc-before.HeapAlloc) / float64(c.Len())
	// The (n+1)th distinct proof is refused, not remembered.
	if err := c.Use("thumbprint-of-the-client-key-43-characters-", "one more", now); err != ErrBusy {
		b.Fatalf("over the bound: %v", err)
	}
	for b.Loop() {
		if err := c.Use("thumbprint-of-the-client-key-43-characters-", jtis[0], now); err != ErrReplay {
			b.Fatalf("a replay in a full cache: %v", err)
		}
	}
	b.ReportMetric(perEntry, "bytes/entry")
	b.ReportMetric(perEntry*DefaultMaxEntries/(1<<20), "MiB-at-max")
	runtime.KeepAlive(jtis)
}
