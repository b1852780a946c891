// Package accesstoken is the format of Gatehouse's access tokens and their
// verification, written once for the server (internal/token) and for
// resource servers (guard): JWTs of the RFC 9068 profile, signed with
// EdDSA (Ed25519, the default), ES256 or RS256 (--signing-alg).
//
// Verification does not parse the JOSE header at all: the header segment
// must equal, byte for byte, one a key's owner produced (Header). That
// rejects alg "none", HS*/RS* confusion, jwk/jku/x5u/crit headers, unknown
// kids and wrong typ by construction (RFC 8725 §3.1): the algorithm is the
// key's, never the token's choice. It leaves the path to one signature
// verification, a base64 decode and one small JSON decode, which keeps
// verification within a few percent of a bare ed25519.Verify. Standard
// library only: guard imports it.
package accesstoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Type is the JOSE typ of access tokens (RFC 9068).
const Type = "at+jwt"

// MaxLength bounds the length of an access token accepted for verification;
// anything longer is refused before any decoding.
const MaxLength = 4096

// Verification errors.
var (
	ErrInvalid = errors.New("token: invalid")
	ErrExpired = errors.New("token: expired")
	// ErrUnknownKey is ErrInvalid for a header no known key produced: a
	// forgery, or a key rotated in since the keys were loaded.
	ErrUnknownKey = fmt.Errorf("%w: unknown key", ErrInvalid)
	// ErrIssuer is ErrInvalid for a well-signed token of another issuer:
	// not an attacker's token, but a configuration that disagrees.
	ErrIssuer = fmt.Errorf("%w: issuer", ErrInvalid)
)

// Claims are the claims of an access token.
type Claims struct {
	Issuer string `json:"iss"`
	// Audience (RFC 9068 §2.2) is who the token is for: the --audience
	// list, or one registered API when the client asked (RFC 8707).
	// Tokens of releases before it carry none.
	Audience Audience `json:"aud,omitempty"`
	// ClientID is the OAuth client that obtained the token: "gatehouse"
	// for the first-party login routes, a service client's id for its
	// client_credentials tokens.
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub"`
	SessionID string `json:"sid"`
	ID        string `json:"jti"`
	// IssuedAt carries microseconds (a non-integer NumericDate, allowed by
	// RFC 7519 §2) so a token and a revocation cutoff in the same second can
	// be ordered.
	IssuedAt  NumericDate `json:"iat"`
	ExpiresAt NumericDate `json:"exp"`
	Role      string      `json:"role"`
	// AuthTime is when the person last proved who they are in the session
	// (RFC 9470 / OIDC auth_time): whole seconds, 0 when unknown.
	AuthTime int64 `json:"auth_time"`
	// Permissions are the user's permission strings (omitted when none).
	Permissions []string `json:"permissions,omitempty"`
	// AMR (RFC 8176) lists the methods the session's latest proof used
	// (pwd, otp, hwk, user, mfa); ACR is its level, aal1 or aal2 (two
	// factors). Tokens of earlier releases carry neither: a password.
	AMR []string `json:"amr,omitempty"`
	ACR string   `json:"acr,omitempty"`
	// Confirmation (RFC 7800 cnf) binds the token to a DPoP key: its
	// jkt is the key's RFC 7638 thumbprint (RFC 9449 §6.1). Absent on
	// bearer tokens.
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the cnf claim of a DPoP-bound token.
type Confirmation struct {
	JKT string `json:"jkt"`
}

// Audience is the aud claim: a string when there is one audience (what
// most consumers expect), an array otherwise (RFC 7519 §4.1.3).
type Audience []string

// MarshalJSON writes one audience as a string, several as an array.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON reads a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// Contains reports whether aud is one of the audiences.
func (a Audience) Contains(aud string) bool {
	for _, v := range a {
		if v == aud {
			return true
		}
	}
	return false
}

// NumericDate is a JWT NumericDate with microsecond precision.
type NumericDate struct{ time.Time }

// MarshalJSON writes seconds since the epoch, with a fraction only when the
// time has sub-second microseconds.
func (d NumericDate) MarshalJSON() ([]byte, error) {
	us := d.UnixMicro()
	if us%1e6 == 0 {
		return fmt.Appendf(nil, "%d", us/1e6), nil
	}
	return fmt.Appendf(nil, "%d.%06d", us/1e6, us%1e6), nil
}

// UnmarshalJSON reads a JSON number of seconds.
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	// encoding/json has already checked b is one valid JSON value; only a
	// plain number is a NumericDate (not null, not a string).
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return errors.New("numeric date is not a number")
	}
	if math.IsNaN(f) || f <= 0 || f > 1e11 {
		return errors.New("numeric date out of range")
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
	return nil
}

