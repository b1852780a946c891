// Package auth is Gatehouse's domain: accounts, login, sessions, refresh
// rotation with reuse detection, revocation and security events. It knows no
// HTTP and no SQL: it talks to a store.Store, signs with a token.KeySet and
// reads time from an injected clock, so every timeout and grace window can be
// tested without sleeping.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Config is the domain's configuration. Zero durations take the defaults.
type Config struct {
	Issuer           string
	AccessTTL        time.Duration // default 5m
	RefreshIdleTTL   time.Duration // default 14 days
	SessionMaxAge    time.Duration // default 90 days
	ReuseGrace       time.Duration // default 10s; negative disables the grace window
	RegistrationOpen bool
	// HashParams defaults to password.Default. Tests lower it.
	HashParams password.Params
	// HashConcurrency caps argon2id work running at once (default 2×CPUs
	// is chosen by the caller); HashQueue bounds waiting logins.
	HashConcurrency int
	HashQueue       int
	Now             func() time.Time
	Logger          *slog.Logger
}

// Defaults.
const (
	DefaultAccessTTL      = 5 * time.Minute
	DefaultRefreshIdleTTL = 14 * 24 * time.Hour
	DefaultSessionMaxAge  = 90 * 24 * time.Hour
	DefaultReuseGrace     = 10 * time.Second
)

// Service implements the domain operations.
type Service struct {
	cfg       Config
	store     store.Store
	keys      *token.KeySet
	refresh   *token.RefreshCodec
	revoked   *Revocations
	limiter   *password.Limiter
	dummyHash string
	log       *slog.Logger
}

// Meta is what the transport knows about the caller.
type Meta struct {
	IP        string
	UserAgent string
}

// Principal is a verified access token.
type Principal struct {
	UserID    string
	SessionID string
	Role      string
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Tokens is the result of a login or a refresh.
type Tokens struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	Session          store.Session
	User             store.User
	IssuedAt         time.Time
}

// New builds a Service. keys signs access tokens; refreshKey MACs refresh
// tokens (derive both from the master secret).
func New(cfg Config, st store.Store, keys *token.KeySet, refreshKey []byte) *Service {
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshIdleTTL <= 0 {
		cfg.RefreshIdleTTL = DefaultRefreshIdleTTL
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	if cfg.ReuseGrace == 0 {
		cfg.ReuseGrace = DefaultReuseGrace
	}
	if cfg.HashParams == (password.Params{}) {
		cfg.HashParams = password.Default
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = 2
	}
	if cfg.HashQueue <= 0 {
		cfg.HashQueue = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		cfg:     cfg,
		store:   st,
		keys:    keys,
		refresh: token.NewRefreshCodec(refreshKey),
		revoked: NewRevocations(),
		limiter: password.NewLimiter(cfg.HashConcurrency, cfg.HashQueue),
		// Verified against for unknown users, so a miss costs one hash too.
		dummyHash: password.Hash("gatehouse-dummy-password", cfg.HashParams),
		log:       cfg.Logger,
	}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Keys returns the signing key set (for the JWKS).
func (s *Service) Keys() *token.KeySet { return s.keys }

// Revocations exposes the in-memory list (metrics, tests).
func (s *Service) Revocations() *Revocations { return s.revoked }

// LoadRevocations fills the in-memory list from the store. Call before
// serving: no access token may be accepted before its revocation is known.
func (s *Service) LoadRevocations(ctx context.Context) error {
	list, err := s.store.ListRevokedSessions(ctx, s.cfg.Now())
	if err != nil {
		return fmt.Errorf("load revocations: %w", err)
	}
	for _, r := range list {
		s.revoked.AddSession(r.SessionID, r.Until)
	}
	return nil
}

// Run prunes the revocation list until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.revoked.Prune(s.cfg.Now())
		}
	}
}

// Ping checks the store.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$`)

