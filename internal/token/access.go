// Package token issues and verifies Gatehouse's tokens: EdDSA (Ed25519)
// access-token JWTs (RFC 9068 profile) with their JWKS, and opaque refresh
// tokens that carry a session id, a generation and a MAC.
//
// The access-token format and its verification are internal/accesstoken's,
// written once and shared with guard; this package holds the keys.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/accesstoken"
)

// TypeAccess is the JOSE typ of access tokens (RFC 9068).
const TypeAccess = accesstoken.Type

// MaxLength bounds the length of an access token accepted for verification.
const MaxLength = accesstoken.MaxLength

// Verification errors (internal/accesstoken's).
var (
	ErrInvalid    = accesstoken.ErrInvalid
	ErrExpired    = accesstoken.ErrExpired
	ErrUnknownKey = accesstoken.ErrUnknownKey
)

// Claims are the claims of an access token.
type Claims = accesstoken.Claims

// NumericDate is a JWT NumericDate with microsecond precision.
type NumericDate = accesstoken.NumericDate

// Confirmation is the cnf claim of a DPoP-bound token.
type Confirmation = accesstoken.Confirmation

// Audience is the aud claim.
type Audience = accesstoken.Audience

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
	k.header = accesstoken.Header(k.ID)
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

// Verify checks an access token's header, signature, claims and expiry at
// now against the keys of the set (accesstoken.Verify), and returns its
// claims.
func (ks *KeySet) Verify(tok, issuer string, now time.Time) (Claims, error) {
	c, err := accesstoken.Verify(tok, ks.key, issuer, now)
	if errors.Is(err, accesstoken.ErrIssuer) {
		return Claims{}, ErrInvalid
	}
	return c, err
}

func (ks *KeySet) key(header string) (ed25519.PublicKey, bool) {
	ks.mu.RLock()
	k := ks.headers[header]
	ks.mu.RUnlock()
	if k == nil {
		return nil, false
	}
	return k.Public, true
}
