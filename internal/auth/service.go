// Package auth is Gatehouse's domain: accounts, login, sessions, refresh
// rotation with reuse detection, revocation, policies and security events.
// It knows no HTTP and no SQL: it talks to the store through the narrow
// interface each flow declares (accountStore, sessionStore…), signs with a
// token.KeySet and reads time from an injected clock, so every timeout and
// grace window can be tested without sleeping.
//
// Files: accounts.go (register, login, password change, step-up),
// sessions.go (refresh, logout, session lists and revocation), admin.go (the
// operator's actions), revocations.go (the in-memory list every access token
// is checked against, fed by the store's revocation log), feed.go (the
// revocation feed), resourcekeys.go, introspect.go (RFC 7662 and RFC 7009),
// subscriptions.go (live events for sockets), events.go and refused.go
// (security events, and the aggregation of refused requests), keys.go
// (signing-key rotation), novelty.go (what is new about a sign-in),
// nonces.go (the refresh fast path's cache), snapshots.go (/v1/me from
// memory), names.go (usernames for forward auth), usernames.go (PRECIS names),
// permissions.go, hygiene.go (client strings made storable), metrics.go,
// errors.go.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/secret"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Config is the domain's configuration. Zero values take the defaults.
type Config struct {
	Issuer string
	// SigningAlg is the algorithm of new signing keys (--signing-alg:
	// EdDSA, ES256, RS256); "" keeps the active key's (the CLI).
	SigningAlg string
	// Audiences are the access tokens' aud (--audience; default the
	// issuer). Each is also a registered audience a client may narrow a
	// token to (RFC 8707 resource).
	Audiences        []string
	AccessTTL        time.Duration // default 5m
	RefreshIdleTTL   time.Duration // default 14 days
	SessionMaxAge    time.Duration // default 90 days
	ReuseGrace       time.Duration // default 10s; negative disables the grace window
	RegistrationOpen bool
	// MaxSessionsPerUser evicts the least recently used sessions beyond it
	// at login (default 20; negative: no limit).
	MaxSessionsPerUser int
	// IPPolicy is what a refresh from a new IP does: IPPolicyWarn (default)
	// records ip_changed; IPPolicyRevoke also revokes the session.
	IPPolicy string
	// EventRetention is how long security events are kept (default 90 days).
	EventRetention time.Duration
	// RefusedEventWindow is the interval over which refused requests
	// (rate_limited, csrf_failed) of one kind, address and account are
	// recorded as one event and one summary with a count (default 1m).
	RefusedEventWindow time.Duration
	// Throttle limits login attempts per IP and per account.
	Throttle throttle.Config
	// SyncInterval is how often the revocation log is polled for changes
	// made by other processes, such as the CLI (default 500ms).
	SyncInterval time.Duration
	// MaxSyncAge bounds how old the revocation state may be while Run is
	// following the store (default 15s): past it, RevocationsFresh reports
	// false and live connections that only this state protects are closed.
	MaxSyncAge time.Duration
	// ReloadKeys, if set, is called periodically to pick up rotated keys.
	ReloadKeys func(context.Context) error
	// ReauthMaxAge is how recent a proof of the password (auth_time) the
	// sensitive operations need (default 10m).
	ReauthMaxAge time.Duration
	// ResourceKeys are resource-server keys given in configuration, in
	// addition to those stored with `gatehouse keys resource add`.
	ResourceKeys []string
	// FactorKey (32 bytes, derived from the master secret) seals TOTP
	// secrets and keys the recovery codes' hashes; nil derives one from
	// the refresh key (tests).
	FactorKey []byte
	// RequireMFARoles are the roles whose accounts must enrol a second
	// factor before anything but enrolment (--require-mfa).
	RequireMFARoles []string
	// TOTPIssuer names the service in authenticator apps (default the
	// issuer's host).
	TOTPIssuer string
	// WebAuthnRPID is the passkeys' relying party id (default the
	// issuer's host); WebAuthnOrigins are the origins allowed to use it
	// besides the issuer's (the allowed origins at or under the RP ID).
	WebAuthnRPID    string
	WebAuthnOrigins []string
	// HashParams defaults to password.Default. Tests lower it.
	HashParams password.Params
	// HashConcurrency caps argon2id work running at once; HashQueue bounds
	// the logins waiting for it.
	HashConcurrency int
	HashQueue       int
	Now             func() time.Time
	Logger          *slog.Logger
	// Metrics receives the domain's metrics; nil keeps them unregistered.
	Metrics prometheus.Registerer
}

