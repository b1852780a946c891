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
package throttle

import (
	"sync"
	"time"
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
	// MaxEntries bounds memory; the oldest state is dropped first when full
	// (default 100,000).
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

// Limiter tracks attempts. Safe for concurrent use.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	ips     map[string]*bucket
	pairs   map[pair]*failures
	account map[string]*bucket
}

type pair struct{ account, ip string }

type bucket struct {
	tokens float64
	at     time.Time
}

type failures struct {
	n    int
	last time.Time
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	cfg.defaults()
	return &Limiter{cfg: cfg, ips: map[string]*bucket{}, pairs: map[pair]*failures{}, account: map[string]*bucket{}}
}

// take refills b at rate per second up to capacity and takes one token if
// available; otherwise it returns how long until one is.
func (b *bucket) take(now time.Time, capacity, perSecond float64, consume bool) time.Duration {
	b.tokens = min(capacity, b.tokens+now.Sub(b.at).Seconds()*perSecond)
	b.at = now
	if b.tokens >= 1 {
		if consume {
			b.tokens--
		}
		return 0
	}
	return time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
}

// Allow records an attempt on account (normalised by the caller) from ip at
// now. It returns 0 if the attempt may proceed, or how long to wait.
func (l *Limiter) Allow(account, ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bound()
	perIP := float64(l.cfg.PerIP)
	b := l.ips[ip]
	if b == nil {
		b = &bucket{tokens: perIP, at: now}
		l.ips[ip] = b
	}
	if wait := b.take(now, perIP, perIP/60, true); wait > 0 {
		return wait
	}
	if f := l.pairs[pair{account, ip}]; f != nil && f.n >= l.cfg.FreeFailures {
		backoff := min(l.cfg.MaxBackoff, time.Second<<min(f.n-l.cfg.FreeFailures, 30))
		if until := f.last.Add(backoff); now.Before(until) {
			return until.Sub(now)
		}
	}
	if a := l.account[account]; a != nil {
		if wait := a.take(now, float64(l.cfg.AccountFailures), 1/l.cfg.AccountRefill.Seconds(), false); wait > 0 {
			return wait
		}
	}
	return 0
}

// Failure records a failed attempt (wrong password, unknown user).
func (l *Limiter) Failure(account, ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.pairs[pair{account, ip}]
	if f == nil {
		f = &failures{}
		l.pairs[pair{account, ip}] = f
	}
	f.n++
	f.last = now
	a := l.account[account]
	if a == nil {
		a = &bucket{tokens: float64(l.cfg.AccountFailures), at: now}
		l.account[account] = a
	}
	a.take(now, float64(l.cfg.AccountFailures), 1/l.cfg.AccountRefill.Seconds(), true)
}

// Success clears the account's failures from ip.
func (l *Limiter) Success(account, ip string) {
	l.mu.Lock()
	delete(l.pairs, pair{account, ip})
	l.mu.Unlock()
}

// Prune drops state that no longer limits anything at now.
func (l *Limiter) Prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, b := range l.ips {
		if now.Sub(b.at) > time.Minute {
			delete(l.ips, ip)
		}
	}
	for p, f := range l.pairs {
		if now.Sub(f.last) > l.cfg.MaxBackoff {
			delete(l.pairs, p)
		}
	}
	full := time.Duration(l.cfg.AccountFailures) * l.cfg.AccountRefill
	for a, b := range l.account {
		if now.Sub(b.at) > full {
			delete(l.account, a)
		}
	}
}

// bound keeps memory flat under a flood of distinct addresses or names: when
// a map is full, it is cleared (the limits restart, which errs on the side of
// letting people in; the hashing limiter still bounds the work).
func (l *Limiter) bound() {
	if len(l.ips) >= l.cfg.MaxEntries {
		clear(l.ips)
	}
	if len(l.pairs) >= l.cfg.MaxEntries {
		clear(l.pairs)
	}
	if len(l.account) >= l.cfg.MaxEntries {
		clear(l.account)
	}
}
