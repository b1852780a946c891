package postgres

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

func newStore(t *testing.T) store.Store {
	s, err := Open(context.Background(), TestSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, newStore) }
func TestConcurrency(t *testing.T) { storetest.RunConcurrency(t, newStore) }

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	url := TestSchema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), url, Options{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
}

func TestWatchRevocations(t *testing.T) {
	url := TestSchema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n atomic.Int32
	got := make(chan struct{}, 16)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.WatchRevocations(ctx, func() {
			n.Add(1)
			select {
			case got <- struct{}{}:
			default:
			}
		})
	}()
	// The watcher holds a pooled connection: stop it before closing the pool.
	defer func() { cancel(); <-stopped }()
	<-got // the initial call once listening
	start := time.Now()
	if err := b.LogCutoff(ctx, store.KindGlobal, "", store.Cutoff{NotBefore: time.Now(), Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Logf("NOTIFY from another connection arrived in %v", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("no notification for a revocation written by another instance")
	}
}

func TestUnavailableMapsToSentinel(t *testing.T) {
	s, err := Open(context.Background(), TestSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.GetUserByID(context.Background(), "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("closed pool: %v, want ErrUnavailable", err)
	}
}
