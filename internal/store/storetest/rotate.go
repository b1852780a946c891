package storetest

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// sessionRotator is what RotateCurrent needs of a store.
type sessionRotator interface {
	GetSession(ctx context.Context, id string) (store.Session, error)
	RotateSession(ctx context.Context, r store.Rotation) (store.Session, error)
}

// RotateCurrent does a refresh's database work on session id, for the
// backends' benchmarks: read the session's generation, then swap it. A race
// lost to another goroutine is a conflict, as in the domain, and is tried
// again from the new generation.
func RotateCurrent(ctx context.Context, s sessionRotator, id string) error {
	for {
		x, err := s.GetSession(ctx, id)
		if err != nil {
			return err
		}
		now := time.Now()
		_, err = s.RotateSession(ctx, store.Rotation{SessionID: id, FromGeneration: x.Generation, Now: now,
			IdleExpiresAt: now.Add(time.Hour), AccessExpiresAt: now.Add(5 * time.Minute), IP: "127.0.0.1", UserAgent: "bench"})
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}
