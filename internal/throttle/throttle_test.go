package throttle

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var ctx = context.Background()

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newLimiter(t *testing.T, cfg Config) *Limiter {
	return New(cfg, openStore(t, filepath.Join(t.TempDir(), "gh.db")))
}

// try is one attempt: Allow, and a failure recorded if it was allowed.
func try(t *testing.T, l *Limiter, account, ip string, now time.Time, fail bool) Attempt {
	t.Helper()
	a, err := l.Allow(ctx, account, ip, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Wait == 0 && fail {
		if err := l.Failure(ctx, a, now); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestPerAccountAndIPBackoffIsTemporary(t *testing.T) {
	l := newLimiter(t, Config{})
	now := t0
	for i := range 5 {
		if a := try(t, l, "ann", "203.0.113.9", now, true); a.Wait != 0 {
			t.Fatalf("attempt %d throttled (%v) within the free failures", i, a.Wait)
		}
	}
	a := try(t, l, "ann", "203.0.113.9", now, false)
	if a.Wait <= 0 || a.Wait > time.Second || a.Limit != LimitAccountIP {
		t.Fatalf("after 5 failures: %+v, want a 1s account_ip back-off", a)
	}
	// The owner, elsewhere, is not locked out by the attacker's address.
	if a := try(t, l, "ann", "198.51.100.1", now, false); a.Wait != 0 {
		t.Fatalf("another address throttled: %v", a.Wait)
	}
	// The back-off doubles with each further failure, up to the cap.
	now = now.Add(time.Second)
	try(t, l, "ann", "203.0.113.9", now, true)
	if a := try(t, l, "ann", "203.0.113.9", now, false); a.Wait != 2*time.Second {
		t.Fatalf("after 6 failures: %v, want 2s", a.Wait)
	}
	for range 20 {
		now = now.Add(15 * time.Minute)
		try(t, l, "ann", "203.0.113.9", now, true)
	}
	if a := try(t, l, "ann", "203.0.113.9", now, false); a.Wait != 15*time.Minute {
		t.Fatalf("capped back-off %v, want 15m", a.Wait)
	}
	// It ends by itself.
	now = now.Add(15 * time.Minute)
	a = try(t, l, "ann", "203.0.113.9", now, false)
	if a.Wait != 0 {
		t.Fatalf("after the back-off: %v", a.Wait)
	}
	// A success resets the pair.
	if err := l.Success(ctx, a); err != nil {
		t.Fatal(err)
	}
	try(t, l, "ann", "203.0.113.9", now, true)
	if a := try(t, l, "ann", "203.0.113.9", now, false); a.Wait != 0 {
		t.Fatalf("after a success and one failure: %v", a.Wait)
	}
}

func TestPerIPBucket(t *testing.T) {
	l := newLimiter(t, Config{PerIP: 3})
	for i := range 3 {
		if a := try(t, l, string(rune('a'+i)), "192.0.2.1", t0, false); a.Wait != 0 {
			t.Fatalf("attempt %d: %v", i, a.Wait)
		}
	}
	a := try(t, l, "d", "192.0.2.1", t0, false)
	if a.Wait != 20*time.Second || a.Limit != LimitIP {
		t.Fatalf("4th attempt in a minute with 3/min: %+v, want a 20s ip wait", a)
	}
	if a := try(t, l, "d", "192.0.2.2", t0, false); a.Wait != 0 {
		t.Fatal("another address shares the bucket")
	}
	if a := try(t, l, "d", "192.0.2.1", t0.Add(20*time.Second), false); a.Wait != 0 {
		t.Fatalf("after refill: %v", a.Wait)
	}
}

func TestAccountBudgetAcrossAddresses(t *testing.T) {
	l := newLimiter(t, Config{AccountFailures: 3, AccountRefill: 10 * time.Second})
	for i := range 3 {
		if a := try(t, l, "ann", string(rune('a'+i)), t0, true); a.Wait != 0 {
			t.Fatal(a.Wait)
		}
	}
	a := try(t, l, "ann", "owner", t0, false)
	if a.Wait <= 0 || a.Wait > 10*time.Second || a.Limit != LimitAccount {
		t.Fatalf("distributed failures: owner gets %+v, want an account wait of at most one refill (10s)", a)
	}
	if a := try(t, l, "ann", "owner", t0.Add(10*time.Second), false); a.Wait != 0 {
		t.Fatalf("after one refill: %v", a.Wait)
	}
	if a := try(t, l, "bob", "owner", t0, false); a.Wait != 0 {
		t.Fatal("another account affected")
	}
}

// The per-account budget is the database's: two limiters on one database
// (two instances) share it, and a new limiter on the same file (a restart)
// inherits it.
func TestAccountBudgetIsShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gh.db")
	st := openStore(t, path)
	cfg := Config{AccountFailures: 4, AccountRefill: time.Minute}
	one, two := New(cfg, st), New(cfg, st)
	for i := range 4 {
		l := one
		if i%2 == 1 {
			l = two
		}
		if a := try(t, l, "ann", string(rune('a'+i)), t0, true); a.Wait != 0 {
			t.Fatalf("failure %d refused early: %v", i, a.Wait)
		}
	}
	for _, l := range []*Limiter{one, two} {
		if a := try(t, l, "ann", "owner", t0, false); a.Limit != LimitAccount {
			t.Fatalf("budget not shared: %+v", a)
		}
	}
	st.Close()
	restarted := New(cfg, openStore(t, path))
	if a := try(t, restarted, "ann", "owner", t0.Add(time.Second), false); a.Limit != LimitAccount || a.Wait <= 0 {
		t.Fatalf("budget reset by a restart: %+v", a)
	}
}

// counting wraps a store and counts writes.
type counting struct {
	Store
	writes int
}

func (c *counting) RecordLoginFailure(ctx context.Context, account, ip string, now time.Time, cost time.Duration) error {
	c.writes++
	return c.Store.RecordLoginFailure(ctx, account, ip, now, cost)
}

func (c *counting) ClearLoginFailures(ctx context.Context, account, ip string) error {
	c.writes++
	return c.Store.ClearLoginFailures(ctx, account, ip)
}

// A successful login with no failures behind it writes nothing; one after
// failures from the same address clears them, once.
func TestSuccessWritesOnlyAfterFailures(t *testing.T) {
	st := &counting{Store: openStore(t, filepath.Join(t.TempDir(), "gh.db"))}
	l := New(Config{}, st)
	for range 3 {
		a := try(t, l, "ann", "192.0.2.1", t0, false)
		if err := l.Success(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if st.writes != 0 {
		t.Fatalf("%d writes for successful logins", st.writes)
	}
	try(t, l, "ann", "192.0.2.1", t0, true)
	a := try(t, l, "ann", "192.0.2.1", t0, false)
	if err := l.Success(ctx, a); err != nil {
		t.Fatal(err)
	}
	if st.writes != 2 {
		t.Fatalf("%d writes for a failure then a success, want 2", st.writes)
	}
	a = try(t, l, "ann", "192.0.2.1", t0, false)
	if err := l.Success(ctx, a); err != nil || st.writes != 2 {
		t.Fatalf("the cleared run was cleared again (%d writes, %v)", st.writes, err)
	}
}

type broken struct{ Store }

func (broken) LoginFailures(context.Context, string, string) (store.LoginFailures, error) {
	return store.LoginFailures{}, store.ErrUnavailable
}

// Without the database the limiter cannot know the account's state: it
// says so instead of letting the attempt through.
func TestStoreDownFailsClosed(t *testing.T) {
	l := New(Config{}, broken{})
	if _, err := l.Allow(ctx, "ann", "192.0.2.1", t0); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Allow with the store down: %v", err)
	}
}

func TestPruneAndBound(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "gh.db"))
	l := New(Config{MaxEntries: 10, AccountFailures: 2, AccountRefill: time.Second}, st)
	for i := range 25 {
		try(t, l, "x", string(rune('a'+i)), t0, true)
	}
	if len(l.ips) > 10 {
		t.Fatalf("per-IP buckets grew past the bound: %d", len(l.ips))
	}
	l.PruneMemory(t0.Add(time.Hour))
	if err := l.PruneStore(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(l.ips) != 0 {
		t.Fatalf("prune left %d buckets", len(l.ips))
	}
	if lf, err := st.LoginFailures(ctx, "x", "a"); err != nil || !lf.Debt.IsZero() || lf.Failures != 0 {
		t.Fatalf("prune left the store's state: %+v, %v", lf, err)
	}
}
