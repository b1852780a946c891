// Package token issues and verifies Gatehouse's tokens: access-token JWTs
// (RFC 9068 profile; EdDSA by default, ES256 or RS256) with their JWKS, and opaque refresh
// tokens that carry a session id, a generation and a MAC.
//
// The access-token format and its verification are internal/accesstoken's,
// written once and shared with guard; this package holds the keys.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
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

// Key is one signing key: Ed25519 (EdDSA), P-256 (ES256) or RSA (RS256).
// Private is nil for keys that only verify.
type Key struct {
	ID      string
	Alg     string
	Public  crypto.PublicKey
	Private crypto.Signer
	// header is the encoded JOSE header this key's tokens carry.
	header string
}

// NewKey wraps Ed25519 key material (priv may be nil); the kid is the RFC
// 7638 thumbprint, so it is stable across restarts and instances.
func NewKey(pub ed25519.PublicKey, priv ed25519.PrivateKey) *Key {
	k := &Key{ID: Thumbprint(pub), Alg: accesstoken.EdDSA, Public: pub}
	if priv != nil {
		k.Private = priv
	}
	k.header = accesstoken.Header(k.Alg, k.ID)
	return k
}

// NewSigningKey wraps a private key of a supported algorithm.
func NewSigningKey(priv crypto.Signer) (*Key, error) {
	pub := priv.Public()
	if ed, ok := pub.(ed25519.PublicKey); ok {
		return NewKey(ed, priv.(ed25519.PrivateKey)), nil
	}
	alg := accesstoken.Algorithm(pub)
	if alg == "" {
		return nil, fmt.Errorf("unsupported signing key %T", pub)
	}
	k := &Key{ID: Thumbprint(pub), Alg: alg, Public: pub, Private: priv}
	k.header = accesstoken.Header(k.Alg, k.ID)
	return k, nil
}

// GenerateKey makes a new Ed25519 key.
func GenerateKey() *Key {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return NewKey(pub, priv)
}

// Generate makes a new key for alg: EdDSA, ES256 or RS256 (2048 bits).
func Generate(alg string) (*Key, error) {
	switch alg {
	case accesstoken.EdDSA:
		return GenerateKey(), nil
	case accesstoken.ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return NewSigningKey(priv)
	case accesstoken.RS256:
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return NewSigningKey(priv)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q (EdDSA, ES256 or RS256)", alg)
}

// Algorithms are the supported signing algorithms.
var Algorithms = []string{accesstoken.EdDSA, accesstoken.ES256, accesstoken.RS256}

// Thumbprint is the RFC 7638 JWK thumbprint of a public key.
func Thumbprint(pub crypto.PublicKey) string {
	enc := base64.RawURLEncoding.EncodeToString
	var canon string
	switch k := pub.(type) {
	case ed25519.PublicKey:
		canon = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, enc(k))
	case *ecdsa.PublicKey:
		x, y := ecCoordinates(k)
		canon = fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, enc(x), enc(y))
	case *rsa.PublicKey:
		canon = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, enc(big.NewInt(int64(k.E)).Bytes()), enc(k.N.Bytes()))
	}
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ecCoordinates are a P-256 key's x and y, 32 bytes each.
func ecCoordinates(k *ecdsa.PublicKey) (x, y []byte) {
	raw, err := k.Bytes() // 0x04 || x || y
	if err != nil || len(raw) != 65 {
		return nil, nil
	}
	return raw[1:33], raw[33:]
}

// KeySet holds the signing key and every key still able to verify a live
// token. It is safe for concurrent use and can be replaced at run time.
type KeySet struct {
	mu      sync.RWMutex
	signer  *Key
	headers map[string]*Key // encoded header -> key
	keys    []*Key
	// verified remembers tokens already verified by these keys: a token
	// presented again skips the signature (accesstoken.Cache).
	verified *accesstoken.Cache
}

