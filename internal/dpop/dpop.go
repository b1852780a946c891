// Package dpop verifies DPoP proofs (RFC 9449): the JWTs a client signs
// with a key it holds to show that it, and not a thief of its tokens, is
// making the request. Written once for the server and for guard, standard
// library only.
//
// A proof's header carries the public key (jwk) that verifies it: the one
// place a key comes from the request. It proves possession only; nothing
// here verifies an access token with it. The header is decoded strictly:
// typ dpop+jwt, alg ES256 or EdDSA and a matching public jwk, nothing
// critical, no private key member.
package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Type is the JOSE typ of a proof.
const Type = "dpop+jwt"

// Algorithms are the proof algorithms accepted, as RFC 9449's algs
// parameter and dpop_signing_alg_values_supported list them.
var Algorithms = []string{"ES256", "EdDSA"}

// AlgorithmList is Algorithms space-separated (the WWW-Authenticate algs).
const AlgorithmList = "ES256 EdDSA"

// MaxLength bounds a proof accepted for parsing.
const MaxLength = 4096

// Errors. ErrInvalid is wrapped with the reason (safe to show: it never
// quotes the proof). ErrUseNonce asks the client to retry with the nonce
// the server offers.
var (
	ErrInvalid  = errors.New("invalid DPoP proof")
	ErrUseNonce = errors.New("DPoP nonce required")
	// ErrReplay is ErrInvalid for a jti seen before.
	ErrReplay = fmt.Errorf("%w: replayed (its jti was used before)", ErrInvalid)
	// ErrBusy is ErrInvalid when the replay cache is full: refusing is
	// the only answer that keeps replay protection.
	ErrBusy = fmt.Errorf("%w: too many proofs in flight, retry", ErrInvalid)
)

func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalid, reason) }

// Proof is a parsed proof whose signature checked out.
type Proof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of the proof's key:
	// what a bound token's cnf.jkt names.
	Thumbprint string
	ID         string // jti
	IssuedAt   time.Time
	Method     string // htm
	URL        string // htu
	// AccessTokenHash (ath) is base64url(SHA-256(access token)).
	AccessTokenHash string
	Nonce           string
}

type header struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
	Kid  json.RawMessage `json:"kid"`
	JKU  json.RawMessage `json:"jku"`
	X5U  json.RawMessage `json:"x5u"`
	X5C  json.RawMessage `json:"x5c"`
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// Private members: their presence means the client sent its secret.
	D string `json:"d"`
	K string `json:"k"`
	P string `json:"p"`
	Q string `json:"q"`
}

