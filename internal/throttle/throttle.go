// Package throttle limits password guessing without handing attackers a way
// to lock real users out.
//
// Three limits apply to every login attempt, each a back-off that ends by
// itself, never a permanent lock:
//
//   - per client IP: a token bucket of attempts (a single source cannot spray
//     passwords across many accounts);
//   - per account and client IP: after a few consecutive failures, an
//     exponentially growing wait (an attacker guessing one account from one
//     address slows to a crawl), reset by a success from that address;
//   - per account over all addresses: a bucket of failures (a distributed
//     attack on one account is bounded), refilling steadily, so the owner
//     waits at most one refill interval, not forever.
//
// The owner logging in from their usual address is only affected by the
// third limit, and only while someone else is actively failing against the
// account.
//
// The two per-account limits live in the database (Store), so N instances
// sharing PostgreSQL give an attacker one budget, not N, and a restart does
// not reset it. A successful login from an address with no failures writes
// nothing: the read that checks the limits tells the success whether there
// is a run of failures to clear. The per-IP bucket stays in memory; it
// protects each instance's CPU, which is per instance anyway.
package throttle

import (
	"context"
	"fmt"
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
}

// Store keeps the per-account state (store.Store implements it).
type Store interface {
	LoginFailures(ctx context.Context, account, ip string) (store.LoginFailures, error)
	RecordLoginFailure(ctx context.Context, account, ip string, now time.Time, cost time.Duration) error
	ClearLoginFailures(ctx context.Context, account, ip string) error
	PruneLoginFailures(ctx context.Context, debtBefore, runBefore time.Time) (int, error)
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

	account, ip string
	failures    int // the run of failures from ip when allowed
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

// Allow records an attempt on account (normalised by the caller) from ip at
// now and says whether it may proceed. The error is the store's: the
// caller cannot tell whether the account is under attack and must refuse.
func (l *Limiter) Allow(ctx context.Context, account, ip string, now time.Time) (Attempt, error) {
	a := Attempt{account: account, ip: ip}
	if wait := l.allowIP(ip, now); wait > 0 {
		a.Wait, a.Limit = wait, LimitIP
		return a, nil
	}
	lf, err := l.store.LoginFailures(ctx, account, ip)
	if err != nil {
		return Attempt{}, fmt.Errorf("login throttle: %w", err)
	}
	a.failures = lf.Failures
	if lf.Failures >= l.cfg.FreeFailures {
		backoff := min(l.cfg.MaxBackoff, time.Second<<min(lf.Failures-l.cfg.FreeFailures, 30))
		if until := lf.LastFailure.Add(backoff); now.Before(until) {
			a.Wait, a.Limit = until.Sub(now), LimitAccountIP
			return a, nil
		}
	}
	// GCRA: the budget of AccountFailures is spent while the debt runs
	// more than AccountFailures-1 refills ahead of now.
	// (A zero or past debt is nothing owed; skip it before subtracting,
	// since the distance to the zero time saturates.)
	if !lf.Debt.After(now) {
		return a, nil
	}
	if ahead := lf.Debt.Sub(now) - time.Duration(l.cfg.AccountFailures-1)*l.cfg.AccountRefill; ahead > 0 {
		a.Wait, a.Limit = ahead, LimitAccount
		return a, nil
	}
	return a, nil
}

func (l *Limiter) allowIP(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ips) >= l.cfg.MaxEntries {
		// A flood of distinct addresses: restart the buckets rather than
		// grow (this errs on the side of letting people in; the hashing
		// limiter still bounds the work).
		clear(l.ips)
	}
	perIP := float64(l.cfg.PerIP)
	b := l.ips[ip]
	if b == nil {
		b = &bucket{tokens: perIP, at: now}
		l.ips[ip] = b
	}
	return b.take(now, perIP, perIP/60)
}

// Failure records a failed attempt (wrong password, unknown user) that
// Allow let through.
func (l *Limiter) Failure(ctx context.Context, a Attempt, now time.Time) error {
	if err := l.store.RecordLoginFailure(ctx, a.account, a.ip, now, l.cfg.AccountRefill); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	return nil
}

// Success ends the account's run of failures from the attempt's address. It
// writes only if Allow saw such a run.
func (l *Limiter) Success(ctx context.Context, a Attempt) error {
	if a.failures == 0 {
		return nil
	}
	if err := l.store.ClearLoginFailures(ctx, a.account, a.ip); err != nil {
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
	if _, err := l.store.PruneLoginFailures(ctx, now, now.Add(-l.cfg.MaxBackoff)); err != nil {
		return fmt.Errorf("login throttle: %w", err)
	}
	return nil
}