// CheckPassword enforces the length policy.
func CheckPassword(pw string) error {
	if len(pw) > password.MaxLength || utf8.RuneCountInString(pw) < password.MinLength || !utf8.ValidString(pw) {
		return fmt.Errorf("%w: between %d characters and %d bytes", ErrWeakPassword, password.MinLength, password.MaxLength)
	}
	return nil
}

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
	if !usernameRE.MatchString(username) {
		return store.User{}, fmt.Errorf("%w: username must be 3-64 letters, digits or . _ @ -, starting with a letter or digit", ErrInvalidRequest)
	}
	if role != store.RoleUser && role != store.RoleAdmin {
		return store.User{}, fmt.Errorf("%w: role must be %q or %q", ErrInvalidRequest, store.RoleUser, store.RoleAdmin)
	}
	if err := CheckPassword(pw); err != nil {
		return store.User{}, err
	}
	if _, err := s.store.GetUserByUsername(ctx, username); err == nil {
		return store.User{}, ErrUsernameTaken
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	var hash string
	if err := s.limiter.Do(ctx, func() { hash = password.Hash(pw, s.cfg.HashParams) }); err != nil {
		return store.User{}, s.busy(err)
	}
	u := store.User{ID: newID(), Username: username, PasswordHash: hash, Role: role, CreatedAt: s.now()}
	if err := s.store.CreateUser(ctx, u); err != nil {
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
		return ErrRateLimited
	}
	return err
}

// Login checks credentials and opens a session. Unknown users and wrong
// passwords take one hash each and get the same error; a disabled account is
// only revealed to someone who knows its password.
func (s *Service) Login(ctx context.Context, username, pw string, m Meta) (Tokens, error) {
	if len(pw) > password.MaxLength || len(username) > 256 {
		return Tokens{}, ErrInvalidCredentials
	}
	u, err := s.store.GetUserByUsername(ctx, username)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Tokens{}, err
	}
	hash := s.dummyHash
	if found {
		hash = u.PasswordHash
	}
	var verr error
	if err := s.limiter.Do(ctx, func() { verr = password.Verify(pw, hash) }); err != nil {
		if errors.Is(err, password.ErrBusy) {
			s.event(ctx, EventRateLimited, m, "", "", "password hashing queue full")
		}
		return Tokens{}, s.busy(err)
	}
	if !found || verr != nil {
		// The attempted username is not recorded: people type passwords
		// into username fields.
		s.event(ctx, EventLoginFailed, m, u.ID, "", "")
		return Tokens{}, ErrInvalidCredentials
	}
	if u.Disabled {
		s.event(ctx, EventLoginFailed, m, u.ID, "", "account disabled")
		return Tokens{}, ErrAccountDisabled
	}
	now := s.now()
	sess := store.Session{
		ID:         newID(),
		UserID:     u.ID,
		Nonce:      randomBytes(32),
		Generation: 1,
		RotatedAt:  now,
		CreatedAt:  now,
		LastUsedAt: now,
		ExpiresAt:  now.Add(s.cfg.SessionMaxAge),
		IP:         m.IP,
		UserAgent:  m.UserAgent,
	}
	sess.IdleExpiresAt = minTime(now.Add(s.cfg.RefreshIdleTTL), sess.ExpiresAt)
	sess.AccessExpiresAt = s.accessExpiry(now, sess)
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return Tokens{}, err
	}
	s.event(ctx, EventLoginSucceeded, m, u.ID, sess.ID, "")
	return s.issue(now, u, sess)
}

// accessExpiry never lets an access token outlive its session.
func (s *Service) accessExpiry(now time.Time, sess store.Session) time.Time {
	return minTime(now.Add(s.cfg.AccessTTL), sess.ExpiresAt).Truncate(time.Second)
}

// issue signs an access token and computes the session's current refresh
// token.
func (s *Service) issue(now time.Time, u store.User, sess store.Session) (Tokens, error) {
	exp := s.accessExpiry(now, sess)
	at, err := s.keys.Sign(token.Claims{
		Issuer:    s.cfg.Issuer,
		Subject:   u.ID,
		SessionID: sess.ID,
		ID:        newID(),
		IssuedAt:  token.NumericDate{Time: now.Truncate(time.Microsecond)},
		ExpiresAt: token.NumericDate{Time: exp},
		Role:      u.Role,
	})
	if err != nil {
		return Tokens{}, err
	}
	rt, err := s.refresh.Make(sess.ID, sess.Generation, sess.Nonce)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{
		AccessToken: at, AccessExpiresAt: exp,
		RefreshToken: rt, RefreshExpiresAt: minTime(sess.IdleExpiresAt, sess.ExpiresAt),
		Session: sess, User: u, IssuedAt: now,
	}, nil
}

