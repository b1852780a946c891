// Package throttle limits password guessing without handing attackers a way
// to lock real users out.
//
// Three limits apply to every login attempt, each a back-off that ends by
// itself, never a permanent lock:
//
//   - per client address (IPv4 address, IPv6 /64): a token bucket of
//     attempts (a single source cannot spray passwords across many
//     accounts, nor escape by hopping through its 2^64 addresses);
//   - per account and address: after a few consecutive failures, an
//     exponentially growing wait (an attacker guessing one account from one
//     address slows to a crawl), reset by a success from that address;
//   - per account over all addresses: a bucket of failures (a distributed
//     attack on one account is bounded), refilling steadily.
//
// An address that has signed in to the account before is "known" and is
// exempt from the third limit: an attacker spending the account's budget
// from elsewhere cannot keep the owner out (ASVS 6.3), while the owner's
// address still has its own back-off.
//
// Every attempt is reserved before the password is hashed: in one
// transaction (Store.UpdateLoginFailures) the limits are checked and the
// attempt is counted as a failure. Concurrent attempts, on every instance
// sharing the database, therefore cannot all pass one check. A right
// password then gives the reservation back (Success); so does an attempt
// that never reached the hash (Release).
//
// The two per-account limits live in the database, so N instances sharing
// PostgreSQL give an attacker one budget, not N, and a restart does not
// reset it. The per-address bucket stays in memory; it protects each
// instance's CPU, which is per instance anyway.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Config sets the limits. Zero fields take the defaults.
type Config struct {
	// PerIP attempts per minute from one address (default 30).
	PerIP int
	// FreeFailures per account and address before back-off starts (default 5).
	FreeFailures int
	// MaxBackoff caps the per account and address wait (default 15m).
	MaxBackoff time.Duration
	// AccountFailures is the failure budget of one account over all
	// addresses (default 50), refilled one per AccountRefill (default 30s).
	AccountFailures int
	AccountRefill   time.Duration
	// MaxEntries bounds the per-IP buckets in memory (default 100,000).
	MaxEntries int
	// KnownFor is how long an address stays known after a successful
	// sign-in from it (default 90 days).
	KnownFor time.Duration
}

func (c *Config) defaults() {
	if c.PerIP <= 0 {
		c.PerIP = 30
	}
	if c.FreeFailures <= 0 {
		c.FreeFailures = 5
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 15 * time.Minute
	}
	if c.AccountFailures <= 0 {
		c.AccountFailures = 50
	}
	if c.AccountRefill <= 0 {
		c.AccountRefill = 30 * time.Second
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100_000
	}
	if c.KnownFor <= 0 {
		c.KnownFor = 90 * 24 * time.Hour
	}
}

// Store keeps the per-account state (store.Store implements it).
type Store interface {
	UpdateLoginFailures(ctx context.Context, account, address string, update func(store.LoginFailures) (store.LoginFailures, error)) error
	PruneLoginFailures(ctx context.Context, debtBefore, runBefore, knownBefore time.Time) (int, error)
}

// Limiter tracks attempts. Safe for concurrent use.
type Limiter struct {
	cfg   Config
	store Store
	mu    sync.Mutex
	ips   map[string]*bucket
}

// The limits, as Attempt.Limit names them.
const (
	LimitIP        = "ip"         // the per-IP bucket
	LimitAccountIP = "account_ip" // the per-account, per-address back-off
	LimitAccount   = "account"    // the per-account budget over all addresses
)

