package token

import (
	"bytes"
	"strings"
	"testing"
)

func TestRefreshRoundTrip(t *testing.T) {
	c := NewRefreshCodec(bytes.Repeat([]byte{7}, 32))
	sid := NewSessionID([16]byte{1, 2, 3})
	nonce := bytes.Repeat([]byte{9}, 32)
	tok, err := c.Make(sid, 42, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, RefreshPrefix) || len(tok) != refreshLen {
		t.Fatalf("token %q has the wrong shape", tok)
	}
	r, err := ParseRefresh(tok)
	if err != nil || r.SessionID != sid || r.Generation != 42 {
		t.Fatalf("ParseRefresh = %+v, %v", r, err)
	}
	if !c.Verify(r, nonce) {
		t.Fatal("own token does not verify")
	}
	again, _ := c.Make(sid, 42, nonce)
	if again != tok {
		t.Fatal("the same generation must give the same token (grace window convergence)")
	}
}

func TestRefreshForgeries(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := NewRefreshCodec(key)
	sid := NewSessionID([16]byte{1})
	nonce := bytes.Repeat([]byte{9}, 32)
	tok, _ := c.Make(sid, 3, nonce)
	r, _ := ParseRefresh(tok)

	if c.Verify(r, bytes.Repeat([]byte{8}, 32)) {
		t.Error("verified under another session nonce")
	}
	if NewRefreshCodec(bytes.Repeat([]byte{6}, 32)).Verify(r, nonce) {
		t.Error("verified under another key")
	}
	// Bump the generation without the key: the MAC no longer matches.
	r2 := r
	r2.Generation = 4
	if c.Verify(r2, nonce) {
		t.Error("a generation changed without the key verified")
	}
	// Knowing the session id (and even the nonce, from a database leak)
	// is not enough without the key.
	forged, _ := NewRefreshCodec(make([]byte, 32)).Make(sid, 4, nonce)
	fr, err := ParseRefresh(forged)
	if err != nil || c.Verify(fr, nonce) {
		t.Errorf("forged token verified (err %v)", err)
	}
	for _, bad := range []string{"", "ghr_", tok[:len(tok)-1], "ghx_" + tok[4:], tok + "A", strings.ToUpper(tok),
		RefreshPrefix + strings.Repeat("A", 75) /* generation 0 */} {
		if _, err := ParseRefresh(bad); err == nil {
			t.Errorf("ParseRefresh(%q) accepted", bad)
		}
	}
}

func FuzzParseRefresh(f *testing.F) {
	c := NewRefreshCodec(bytes.Repeat([]byte{7}, 32))
	nonce := bytes.Repeat([]byte{9}, 32)
	good, _ := c.Make(NewSessionID([16]byte{1}), 1, nonce)
	f.Add(good) // made at run time; the fixed seeds are in testdata/fuzz/FuzzParseRefresh
	f.Fuzz(func(t *testing.T, tok string) {
		r, err := ParseRefresh(tok)
		if err != nil {
			return
		}
		if r.Generation <= 0 || len(r.SessionID) != 22 {
			t.Fatalf("parsed nonsense: %+v", r)
		}
		if c.Verify(r, nonce) && tok != good {
			// Only a token we made can verify; the fuzzer cannot find
			// another without breaking HMAC-SHA256.
			t.Fatalf("verified a token we did not make: %q", tok)
		}
	})
}

// TestRefreshCodecAllocations: making and checking a refresh token costs
// the token string alone (the keyed HMACs are pooled).
func TestRefreshCodecAllocations(t *testing.T) {
	c := NewRefreshCodec(make([]byte, 32))
	sid := NewSessionID([16]byte{1, 2, 3})
	nonce := make([]byte, 32)
	tok, _ := c.Make(sid, 7, nonce)
	r, err := ParseRefresh(tok)
	if err != nil || !c.Verify(r, nonce) {
		t.Fatal("the codec does not accept its own token")
	}
	if raceEnabled {
		t.Skip("allocation counts do not hold under the race detector")
	}
	if n := testing.AllocsPerRun(200, func() { c.Make(sid, 7, nonce) }); n > 1 {
		t.Errorf("Make allocates %v times, want 1 (the token)", n)
	}
	if n := testing.AllocsPerRun(200, func() { c.Verify(r, nonce) }); n != 0 {
		t.Errorf("Verify allocates %v times", n)
	}
}
