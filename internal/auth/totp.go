package auth

// TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of skew
// either way. The codes come from pquerna/otp; the replay bookkeeping is
// ours: the last accepted step is stored per factor and only a later step
// is accepted, advanced in the transaction that accepts the code.

import (
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

const (
	totpPeriod = 30
	totpDigits = 6
	totpSkew   = 1 // steps accepted either side of now
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpStep is the time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// totpCode is the code of step for secret, with digits digits.
func totpCode(secret []byte, step int64, digits int) string {
	code, err := hotp.GenerateCodeCustom(b32.EncodeToString(secret), uint64(step), hotp.ValidateOpts{
		Digits: otp.Digits(digits), Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		panic("totp: " + err.Error()) // only for a bad base32 secret, which we encode ourselves
	}
	return code
}

// matchTOTP finds the step within the skew of now whose code is code and
// which is later than last (a step already used, or an earlier one, is a
// replay). Every candidate is compared, in constant time, whatever matches.
func matchTOTP(secret []byte, code string, now time.Time, last int64) (int64, bool) {
	if !isDigits(code, totpDigits) {
		return 0, false
	}
	cur := totpStep(now)
	var found int64
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		eq := subtle.ConstantTimeCompare([]byte(totpCode(secret, step, totpDigits)), []byte(code)) == 1
		if eq && step > last && found == 0 {
			found = step
		}
	}
	return found, found != 0
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// otpauthURI is the key URI authenticator apps read (API.md): the label is
// ISSUER:USERNAME, escaped as a path; the parameters in the contract's order.
func otpauthURI(issuer, username string, secret []byte) string {
	return fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
		url.PathEscape(issuer), url.PathEscape(username), b32.EncodeToString(secret),
		url.QueryEscape(issuer), totpDigits, totpPeriod)
}

// totpIssuer is the issuer's host, the default name apps show.
func totpIssuer(issuer string) string {
	if u, err := url.Parse(issuer); err == nil && u.Host != "" {
		return u.Hostname()
	}
	return strings.TrimSuffix(issuer, "/")
}
