package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// sessionStore is what the session flows (login's session, refresh,
// re-authentication, logout, the session lists and revocations) need.
type sessionStore interface {
	CreateSession(ctx context.Context, s store.Session, check func(store.User) error, events ...store.Event) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	GetSessionWithUser(ctx context.Context, id string) (store.Session, store.User, error)
	RotateSession(ctx context.Context, r store.Rotation) (store.Session, error)
	ExtendAccess(ctx context.Context, sessionID string, t time.Time) error
	Reauthenticate(ctx context.Context, sessionID string, p store.Proof, accessExp time.Time, events ...store.Event) (store.Session, error)
	RevokeSession(ctx context.Context, id, reason string, now time.Time, events ...store.Event) (bool, error)
	RevokeUserSessions(ctx context.Context, userID, exceptID, reason string, now time.Time, events func([]store.RevokedSession) []store.Event) ([]store.RevokedSession, error)
	ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error)
	RevokeAll(ctx context.Context, c store.Cutoff, reason string, now time.Time, events func(int) []store.Event) (int, error)
}

// Revocation reasons recorded on the session row.
const (
	ReasonLogout          = "logout"
	ReasonReuse           = "refresh_token_reused"
	ReasonUser            = "revoked_by_user"
	ReasonAdmin           = "revoked_by_admin"
	ReasonDisabled        = "account_disabled"
	ReasonPasswordChanged = "password_changed"
	ReasonPasswordReset   = "password_reset"
	ReasonDeleted         = "account_deleted"
	ReasonGlobal          = "global_revoke"
	ReasonSessionLimit    = "session_limit_evicted"
	ReasonMFARemoved      = "mfa_removed"
	ReasonMFAReset        = "mfa_reset"
	ReasonIPChanged       = "ip_changed"
)

// Refresh rotates a refresh token (API.md "Refresh rotation and theft
// detection"):
//   - the current generation rotates with one compare-and-swap write;
//   - the previous generation within the grace window gets the current token
//     again (racing tabs converge on one chain);
//   - any other earlier generation is reuse: the session is revoked with all
//     its access tokens and a refresh_token_reused event is recorded.
func (s *Service) Refresh(ctx context.Context, tok string, m Meta) (Tokens, error) {
	t, grace, err := s.refreshSession(ctx, tok, m)
	s.metrics.refresh(grace, err)
	return t, err
}

