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

// Through a transaction-mode PgBouncer: the whole contract and its
// concurrency guarantees hold with no session state on a connection.
func newPooledStore(t *testing.T) store.Store {
	url, _ := TestPooledDatabase(t)
	s, err := Open(context.Background(), url, Options{Pooled: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceThroughPgBouncer(t *testing.T) { storetest.Run(t, newPooledStore) }
func TestConcurrencyThroughPgBouncer(t *testing.T) { storetest.RunConcurrency(t, newPooledStore) }

// Behind a pooler a store does not push revocations unless it has a
// direct connection to LISTEN on; with one, it does.
func TestWatchRevocationsThroughPgBouncer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pooled, direct := TestPooledDatabase(t)
	plain, err := Open(ctx, pooled, Options{Pooled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.PushesRevocations() {
		t.Fatal("a pooled store without a ListenURL claims to push revocations")
	}
	a, err := Open(ctx, pooled, Options{Pooled: true, ListenURL: direct})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make(chan struct{}, 16)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.WatchRevocations(ctx, func() {
			select {
			case got <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-stopped }()
	<-got // listening
	if err := plain.LogCutoff(ctx, store.KindGlobal, "", store.Cutoff{NotBefore: time.Now(), Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("no NOTIFY through the direct listen connection for an insert made through the pooler")
	}
}
