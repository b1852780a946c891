package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The operator's actions. Access control (role=admin) is the caller's job:
// the HTTP layer checks the token's role, the CLI runs with database access.

// ListUsers pages through accounts by name. next is "" on the last page.
func (s *Service) ListUsers(ctx context.Context, after string, limit int) (users []store.User, next string, err error) {
	limit = clampLimit(limit)
	users, err = s.store.ListUsers(ctx, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(users) > limit {
		users = users[:limit]
		next = users[limit-1].Username
	}
	return users, next, nil
}

// GetUser returns one account.
func (s *Service) GetUser(ctx context.Context, id string) (store.User, error) {
	u, err := s.store.GetUserByID(ctx, id)
	return u, s.notFound(err)
}

// FindUser returns the account with that name (case-insensitive).
func (s *Service) FindUser(ctx context.Context, username string) (store.User, error) {
	u, err := s.store.GetUserByUsername(ctx, username)
	return u, s.notFound(err)
}

// UpdateUser changes an account's role and/or disabled flag, with
// immediate effect:
//   - disabling revokes every session (access tokens fail token_revoked on
//     the next request, refresh fails account_disabled); re-enabling does
//     not bring those sessions back;
//   - a role change refuses every access token issued before it while the
//     sessions live on: the next refresh carries the new role.
func (s *Service) UpdateUser(ctx context.Context, id string, role *string, disabled *bool, m Meta) (store.User, error) {
	cur, err := s.store.GetUserByID(ctx, id)
	if err != nil {
		return cur, s.notFound(err)
	}
	if role != nil && !ValidRole(*role) {
		return cur, fmt.Errorf("%w: role must be %q or %q", ErrInvalidRequest, store.RoleUser, store.RoleAdmin)
	}
	roleChanged := role != nil && *role != cur.Role
	disabling := disabled != nil && *disabled && !cur.Disabled
	enabling := disabled != nil && !*disabled && cur.Disabled
	if !roleChanged && !disabling && !enabling {
		return cur, nil
	}
	now := s.now()
	up := store.UserUpdate{Now: now}
	if roleChanged {
		up.Role = role
	}
	if disabling || enabling {
		up.Disabled = disabled
	}
	if roleChanged || disabling {
		// Recorded with the change for crash safety; the authoritative
		// cutoff is taken again after the commit (see userCutoff).
		c := s.cutoffAt(now)
		up.Cutoff = &c
	}
	if disabling {
		up.RevokeSessions, up.Reason = true, ReasonDisabled
	}
	u, revoked, err := s.store.UpdateUser(ctx, id, up)
	if err != nil {
		return cur, err
	}
	s.forgetSessions(revoked, now)
	if roleChanged || disabling {
		if err := s.userCutoff(ctx, id); err != nil {
			return u, err
		}
	}
	s.afterRevocation(ctx)
	switch {
	case disabling:
		s.event(ctx, EventAccountDisabled, m, id, "", fmt.Sprintf("%d sessions revoked", len(revoked)))
	case enabling:
		s.event(ctx, EventAccountEnabled, m, id, "", "")
	}
	if roleChanged {
		s.event(ctx, EventRoleChanged, m, id, "", cur.Role+" -> "+u.Role)
	}
	return u, nil
}

// userCutoff refuses the user's access tokens issued before now. It is
// taken after the change it enforces has committed, so any token whose data
// was read before the change has an earlier iat (see issue).
func (s *Service) userCutoff(ctx context.Context, userID string) error {
	c := s.cutoffAt(s.now())
	s.revoked.SetUserNotBefore(userID, c.NotBefore, c.Until)
	return s.store.LogCutoff(ctx, store.KindUser, userID, c)
}

// cutoffAt refuses tokens issued before t; the entry matters until every
// token issued before t has expired.
func (s *Service) cutoffAt(t time.Time) store.Cutoff {
	return store.Cutoff{NotBefore: t, Until: t.Add(s.cfg.AccessTTL)}
}

// UserSessions lists an account's active sessions.
func (s *Service) UserSessions(ctx context.Context, userID string) ([]store.Session, error) {
	if _, err := s.GetUser(ctx, userID); err != nil {
		return nil, err
	}
	return s.store.ListActiveSessions(ctx, userID, s.now())
}

// RevokeUserSessions revokes every session of an account.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string, m Meta) (int, error) {
	if _, err := s.GetUser(ctx, userID); err != nil {
		return 0, err
	}
	return s.revokeUserSessions(ctx, userID, "", ReasonAdmin, m)
}

// RevokeSession revokes any one session.
func (s *Service) RevokeSession(ctx context.Context, id string, m Meta) error {
	sess, err := s.store.GetSession(ctx, id)
	if err != nil {
		return s.notFound(err)
	}
	return s.revokeSession(ctx, sess, ReasonAdmin, EventSessionRevoked, m)
}

// RevokeAll is the emergency switch: every session and every access token
// issued before now is dead, the caller's included.
func (s *Service) RevokeAll(ctx context.Context, m Meta) (int, error) {
	now := s.now()
	n, err := s.store.RevokeAll(ctx, s.cutoffAt(now), ReasonGlobal, now)
	if err != nil {
		return 0, err
	}
	c := s.cutoffAt(s.now()) // after the commit, as in userCutoff
	s.revoked.SetGlobalNotBefore(c.NotBefore)
	if err := s.store.LogCutoff(ctx, store.KindGlobal, "", c); err != nil {
		return n, err
	}
	s.afterRevocation(ctx)
	s.event(ctx, EventGlobalRevoke, m, "", "", fmt.Sprintf("%d sessions revoked", n))
	return n, nil
}

// EventQuery selects security events.
type EventQuery struct {
	UserID string
	Type   string
	Cursor int64 // from a previous page's next; 0 for the newest
	Limit  int
}

// Events returns events newest first and the cursor of the next page (0 on
// the last).
func (s *Service) Events(ctx context.Context, q EventQuery) ([]store.Event, int64, error) {
	limit := clampLimit(q.Limit)
	list, err := s.store.ListEvents(ctx, store.EventFilter{UserID: q.UserID, Type: q.Type, BeforeSeq: q.Cursor, Limit: limit + 1})
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].Seq
	}
	return list, next, nil
}

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 500:
		return 500
	}
	return n
}
