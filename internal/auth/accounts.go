package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// accountStore is what the account flows (register, login, password
// change, the operator's changes) need of the store.
type accountStore interface {
	CreateUser(ctx context.Context, u store.User) error
	GetUserByID(ctx context.Context, id string) (store.User, error)
	GetUserByUsername(ctx context.Context, key string) (store.User, error)
	ListUsers(ctx context.Context, afterKey, contains string, limit int) ([]store.User, error)
	UpdateUser(ctx context.Context, id string, update func(old store.User) (store.UserUpdate, error)) (store.User, []store.RevokedSession, error)
	DeleteUser(ctx context.Context, id string, c store.Cutoff, now time.Time, events func([]store.RevokedSession) []store.Event) ([]store.RevokedSession, error)
}

// CheckPassword enforces the length policy.
func CheckPassword(pw string) error {
	if len(pw) > password.MaxLength || utf8.RuneCountInString(pw) < password.MinLength || !utf8.ValidString(pw) {
		return fmt.Errorf("%w: between %d characters and %d bytes", ErrWeakPassword, password.MinLength, password.MaxLength)
	}
	return nil
}

// ValidRole reports whether role is one Gatehouse knows.
func ValidRole(role string) bool { return role == store.RoleUser || role == store.RoleAdmin }

// Register creates an account with role user through the public endpoint.
func (s *Service) Register(ctx context.Context, username, pw string, m Meta) (store.User, error) {
	if !s.cfg.RegistrationOpen {
		return store.User{}, ErrRegistrationDisabled
	}
	return s.CreateUser(ctx, username, pw, store.RoleUser)
}

// CreateUser creates an account with the given role (admin API, CLI,
// bootstrap).
func (s *Service) CreateUser(ctx context.Context, username, pw, role string) (store.User, error) {
	key, err := PrepareUsername(username)
	if err != nil {
		return store.User{}, err
	}
	if !ValidRole(role) {
		return store.User{}, fmt.Errorf("%w: role must be %q or %q", ErrInvalidRequest, store.RoleUser, store.RoleAdmin)
	}
	if err := CheckPassword(pw); err != nil {
		return store.User{}, err
	}
	if _, err := s.accounts.GetUserByUsername(ctx, key); err == nil {
		return store.User{}, ErrUsernameTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	var hash string
	if err := s.limiter.Do(ctx, func() { hash = password.Hash(pw, s.cfg.HashParams) }); err != nil {
		return store.User{}, s.busy(err)
	}
	u := store.User{ID: newID(), Username: username, UsernameKey: key, PasswordHash: hash, Role: role,
		Permissions: []string{}, CreatedAt: s.now()}
	if err := s.accounts.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return store.User{}, ErrUsernameTaken
		}
		return store.User{}, err
	}
	return u, nil
}

// EnsureUser creates the account if no user has that name; an existing
// account is left untouched. It reports whether it created one.
func (s *Service) EnsureUser(ctx context.Context, username, pw, role string) (bool, error) {
	_, err := s.CreateUser(ctx, username, pw, role)
	if errors.Is(err, ErrUsernameTaken) {
		return false, nil
	}
	return err == nil, err
}

func (s *Service) busy(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return &RateLimitError{RetryAfter: time.Second}
	}
	return err
}