// IP policies.
const (
	IPPolicyWarn   = "warn"
	IPPolicyRevoke = "revoke"
)

// FirstPartyClient is the client_id of tokens from the login routes.
const FirstPartyClient = "gatehouse"

// Defaults.
const (
	DefaultAccessTTL          = 5 * time.Minute
	DefaultRefreshIdleTTL     = 14 * 24 * time.Hour
	DefaultSessionMaxAge      = 90 * 24 * time.Hour
	DefaultReuseGrace         = 10 * time.Second
	DefaultMaxSessionsPerUser = 20
	DefaultEventRetention     = 90 * 24 * time.Hour
	DefaultReauthMaxAge       = 10 * time.Minute
)

// Service implements the domain operations.
type Service struct {
	cfg Config
	// The store, as each flow needs it (fosite's style: each file declares
	// the few methods it uses).
	accounts      accountStore
	sessions      sessionStore
	revlog        revocationLog
	events        eventStore
	resourceKeys  resourceKeyStore
	db            interface{ Ping(context.Context) error }
	pools         store.PoolStatser        // nil if the store reports none
	batching      store.GroupCommitStatser // nil if the store does not batch rotations
	keys          *token.KeySet
	refresh       *token.RefreshCodec
	revoked       *Revocations
	mfa           mfaStore
	factorSealer  *secret.Sealer
	codeKey       []byte // keys the recovery codes' hashes
	webauthn      *webauthn.WebAuthn
	limiter       *password.Limiter
	throttle      *throttle.Limiter
	metrics       *serviceMetrics
	dummyHash     string
	log           *slog.Logger
	cursor        atomic.Int64                   // last revocation-log entry applied
	changes       *broadcast                     // revocation state changed
	nonces        *immutableCache[cachedSession] // session id -> nonce, user id, DPoP key
	names         *immutableCache[string]        // user id -> username, for forward auth (usernames never change)
	snaps         *snapshots                     // session id -> session and user, for /v1/me (snapshots.go)
	lastKeyReload atomic.Int64                   // Unix ns of the last on-demand key reload
	lastSync      atomic.Int64                   // Unix ns (wall clock) of the last successful sync
	following     atomic.Bool                    // Run is following the revocation log
	staticKeys    [][]byte                       // hashes of Config.ResourceKeys
	refused       *refusedLog                    // aggregation of refused requests' events
	// What only some stores offer, found once in New: the one-round-trip
	// refresh (nil without) and pushed revocations (nil without: polled).
	fast    store.FastRotator
	watcher revocationWatcher

	// Live event subscriptions, fed from the outbox (subscriptions.go).
	subsMu     sync.Mutex
	subs       map[string]map[*subscriber]struct{} // user id -> live subscribers
	feedStop   func()                              // stops the outbox feed; nil when none runs
	feedGen    uint64                              // the running feed's generation
	outboxKick chan struct{}                       // this process committed events
}

// Meta is what the transport knows about the caller.
type Meta struct {
	IP        string
	UserAgent string
	// DPoP is the RFC 7638 thumbprint of the key of the request's DPoP
	// proof, which the transport verified; "" when it carried none. A
	// session opened with one is bound to that key.
	DPoP string
	// ClientID is the service client acting (its events say so), "" for
	// a person.
	ClientID string
}

