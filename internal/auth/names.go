package auth

import (
	"context"
	"errors"
)

// Username is the name of user id, from memory when it is known (every
// token this process issued taught it), else from the store once: forward
// auth must not read the database per request. Usernames never change, so
// a remembered one never goes stale; a deleted account's tokens are refused
// by the revocation state before its name is looked up.
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