// checkPassword runs one argon2id verification under the hashing limiter
// and the login throttle. account is the throttle key (the lower-cased
// username); u is nil for an unknown user, who is checked against the dummy
// hash so both cost the same.
func (s *Service) checkPassword(ctx context.Context, account string, u *store.User, pw string, m Meta) error {
	attempt, err := s.throttle.Allow(ctx, account, m.IP, s.now())
	if err != nil {
		return err
	}
	if attempt.Wait > 0 {
		userID := ""
		if u != nil {
			userID = u.ID
		}
		s.metrics.rateLimited.WithLabelValues(attempt.Limit).Inc()
		s.event(ctx, EventRateLimited, m, userID, "", "login attempts throttled ("+attempt.Limit+")")
		return &RateLimitError{RetryAfter: attempt.Wait}
	}
	hash := s.dummyHash
	if u != nil {
		hash = u.PasswordHash
	}
	var verr error
	if err := s.limiter.Do(ctx, func() { verr = password.Verify(pw, hash) }); err != nil {
		if errors.Is(err, password.ErrBusy) {
			s.metrics.rateLimited.WithLabelValues(limitHashQueue).Inc()
			s.event(ctx, EventRateLimited, m, "", "", "password hashing queue full")
		}
		// Never judged: the reservation counts neither way.
		if rerr := s.throttle.Release(context.WithoutCancel(ctx), attempt); rerr != nil {
			s.log.Warn("login throttle: releasing an attempt", slog.Any("err", rerr))
		}
		return s.busy(err)
	}
	if u == nil || verr != nil {
		return ErrInvalidCredentials // counted when it was reserved
	}
	if err := s.throttle.Success(ctx, attempt, s.now()); err != nil {
		// The password was right: let the owner in; the reserved
		// failure only delays them after their next mistake.
		s.log.Warn("login throttle: recording a success", slog.Any("err", err))
	}
	return nil
}

// Login checks credentials and opens a session. Unknown users and wrong
// passwords take one hash each and get the same error; a disabled account is
// only revealed to someone who knows its password.
func (s *Service) Login(ctx context.Context, username, pw string, m Meta) (Tokens, error) {
	t, err := s.login(ctx, username, pw, m)
	s.metrics.login(err)
	return t, err
}

func (s *Service) login(ctx context.Context, username, pw string, m Meta) (Tokens, error) {
	if len(pw) > password.MaxLength || len(username) > 256 {
		return Tokens{}, ErrInvalidCredentials
	}
	m = m.clean()
	var u *store.User
	var found store.User
	account, err := PrepareUsername(username)
	if err != nil {
		// No such account can exist: spend the dummy hash like any miss,
		// throttled under a key the bad name cannot turn into an error.
		account = cleanText(strings.ToLower(username), 256)
	} else {
		found, err = s.accounts.GetUserByUsername(ctx, account)
		switch {
		case err == nil:
			u = &found
		case !errors.Is(err, store.ErrNotFound):
			return Tokens{}, err
		}
	}
	if err := s.checkPassword(ctx, account, u, pw, m); err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			// The attempted username is not recorded: people type
			// passwords into username fields.
			s.event(ctx, EventLoginFailed, m, found.ID, "", "")
		}
		return Tokens{}, err
	}
	t, err := s.openSession(ctx, found, proof(s.now(), AMRPassword), m, true)
	if errors.Is(err, errSecondFactorNeeded) {
		return Tokens{}, s.mfaChallenge(ctx, found)
	}
	return t, err
}

// errSecondFactorNeeded, from openSession, means the account has an active
// second factor and the proof has none: no session is opened.
var errSecondFactorNeeded = errors.New("second factor needed")

// openSession opens a session for found with proof. The session commits
// only if the password that was verified is still the account's and the
// account still enabled: a reset, a ban or a deletion that landed during
// the (slow) hash wins over this login. With needMFA, an account that has
// an active second factor when the row commits gets no session
// (errSecondFactorNeeded). The row the store locked is also what the token
// carries (a role change made meanwhile shows).
func (s *Service) openSession(ctx context.Context, found store.User, pf store.Proof, m Meta, needMFA bool) (Tokens, error) {
	now := s.now()
	sess := store.Session{
		ID:         newID(),
		UserID:     found.ID,
		Nonce:      randomBytes(32),
		Generation: 1,
		RotatedAt:  now,
		CreatedAt:  now,
		LastUsedAt: now,
		ExpiresAt:  now.Add(s.cfg.SessionMaxAge),
		AuthTime:   now,
		AMR:        pf.AMR,
		ACR:        pf.ACR,
		DPoPJKT:    m.DPoP,
		IP:         m.IP,
		UserAgent:  m.UserAgent,
	}
	sess.IdleExpiresAt = minTime(now.Add(s.cfg.RefreshIdleTTL), sess.ExpiresAt)
	sess.AccessExpiresAt = s.accessExpiry(now, sess)
	novelty := s.loginNovelty(ctx, found.ID, m)
	var cur store.User
	succeeded := s.newEvent(EventLoginSucceeded, m, found.ID, sess.ID, novelty)
	err := s.sessions.CreateSession(ctx, sess, func(u store.User) error {
		cur = u
		switch {
		case u.PasswordHash != found.PasswordHash:
			return ErrInvalidCredentials
		case u.Disabled:
			return ErrAccountDisabled
		case needMFA && u.MFA:
			return errSecondFactorNeeded
		}
		return nil
	}, succeeded)
	switch {
	case errors.Is(err, errSecondFactorNeeded):
		return Tokens{}, err
	case errors.Is(err, ErrAccountDisabled):
		s.event(ctx, EventLoginFailed, m, found.ID, "", "account disabled")
		return Tokens{}, err
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, store.ErrNotFound):
		// The credential was replaced or the account deleted while
		// the password was being checked.
		s.event(ctx, EventLoginFailed, m, found.ID, "", "credential changed during login")
		return Tokens{}, ErrInvalidCredentials
	case err != nil:
		return Tokens{}, err
	}
	s.rememberSession(sess)
	s.announce(ctx, succeeded)
	if err := s.enforceSessionLimit(ctx, cur.ID, sess.ID, m); err != nil {
		return Tokens{}, err
	}
	return s.issue(now, cur, sess)
}