// Principal is a verified access token.
type Principal struct {
	UserID      string
	SessionID   string
	Role        string
	Permissions []string
	TokenID     string
	IssuedAt    time.Time
	ExpiresAt   time.Time
	// AuthTime is when the person last proved who they are in this
	// session (whole seconds; zero if unknown).
	AuthTime time.Time
	// AMR and ACR are what that proof was (RFC 8176 methods; aal1, aal2).
	AMR []string
	ACR string
	// ClientID is the client that obtained the token: FirstPartyClient,
	// or a service client's id (then UserID is that id too: see Service).
	ClientID string
	// DPoPJKT is the thumbprint of the key the token is bound to (its
	// cnf.jkt); "" for a bearer token. The transport must see a proof by
	// that key before it trusts the principal.
	DPoPJKT string
	// Elevated is set by the transport when the request carried a valid
	// one-time elevation of this session (consumed): it stands for a
	// fresh second-factor proof for this one request.
	Elevated bool
}

// IsAdmin reports whether the token carries the admin role.
func (p Principal) IsAdmin() bool { return p.Role == store.RoleAdmin }

// Service reports whether the token is a service client's own
// (client_credentials): no person, no session, no step-up.
func (p Principal) Service() bool {
	return p.ClientID != "" && p.ClientID != FirstPartyClient && p.ClientID == p.UserID
}

// StepUpError is ErrStepUpRequired with the maximum age the operation
// accepts, for the RFC 9470 challenge.
// ACR, if set, is the level the operation needs too (acr_values).
type StepUpError struct {
	MaxAge time.Duration
	ACR    string
}

func (e *StepUpError) Error() string {
	return fmt.Sprintf("authentication within the last %v required", e.MaxAge)
}
func (e *StepUpError) Is(target error) bool { return target == ErrStepUpRequired }

// Tokens is the result of a login or a refresh.
type Tokens struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	Session          store.Session
	User             store.User
	IssuedAt         time.Time
	// claims are the access token's, kept so Narrow can re-sign them
	// without verifying a token this process has just signed.
	claims token.Claims
}