// Refresh rotates a refresh token (API.md "Refresh rotation and theft
// detection"):
//   - the current generation rotates with one compare-and-swap write;
//   - the previous generation within the grace window gets the current token
//     again (racing tabs converge on one chain);
//   - any other earlier generation is reuse: the session is revoked with all
//     its access tokens and a refresh_token_reused event is recorded.
func (s *Service) Refresh(ctx context.Context, tok string, m Meta) (Tokens, error) {
	r, err := token.ParseRefresh(tok)
	if err != nil {
		return Tokens{}, ErrInvalidRefreshToken
	}
	for attempt := 0; ; attempt++ {
		sess, u, err := s.store.GetSessionWithUser(ctx, r.SessionID)
		if errors.Is(err, store.ErrNotFound) {
			return Tokens{}, ErrInvalidRefreshToken
		} else if err != nil {
			return Tokens{}, err
		}
		// Nothing about the session is acted on, or revealed, before the
		// MAC checks out: a session id alone can neither refresh nor revoke.
		if !s.refresh.Verify(r, sess.Nonce) || r.Generation > sess.Generation {
			return Tokens{}, ErrInvalidRefreshToken
		}
		if sess.Revoked() {
			return Tokens{}, ErrSessionRevoked
		}
		now := s.now()
		if !now.Before(sess.ExpiresAt) || !now.Before(sess.IdleExpiresAt) {
			return Tokens{}, ErrSessionExpired
		}
		if u.Disabled {
			return Tokens{}, ErrAccountDisabled
		}
		switch {
		case r.Generation == sess.Generation:
			next, err := s.store.RotateSession(ctx, store.Rotation{
				SessionID:       sess.ID,
				FromGeneration:  sess.Generation,
				Now:             now,
				IdleExpiresAt:   minTime(now.Add(s.cfg.RefreshIdleTTL), sess.ExpiresAt),
				AccessExpiresAt: s.accessExpiry(now, sess),
				IP:              m.IP,
				UserAgent:       m.UserAgent,
			})
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue // lost the race: re-read and take the grace path
			}
			if err != nil {
				return Tokens{}, err
			}
			return s.issue(now, u, next)
		case r.Generation == sess.Generation-1 && s.cfg.ReuseGrace > 0 && now.Sub(sess.RotatedAt) <= s.cfg.ReuseGrace:
			// The access token issued here must be covered by a
			// revocation of the session, however late it comes.
			if err := s.store.ExtendAccess(ctx, sess.ID, s.accessExpiry(now, sess)); err != nil {
				return Tokens{}, err
			}
			return s.issue(now, u, sess)
		default:
			if err := s.revokeSession(ctx, sess, ReasonReuse, m); err != nil {
				return Tokens{}, err
			}
			s.event(ctx, EventRefreshTokenReused, m, sess.UserID, sess.ID,
				fmt.Sprintf("generation %d presented, current %d", r.Generation, sess.Generation))
			return Tokens{}, ErrRefreshTokenReused
		}
	}
}

// Revocation reasons recorded on the session row.
const (
	ReasonLogout = "logout"
	ReasonReuse  = "refresh_token_reused"
	ReasonUser   = "revoked_by_user"
)

// revokeSession revokes one session in the store and in memory.
func (s *Service) revokeSession(ctx context.Context, sess store.Session, reason string, m Meta) error {
	now := s.now()
	// Memory first: from here on no access token of the session passes,
	// even if the write below fails (the caller then sees an error and
	// can retry).
	s.revoked.AddSession(sess.ID, maxTime(sess.AccessExpiresAt, now.Add(s.cfg.AccessTTL)))
	changed, err := s.store.RevokeSession(ctx, sess.ID, reason, now)
	if err != nil {
		return err
	}
	if changed && reason != ReasonReuse {
		s.event(ctx, EventSessionRevoked, m, sess.UserID, sess.ID, reason)
	}
	return nil
}