type claims struct {
	JTI   string          `json:"jti"`
	HTM   string          `json:"htm"`
	HTU   string          `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   string          `json:"ath"`
	Nonce string          `json:"nonce"`
}

var b64 = base64.RawURLEncoding.Strict()

// Parse decodes proof and checks its header and signature. It checks
// nothing about the request (see Verifier.Verify).
func Parse(proof string) (Proof, error) { return parse(proof, nil) }

// proofKey is a proof header's verified meaning: the algorithm and the
// public key that checks the signature, and the key's thumbprint.
type proofKey struct {
	ed    ed25519.PublicKey
	ec    *ecdsa.PublicKey
	thumb string
}

// keyCache remembers decoded headers: a client signs every proof with
// one key, so its header repeats byte for byte. Bounded; starts over when
// full.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]proofKey
}

const maxCachedKeys = 4096

func (c *keyCache) get(h string) (proofKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.m[h]
	return k, ok
}

func (c *keyCache) put(h string, k proofKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = make(map[string]proofKey)
	}
	c.m[h] = k
}

func parse(proof string, cache *keyCache) (Proof, error) {
	if len(proof) > MaxLength {
		return Proof{}, invalid("too long")
	}
	hs, rest, ok := strings.Cut(proof, ".")
	ps, ss, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(ss, ".") {
		return Proof{}, invalid("not a compact JWS")
	}
	var key proofKey
	var err error
	cached := false
	if cache != nil {
		key, cached = cache.get(hs)
	}
	if !cached {
		if key, err = parseHeader(hs); err != nil {
			return Proof{}, err
		}
		if cache != nil {
			cache.put(hs, key)
		}
	}
	sig, err := b64.DecodeString(ss)
	if err != nil {
		return Proof{}, invalid("signature is not base64url")
	}
	signed := proof[:len(hs)+1+len(ps)]
	if key.ed != nil {
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(key.ed, []byte(signed), sig) {
			return Proof{}, invalid("bad signature")
		}
	} else {
		if len(sig) != 64 {
			return Proof{}, invalid("bad signature")
		}
		digest := sha256.Sum256([]byte(signed))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(key.ec, digest[:], r, s) {
			return Proof{}, invalid("bad signature")
		}
	}
	pb, err := b64.DecodeString(ps)
	if err != nil {
		return Proof{}, invalid("payload is not base64url")
	}
	var c claims
	if err := json.Unmarshal(pb, &c); err != nil {
		return Proof{}, invalid("payload is not a JSON object of the claims")
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return Proof{}, invalid("jti is missing or longer than 256 bytes")
	}
	if c.HTM == "" || c.HTU == "" {
		return Proof{}, invalid("htm and htu are required")
	}
	iat, err := numericDate(c.IAT)
	if err != nil {
		return Proof{}, invalid("iat is missing or not a number")
	}
	return Proof{Thumbprint: key.thumb, ID: c.JTI, IssuedAt: iat, Method: c.HTM, URL: c.HTU,
		AccessTokenHash: c.ATH, Nonce: c.Nonce}, nil
}

// parseHeader decodes and checks a proof's JOSE header: typ, alg, and a
// public jwk of the algorithm's kind, nothing critical, no other key source.
func parseHeader(hs string) (proofKey, error) {
	hb, err := b64.DecodeString(hs)
	if err != nil {
		return proofKey{}, invalid("header is not base64url")
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return proofKey{}, invalid("header is not a JSON object")
	}
	switch {
	case h.Typ != Type:
		return proofKey{}, invalid(`typ must be "dpop+jwt"`)
	case h.Crit != nil:
		return proofKey{}, invalid("crit is not supported")
	case h.JKU != nil || h.X5U != nil || h.X5C != nil || h.Kid != nil:
		return proofKey{}, invalid("the key must be given as jwk only")
	case h.JWK == nil:
		return proofKey{}, invalid("jwk is missing")
	}
	var k jwk
	if err := json.Unmarshal(h.JWK, &k); err != nil {
		return proofKey{}, invalid("jwk is not a JSON object")
	}
	if k.D != "" || k.K != "" || k.P != "" || k.Q != "" {
		return proofKey{}, invalid("jwk holds a private key")
	}
	switch h.Alg {
	case "EdDSA":
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			return proofKey{}, invalid("EdDSA needs an OKP Ed25519 jwk")
		}
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return proofKey{}, invalid("jwk x is not an Ed25519 key")
		}
		return proofKey{ed: ed25519.PublicKey(x), thumb: thumbprint(`{"crv":"Ed25519","kty":"OKP","x":"` + k.X + `"}`)}, nil
	case "ES256":
		if k.Kty != "EC" || k.Crv != "P-256" {
			return proofKey{}, invalid("ES256 needs an EC P-256 jwk")
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return proofKey{}, invalid("jwk x and y are not P-256 coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return proofKey{}, invalid("jwk is not a point on P-256")
		}
		return proofKey{ec: pub, thumb: thumbprint(`{"crv":"P-256","kty":"EC","x":"` + k.X + `","y":"` + k.Y + `"}`)}, nil
	}
	return proofKey{}, invalid("alg must be ES256 or EdDSA")
}

// thumbprint hashes a JWK's canonical members (RFC 7638 §3). The members
// were checked to be base64url, so no escaping is needed.
func thumbprint(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func numericDate(raw json.RawMessage) (time.Time, error) {
	var f float64
	if raw == nil || json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || f <= 0 || f > 1e11 {
		return time.Time{}, errors.New("not a date")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// TokenHash is the ath of an access token: base64url(SHA-256(token)).
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SameURL reports whether a proof's htu names target (RFC 9449 §4.3:
// the request's URI without query and fragment, compared after scheme and
// host normalisation; default ports dropped).
func SameURL(htu, target string) bool {
	if htu == target && !strings.ContainsAny(htu, "?#") {
		return true // the common case, without parsing
	}
	a, err := url.Parse(htu)
	if err != nil || a.Opaque != "" || a.User != nil {
		return false
	}
	b, err := url.Parse(target)
	if err != nil {
		return false
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && hostPort(a) == hostPort(b) &&
		a.EscapedPath() == b.EscapedPath()
}

func hostPort(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch strings.ToLower(u.Scheme) + ":" + port {
	case "http:80", "https:443", "ws:80", "wss:443":
		port = ""
	}
	return host + ":" + port
}
