package throttle

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPerAccountAndIPBackoffIsTemporary(t *testing.T) {
	l := New(Config{})
	now := t0
	for i := range 5 {
		if w := l.Allow("ann", "203.0.113.9", now); w != 0 {
			t.Fatalf("attempt %d throttled (%v) within the free failures", i, w)
		}
		l.Failure("ann", "203.0.113.9", now)
	}
	w := l.Allow("ann", "203.0.113.9", now)
	if w <= 0 || w > time.Second {
		t.Fatalf("after 5 failures: wait %v, want a 1s back-off", w)
	}
	// The owner, elsewhere, is not locked out by the attacker's address.
	if w := l.Allow("ann", "198.51.100.1", now); w != 0 {
		t.Fatalf("another address throttled: %v", w)
	}
	// The back-off doubles with each further failure, up to the cap.
	now = now.Add(time.Second)
	l.Failure("ann", "203.0.113.9", now)
	if w := l.Allow("ann", "203.0.113.9", now); w != 2*time.Second {
		t.Fatalf("after 6 failures: %v, want 2s", w)
	}
	for range 40 {
		l.Failure("ann", "203.0.113.9", now)
	}
	if w := l.Allow("ann", "203.0.113.9", now); w != 15*time.Minute {
		t.Fatalf("capped back-off %v, want 15m", w)
	}
	// It ends by itself.
	now = now.Add(15 * time.Minute)
	if w := l.Allow("ann", "203.0.113.9", now); w != 0 {
		t.Fatalf("after the back-off: %v", w)
	}
	// A success resets the pair.
	l.Success("ann", "203.0.113.9")
	l.Failure("ann", "203.0.113.9", now)
	if w := l.Allow("ann", "203.0.113.9", now); w != 0 {
		t.Fatalf("after a success and one failure: %v", w)
	}
}

func TestPerIPBucket(t *testing.T) {
	l := New(Config{PerIP: 3})
	for i := range 3 {
		if w := l.Allow(string(rune('a'+i)), "192.0.2.1", t0); w != 0 {
			t.Fatalf("attempt %d: %v", i, w)
		}
	}
	w := l.Allow("d", "192.0.2.1", t0)
	if w != 20*time.Second {
		t.Fatalf("4th attempt in a minute with 3/min: wait %v, want 20s", w)
	}
	if w := l.Allow("d", "192.0.2.2", t0); w != 0 {
		t.Fatal("another address shares the bucket")
	}
	if w := l.Allow("d", "192.0.2.1", t0.Add(20*time.Second)); w != 0 {
		t.Fatalf("after refill: %v", w)
	}
}

func TestAccountBudgetAcrossAddresses(t *testing.T) {
	l := New(Config{AccountFailures: 3, AccountRefill: 10 * time.Second})
	for i := range 3 {
		ip := string(rune('a' + i))
		if w := l.Allow("ann", ip, t0); w != 0 {
			t.Fatal(w)
		}
		l.Failure("ann", ip, t0)
	}
	w := l.Allow("ann", "owner", t0)
	if w <= 0 || w > 10*time.Second {
		t.Fatalf("distributed failures: owner waits %v, want at most one refill (10s)", w)
	}
	if w := l.Allow("ann", "owner", t0.Add(10*time.Second)); w != 0 {
		t.Fatalf("after one refill: %v", w)
	}
	if w := l.Allow("bob", "owner", t0); w != 0 {
		t.Fatal("another account affected")
	}
}

func TestPruneAndBound(t *testing.T) {
	l := New(Config{MaxEntries: 10})
	for i := range 25 {
		l.Allow("x", string(rune('a'+i)), t0)
		l.Failure(string(rune('a'+i)), "ip", t0)
	}
	if len(l.ips) > 10 || len(l.pairs) > 10 || len(l.account) > 10 {
		t.Fatalf("maps grew past the bound: %d %d %d", len(l.ips), len(l.pairs), len(l.account))
	}
	l.Prune(t0.Add(time.Hour))
	if len(l.ips)+len(l.pairs)+len(l.account) != 0 {
		t.Fatalf("prune left %d %d %d", len(l.ips), len(l.pairs), len(l.account))
	}
}