// Authenticate verifies an access token and checks it against the
// revocation list. It touches no database.
func (s *Service) Authenticate(tok string) (Principal, error) {
	c, err := s.keys.Verify(tok, s.cfg.Issuer, s.cfg.Now())
	switch {
	case errors.Is(err, token.ErrExpired):
		return Principal{}, ErrTokenExpired
	case err != nil:
		return Principal{}, ErrInvalidToken
	}
	if s.revoked.Revoked(c.SessionID, c.Subject, c.IssuedAt.Time) {
		return Principal{}, ErrTokenRevoked
	}
	return Principal{UserID: c.Subject, SessionID: c.SessionID, Role: c.Role, TokenID: c.ID,
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time}, nil
}

// Logout revokes the session identified by a refresh token or, failing
// that, by an access token (even an expired one: ending a session is always
// allowed to its holder). Anything unrecognised is ignored: logout is
// idempotent and reveals nothing.
func (s *Service) Logout(ctx context.Context, refreshTok, accessTok string, m Meta) error {
	if refreshTok != "" {
		if r, err := token.ParseRefresh(refreshTok); err == nil {
			sess, err := s.store.GetSession(ctx, r.SessionID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil && s.refresh.Verify(r, sess.Nonce) && r.Generation <= sess.Generation {
				return s.revokeSession(ctx, sess, ReasonLogout, m)
			}
		}
	}
	if accessTok != "" {
		c, err := s.keys.Verify(accessTok, s.cfg.Issuer, s.cfg.Now())
		if err == nil || errors.Is(err, token.ErrExpired) {
			sess, err := s.store.GetSession(ctx, c.SessionID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return s.revokeSession(ctx, sess, ReasonLogout, m)
		}
	}
	return nil
}

// Me returns the caller's account and session.
func (s *Service) Me(ctx context.Context, p Principal) (store.User, store.Session, error) {
	sess, u, err := s.store.GetSessionWithUser(ctx, p.SessionID)
	if err != nil {
		return u, sess, s.notFound(err)
	}
	if sess.Revoked() || sess.UserID != p.UserID {
		return u, sess, ErrTokenRevoked
	}
	return u, sess, nil
}

// ListSessions returns the caller's active sessions, newest first.
func (s *Service) ListSessions(ctx context.Context, p Principal) ([]store.Session, error) {
	return s.store.ListActiveSessions(ctx, p.UserID, s.now())
}

// RevokeOwnSession revokes one of the caller's sessions. Sessions of other
// users are ErrNotFound, never forbidden: their existence is not revealed.
func (s *Service) RevokeOwnSession(ctx context.Context, p Principal, id string, m Meta) error {
	sess, err := s.store.GetSession(ctx, id)
	if err != nil {
		return s.notFound(err)
	}
	if sess.UserID != p.UserID {
		return ErrNotFound
	}
	return s.revokeSession(ctx, sess, ReasonUser, m)
}

// RevokeOwnSessions revokes the caller's other sessions, or all of them
// including the current one.
func (s *Service) RevokeOwnSessions(ctx context.Context, p Principal, includeCurrent bool, m Meta) error {
	except := p.SessionID
	if includeCurrent {
		except = ""
	}
	return s.revokeUserSessions(ctx, p.UserID, except, ReasonUser, m)
}

func (s *Service) revokeUserSessions(ctx context.Context, userID, except, reason string, m Meta) error {
	now := s.now()
	list, err := s.store.RevokeUserSessions(ctx, userID, except, reason, now)
	if err != nil {
		return err
	}
	for _, r := range list {
		s.revoked.AddSession(r.SessionID, maxTime(r.Until, now.Add(s.cfg.AccessTTL)))
	}
	if len(list) > 0 {
		s.event(ctx, EventSessionsRevoked, m, userID, "", fmt.Sprintf("%d sessions, %s", len(list), reason))
	}
	return nil
}

func (s *Service) notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

func newID() string { return base64.RawURLEncoding.EncodeToString(randomBytes(16)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