// enforceSessionLimit evicts the user's least recently used sessions beyond
// the limit, never the one just opened.
func (s *Service) enforceSessionLimit(ctx context.Context, userID, keep string, m Meta) error {
	limit := s.cfg.MaxSessionsPerUser
	if limit < 0 {
		return nil
	}
	list, err := s.sessions.ListActiveSessions(ctx, userID, s.now())
	if err != nil || len(list) <= limit {
		return err
	}
	slices.SortFunc(list, func(a, b store.Session) int {
		if c := a.LastUsedAt.Compare(b.LastUsedAt); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	excess := len(list) - limit
	for _, x := range list {
		if excess == 0 {
			break
		}
		if x.ID == keep {
			continue
		}
		if err := s.revokeSession(ctx, x, ReasonSessionLimit, EventSessionLimit, ReasonSessionLimit, m); err != nil {
			return err
		}
		excess--
	}
	return nil
}

// ChangePassword sets a new password after checking the current one, and
// revokes every other session of the user: whoever stole one of them is out.
// The session making the change stays.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string, m Meta) error {
	u, err := s.accounts.GetUserByID(ctx, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrTokenRevoked // the caller's account is gone
	} else if err != nil {
		return err
	}
	if len(current) > password.MaxLength {
		return ErrInvalidCredentials
	}
	if err := s.checkPassword(ctx, u.Key(), &u, current, m); err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			s.event(ctx, EventLoginFailed, m, u.ID, p.SessionID, "password change: wrong current password")
		}
		return err
	}
	if err := CheckPassword(next); err != nil {
		return err
	}
	var hash string
	if err := s.limiter.Do(ctx, func() { hash = password.Hash(next, s.cfg.HashParams) }); err != nil {
		return s.busy(err)
	}
	now := s.now()
	var changed store.Event
	_, revoked, err := s.accounts.UpdateUser(ctx, u.ID, func(cur store.User) (store.UserUpdate, error) {
		if cur.PasswordHash != u.PasswordHash {
			// Reset by an admin (or changed in another session) while
			// the current password was being checked: what was proven
			// is no longer the credential.
			return store.UserUpdate{}, ErrInvalidCredentials
		}
		cur.PasswordHash = hash
		return store.UserUpdate{User: cur, RevokeSessions: true, ExceptSession: p.SessionID,
			Reason: ReasonPasswordChanged, Now: now, Events: func(revoked []store.RevokedSession) []store.Event {
				changed = s.newEvent(EventPasswordChanged, m, u.ID, p.SessionID, count(len(revoked), "other session")+" revoked")
				return []store.Event{changed}
			}}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrTokenRevoked // deleted during the hash
	} else if err != nil {
		return err
	}
	s.committedRevocations(ctx, revoked, ReasonPasswordChanged, now, changed)
	return nil
}

