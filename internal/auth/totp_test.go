package auth

import (
	"testing"
	"time"
)

// RFC 6238 Appendix B, SHA-1 rows: the library computes the codes we think
// it does (8 digits there; we use 6, the same truncation's last digits).
func TestTOTPAppendixB(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, v := range []struct {
		unix int64
		code string
	}{
		{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"},
		{1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
	} {
		step := totpStep(time.Unix(v.unix, 0))
		if got := totpCode(secret, step, 8); got != v.code {
			t.Errorf("T=%d: %s, want %s", v.unix, got, v.code)
		}
		if got := totpCode(secret, step, 6); got != v.code[2:] {
			t.Errorf("T=%d, 6 digits: %s, want %s", v.unix, got, v.code[2:])
		}
	}
}

func TestMatchTOTPSkewAndReplay(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	cur := totpStep(now)
	for _, d := range []int64{-1, 0, 1} {
		code := totpCode(secret, cur+d, 6)
		step, ok := matchTOTP(secret, code, now, 0)
		if !ok || step != cur+d {
			t.Errorf("step %+d: %d %v", d, step, ok)
		}
		// Used: that step and every earlier one are refused.
		if _, ok := matchTOTP(secret, code, now, cur+d); ok {
			t.Errorf("step %+d accepted again after it was used", d)
		}
	}
	for _, d := range []int64{-2, 2} {
		if _, ok := matchTOTP(secret, totpCode(secret, cur+d, 6), now, 0); ok {
			t.Errorf("step %+d outside the skew accepted", d)
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", " 12345", "１２３４５６"} {
		if _, ok := matchTOTP(secret, bad, now, 0); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOtpauthURI(t *testing.T) {
	got := otpauthURI("auth.example.com", "ann", []byte("12345678901234567890"))
	want := "otpauth://totp/auth.example.com:ann?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=auth.example.com&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
}
