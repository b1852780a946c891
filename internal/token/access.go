// Package token issues and verifies Gatehouse's tokens: EdDSA (Ed25519)
// access-token JWTs (RFC 9068 profile) with their JWKS, and opaque refresh
// tokens that carry a session id, a generation and a MAC.
//
// Verification does not parse the JOSE header at all: the header segment
// must equal, byte for byte, one of the headers this server produced for a
// key it holds. That rejects alg "none", HS*/RS* confusion, jwk/jku/x5u/crit
// headers, unknown kids and wrong typ by construction (RFC 8725 §3.1), and
// leaves the path to an Ed25519 verify, a base64 decode and one small JSON
// decode, which keeps verification within a few percent of a bare
// ed25519.Verify.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// TypeAccess is the JOSE typ of access tokens (RFC 9068).
const TypeAccess = "at+jwt"

// MaxLength bounds the length of an access token accepted for verification;
// anything longer is refused before any decoding.
const MaxLength = 4096

// Verification errors.
var (
	ErrInvalid = errors.New("token: invalid")
	ErrExpired = errors.New("token: expired")
	// ErrUnknownKey is ErrInvalid for a header this set does not hold: a
	// forgery, or a key another instance has just rotated in.
	ErrUnknownKey = fmt.Errorf("%w: unknown key", ErrInvalid)
)

// Claims are the claims of an access token.
type Claims struct {
	Issuer    string `json:"iss"`
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

// Key is one Ed25519 key. Private is nil for keys that only verify.
type Key struct {
	ID      string
	Public  ed25519.PublicKey
	Private ed25519.PrivateKey
	// header is the encoded JOSE header this key's tokens carry.
	header string
}

// NewKey wraps key material; the kid is the RFC 7638 thumbprint, so it is
// stable across restarts and instances.
func NewKey(pub ed25519.PublicKey, priv ed25519.PrivateKey) *Key {
	k := &Key{ID: Thumbprint(pub), Public: pub, Private: priv}
	k.header = base64.RawURLEncoding.EncodeToString(
		fmt.Appendf(nil, `{"alg":"EdDSA","kid":%q,"typ":%q}`, k.ID, TypeAccess))
	return k
}

// GenerateKey makes a new key.
func GenerateKey() *Key {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return NewKey(pub, priv)
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key.
func Thumbprint(pub ed25519.PublicKey) string {
	canon := fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, base64.RawURLEncoding.EncodeToString(pub))
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeySet holds the signing key and every key still able to verify a live
// token. It is safe for concurrent use and can be replaced at run time.
type KeySet struct {
	mu      sync.RWMutex
	signer  *Key
	headers map[string]*Key // encoded header -> key
	keys    []*Key
}

// NewKeySet makes a set that signs with signer and verifies with signer and
// the others.
func NewKeySet(signer *Key, others ...*Key) *KeySet {
	ks := &KeySet{}
	ks.Replace(signer, others...)
	return ks
}

// Replace swaps the keys atomically (key rotation).
func (ks *KeySet) Replace(signer *Key, others ...*Key) {
	headers := map[string]*Key{signer.header: signer}
	keys := []*Key{signer}
	for _, k := range others {
		if _, dup := headers[k.header]; !dup {
			headers[k.header] = k
			keys = append(keys, k)
		}
	}
	ks.mu.Lock()
	ks.signer, ks.headers, ks.keys = signer, headers, keys
	ks.mu.Unlock()
}

// JWK is one public key in a JWKS.
type JWK struct {
	KeyType   string `json:"kty"`
	Curve     string `json:"crv"`
	X         string `json:"x"`
	KeyID     string `json:"kid"`
	Algorithm string `json:"alg"`
	Use       string `json:"use"`
}

// JWKS returns the public keys, signer first.
func (ks *KeySet) JWKS() struct {
	Keys []JWK `json:"keys"`
} {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	out := struct {
		Keys []JWK `json:"keys"`
	}{Keys: make([]JWK, 0, len(ks.keys))}
	for _, k := range ks.keys {
		out.Keys = append(out.Keys, JWK{KeyType: "OKP", Curve: "Ed25519",
			X: base64.RawURLEncoding.EncodeToString(k.Public), KeyID: k.ID, Algorithm: "EdDSA", Use: "sig"})
	}
	return out
}

// Sign issues an access token for c with the current signing key.
func (ks *KeySet) Sign(c Claims) (string, error) {
	ks.mu.RLock()
	k := ks.signer
	ks.mu.RUnlock()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	enc := base64.RawURLEncoding
	n := len(k.header) + 1 + enc.EncodedLen(len(payload))
	buf := make([]byte, 0, n+1+enc.EncodedLen(ed25519.SignatureSize))
	buf = append(buf, k.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig := ed25519.Sign(k.Private, buf)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Verify checks an access token's header, signature, issuer and expiry at
// now, and returns its claims. A token that is both expired and badly signed
// is ErrInvalid: the signature is checked first.
func (ks *KeySet) Verify(tok, issuer string, now time.Time) (Claims, error) {
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
	ks.mu.RLock()
	k := ks.headers[h]
	ks.mu.RUnlock()
	if k == nil {
		return c, ErrUnknownKey
	}
	var sig [ed25519.SignatureSize]byte
	if base64.RawURLEncoding.Strict().DecodedLen(len(s)) != len(sig) {
		return c, ErrInvalid
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(sig[:], readOnlyBytes(s)); err != nil || n != len(sig) {
		return c, ErrInvalid
	}
	if !ed25519.Verify(k.Public, readOnlyBytes(tok[:len(h)+1+len(p)]), sig[:]) {
		return c, ErrInvalid
	}
	bp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bp)
	payload, err := base64.RawURLEncoding.Strict().AppendDecode((*bp)[:0], readOnlyBytes(p))
	*bp = payload
	if err != nil {
		return c, ErrInvalid
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, ErrInvalid
	}
	if c.Issuer != issuer || c.Subject == "" || c.SessionID == "" || c.ID == "" ||
		c.IssuedAt.IsZero() || c.ExpiresAt.IsZero() || c.Role == "" {
		return c, ErrInvalid
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
