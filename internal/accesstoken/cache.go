package accesstoken

import (
	"hash/maphash"
	"sync"
	"time"
)

// Cache remembers tokens whose signature and claims have been verified, so
// that a token presented again (every request of a session, for minutes)
// costs a hash and a map lookup instead of a signature verification. It
// holds only what Verify decided from the token's own bytes: expiry is
// checked again on every hit, and revocation is the caller's, on every
// request, as before. Keys are two independently seeded 64-bit hashes of
// the exact token (a collision would need both, under seeds no one sees);
// the cache is bounded and starts over when full, so a flood of distinct
// tokens costs at most max entries. Clear it when the key set changes.
type Cache struct {
	mu    sync.RWMutex
	seeds [2]maphash.Seed
	m     map[[2]uint64]Claims
	max   int
}

// DefaultCacheEntries bounds a Cache: about 1,000 bytes an entry (claims
// with their slices), so 16 MiB or so at most.
const DefaultCacheEntries = 16384

// NewCache returns a cache of at most max entries (0: the default).
func NewCache(max int) *Cache {
	if max <= 0 {
		max = DefaultCacheEntries
	}
	return &Cache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, m: map[[2]uint64]Claims{}, max: max}
}

func (c *Cache) key(tok string) [2]uint64 {
	return [2]uint64{maphash.String(c.seeds[0], tok), maphash.String(c.seeds[1], tok)}
}

// Get returns the claims of a token verified before and not expired at
// now. The claims' slices are shared: callers must not modify them.
func (c *Cache) Get(tok string, now time.Time) (Claims, bool) {
	if c == nil {
		return Claims{}, false // a nil cache remembers nothing
	}
	k := c.key(tok)
	c.mu.RLock()
	cl, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(cl.ExpiresAt.Time) {
		return Claims{}, false
	}
	return cl, true
}

// Put remembers a verified token's claims.
func (c *Cache) Put(tok string, cl Claims) {
	if c == nil {
		return
	}
	k := c.key(tok)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m) // bounded: a flood of distinct tokens starts it over
	}
	c.m[k] = cl
}

// Clear forgets every token (the keys changed).
func (c *Cache) Clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// Len is the number of tokens remembered.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