// NewKeySet makes a set that signs with signer and verifies with signer and
// the others.
func NewKeySet(signer *Key, others ...*Key) *KeySet {
	ks := &KeySet{verified: accesstoken.NewCache(0)}
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
	changed := len(headers) != len(ks.headers)
	for h := range ks.headers {
		if _, ok := headers[h]; !ok {
			changed = true
		}
	}
	ks.signer, ks.headers, ks.keys = signer, headers, keys
	ks.mu.Unlock()
	if changed {
		// A key that left the set must stop verifying at once, cached
		// tokens included.
		ks.verified.Clear()
	}
}

// JWK is one public key in a JWKS.
type JWK struct {
	KeyType   string `json:"kty"`
	Curve     string `json:"crv,omitempty"`
	X         string `json:"x,omitempty"`
	Y         string `json:"y,omitempty"`
	N         string `json:"n,omitempty"`
	E         string `json:"e,omitempty"`
	KeyID     string `json:"kid"`
	Algorithm string `json:"alg"`
	Use       string `json:"use"`
}

// JWK is the key's public half as a JWK.
func (k *Key) JWK() JWK {
	enc := base64.RawURLEncoding.EncodeToString
	j := JWK{KeyID: k.ID, Algorithm: k.Alg, Use: "sig"}
	switch pub := k.Public.(type) {
	case ed25519.PublicKey:
		j.KeyType, j.Curve, j.X = "OKP", "Ed25519", enc(pub)
	case *ecdsa.PublicKey:
		x, y := ecCoordinates(pub)
		j.KeyType, j.Curve, j.X, j.Y = "EC", "P-256", enc(x), enc(y)
	case *rsa.PublicKey:
		j.KeyType, j.N, j.E = "RSA", enc(pub.N.Bytes()), enc(big.NewInt(int64(pub.E)).Bytes())
	}
	return j
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
		out.Keys = append(out.Keys, k.JWK())
	}
	return out
}

// Alg is the signing key's algorithm.
func (ks *KeySet) Alg() string {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.signer.Alg
}

// Sign issues an access token for c with the current signing key.
func (ks *KeySet) Sign(c Claims) (string, error) {
	ks.mu.RLock()
	k := ks.signer
	ks.mu.RUnlock()
	var claims [1024]byte // most claims fit: no allocation for them
	payload := c.AppendJSON(claims[:0])
	enc := base64.RawURLEncoding
	n := len(k.header) + 1 + enc.EncodedLen(len(payload))
	buf := make([]byte, 0, n+1+enc.EncodedLen(256))
	buf = append(buf, k.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := k.sign(buf)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// Verify checks an access token's header, signature, claims and expiry at
// now against the keys of the set (accesstoken.Verify), and returns its
// claims.
// A token verified before is answered from the cache (expiry checked
// again); the claims' slices are shared and must not be modified.
func (ks *KeySet) Verify(tok, issuer string, now time.Time) (Claims, error) {
	if c, ok := ks.verified.Get(tok, now); ok && c.Issuer == issuer {
		return c, nil
	}
	c, err := accesstoken.Verify(tok, ks.key, issuer, now)
	if errors.Is(err, accesstoken.ErrIssuer) {
		return Claims{}, ErrInvalid
	}
	if err == nil {
		ks.verified.Put(tok, c)
	}
	return c, err
}

// sign signs a JWS signing input with the key's algorithm.
func (k *Key) sign(in []byte) ([]byte, error) {
	switch priv := k.Private.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, in), nil
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, priv, d[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, 64) // JWS: r || s, 32 bytes each
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case *rsa.PrivateKey:
		d := sha256.Sum256(in)
		return rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d[:])
	}
	return nil, fmt.Errorf("key %s cannot sign", k.ID)
}

func (ks *KeySet) key(header string) (crypto.PublicKey, bool) {
	ks.mu.RLock()
	k := ks.headers[header]
	ks.mu.RUnlock()
	if k == nil {
		return nil, false
	}
	return k.Public, true
}
