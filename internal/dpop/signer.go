package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Signer makes proofs with a key it holds: the client's side, for Go
// clients of Gatehouse, its load tool and its tests.
type Signer struct {
	alg string
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	jwk map[string]string
	// Thumbprint is the key's RFC 7638 thumbprint (a bound token's cnf.jkt).
	Thumbprint string
}

// NewSigner makes a new key for alg, ES256 or EdDSA.
func NewSigner(alg string) (*Signer, error) {
	s := &Signer{alg: alg}
	enc := base64.RawURLEncoding.EncodeToString
	switch alg {
	case "EdDSA":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		s.ed = priv
		s.jwk = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(pub)}
		s.Thumbprint = thumbprint(`{"crv":"Ed25519","kty":"OKP","x":"` + enc(pub) + `"}`)
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		s.ec = k
		raw, err := k.PublicKey.Bytes() // 0x04 || x || y
		if err != nil {
			return nil, err
		}
		x, y := enc(raw[1:33]), enc(raw[33:])
		s.jwk = map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y}
		s.Thumbprint = thumbprint(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`)
	default:
		return nil, fmt.Errorf("dpop: unsupported algorithm %q", alg)
	}
	return s, nil
}

// Proof signs a proof for a request to method url at iat; accessToken
// (ath) and nonce are included when not empty.
func (s *Signer) Proof(method, url, accessToken, nonce string, iat time.Time) string {
	c := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(randomBytes(16)), "htm": method, "htu": url, "iat": iat.Unix()}
	if accessToken != "" {
		c["ath"] = TokenHash(accessToken)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return s.Sign(map[string]any{"typ": Type, "alg": s.alg, "jwk": s.jwk}, c)
}

// Sign signs any header and claims with the key: tests use it to make
// proofs that are wrong in one way.
func (s *Signer) Sign(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	var sig []byte
	if s.ed != nil {
		sig = ed25519.Sign(s.ed, []byte(in))
	} else {
		d := sha256.Sum256([]byte(in))
		r, ss, err := ecdsa.Sign(rand.Reader, s.ec, d[:])
		if err != nil {
			panic(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// JWK is the public key as the proof header carries it.
func (s *Signer) JWK() map[string]string { return s.jwk }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
