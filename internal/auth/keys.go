package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/secret"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// keyStore is what the keyring needs of the store.
type keyStore interface {
	ListSigningKeys(ctx context.Context) ([]store.SigningKey, error)
	UpdateSigningKeys(ctx context.Context, next func([]store.SigningKey) (store.SigningKey, error)) error
}

// Keyring keeps the signing keys: the stored ones, sealed under the master
// secret and bound to their kid, and the token.KeySet built from them.
// Retired keys stay in the set (verify only, and in the JWKS) for Grace
// after retirement: long enough for every token they signed to expire.
type Keyring struct {
	store  keyStore
	sealer *secret.Sealer
	grace  time.Duration
	alg    string // of new keys (--signing-alg)
	set    *token.KeySet
}

// OpenKeyring loads the keys, generating and storing the first one if the
// store has none. With alg (EdDSA, ES256, RS256: serve's --signing-alg) it
// also rotates to a new key of alg when the active key is of another
// algorithm, and the old key keeps verifying for grace; without (the
// CLI), the active key stays whatever it is. The store decides from the
// key set it has locked, so two processes starting at once agree on one
// key.
func OpenKeyring(ctx context.Context, st keyStore, sealer *secret.Sealer, grace time.Duration, now time.Time, alg ...string) (*Keyring, error) {
	k := &Keyring{store: st, sealer: sealer, grace: grace}
	if len(alg) > 0 {
		k.alg = alg[0]
	}
	if k.alg != "" && !slices.Contains(token.Algorithms, k.alg) {
		return nil, fmt.Errorf("signing algorithm %q: use EdDSA, ES256 or RS256", k.alg)
	}
	err := st.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.SigningKey, error) {
		for _, sk := range keys {
			if sk.RetiredAt.IsZero() && (k.alg == "" || sk.Algorithm == k.alg) {
				return store.SigningKey{}, store.ErrNoChange // one is active
			}
		}
		return k.newKey(now, k.alg)
	})
	if err != nil {
		return nil, fmt.Errorf("store first signing key: %w", err)
	}
	signer, others, err := k.load(ctx, now)
	if err != nil {
		return nil, err
	}
	if signer == nil {
		return nil, errors.New("load signing keys: no active key")
	}
	k.set = token.NewKeySet(signer, others...)
	return k, nil
}

// Set is the key set to sign and verify with.
func (k *Keyring) Set() *token.KeySet { return k.set }

// Reload picks up keys rotated by another process (the CLI).
func (k *Keyring) Reload(ctx context.Context, now time.Time) error {
	signer, others, err := k.load(ctx, now)
	if err != nil {
		return err
	}
	if signer == nil {
		return errors.New("reload signing keys: no active key")
	}
	k.set.Replace(signer, others...)
	return nil
}

// Rotate makes a new signing key; the old one keeps verifying for Grace.
func (k *Keyring) Rotate(ctx context.Context, now time.Time) error {
	// A new key of the configured algorithm, or the active key's.
	alg := k.alg
	if alg == "" {
		alg = k.set.Alg()
	}
	err := k.store.UpdateSigningKeys(ctx, func([]store.SigningKey) (store.SigningKey, error) { return k.newKey(now, alg) })
	if err != nil {
		return fmt.Errorf("rotate signing key: %w", err)
	}
	return k.Reload(ctx, now)
}

// List returns the stored keys (no private material is decrypted).
func (k *Keyring) List(ctx context.Context) ([]store.SigningKey, error) {
	return k.store.ListSigningKeys(ctx)
}

// Grace is how long a retired key keeps verifying.
func (k *Keyring) Grace() time.Duration { return k.grace }

// newKey generates a signing key of alg (EdDSA when ""), its private
// half sealed under the master secret and bound to its kid. Ed25519 keys
// are stored raw (as earlier releases did); the others as PKIX and PKCS #8.
func (k *Keyring) newKey(now time.Time, alg string) (store.SigningKey, error) {
	if alg == "" {
		alg = "EdDSA"
	}
	key, err := token.Generate(alg)
	if err != nil {
		return store.SigningKey{}, err
	}
	var pub, priv []byte
	if ed, ok := key.Private.(ed25519.PrivateKey); ok {
		pub, priv = key.Public.(ed25519.PublicKey), ed
	} else {
		if pub, err = x509.MarshalPKIXPublicKey(key.Public); err != nil {
			return store.SigningKey{}, err
		}
		if priv, err = x509.MarshalPKCS8PrivateKey(key.Private); err != nil {
			return store.SigningKey{}, err
		}
	}
	return store.SigningKey{
		ID: key.ID, Algorithm: key.Alg, PublicKey: pub,
		SealedPrivate: k.sealer.Seal(priv, []byte(key.ID)), CreatedAt: now,
	}, nil
}

func (k *Keyring) load(ctx context.Context, now time.Time) (signer *token.Key, others []*token.Key, err error) {
	stored, err := k.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load signing keys: %w", err)
	}
	for _, sk := range stored {
		if !sk.RetiredAt.IsZero() && now.Sub(sk.RetiredAt) > k.grace {
			continue
		}
		priv, err := k.sealer.Open(sk.SealedPrivate, []byte(sk.ID))
		if err != nil {
			return nil, nil, fmt.Errorf("signing key %s: %w (is GATEHOUSE_SECRET the one this database was created with?)", sk.ID, err)
		}
		var key *token.Key
		switch sk.Algorithm {
		case "EdDSA":
			if len(sk.PublicKey) != ed25519.PublicKeySize || len(priv) != ed25519.PrivateKeySize {
				return nil, nil, fmt.Errorf("signing key %s: bad Ed25519 key size", sk.ID)
			}
			key = token.NewKey(ed25519.PublicKey(sk.PublicKey), ed25519.PrivateKey(priv))
		case "ES256", "RS256":
			parsed, err := x509.ParsePKCS8PrivateKey(priv)
			signer, ok := parsed.(crypto.Signer)
			if err != nil || !ok {
				return nil, nil, fmt.Errorf("signing key %s: unreadable %s key", sk.ID, sk.Algorithm)
			}
			if key, err = token.NewSigningKey(signer); err != nil || key.Alg != sk.Algorithm {
				return nil, nil, fmt.Errorf("signing key %s: not an %s key", sk.ID, sk.Algorithm)
			}
		default:
			return nil, nil, fmt.Errorf("signing key %s: unsupported algorithm %q", sk.ID, sk.Algorithm)
		}
		if key.ID != sk.ID {
			return nil, nil, fmt.Errorf("signing key %s: stored kid does not match its public key", sk.ID)
		}
		if sk.RetiredAt.IsZero() {
			signer = key
		} else {
			others = append(others, key)
		}
	}
	return signer, others, nil
}
