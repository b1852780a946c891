package auth

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Revocations is the in-memory revocation list checked on every access
// token, in three layers: revoked session ids, a per-user "not before"
// (disable, role change) and a global "not before" (revoke-all). The store is
// the source of truth; this is loaded from it at start and updated on every
// revocation. Entries are pruned once no access token they cover can still be
// unexpired, so the set stays as small as the number of sessions revoked
// within one access-token lifetime.
//
// Lookups take a read lock and allocate nothing.
type Revocations struct {
	mu       sync.RWMutex
	sessions map[string]int64 // sid -> Unix ns after which the entry is moot
	users    map[string]userCutoff
	global   atomic.Int64 // Unix ns; tokens issued before are refused
}

type userCutoff struct {
	notBefore int64 // Unix ns
	until     int64 // Unix ns after which no token issued before notBefore lives
}

// NewRevocations returns an empty list.
func NewRevocations() *Revocations {
	return &Revocations{sessions: map[string]int64{}, users: map[string]userCutoff{}}
}

// Revoked reports whether a token of session sid and user sub, issued at
// iat, has been revoked.
func (r *Revocations) Revoked(sid, sub string, iat time.Time) bool {
	t := iat.UnixNano()
	if t < r.global.Load() {
		return true
	}
	r.mu.RLock()
	_, gone := r.sessions[sid]
	u, ok := r.users[sub]
	r.mu.RUnlock()
	return gone || (ok && t < u.notBefore)
}

// AddSession revokes every access token of sid; the entry is kept until.
func (r *Revocations) AddSession(sid string, until time.Time) {
	u := until.UnixNano()
	r.mu.Lock()
	if u > r.sessions[sid] {
		r.sessions[sid] = u
	}
	r.mu.Unlock()
}

// SetUserNotBefore refuses tokens of user sub issued before t; the entry is
// kept until.
func (r *Revocations) SetUserNotBefore(sub string, t, until time.Time) {
	r.mu.Lock()
	c := r.users[sub]
	c.notBefore = max(c.notBefore, t.UnixNano())
	c.until = max(c.until, until.UnixNano())
	r.users[sub] = c
	r.mu.Unlock()
}

// SetGlobalNotBefore refuses every token issued before t.
func (r *Revocations) SetGlobalNotBefore(t time.Time) {
	n := t.UnixNano()
	for {
		old := r.global.Load()
		if n <= old || r.global.CompareAndSwap(old, n) {
			return
		}
	}
}

// Apply adds an entry of the store's revocation log.
func (r *Revocations) Apply(e store.Revocation) {
	switch e.Kind {
	case store.KindSession:
		r.AddSession(e.Subject, e.Until)
	case store.KindUser:
		r.SetUserNotBefore(e.Subject, e.NotBefore, e.Until)
	case store.KindGlobal:
		r.SetGlobalNotBefore(e.NotBefore)
	}
}

// NotBefore returns the latest cutoff (Unix ns, 0 for none) that applies to
// the tokens of user sub: its own or the global one.
func (r *Revocations) NotBefore(sub string) int64 {
	g := r.global.Load()
	r.mu.RLock()
	u := r.users[sub].notBefore
	r.mu.RUnlock()
	return max(g, u)
}

// Prune drops entries that can no longer matter at now.
func (r *Revocations) Prune(now time.Time) {
	n := now.UnixNano()
	r.mu.Lock()
	for sid, until := range r.sessions {
		if until <= n {
			delete(r.sessions, sid)
		}
	}
	for sub, c := range r.users {
		if c.until <= n {
			delete(r.users, sub)
		}
	}
	r.mu.Unlock()
}

// Len reports the number of session and user entries (for metrics).
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions) + len(r.users)
}
