package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
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
	set    *token.KeySet
}

// OpenKeyring loads the keys, generating and storing the first one if the
// store has none: the store decides "none" from the key set it has locked,
// so two processes starting at once agree on one.
func OpenKeyring(ctx context.Context, st keyStore, sealer *secret.Sealer, grace time.Duration, now time.Time) (*Keyring, error) {
	k := &Keyring{store: st, sealer: sealer, grace: grace}
	err := st.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.SigningKey, error) {
		for _, sk := range keys {
			if sk.RetiredAt.IsZero() {
				return store.SigningKey{}, store.ErrNoChange // one is active
			}
		}
		return k.newKey(now), nil
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
	err := k.store.UpdateSigningKeys(ctx, func([]store.SigningKey) (store.SigningKey, error) { return k.newKey(now), nil })
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

// newKey generates a signing key, its private half sealed under the master
// secret and bound to its kid.
func (k *Keyring) newKey(now time.Time) store.SigningKey {
	key := token.GenerateKey()
	return store.SigningKey{
		ID: key.ID, Algorithm: "EdDSA", PublicKey: key.Public,
		SealedPrivate: k.sealer.Seal(key.Private, []byte(key.ID)), CreatedAt: now,
	}
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
		if sk.Algorithm != "EdDSA" || len(sk.PublicKey) != ed25519.PublicKeySize {
			return nil, nil, fmt.Errorf("signing key %s: unsupported algorithm %q", sk.ID, sk.Algorithm)
		}
		priv, err := k.sealer.Open(sk.SealedPrivate, []byte(sk.ID))
		if err != nil {
			return nil, nil, fmt.Errorf("signing key %s: %w (is GATEHOUSE_SECRET the one this database was created with?)", sk.ID, err)
		}
		if len(priv) != ed25519.PrivateKeySize {
			return nil, nil, fmt.Errorf("signing key %s: bad private key size", sk.ID)
		}
		key := token.NewKey(ed25519.PublicKey(sk.PublicKey), ed25519.PrivateKey(priv))
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
