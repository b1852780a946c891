package auth

import (
	"context"
	"errors"
	"sync"
)

// nameCache maps user ids to usernames for answers that must not read the
// database per request (forward auth). Names are learnt when tokens are
// issued; a miss (after a restart) reads the account once. Bounded: when
// full it starts over. Usernames never change, so entries never go stale;
// a deleted account's tokens are refused by the revocation state before
// its name is looked up.
type nameCache struct {
	mu  sync.RWMutex
	m   map[string]string
	max int
}

func (c *nameCache) get(id string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.m[id]
	return n, ok
}

func (c *nameCache) put(id, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[string]string)
	}
	c.m[id] = name
}

// Username is the name of user id, from memory when it is known (every
// token this process issued taught it), else from the store once.
func (s *Service) Username(ctx context.Context, id string) (string, error) {
	if n, ok := s.names.get(id); ok {
		return n, nil
	}
	u, err := s.GetUser(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	s.names.put(id, u.Username)
	return u.Username, nil
}
