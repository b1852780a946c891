package factortest

import (
	"encoding/base32"
	"testing"
	"time"
)

// The helper agrees with RFC 6238 Appendix B (SHA-1 rows, 6-digit
// truncation).
func TestTOTPMatchesRFC6238(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	for unix, want := range map[int64]string{59: "287082", 1111111109: "081804", 1234567890: "005924", 2000000000: "279037"} {
		if got, err := TOTP(secret, time.Unix(unix, 0)); err != nil || got != want {
			t.Errorf("T=%d: %s %v, want %s", unix, got, err, want)
		}
	}
}
