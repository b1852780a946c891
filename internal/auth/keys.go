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

// LoadKeys returns the signing key set stored in st, generating and storing
// the first key if there is none. Private keys are sealed under the master
// secret, bound to their kid. Retired keys stay in the set (verify only)
// while a token they signed could still be live: retireGrace after
// retirement.
func LoadKeys(ctx context.Context, st store.Store, sealer *secret.Sealer, retireGrace time.Duration, now time.Time) (*token.KeySet, error) {
	for range 3 {
		stored, err := st.ListSigningKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
		var signer *token.Key
		var others []*token.Key
		for _, sk := range stored {
			if !sk.RetiredAt.IsZero() && now.Sub(sk.RetiredAt) > retireGrace {
				continue
			}
			if sk.Algorithm != "EdDSA" || len(sk.PublicKey) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("signing key %s: unsupported algorithm %q", sk.ID, sk.Algorithm)
			}
			priv, err := sealer.Open(sk.SealedPrivate, []byte(sk.ID))
			if err != nil {
				return nil, fmt.Errorf("signing key %s: %w (is GATEHOUSE_SECRET the one this database was created with?)", sk.ID, err)
			}
			if len(priv) != ed25519.PrivateKeySize {
				return nil, fmt.Errorf("signing key %s: bad private key size", sk.ID)
			}
			k := token.NewKey(ed25519.PublicKey(sk.PublicKey), ed25519.PrivateKey(priv))
			if k.ID != sk.ID {
				return nil, fmt.Errorf("signing key %s: stored kid does not match its public key", sk.ID)
			}
			if sk.RetiredAt.IsZero() {
				signer = k
			} else {
				others = append(others, k)
			}
		}
		if signer != nil {
			return token.NewKeySet(signer, others...), nil
		}
		k := token.GenerateKey()
		err = st.AddSigningKey(ctx, store.SigningKey{
			ID: k.ID, Algorithm: "EdDSA", PublicKey: k.Public,
			SealedPrivate: sealer.Seal(k.Private, []byte(k.ID)), CreatedAt: now,
		}, true)
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return nil, fmt.Errorf("store first signing key: %w", err)
		}
		// Either ours was stored or another process won: list again.
	}
	return nil, errors.New("load signing keys: no active key after retries")
}