// RateLimitError is ErrRateLimited with the time to wait.
type RateLimitError struct{ RetryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited; retry in %v", e.RetryAfter)
}
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// New builds a Service. keys signs access tokens; refreshKey MACs refresh
// tokens (derive both from the master secret). A WebAuthn configuration the
// relying party refuses (see CheckWebAuthn) leaves passkeys off.
func New(cfg Config, st store.Store, keys *token.KeySet, refreshKey []byte) *Service {
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{cfg.Issuer}
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
	if cfg.MaxSessionsPerUser == 0 {
		cfg.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if cfg.IPPolicy == "" {
		cfg.IPPolicy = IPPolicyWarn
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = DefaultEventRetention
	}
	if cfg.RefusedEventWindow <= 0 {
		cfg.RefusedEventWindow = DefaultRefusedWindow
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 500 * time.Millisecond
	}
	if cfg.ReauthMaxAge <= 0 {
		cfg.ReauthMaxAge = DefaultReauthMaxAge
	}
	if cfg.MaxSyncAge <= 0 {
		cfg.MaxSyncAge = 15 * time.Second
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
	if cfg.FactorKey == nil {
		cfg.FactorKey = derivedKey(refreshKey, "factor-key")
	}
	if cfg.TOTPIssuer == "" {
		cfg.TOTPIssuer = totpIssuer(cfg.Issuer)
	}
	if cfg.WebAuthnRPID == "" {
		cfg.WebAuthnRPID = totpIssuer(cfg.Issuer)
	}
	sealer, err := secret.NewSealerKey(derivedKey(cfg.FactorKey, "totp-seal"))
	if err != nil {
		panic(err) // a 32-byte key: cannot fail
	}
	rp, _ := newWebAuthn(cfg.WebAuthnRPID, webauthnOrigins(cfg)) // nil: passkeys off
	// What only some stores offer, asked of the store itself before it is
	// wrapped to forget snapshots on every write.
	pools, _ := st.(store.PoolStatser)
	batching, _ := st.(store.GroupCommitStatser)
	fast, _ := st.(store.FastRotator)
	watcher, _ := st.(revocationWatcher)
	snaps := newSnapshots(snapshotMax, snapshotTTL)
	st = snapshotStore{Store: st, snaps: snaps}
	var static [][]byte
	for _, k := range cfg.ResourceKeys {
		static = append(static, hashKey(k))
	}
	s := &Service{
		staticKeys:   static,
		refused:      newRefusedLog(cfg.RefusedEventWindow),
		changes:      newBroadcast(),
		subs:         map[string]map[*subscriber]struct{}{},
		outboxKick:   make(chan struct{}, 1),
		nonces:       newImmutableCache[cachedSession](200_000),
		names:        newImmutableCache[string](200_000),
		snaps:        snaps,
		cfg:          cfg,
		accounts:     st,
		sessions:     st,
		revlog:       st,
		events:       st,
		resourceKeys: st,
		db:           st,
		keys:         keys,
		refresh:      token.NewRefreshCodec(refreshKey),
		revoked:      NewRevocations(),
		mfa:          st,
		factorSealer: sealer,
		codeKey:      derivedKey(cfg.FactorKey, "recovery-codes"),
		webauthn:     rp,
		limiter:      password.NewLimiter(cfg.HashConcurrency, cfg.HashQueue),
		throttle:     throttle.New(cfg.Throttle, st),
		// Verified against for unknown users, so a miss costs one hash too.
		dummyHash: password.Hash("gatehouse-dummy-password", cfg.HashParams),
		log:       cfg.Logger,
	}
	s.pools = pools
	s.batching = batching
	if fast != nil {
		s.fast = snapshotRotator{FastRotator: fast, snaps: snaps}
	}
	if watcher != nil && watcher.PushesRevocations() {
		s.watcher = watcher
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newServiceMetrics(reg, s)
	return s
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Keys returns the signing key set (for the JWKS).
func (s *Service) Keys() *token.KeySet { return s.keys }

// Revocations exposes the in-memory list (metrics, tests).
func (s *Service) Revocations() *Revocations { return s.revoked }

// Ping checks the store.
func (s *Service) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// LoadRevocations fills the in-memory list from the store's revocation log.
// Call before serving: no access token may be accepted before its
// revocation is known.
func (s *Service) LoadRevocations(ctx context.Context) error {
	return s.SyncRevocations(ctx)
}

// SyncRevocations applies the revocation-log entries written since the last
// call, by this process or another one (the CLI, another instance).
func (s *Service) SyncRevocations(ctx context.Context) error {
	const page = 1000
	for {
		cur := s.cursor.Load()
		list, err := s.revlog.RevocationsSince(ctx, cur, page)
		if err != nil {
			return fmt.Errorf("sync revocations: %w", err)
		}
		now := s.now()
		for _, r := range list {
			if r.Until.After(now) {
				s.revoked.Apply(r)
			}
			s.snaps.forgetRevoked(r)
		}
		if len(list) > 0 && s.cursor.CompareAndSwap(cur, list[len(list)-1].Seq) {
			s.changes.Notify()
		}
		if len(list) < page {
			s.lastSync.Store(time.Now().UnixNano())
			return nil
		}
	}
}

// revocationWatcher is implemented by stores that can push revocation-log
// inserts from every instance (PostgreSQL, unless behind a pooler without
// a direct connection to listen on).
type revocationWatcher interface {
	PushesRevocations() bool
	WatchRevocations(ctx context.Context, notify func())
}

// RevocationsFresh reports whether the in-memory revocation state is known
// to be current: always while nothing follows the log (tests, the CLI), and
// otherwise if the last successful sync is younger than MaxSyncAge. An
// instance cut off from the database cannot learn of revocations made by
// the others; what only this state protects must then fail closed.
func (s *Service) RevocationsFresh() bool {
	if !s.following.Load() {
		return true
	}
	return time.Since(time.Unix(0, s.lastSync.Load())) <= s.cfg.MaxSyncAge
}

// Run does the background work until ctx ends: following the revocation
// log, reloading keys, pruning memory, the log and old events.
func (s *Service) Run(ctx context.Context) {
	// A store that pushes revocations (PostgreSQL's LISTEN/NOTIFY) wakes
	// the sync at once; polling is then only a safety net and a heartbeat
	// for RevocationsFresh.
	s.following.Store(true)
	defer s.following.Store(false)
	kick := make(chan struct{}, 1)
	interval := s.cfg.SyncInterval
	if s.watcher != nil {
		go s.watcher.WatchRevocations(ctx, func() {
			select {
			case kick <- struct{}{}:
			default:
			}
		})
		interval = max(interval, min(5*time.Second, s.cfg.MaxSyncAge/3))
	}
	sync := time.NewTicker(interval)
	defer sync.Stop()
	minute := time.NewTicker(time.Minute)
	defer minute.Stop()
	hour := time.NewTicker(time.Hour)
	defer hour.Stop()
	s.pruneStore(ctx)
	// Summaries still counting are recorded on the way out.
	defer func() { s.recordAll(context.WithoutCancel(ctx), s.refused.expire(time.Time{})) }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sync.C:
			if err := s.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("revocation sync failed", slog.Any("err", err))
			}
		case <-kick:
			if err := s.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("revocation sync failed", slog.Any("err", err))
			}
		case <-minute.C:
			now := s.now()
			s.revoked.Prune(now)
			s.throttle.PruneMemory(now)
			s.FlushRefusedEvents(ctx)
			if s.cfg.ReloadKeys != nil {
				if err := s.cfg.ReloadKeys(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("signing key reload failed", slog.Any("err", err))
				}
			}
		case <-hour.C:
			s.pruneStore(ctx)
		}
	}
}

