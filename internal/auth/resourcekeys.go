package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// resourceKeyStore is what resource-server keys need.
type resourceKeyStore interface {
	AddResourceKey(ctx context.Context, k store.ResourceKey) error
	ListResourceKeys(ctx context.Context) ([]store.ResourceKey, error)
	RemoveResourceKey(ctx context.Context, id string, c *store.Cutoff) error
	FindResourceKey(ctx context.Context, hash []byte) (store.ResourceKey, error)
}

// Resource-server keys: the credential of the revocation feed and the
// OAuth endpoints.

// ResourceKeyPrefix starts every resource-server key.
const ResourceKeyPrefix = "ghk_"

func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// AddResourceKey creates a resource-server key. The key itself is returned
// once and never stored.
func (s *Service) AddResourceKey(ctx context.Context, name string) (string, store.ResourceKey, error) {
	key := ResourceKeyPrefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	rk := store.ResourceKey{ID: newID(), Name: name, Hash: hashKey(key), CreatedAt: s.now()}
	if err := s.resourceKeys.AddResourceKey(ctx, rk); err != nil {
		return "", rk, err
	}
	return key, rk, nil
}

// ListResourceKeys lists the stored resource-server keys (hashes only).
func (s *Service) ListResourceKeys(ctx context.Context) ([]store.ResourceKey, error) {
	return s.resourceKeys.ListResourceKeys(ctx)
}

// RemoveResourceKey deletes one (RemoveClient, which it is).
func (s *Service) RemoveResourceKey(ctx context.Context, id string) error {
	return s.RemoveClient(ctx, id)
}
