package throttle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
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

// try is one attempt: Allow, then, if it was allowed, a failure (the
// reservation stands) or a probe that counts neither way (Release).
func try(t *testing.T, l *Limiter, account, ip string, now time.Time, fail bool) Attempt {
	t.Helper()
	a, err := l.Allow(ctx, account, ip, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Wait == 0 && !fail {
		if err := l.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// succeed is a sign-in with the right password.
func succeed(t *testing.T, l *Limiter, account, ip string, now time.Time) {
	t.Helper()
	a, err := l.Allow(ctx, account, ip, now)
	if err != nil || a.Wait != 0 {
		t.Fatalf("sign-in refused: %+v, %v", a, err)
	}
	if err := l.Success(ctx, a, now); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, st Store, account, ip string) store.LoginFailures {
	t.Helper()
	var lf store.LoginFailures
	stop := errors.New("read")
	if err := st.UpdateLoginFailures(ctx, account, AddressKey(ip), func(old store.LoginFailures) (store.LoginFailures, error) {
		lf = old
		return old, stop
	}); !errors.Is(err, stop) {
		t.Fatal(err)
	}
	return lf
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
	succeed(t, l, "ann", "203.0.113.9", now)
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

// Attempts are reserved before the password is checked: of many at once
// from one address, only the free failures get through (checking before
// and counting after let all 40 be evaluated), and of many spread over
// addresses, only the account's budget.
func TestConcurrentAttemptsAreReserved(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		addr   func(i int) string
		budget int
	}{
		{"one address", Config{PerIP: 1000}, func(int) string { return "203.0.113.9" }, 5},
		{"eight addresses", Config{PerIP: 1000, FreeFailures: 100, AccountFailures: 10}, func(i int) string { return fmt.Sprintf("198.51.100.%d", i%8) }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t, tc.cfg)
			var wg sync.WaitGroup
			var mu sync.Mutex
			allowed := 0
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a, err := l.Allow(ctx, "ann", tc.addr(i), t0)
					if err != nil {
						t.Error(err)
						return
					}
					if a.Wait == 0 {
						mu.Lock()
						allowed++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if allowed != tc.budget {
				t.Fatalf("%d of 40 concurrent attempts evaluated; the budget is %d", allowed, tc.budget)
			}
		})
	}
}

// Spending the account's budget from other addresses does not keep the
// owner out of an address they have signed in from before; a new address
// still waits.
func TestKnownAddressKeepsItsBudget(t *testing.T) {
	l := newLimiter(t, Config{AccountFailures: 5, AccountRefill: time.Minute})
	succeed(t, l, "ann", "192.0.2.10", t0) // the owner, yesterday
	now := t0.Add(24 * time.Hour)
	for i := range 50 {
		try(t, l, "ann", fmt.Sprintf("203.0.113.%d", i), now, true)
	}
	if a := try(t, l, "ann", "198.51.100.1", now, false); a.Limit != LimitAccount {
		t.Fatalf("a new address during the attack: %+v, want the account limit", a)
	}
	for range 3 {
		succeed(t, l, "ann", "192.0.2.10", now) // not refused
	}
	// The known address has its own back-off: an attacker sharing it gets
	// the free failures, then waits.
	for range 5 {
		try(t, l, "ann", "192.0.2.10", now, true)
	}
	if a := try(t, l, "ann", "192.0.2.10", now, false); a.Limit != LimitAccountIP {
		t.Fatalf("failures from the known address: %+v, want its own back-off", a)
	}
	// Known only for a while.
	l2 := newLimiter(t, Config{AccountFailures: 5, AccountRefill: time.Minute, KnownFor: time.Hour})
	succeed(t, l2, "ann", "192.0.2.10", t0)
	for i := range 50 {
		try(t, l2, "ann", fmt.Sprintf("203.0.113.%d", i), now, true)
	}
	if a := try(t, l2, "ann", "192.0.2.10", now, false); a.Limit != LimitAccount {
		t.Fatalf("an address last used past KnownFor: %+v, want the account limit", a)
	}
}

// Every spelling of an address is one key; an IPv6 host's /64 is one key.
func TestAddressKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"2001:db8::1", "2001:0DB8:0000:0000:0000:0000:0000:0001"},
		{"2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"},
		{"fe80::1%eth0", "fe80::2"},
	} {
		if AddressKey(tc.a) != AddressKey(tc.b) {
			t.Errorf("AddressKey(%q) = %q, AddressKey(%q) = %q; want one key", tc.a, AddressKey(tc.a), tc.b, AddressKey(tc.b))
		}
	}
	if AddressKey("2001:db8:0:1::1") == AddressKey("2001:db8:0:2::1") || AddressKey("192.0.2.1") == AddressKey("192.0.2.2") {
		t.Error("different /64s (or IPv4 addresses) share a key")
	}
	// One IPv6 host hopping through its /64 shares one per-address bucket.
	l := newLimiter(t, Config{PerIP: 3})
	for i := range 3 {
		try(t, l, fmt.Sprint(i), fmt.Sprintf("2001:db8::%x", i+1), t0, false)
	}
	if a := try(t, l, "x", "2001:db8::beef", t0, false); a.Limit != LimitIP {
		t.Fatalf("a fresh address in the same /64: %+v, want the per-address limit", a)
	}
}

type broken struct{ Store }

func (broken) UpdateLoginFailures(context.Context, string, string, func(store.LoginFailures) (store.LoginFailures, error)) error {
	return store.ErrUnavailable
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
	if lf := read(t, st, "x", "a"); !lf.Debt.IsZero() || lf.Failures != 0 {
		t.Fatalf("prune left the store's state: %+v", lf)
	}
}

// BenchmarkAttempt is what the throttle adds to a successful login on
// SQLite: the reservation before the hash and its return after (before
// reservations: one read, and no write after a success).
func BenchmarkAttempt(b *testing.B) {
	l := New(Config{PerIP: 1 << 20}, openStore(&testing.T{}, filepath.Join(b.TempDir(), "gh.db")))
	now := t0
	for b.Loop() {
		now = now.Add(time.Millisecond)
		a, err := l.Allow(ctx, "ann", "192.0.2.1", now)
		if err != nil || a.Wait != 0 {
			b.Fatal(a, err)
		}
		if err := l.Success(ctx, a, now); err != nil {
			b.Fatal(err)
		}
	}
}
