package auth

import (
	"sync"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// nonceCache keeps the immutable parts of sessions (the refresh-token nonce,
// the user id and the DPoP key binding) so that a refresh can check its token's MAC before
// touching the database, and a store with a fast path (PostgreSQL) can then
// do the whole rotation in one round trip. Entries never go stale: a
// session's nonce and user never change. Bounded: when full it starts over.
type nonceCache struct {
	mu  sync.RWMutex
	m   map[string]cachedSession
	max int
}

type cachedSession struct {
	nonce  []byte
	userID string
	jkt    string
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{m: map[string]cachedSession{}, max: max}
}

func (c *nonceCache) get(sid string) (cachedSession, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[sid]
	return v, ok
}

func (c *nonceCache) put(sess store.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[sess.ID] = cachedSession{nonce: sess.Nonce, userID: sess.UserID, jkt: sess.DPoPJKT}
}