// ReauthInput is what a re-authentication proves: the password, a second
// factor's code, both, or a WebAuthn assertion.
type ReauthInput struct {
	Password string
	Code     string
	// WebAuthn is the assertion (PublicKeyCredential JSON) answering a
	// challenge from ReauthWebAuthnOptions.
	WebAuthn []byte
	// OneTime asks for a one-time elevation instead of renewing the
	// session's proof (Gatehouse-Elevation: one-time).
	OneTime bool
}

// Reauthenticate is the step-up (RFC 9470): a new proof for the caller's
// own session. It records the proof in the session (auth_time, amr, acr)
// and returns new tokens for the same session; the refresh token is not
// rotated (the session's current one is returned). Wrong passwords and
// codes count toward the login throttle like failed logins.
//
// A password alone is aal1. A second factor alone keeps the level the
// session has (NIST SP 800-63B §7.2: re-authenticating an AAL2 session
// takes one factor, the session itself being the other), so it renews an
// aal2 session but never lifts an aal1 one. With in.OneTime the session's
// proof is left as it was and a single-use elevation token is returned
// instead (see UseElevation).
func (s *Service) Reauthenticate(ctx context.Context, p Principal, in ReauthInput, m Meta) (Tokens, string, error) {
	m = m.clean()
	switch {
	case in.Password == "" && in.Code == "" && in.WebAuthn == nil:
		return Tokens{}, "", fmt.Errorf("%w: send the password, a code, both, or a WebAuthn assertion", ErrInvalidRequest)
	case in.WebAuthn != nil && (in.Password != "" || in.Code != ""):
		return Tokens{}, "", fmt.Errorf("%w: a WebAuthn assertion is sent alone", ErrInvalidRequest)
	case len(in.Password) > password.MaxLength:
		return Tokens{}, "", ErrInvalidCredentials
	}
	sess, u, err := s.sessions.GetSessionWithUser(ctx, p.SessionID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Tokens{}, "", ErrSessionRevoked
		}
		return Tokens{}, "", err
	}
	if sess.Revoked() || sess.UserID != p.UserID {
		return Tokens{}, "", ErrSessionRevoked
	}
	var methods []string
	if in.Password != "" {
		if err := s.checkPassword(ctx, u.Key(), &u, in.Password, m); err != nil {
			if errors.Is(err, ErrInvalidCredentials) {
				s.event(ctx, EventLoginFailed, m, u.ID, sess.ID, "re-authentication: wrong password")
			}
			return Tokens{}, "", err
		}
		methods = append(methods, AMRPassword)
	}
	if u.Disabled {
		return Tokens{}, "", ErrAccountDisabled
	}
	if in.Code != "" || in.WebAuthn != nil {
		second, err := s.proveSecondFactor(ctx, u, sess.ID, in.Code, in.WebAuthn, webauthnReauth, nil, m)
		if err != nil {
			return Tokens{}, "", err
		}
		methods = append(methods, second...)
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) || !now.Before(sess.IdleExpiresAt) {
		return Tokens{}, "", ErrSessionExpired
	}
	pf := proof(now, methods...)
	if in.Password == "" && sessionACR(sess) == ACR2 {
		pf.ACR = ACR2 // one factor renews an aal2 session (see above)
	}
	// Read the account again after the (slow) hash: a role change made
	// meanwhile must show in the token. (A ban or reset revoked the
	// session, which the update below refuses.)
	if u, err = s.accounts.GetUserByID(ctx, u.ID); errors.Is(err, store.ErrNotFound) {
		return Tokens{}, "", ErrSessionRevoked // deleted meanwhile
	} else if err != nil {
		return Tokens{}, "", err
	}
	if in.OneTime {
		return s.elevate(ctx, u, sess, pf, m)
	}
	reauthenticated := s.newEvent(EventReauthenticated, m, u.ID, sess.ID, strings.Join(pf.AMR, " "))
	sess, err = s.sessions.Reauthenticate(ctx, sess.ID, pf, s.accessExpiry(now, sess), reauthenticated)
	switch {
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		return Tokens{}, "", ErrSessionRevoked
	case err != nil:
		return Tokens{}, "", err
	}
	s.announce(ctx, reauthenticated)
	t, err := s.issue(now, u, sess)
	return t, "", err
}
