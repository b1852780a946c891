package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/factortest"
)

// What clients send toward the second factors is parsed by these: none may
// panic, and each either refuses or yields something well formed.

func FuzzRecoveryCode(f *testing.F) {
	for _, s := range []string{"abcd-efgh-jkmn", "ABCDEFGHJKMN", "abcd efgh jkmn", "", "abcd-efgh-jkm", "ab\x00d-efgh-jkmn", "ａｂｃｄ-efgh-jkmn", "0000-0000-0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		norm, ok := normalizeRecoveryCode(code)
		if !ok {
			return
		}
		if len(norm) != 12 {
			t.Fatalf("%q normalised to %q", code, norm)
		}
		for _, r := range norm {
			if r >= 128 || !containsRune(recoveryAlphabet, r) {
				t.Fatalf("%q normalised to %q, outside the alphabet", code, norm)
			}
		}
		if again, ok := normalizeRecoveryCode(norm); !ok || again != norm {
			t.Fatalf("normalising %q is not idempotent: %q", norm, again)
		}
	})
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

func FuzzTicketToken(f *testing.F) {
	for _, s := range []string{"ghm_" + string(make([]byte, 43)), "ghm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ghe_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ghm_", "", "ghm_AAAA=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if validTicketToken(tok, MFATokenPrefix) {
			if len(tok) != 47 || tok[:4] != MFATokenPrefix {
				t.Fatalf("accepted %q", tok)
			}
			if len(ticketID(tok)) != 32 {
				t.Fatal("ticket id is not a SHA-256")
			}
		}
	})
}

func FuzzTOTPCode(f *testing.F) {
	for _, s := range []string{"123456", "000000", "12345", "1234567", "abcdef", "١٢٣٤٥٦", ""} {
		f.Add(s, int64(0))
	}
	secret := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	f.Fuzz(func(t *testing.T, code string, last int64) {
		step, ok := matchTOTP(secret, code, now, last)
		if !ok {
			return
		}
		cur := totpStep(now)
		if step <= last || step < cur-totpSkew || step > cur+totpSkew || totpCode(secret, step, totpDigits) != code {
			t.Fatalf("%q accepted as step %d (last %d, now %d)", code, step, last, cur)
		}
	})
}

// WebAuthn JSON from clients: malformed input is ErrInvalidRequest.
func FuzzWebAuthnJSON(f *testing.F) {
	a := &factortest.Authenticator{Origin: "https://gh.test", UV: true}
	att, err := a.Register([]byte(`{"challenge":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","rp":{"id":"gh.test"},"user":{"id":"dXNlcg"}}`))
	if err != nil {
		f.Fatal(err)
	}
	as, err := a.AssertChallenge("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{att, as, []byte(`{}`), []byte(`{"id":"x","rawId":"x","type":"public-key","response":{}}`), []byte(`[]`), []byte(`null`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := parseCreation(body); err != nil && !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("creation: %v", err)
		}
		if _, err := parseAssertion(body); err != nil && !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("assertion: %v", err)
		}
	})
}