// refreshSession is Refresh; grace reports a retry answered inside the
// grace window (for metrics).
func (s *Service) refreshSession(ctx context.Context, tok string, m Meta) (_ Tokens, grace bool, _ error) {
	m = m.clean()
	r, err := token.ParseRefresh(tok)
	if err != nil {
		return Tokens{}, false, ErrInvalidRefreshToken
	}
	if t, done, err := s.fastRefresh(ctx, r, m); done {
		return t, false, err
	}
	for attempt := 0; ; attempt++ {
		now := s.now() // before the read: the iat of what we issue from it
		sess, u, err := s.sessions.GetSessionWithUser(ctx, r.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			// No session (never, or deleted with its account): nothing
			// tells a deleted session from a forged id.
			return Tokens{}, false, ErrInvalidRefreshToken
		} else if err != nil {
			return Tokens{}, false, err
		}
		// Nothing about the session is acted on, or revealed, before the
		// MAC checks out: a session id alone can neither refresh nor revoke.
		if !s.refresh.Verify(r, sess.Nonce) || r.Generation > sess.Generation {
			return Tokens{}, false, ErrInvalidRefreshToken
		}
		s.rememberSession(sess)
		if u.Disabled {
			return Tokens{}, false, ErrAccountDisabled
		}
		if sess.Revoked() {
			return Tokens{}, false, ErrSessionRevoked
		}
		if s.stale(u.ID, now) && attempt < 3 {
			continue // a cutoff landed after our read: read the account again
		}
		if !now.Before(sess.ExpiresAt) || !now.Before(sess.IdleExpiresAt) {
			return Tokens{}, false, ErrSessionExpired
		}
		// A dead session says so first (a browser that lost its key with
		// the session is not a theft); a live one needs its key's proof
		// before anything changes: no rotation, no reuse verdict.
		if sess.DPoPJKT != m.DPoP && sess.DPoPJKT != "" {
			return Tokens{}, false, s.dpopMismatch(ctx, sess.UserID, sess.ID, m)
		}
		// A new address is recorded with what this refresh commits: the
		// rotation, the grace answer or the revocation.
		moved := s.ipChanged(sess, m)
		if len(moved) > 0 && s.cfg.IPPolicy == IPPolicyRevoke {
			if err := s.revokeSession(ctx, sess, ReasonIPChanged, EventSessionRevoked, ReasonIPChanged, m, moved...); err != nil {
				return Tokens{}, false, err
			}
			return Tokens{}, false, ErrSessionRevoked
		}
		switch {
		case r.Generation == sess.Generation:
			next, err := s.sessions.RotateSession(ctx, store.Rotation{
				SessionID:       sess.ID,
				FromGeneration:  sess.Generation,
				Now:             now,
				IdleExpiresAt:   minTime(now.Add(s.cfg.RefreshIdleTTL), sess.ExpiresAt),
				AccessExpiresAt: s.accessExpiry(now, sess),
				IP:              m.IP,
				UserAgent:       m.UserAgent,
				Events:          moved,
			})
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue // lost the race: re-read and take the grace path
			}
			if errors.Is(err, store.ErrNotFound) {
				return Tokens{}, false, ErrSessionRevoked // deleted with its account meanwhile
			}
			if err != nil {
				return Tokens{}, false, err
			}
			s.announce(ctx, moved...)
			t, err := s.issue(now, u, next)
			return t, false, err
		case r.Generation == sess.Generation-1 && s.cfg.ReuseGrace > 0 && now.Sub(sess.RotatedAt) <= s.cfg.ReuseGrace:
			// The access token issued here must be covered by a
			// revocation of the session, however late it comes.
			err := s.sessions.ExtendAccess(ctx, sess.ID, s.accessExpiry(now, sess))
			if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				return Tokens{}, false, ErrSessionRevoked // revoked since we read it
			}
			if err != nil {
				return Tokens{}, false, err
			}
			for _, e := range moved {
				// A retry that changes nothing but the access expiry: the
				// address is an observation, recorded on its own.
				s.record(ctx, e)
			}
			t, err := s.issue(now, u, sess)
			return t, true, err
		default:
			if err := s.revokeSession(ctx, sess, ReasonReuse, EventRefreshTokenReused,
				reuseDetail(sess.Generation-r.Generation), m, moved...); err != nil {
				return Tokens{}, false, err
			}
			return Tokens{}, false, ErrRefreshTokenReused
		}
	}
}

// reuseDetail says in plain words what reuse was seen: a refresh token
// that had already been exchanged, behind by n.
func reuseDetail(behind int64) string {
	if behind == 1 {
		return "a sign-in token was used again after it had been exchanged for a new one"
	}
	return fmt.Sprintf("a sign-in token was used again, %d exchanges after it was replaced", behind)
}

// dpopMismatch refuses the refresh of a DPoP-bound session that came
// without a proof by its key: the refresh token is in someone else's hands
// (or the client lost its key). Nothing rotates and nothing is revoked: a
// thief who cannot use the token must not be able to end the victim's
// session with it either. The event is aggregated (refused.go): a thief
// retrying cannot flood the audit log.
func (s *Service) dpopMismatch(ctx context.Context, userID, sessionID string, m Meta) error {
	detail := "refresh token presented without a DPoP proof"
	if m.DPoP != "" {
		detail = "refresh token presented with another key's DPoP proof"
	}
	s.event(ctx, EventDPoPMismatch, m, userID, sessionID, detail)
	return ErrDPoPMismatch
}