func (s *Service) pruneStore(ctx context.Context) {
	now := s.now()
	if _, err := s.revlog.PruneRevocations(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Warn("prune revocation log failed", slog.Any("err", err))
	}
	if n, err := s.events.PruneEvents(ctx, now.Add(-s.cfg.EventRetention)); err != nil && ctx.Err() == nil {
		s.log.Warn("prune events failed", slog.Any("err", err))
	} else if n > 0 {
		s.log.Info("pruned old security events", slog.Int("count", n))
	}
	if err := s.throttle.PruneStore(ctx, now); err != nil && ctx.Err() == nil {
		s.log.Warn("login throttle prune failed", slog.Any("err", err))
	}
	s.pruneTickets(ctx, now)
}

// accessExpiry never lets an access token outlive its session. It keeps
// microseconds, like iat, so a token lives exactly the access TTL: rounding
// exp down to whole seconds cost up to a second of every token's life
// (half the life of a 2 s token), and clients refreshing ahead of expiry
// paid for it in refreshes.
func (s *Service) accessExpiry(now time.Time, sess store.Session) time.Time {
	return accessExpiry(minTime(now.Add(s.cfg.AccessTTL), sess.ExpiresAt))
}

// accessExpiry is t at the precision of a token's exp claim, so what is
// stored for a session equals what its tokens say.
func accessExpiry(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

// issue signs an access token and computes the session's current refresh
// token. readAt is when u was read from the store: the token's iat.
//
// iat carries microseconds and cutoffs nanoseconds. A token whose data was
// read before a cutoff (a role change, a ban) has iat < cutoff and is
// refused. A token read after it must pass even within the same
// microsecond, so its iat is raised to the cutoff rounded up; that is safe
// because the cutoff is taken after the change committed, so anything read
// after it saw the change.
func (s *Service) issue(readAt time.Time, u store.User, sess store.Session) (Tokens, error) {
	exp := s.accessExpiry(readAt, sess)
	iat := readAt.Truncate(time.Microsecond)
	if cut := s.revoked.NotBefore(u.ID); cut > 0 && readAt.UnixNano() >= cut && iat.UnixNano() < cut {
		iat = time.Unix(0, cut).Add(time.Microsecond - 1).Truncate(time.Microsecond).UTC()
	}
	claims := token.Claims{
		Issuer:       s.cfg.Issuer,
		Audience:     s.cfg.Audiences,
		ClientID:     FirstPartyClient,
		Subject:      u.ID,
		SessionID:    sess.ID,
		ID:           newID(),
		IssuedAt:     token.NumericDate{Time: iat},
		ExpiresAt:    token.NumericDate{Time: exp},
		Role:         u.Role,
		AuthTime:     authTimeClaim(sess.AuthTime),
		Permissions:  u.Permissions,
		AMR:          sessionAMR(sess),
		ACR:          sessionACR(sess),
		Confirmation: confirmation(sess.DPoPJKT),
	}
	at, err := s.keys.Sign(claims)
	if err != nil {
		return Tokens{}, err
	}
	s.names.put(u.ID, u.Username)
	rt, err := s.refresh.Make(sess.ID, sess.Generation, sess.Nonce)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{
		AccessToken: at, AccessExpiresAt: exp,
		RefreshToken: rt, RefreshExpiresAt: minTime(sess.IdleExpiresAt, sess.ExpiresAt),
		Session: sess, User: u, IssuedAt: readAt, claims: claims,
	}, nil
}

// stale reports whether data read at readAt for user may predate a cutoff
// that applies to it: the caller should read again.
func (s *Service) stale(userID string, readAt time.Time) bool {
	return s.revoked.NotBefore(userID) > readAt.UnixNano()
}

// Authenticate verifies an access token and checks it against the
// revocation list. It touches no database.
func (s *Service) Authenticate(tok string) (Principal, error) {
	_, p, err := s.authenticate(tok)
	return p, err
}

// authenticate is Authenticate, also returning the token's claims.
func (s *Service) authenticate(tok string) (token.Claims, Principal, error) {
	c, err := s.keys.Verify(tok, s.cfg.Issuer, s.cfg.Now())
	if errors.Is(err, token.ErrUnknownKey) && s.reloadKeysNow() {
		c, err = s.keys.Verify(tok, s.cfg.Issuer, s.cfg.Now())
	}
	switch {
	case errors.Is(err, token.ErrExpired):
		return c, Principal{}, ErrTokenExpired
	case err != nil:
		return c, Principal{}, ErrInvalidToken
	}
	if s.revoked.Revoked(c.SessionID, c.Subject, c.IssuedAt.Time) {
		return c, Principal{}, ErrTokenRevoked
	}
	p := Principal{UserID: c.Subject, SessionID: c.SessionID, Role: c.Role, Permissions: c.Permissions,
		TokenID: c.ID, IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time, AMR: c.AMR, ACR: c.ACR, ClientID: c.ClientID}
	if c.Confirmation != nil {
		p.DPoPJKT = c.Confirmation.JKT
	}
	if p.ACR == "" {
		p.ACR = ACR1
	}
	if c.AuthTime > 0 {
		p.AuthTime = time.Unix(c.AuthTime, 0).UTC()
	}
	return c, p, nil
}

// confirmation is the cnf claim of a session bound to key thumbprint jkt.
func confirmation(jkt string) *token.Confirmation {
	if jkt == "" {
		return nil
	}
	return &token.Confirmation{JKT: jkt}
}

// authTimeClaim is auth_time as the claim carries it: whole seconds,
// rounded down (a proof never looks more recent than it was).
func authTimeClaim(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// reloadKeysNow reloads the signing keys when a token names one we do not
// hold: another instance may have rotated a key in less than a minute ago.
// At most once per keyReloadEvery, so forged headers cannot turn into
// database load. It reports whether it reloaded.
func (s *Service) reloadKeysNow() bool {
	if s.cfg.ReloadKeys == nil {
		return false
	}
	now := time.Now().UnixNano()
	last := s.lastKeyReload.Load()
	if now-last < int64(keyReloadEvery) || !s.lastKeyReload.CompareAndSwap(last, now) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.cfg.ReloadKeys(ctx); err != nil {
		s.log.Warn("signing key reload failed", slog.Any("err", err))
		return false
	}
	return true
}

const keyReloadEvery = 5 * time.Second

func (s *Service) notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

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
