package auth

import (
	"sync"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// immutableCache maps keys to values that never change once known, so
// entries never go stale and need no invalidation: the immutable parts of
// sessions (nonces), and usernames (names.go). Bounded: when full it starts
// over.
type immutableCache[V any] struct {
	mu  sync.RWMutex
	m   map[string]V
	max int
}

func newImmutableCache[V any](max int) *immutableCache[V] {
	return &immutableCache[V]{m: map[string]V{}, max: max}
}

func (c *immutableCache[V]) get(k string) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *immutableCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = v
}

// cachedSession is what the refresh fast path keeps of a session: its
// refresh-token nonce, its user and its DPoP key binding, so a refresh can
// check its token's MAC (and binding) before touching the database, and a
// store with a fast path (PostgreSQL) can then do the whole rotation in one
// round trip. None of them ever changes.
type cachedSession struct {
	nonce  []byte
	userID string
	jkt    string
}

// rememberSession caches sess's immutable parts (s.nonces).
func (s *Service) rememberSession(sess store.Session) {
	s.nonces.put(sess.ID, cachedSession{nonce: sess.Nonce, userID: sess.UserID, jkt: sess.DPoPJKT})
}