// fastRefresh is the common refresh in one database round trip, for stores
// that offer it: the MAC is checked against the cached session nonce, then
// one conditional statement rotates a live, unexpired session of an enabled
// user at exactly this generation, last used from this address. Anything
// else (a retry inside the grace window, reuse, expiry, a ban, an unknown
// session, a new address to record) makes the statement match nothing, and
// the full path decides. done reports whether the fast path answered.
func (s *Service) fastRefresh(ctx context.Context, r token.Refresh, m Meta) (t Tokens, done bool, err error) {
	if s.fast == nil {
		return Tokens{}, false, nil
	}
	c, ok := s.nonces.get(r.SessionID)
	if !ok {
		return Tokens{}, false, nil
	}
	if !s.refresh.Verify(r, c.nonce) {
		return Tokens{}, true, ErrInvalidRefreshToken // the nonce never changes: final
	}
	if c.jkt != m.DPoP && c.jkt != "" {
		return Tokens{}, false, nil // the full path tells a dead session from a stolen token
	}
	now := s.now()
	if s.stale(c.userID, now) {
		return Tokens{}, false, nil
	}
	next, u, err := s.fast.RotateIfCurrent(ctx, store.Rotation{
		SessionID:       r.SessionID,
		FromGeneration:  r.Generation,
		Now:             now,
		IdleExpiresAt:   now.Add(s.cfg.RefreshIdleTTL),
		AccessExpiresAt: accessExpiry(now.Add(s.cfg.AccessTTL)),
		IP:              m.IP,
		UserAgent:       m.UserAgent,
	})
	if errors.Is(err, store.ErrConflict) {
		return Tokens{}, false, nil
	}
	if err != nil {
		return Tokens{}, true, err
	}
	t, err = s.issue(now, u, next)
	return t, true, err
}

// ipChanged is the ip_changed event of a refresh of sess from m.IP, or none
// when the address is the one the session was last used from (or either is
// unknown).
func (s *Service) ipChanged(sess store.Session, m Meta) []store.Event {
	if m.IP == "" || sess.IP == "" || m.IP == sess.IP {
		return nil
	}
	return []store.Event{s.newEvent(EventIPChanged, m, sess.UserID, sess.ID, "previous IP "+sess.IP)}
}

// revokeSession revokes one session in the store and in memory with the
// events that record it: first, the events that led to it, then eventType
// with detail (none if eventType is empty). They commit with the
// revocation, if this call is the one that revoked the session.
func (s *Service) revokeSession(ctx context.Context, sess store.Session, reason, eventType, detail string, m Meta, first ...store.Event) error {
	now := s.now()
	events := first
	if eventType != "" {
		events = append(events, s.newEvent(eventType, m, sess.UserID, sess.ID, detail))
	}
	// Memory first: from here on no access token of the session passes,
	// even if the write below fails (the caller then sees an error and
	// can retry).
	s.forgetSessions([]store.RevokedSession{{SessionID: sess.ID, Until: sess.AccessExpiresAt}}, now)
	changed, err := s.sessions.RevokeSession(ctx, sess.ID, reason, now, events...)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted with its account: nothing left to revoke
	}
	if err != nil {
		return err
	}
	if changed {
		s.metrics.revoked(reason, 1)
	}
	s.afterRevocation(ctx)
	if changed {
		s.announce(ctx, events...)
	}
	return nil
}

// sessionsRevoked takes sessions the store has just revoked for reason into
// the in-memory list and the metrics.
func (s *Service) sessionsRevoked(list []store.RevokedSession, reason string, now time.Time) {
	s.forgetSessions(list, now)
	s.metrics.revoked(reason, len(list))
}

// committedRevocations is what follows a change that revoked sessions in
// its transaction: the in-memory list and metrics, the log synced (other
// instances and this one's sockets), then its events announced.
func (s *Service) committedRevocations(ctx context.Context, revoked []store.RevokedSession, reason string, now time.Time, events ...store.Event) {
	s.sessionsRevoked(revoked, reason, now)
	s.afterRevocation(ctx)
	s.announce(ctx, events...)
}

// forgetSessions puts sessions the store revoked into the in-memory list.
func (s *Service) forgetSessions(list []store.RevokedSession, now time.Time) {
	for _, r := range list {
		s.revoked.AddSession(r.SessionID, maxTime(r.Until, now.Add(s.cfg.AccessTTL)))
	}
}