// Attempt is the answer to Allow.
type Attempt struct {
	// Wait is 0 if the attempt may proceed, else how long until it may.
	Wait time.Duration
	// Limit names the limit that refused it (LimitIP, LimitAccountIP or
	// LimitAccount), for metrics and the security log.
	Limit string

	account, addr string
	reserved      bool      // counted in the store; Success or Release gives it back
	charged       bool      // the account-wide budget paid for it
	at, prevLast  time.Time // the reservation's LastFailure, and the one it replaced
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a Limiter keeping per-account state in st.
func New(cfg Config, st Store) *Limiter {
	cfg.defaults()
	return &Limiter{cfg: cfg, store: st, ips: map[string]*bucket{}}
}

// take refills b at rate per second up to capacity and takes one token if
// available; otherwise it returns how long until one is.
func (b *bucket) take(now time.Time, capacity, perSecond float64) time.Duration {
	b.tokens = min(capacity, b.tokens+now.Sub(b.at).Seconds()*perSecond)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
}

// errRefused carries a refusal out of the reservation's transaction.
type errRefused struct {
	wait  time.Duration
	limit string
}

func (e *errRefused) Error() string { return "login attempt refused by " + e.limit }

// Allow reserves an attempt on account (normalised by the caller) from ip
// at now, or says how long to wait. A reserved attempt counts as a failure
// until Success or Release gives it back. The error is the store's: the
// caller cannot tell whether the account is under attack and must refuse.
func (l *Limiter) Allow(ctx context.Context, account, ip string, now time.Time) (Attempt, error) {
	addr := AddressKey(ip)
	a := Attempt{account: account, addr: addr}
	if wait := l.allowIP(addr, now); wait > 0 {
		a.Wait, a.Limit = wait, LimitIP
		return a, nil
	}
	err := l.store.UpdateLoginFailures(ctx, account, addr, func(lf store.LoginFailures) (store.LoginFailures, error) {
		if wait, limit := l.check(lf, now); wait > 0 {
			return lf, &errRefused{wait, limit}
		}
		a.charged = !l.known(lf, now)
		a.prevLast = lf.LastFailure
		lf.Failures++
		lf.LastFailure = maxTime(lf.LastFailure, now)
		a.at = lf.LastFailure
		if a.charged {
			lf.Debt = maxTime(lf.Debt, now).Add(l.cfg.AccountRefill)
		}
		return lf, nil
	})
	var refused *errRefused
	switch {
	case errors.As(err, &refused):
		a.Wait, a.Limit = refused.wait, refused.limit
		return a, nil
	case err != nil:
		return Attempt{}, fmt.Errorf("login throttle: %w", err)
	}
	a.reserved = true
	return a, nil
}

// check applies the two stored limits to lf at now.
func (l *Limiter) check(lf store.LoginFailures, now time.Time) (time.Duration, string) {
	if lf.Failures >= l.cfg.FreeFailures {
		backoff := min(l.cfg.MaxBackoff, time.Second<<min(lf.Failures-l.cfg.FreeFailures, 30))
		if until := lf.LastFailure.Add(backoff); now.Before(until) {
			return until.Sub(now), LimitAccountIP
		}
	}
	if l.known(lf, now) || !lf.Debt.After(now) {
		// A known address has a budget of its own (the back-off above);
		// a zero or past debt is nothing owed (and the distance to the
		// zero time saturates, so skip it before subtracting).
		return 0, ""
	}
	// GCRA: the budget of AccountFailures is spent while the debt runs
	// more than AccountFailures-1 refills ahead of now.
	if ahead := lf.Debt.Sub(now) - time.Duration(l.cfg.AccountFailures-1)*l.cfg.AccountRefill; ahead > 0 {
		return ahead, LimitAccount
	}
	return 0, ""
}

func (l *Limiter) known(lf store.LoginFailures, now time.Time) bool {
	return !lf.KnownAt.IsZero() && now.Sub(lf.KnownAt) < l.cfg.KnownFor
}

func (l *Limiter) allowIP(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ips) >= l.cfg.MaxEntries {
		// A flood of distinct addresses: restart the buckets rather than
		// grow (this errs on the side of letting people in; the hashing
		// limiter still bounds the work).
		clear(l.ips)
	}
	perIP := float64(l.cfg.PerIP)
	b := l.ips[addr]
	if b == nil {
		b = &bucket{tokens: perIP, at: now}
		l.ips[addr] = b
	}
	return b.take(now, perIP, perIP/60)
}

// Success gives back a reserved attempt whose password was right: the
// account's run of failures from the address ends, the account's budget is
// refunded, and the address becomes known to the account.
func (l *Limiter) Success(ctx context.Context, a Attempt, now time.Time) error {
	return l.giveBack(ctx, a, func(lf *store.LoginFailures) {
		lf.Failures, lf.KnownAt = 0, now
	})
}

// Release gives back a reserved attempt that was never judged (the hashing
// queue was full): it counts neither way.
func (l *Limiter) Release(ctx context.Context, a Attempt) error {
	return l.giveBack(ctx, a, func(lf *store.LoginFailures) {
		lf.Failures = max(0, lf.Failures-1)
		if lf.LastFailure.Equal(a.at) {
			lf.LastFailure = a.prevLast // no later attempt moved it
		}
	})
}

func (l *Limiter) giveBack(ctx context.Context, a Attempt, f func(*store.LoginFailures)) error {
	if !a.reserved {
		return nil
	}
	err := l.store.UpdateLoginFailures(ctx, a.account, a.addr, func(lf store.LoginFailures) (store.LoginFailures, error) {
		f(&lf)
		if a.charged && lf.Debt.After(time.Time{}) {
			lf.Debt = lf.Debt.Add(-l.cfg.AccountRefill)
		}
		return lf, nil
	})
	if err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	return nil
}

// PruneMemory drops the per-IP buckets that no longer limit anything at now.
func (l *Limiter) PruneMemory(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, b := range l.ips {
		if now.Sub(b.at) > time.Minute {
			delete(l.ips, ip)
		}
	}
}

// PruneStore drops the per-account state that no longer limits anything at
// now: paid-off debts and runs of failures older than the longest back-off.
func (l *Limiter) PruneStore(ctx context.Context, now time.Time) error {
	if _, err := l.store.PruneLoginFailures(ctx, now, now.Add(-l.cfg.MaxBackoff), now.Add(-l.cfg.KnownFor)); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	return nil
}

// AddressKey is the unit in which client addresses are counted: an IPv4
// address (IPv4-mapped IPv6 spellings included) as itself, an IPv6 address
// by its /64 (one host, one customer, is given a /64 to roam in), in
// canonical form, so every spelling of one address is one key. Anything
// unparsable is counted as it is.
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
