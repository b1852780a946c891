package postgres

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
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

// Behind a pooler no session carries the timeouts, so every statement
// sets them in its transaction: a lone statement (its own transaction,
// pipelined) and one in a transaction are both cut off, as ErrUnavailable,
// and the pooled connection is clean afterwards.
func TestTimeoutsThroughPgBouncer(t *testing.T) {
	ctx := context.Background()
	pooled, _ := TestPooledDatabase(t)
	s, err := Open(ctx, pooled, Options{Pooled: true, StatementTimeout: 300 * time.Millisecond, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var timeout string
	if err := s.db.Reader().QueryRow(ctx, `SELECT current_setting('statement_timeout')`).Scan(&timeout); err != nil || timeout != "300ms" {
		t.Fatalf("a lone statement's statement_timeout = %q, %v; want 300ms", timeout, err)
	}
	sleep := func(c interface {
		QueryRow(context.Context, string, ...any) sqlstore.Row
	}) error {
		var v string
		start := time.Now()
		err := mapErr(c.QueryRow(ctx, `SELECT pg_sleep(5)::text`).Scan(&v))
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("a 5 s statement ran %v under a 300 ms timeout", took)
		}
		return err
	}
	if err := sleep(s.db.Reader()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a lone statement past the timeout: %v; want ErrUnavailable", err)
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sleep(tx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a statement in a transaction past the timeout: %v", err)
	}
	tx.Rollback(ctx)
	for range 4 { // every pooled connection answers again
		if _, err := s.ListUsers(ctx, "", "", 1); err != nil {
			t.Fatalf("after timeouts: %v", err)
		}
	}
}