// Logout revokes the session identified by a refresh token or, failing
// that, by an access token (even an expired one: ending a session is always
// allowed to its holder). Anything unrecognised is ignored: logout is
// idempotent and reveals nothing.
func (s *Service) Logout(ctx context.Context, refreshTok, accessTok string, m Meta) error {
	if refreshTok != "" {
		if r, err := token.ParseRefresh(refreshTok); err == nil {
			sess, err := s.sessions.GetSession(ctx, r.SessionID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil && s.refresh.Verify(r, sess.Nonce) && r.Generation <= sess.Generation {
				return s.revokeSession(ctx, sess, ReasonLogout, EventSessionRevoked, ReasonLogout, m)
			}
		}
	}
	if accessTok != "" {
		c, err := s.keys.Verify(accessTok, s.cfg.Issuer, s.cfg.Now())
		if err == nil || errors.Is(err, token.ErrExpired) {
			sess, err := s.sessions.GetSession(ctx, c.SessionID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return s.revokeSession(ctx, sess, ReasonLogout, EventSessionRevoked, ReasonLogout, m)
		}
	}
	return nil
}

// Me returns the caller's account and session, from its snapshot while
// that is current (snapshots.go), else from the store. The caller has
// authenticated p against the revocation state on this request. The
// returned slices are shared with the snapshot: read them, never modify.
func (s *Service) Me(ctx context.Context, p Principal) (store.User, store.Session, error) {
	snap, ok := s.snaps.get(p.SessionID)
	if !ok {
		gen, at := s.snaps.begin()
		sess, u, err := s.sessions.GetSessionWithUser(ctx, p.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			return u, sess, ErrTokenRevoked // deleted with its account
		}
		if err != nil {
			return u, sess, err
		}
		snap = snapshot{sess: sess, user: u, gen: gen, at: at}
		s.snaps.put(snap)
	}
	if snap.sess.Revoked() || snap.sess.UserID != p.UserID {
		return snap.user, snap.sess, ErrTokenRevoked
	}
	return snap.user, snap.sess, nil
}

// ListSessions returns the caller's active sessions, newest first.
func (s *Service) ListSessions(ctx context.Context, p Principal) ([]store.Session, error) {
	return s.sessions.ListActiveSessions(ctx, p.UserID, s.now())
}

// RevokeOwnSession revokes one of the caller's sessions. Sessions of other
// users are ErrNotFound, never forbidden: their existence is not revealed.
func (s *Service) RevokeOwnSession(ctx context.Context, p Principal, id string, m Meta) error {
	if !validID(id) {
		return ErrNotFound
	}
	sess, err := s.sessions.GetSession(ctx, id)
	if err != nil {
		return s.notFound(err)
	}
	if sess.UserID != p.UserID {
		return ErrNotFound
	}
	return s.revokeSession(ctx, sess, ReasonUser, EventSessionRevoked, ReasonUser, m)
}

// RevokeOwnSessions revokes the caller's other sessions, or all of them
// including the current one.
func (s *Service) RevokeOwnSessions(ctx context.Context, p Principal, includeCurrent bool, m Meta) error {
	except := p.SessionID
	if includeCurrent {
		except = ""
	}
	_, err := s.revokeUserSessions(ctx, p.UserID, except, ReasonUser, m)
	return err
}

func (s *Service) revokeUserSessions(ctx context.Context, userID, except, reason string, m Meta) (int, error) {
	now := s.now()
	var events []store.Event
	list, err := s.sessions.RevokeUserSessions(ctx, userID, except, reason, now, func(revoked []store.RevokedSession) []store.Event {
		events = nil
		if len(revoked) > 0 {
			events = []store.Event{s.newEvent(EventSessionsRevoked, m, userID, "", fmt.Sprintf("%d sessions, %s", len(revoked), reason))}
		}
		return events
	})
	if err != nil {
		return 0, err
	}
	s.sessionsRevoked(list, reason, now)
	s.afterRevocation(ctx)
	s.announce(ctx, events...)
	return len(list), nil
}
