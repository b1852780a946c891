// Package secret holds the master secret and what is derived from it.
//
// One master secret (GATEHOUSE_SECRET, or a generated 0600 file beside the
// database) is expanded with HKDF-SHA256 into independent keys, one per use:
// sealing signing keys at rest, and MACing refresh tokens. Losing the secret
// invalidates every refresh token and makes stored signing keys unreadable;
// every instance of a deployment must share it.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// MinLength is the shortest master secret accepted, in bytes.
const MinLength = 32

// Master is the master secret. Its zero value is not usable.
type Master struct {
	key []byte
}

// New wraps raw secret material (at least MinLength bytes).
func New(raw []byte) (*Master, error) {
	if len(raw) < MinLength {
		return nil, fmt.Errorf("master secret must be at least %d bytes, got %d", MinLength, len(raw))
	}
	return &Master{key: append([]byte(nil), raw...)}, nil
}

// Load returns the master secret from env (if non-empty) or from the file at
// path, creating the file with a fresh random secret (mode 0600) when it does
// not exist.
func Load(env, path string) (m *Master, created bool, err error) {
	if env != "" {
		m, err := New([]byte(env))
		if err != nil {
			return nil, false, fmt.Errorf("GATEHOUSE_SECRET: %w", err)
		}
		return m, false, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, 32)
		rand.Read(raw)
		enc := base64.RawURLEncoding.EncodeToString(raw)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create secret file %s: %w", path, err)
		}
		if _, err := f.WriteString(enc + "\n"); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("write secret file %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, false, fmt.Errorf("write secret file %s: %w", path, err)
		}
		m, err := New([]byte(enc))
		return m, true, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("read secret file %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("secret file %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	m, err = New([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, false, fmt.Errorf("secret file %s: %w", path, err)
	}
	return m, false, nil
}

// Derive returns a 32-byte key for one purpose. Distinct purposes give
// independent keys.
func (m *Master) Derive(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, m.key, nil, "gatehouse/v1/"+purpose, 32)
	if err != nil {
		panic("hkdf: " + err.Error()) // only on an impossible length
	}
	return k
}

// Sealer encrypts small blobs (private keys) with AES-256-GCM under a key
// derived from the master secret.
type Sealer struct {
	aead cipher.AEAD
}

// ErrOpen means a sealed blob could not be decrypted: wrong master secret or
// tampered data.
var ErrOpen = errors.New("cannot decrypt sealed data: wrong master secret or corrupted data")

// NewSealer returns a Sealer for purpose.
func (m *Master) NewSealer(purpose string) *Sealer {
	block, err := aes.NewCipher(m.Derive("seal/" + purpose))
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Sealer{aead: aead}
}

// NewSealerKey returns a Sealer under a 32-byte key the caller derived
// (e.g. with Derive).
func NewSealerKey(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad (e.g. the key id).
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal produced with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