// The signing algorithms (JWS alg values).
const (
	EdDSA = "EdDSA"
	ES256 = "ES256"
	RS256 = "RS256"
)

// Header is the exact encoded JOSE header of the tokens of key kid, which
// signs with alg.
func Header(alg, kid string) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"alg":%q,"kid":%q,"typ":%q}`, alg, kid, Type))
}

// Algorithm is the JWS alg of a public key: EdDSA for Ed25519, ES256 for
// P-256, RS256 for RSA of 2048 bits or more; "" for anything else.
func Algorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return EdDSA
		}
	case *ecdsa.PublicKey:
		if k.Curve != nil && k.Curve.Params().Name == "P-256" {
			return ES256
		}
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return RS256
		}
	}
	return ""
}

// verifySignature checks sig over signed with key, by the key's algorithm.
func verifySignature(key crypto.PublicKey, signed, sig []byte) bool {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k, signed, sig)
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		d := sha256.Sum256(signed)
		return ecdsa.Verify(k, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case *rsa.PublicKey:
		d := sha256.Sum256(signed)
		return len(sig) == k.Size() && rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
	}
	return false
}

var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Verify checks an access token's header (keyFor maps an encoded header
// to its key), signature, claims and expiry at now, and returns its claims.
// Every claim the server issues is required: iss (equal to issuer), sub,
// sid, jti, iat, exp, role. A token that is both expired and badly signed
// is ErrInvalid: the signature is checked first. With ErrIssuer the claims
// are returned, so the caller can say which issuer it saw.
func Verify(tok string, keyFor func(header string) (crypto.PublicKey, bool), issuer string, now time.Time) (Claims, error) {
	var c Claims
	if len(tok) > MaxLength {
		return c, ErrInvalid
	}
	h, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return c, ErrInvalid
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s, '.') >= 0 {
		return c, ErrInvalid
	}
	key, ok := keyFor(h)
	if !ok {
		return c, ErrUnknownKey
	}
	enc := base64.RawURLEncoding.Strict()
	var buf [512]byte // an RSA-4096 signature at most
	n := enc.DecodedLen(len(s))
	if n > len(buf) {
		return c, ErrInvalid
	}
	if m, err := enc.Decode(buf[:n], readOnlyBytes(s)); err != nil || m != n {
		return c, ErrInvalid
	}
	if !verifySignature(key, readOnlyBytes(tok[:len(h)+1+len(p)]), buf[:n]) {
		return c, ErrInvalid
	}
	bp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bp)
	payload, err := enc.AppendDecode((*bp)[:0], readOnlyBytes(p))
	*bp = payload
	if err != nil {
		return c, ErrInvalid
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return Claims{}, ErrInvalid
	}
	if c.Subject == "" || c.SessionID == "" || c.ID == "" || c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() ||
		c.Role == "" || c.AuthTime < 0 || (c.Confirmation != nil && c.Confirmation.JKT == "") {
		return Claims{}, ErrInvalid
	}
	if c.Issuer != issuer {
		return c, ErrIssuer
	}
	if !now.Before(c.ExpiresAt.Time) {
		return c, ErrExpired
	}
	return c, nil
}

// readOnlyBytes views a string as bytes without copying. Only for callees
// that neither modify nor retain their input (base64 decoding and
// ed25519.Verify): it saves copying the token on every request.
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
