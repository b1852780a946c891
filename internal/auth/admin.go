package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/password"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The operator's actions. Access control (role=admin) is the caller's job:
// the HTTP layer checks the token's role, the CLI runs with database access.

// ListUsers pages through accounts in the order of their lookup key (the
// PRECIS-prepared name), those whose key contains query prepared the same
// way ("" for all; a fullwidth or upper-case query finds the name). The
// cursor is the last key of a page: stable and unique, so paging never
// skips or repeats an account whatever the display names are. next is ""
// on the last page.
func (s *Service) ListUsers(ctx context.Context, after, query string, limit int) (users []store.User, next string, err error) {
	limit = clampLimit(limit)
	q := cleanText(query, 256)
	if key, err := PrepareUsername(q); err == nil {
		q = key
	} // else a fragment PRECIS refuses as a name: searched as written
	users, err = s.accounts.ListUsers(ctx, cleanText(after, 256), q, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(users) > limit {
		users = users[:limit]
		next = strings.ToLower(users[limit-1].Key())
	}
	return users, next, nil
}

// GetUser returns one account.
func (s *Service) GetUser(ctx context.Context, id string) (store.User, error) {
	if !validID(id) {
		return store.User{}, ErrNotFound
	}
	u, err := s.accounts.GetUserByID(ctx, id)
	return u, s.notFound(err)
}

// FindUser returns the account with that name (compared after PRECIS
// preparation, so case and width do not matter).
func (s *Service) FindUser(ctx context.Context, username string) (store.User, error) {
	key, err := PrepareUsername(username)
	if err != nil {
		return store.User{}, ErrNotFound
	}
	u, err := s.accounts.GetUserByUsername(ctx, key)
	return u, s.notFound(err)
}

// UserChange is a change an operator makes to an account; nil fields are
// left as they are.
type UserChange struct {
	Role        *string
	Disabled    *bool
	Permissions *[]string
	// Password, when set, is an admin reset: new hash, every session of
	// the user revoked.
	Password *string
}

// UpdateUser changes an account's role and/or disabled flag (see
// ChangeUser).
func (s *Service) UpdateUser(ctx context.Context, id string, role *string, disabled *bool, m Meta) (store.User, error) {
	return s.ChangeUser(ctx, id, UserChange{Role: role, Disabled: disabled}, m)
}

// ChangeUser changes an account, with immediate effect:
//   - disabling revokes every session (access tokens fail token_revoked on
//     the next request, refresh fails account_disabled); re-enabling does
//     not bring those sessions back;
//   - a role or permissions change refuses every access token issued
//     before it while the sessions live on: the next refresh carries the
//     new claims;
//   - a password reset revokes every session.
//
// Demoting or disabling the last enabled admin is ErrLastAdmin.
func (s *Service) ChangeUser(ctx context.Context, id string, c UserChange, m Meta) (store.User, error) {
	if !validID(id) {
		return store.User{}, ErrNotFound
	}
	if c.Role != nil && !ValidRole(*c.Role) {
		return store.User{}, fmt.Errorf("%w: role must be %q or %q", ErrInvalidRequest, store.RoleUser, store.RoleAdmin)
	}
	var perms []string
	if c.Permissions != nil {
		var err error
		if perms, err = NormalizePermissions(*c.Permissions); err != nil {
			return store.User{}, err
		}
	}
	var hash string
	if c.Password != nil {
		if err := CheckPassword(*c.Password); err != nil {
			return store.User{}, err
		}
		if err := s.limiter.Do(ctx, func() { hash = password.Hash(*c.Password, s.cfg.HashParams) }); err != nil {
			return store.User{}, s.busy(err)
		}
	}
	// What changed is decided from the row the store has locked, never
	// from an earlier read: an enable racing a disable either both take
	// effect in turn or the second finds nothing to do, and the events
	// name the values that were really replaced.
	var old store.User
	var events []store.Event
	var roleChanged, disabling, enabling, permsChanged, cutoff bool
	var reason string // why sessions were revoked, if they were
	reset := c.Password != nil
	now := s.now()
	u, revoked, err := s.accounts.UpdateUser(ctx, id, func(cur store.User) (store.UserUpdate, error) {
		old = cur
		roleChanged = c.Role != nil && *c.Role != cur.Role
		disabling = c.Disabled != nil && *c.Disabled && !cur.Disabled
		enabling = c.Disabled != nil && !*c.Disabled && cur.Disabled
		permsChanged = c.Permissions != nil && !slices.Equal(perms, cur.Permissions)
		if !roleChanged && !disabling && !enabling && !permsChanged && !reset {
			return store.UserUpdate{}, store.ErrNoChange
		}
		up := store.UserUpdate{User: cur, Now: now}
		if c.Role != nil {
			up.User.Role = *c.Role
		}
		if c.Disabled != nil {
			up.User.Disabled = *c.Disabled
		}
		if permsChanged {
			up.User.Permissions = perms
		}
		if reset {
			up.User.PasswordHash = hash
		}
		if cutoff = roleChanged || disabling || permsChanged || reset; cutoff {
			// Recorded with the change for crash safety; the
			// authoritative cutoff is taken again after the commit
			// (see userCutoff).
			c := s.cutoffAt(now)
			up.Cutoff = &c
		}
		switch {
		case disabling:
			reason = ReasonDisabled
		case reset:
			reason = ReasonPasswordReset
		}
		up.RevokeSessions, up.Reason = reason != "", reason
		// The events name what the locked row held, and commit with
		// the change.
		up.Events = func(revoked []store.RevokedSession) []store.Event {
			events = events[:0]
			add := func(typ, detail string) { events = append(events, s.newEvent(typ, m, id, "", detail)) }
			switch {
			case disabling:
				add(EventAccountDisabled, count(len(revoked), "session")+" revoked")
			case enabling:
				add(EventAccountEnabled, "")
			}
			if roleChanged {
				add(EventRoleChanged, cur.Role+" -> "+up.User.Role)
			}
			if permsChanged {
				add(EventPermissionsChanged, strings.Join(cur.Permissions, " ")+" -> "+strings.Join(up.User.Permissions, " "))
			}
			if reset {
				add(EventPasswordReset, count(len(revoked), "session")+" revoked")
			}
			return events
		}
		return up, nil
	})
	switch {
	case errors.Is(err, store.ErrLastAdmin):
		return old, ErrLastAdmin
	case err != nil:
		return old, s.notFound(err)
	}
	if !cutoff && !enabling {
		return u, nil // nothing changed (the updater said ErrNoChange)
	}
	s.sessionsRevoked(revoked, reason, now) // none unless sessions were revoked
	if cutoff {
		if err := s.userCutoff(ctx, id); err != nil {
			return u, err
		}
	}
	s.afterRevocation(ctx)
	s.announce(ctx, events...)
	return u, nil
}

// DeleteUser deletes an account: every session and access token dies at
// once, on every instance and resource server (the revocation log carries
// the sessions and a user cutoff that outlives every token it covers); the
// sessions, with their IPs and user agents, are erased; the name is free
// for a new account, which gets a new id and inherits nothing. Security
// events keep the old id. The last enabled admin is ErrLastAdmin.
func (s *Service) DeleteUser(ctx context.Context, id string, m Meta) error {
	if !validID(id) {
		return ErrNotFound
	}
	now := s.now()
	var events []store.Event
	revoked, err := s.accounts.DeleteUser(ctx, id, s.cutoffAt(now), now, func(revoked []store.RevokedSession) []store.Event {
		events = []store.Event{s.newEvent(EventAccountDeleted, m, id, "", count(len(revoked), "session")+" revoked")}
		return events
	})
	switch {
	case errors.Is(err, store.ErrLastAdmin):
		return ErrLastAdmin
	case err != nil:
		return s.notFound(err)
	}
	s.sessionsRevoked(revoked, ReasonDeleted, now)
	if err := s.userCutoff(ctx, id); err != nil {
		return err
	}
	s.afterRevocation(ctx)
	s.announce(ctx, events...)
	return nil
}

// userCutoff refuses the user's access tokens issued before now. It is
// taken after the change it enforces has committed, so any token whose data
// was read before the change has an earlier iat (see issue).
func (s *Service) userCutoff(ctx context.Context, userID string) error {
	c := s.cutoffAt(s.now())
	s.revoked.SetUserNotBefore(userID, c.NotBefore, c.Until)
	return s.revlog.LogCutoff(ctx, store.KindUser, userID, c)
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
	return s.sessions.ListActiveSessions(ctx, userID, s.now())
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
	if !validID(id) {
		return ErrNotFound
	}
	sess, err := s.sessions.GetSession(ctx, id)
	if err != nil {
		return s.notFound(err)
	}
	return s.revokeSession(ctx, sess, ReasonAdmin, EventSessionRevoked, ReasonAdmin, m)
}

// RevokeAll is the emergency switch: every session and every access token
// issued before now is dead, the caller's included.
func (s *Service) RevokeAll(ctx context.Context, m Meta) (int, error) {
	now := s.now()
	var events []store.Event
	n, err := s.sessions.RevokeAll(ctx, s.cutoffAt(now), ReasonGlobal, now, func(n int) []store.Event {
		events = []store.Event{s.newEvent(EventGlobalRevoke, m, "", "", count(n, "session")+" revoked")}
		return events
	})
	if err != nil {
		return 0, err
	}
	s.metrics.revoked(ReasonGlobal, n)
	c := s.cutoffAt(s.now()) // after the commit, as in userCutoff
	s.revoked.SetGlobalNotBefore(c.NotBefore)
	if err := s.revlog.LogCutoff(ctx, store.KindGlobal, "", c); err != nil {
		return n, err
	}
	s.afterRevocation(ctx)
	s.announce(ctx, events...)
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
	if q.UserID != "" && !validID(q.UserID) {
		return nil, 0, nil // no such user: no events, and no hostile bytes sent to the store
	}
	if q.Type != "" && !slices.Contains(EventTypes, q.Type) {
		return nil, 0, fmt.Errorf("%w: unknown event type %q; the types are %s", ErrInvalidRequest, truncateForError(q.Type), strings.Join(EventTypes, ", "))
	}
	limit := clampLimit(q.Limit)
	list, err := s.events.ListEvents(ctx, store.EventFilter{UserID: q.UserID, Type: q.Type, BeforeSeq: q.Cursor, Limit: limit + 1})
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
