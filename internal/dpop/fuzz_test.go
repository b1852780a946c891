package dpop

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse: any string is refused cleanly or parsed into a proof whose
// fields obey Parse's rules; never a panic.
func FuzzParse(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	for _, alg := range Algorithms {
		s := signer(f, alg)
		f.Add(s.Proof("POST", target, "", "", now))
		f.Add(s.Proof("GET", target, "tok", "nonce", now))
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.")
	cache := &keyCache{}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := Parse(proof)
		// The verifier's cached path says the same, first and second time.
		for range 2 {
			q, err2 := parse(proof, cache)
			if q != p || (err == nil) != (err2 == nil) {
				t.Fatalf("cached parse differs: %+v %v, uncached %+v %v", q, err2, p, err)
			}
		}
		if err != nil {
			if p != (Proof{}) {
				t.Fatalf("refused proof returned fields: %+v", p)
			}
			return
		}
		if len(p.Thumbprint) != 43 || p.ID == "" || len(p.ID) > 256 || p.Method == "" || p.URL == "" || p.IssuedAt.IsZero() {
			t.Fatalf("accepted proof breaks the rules: %+v", p)
		}
		if strings.Count(proof, ".") != 2 {
			t.Fatal("accepted a proof that is not a compact JWS")
		}
	})
}

// FuzzSameURL: comparison never panics and is symmetric for equal inputs.
func FuzzSameURL(f *testing.F) {
	f.Add("https://a.example/x", "https://A.example:443/x?y")
	f.Add("ws://h/v1/ws", "http://h/v1/ws")
	f.Add("%zz", "https://a")
	f.Fuzz(func(t *testing.T, a, b string) {
		_ = SameURL(a, b)
		if SameURL(a, a) != SameURL(a, a) {
			t.Fatal("unstable")
		}
	})
}
