// Package store is Gatehouse's persistence contract: plain data types, the
// Store interface every backend implements, and the sentinel errors they
// return. The domain (internal/auth) depends only on this package, never on a
// concrete backend; storetest holds the conformance suite every backend must
// pass.
//
// Times are stored with nanosecond precision (Unix nanoseconds in SQL) so a
// revocation and a token issued in the same second can still be ordered.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrLastAdmin refuses a change that would leave no enabled admin.
	ErrLastAdmin     = errors.New("store: last enabled admin")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConflict reports a failed compare-and-swap: the row was changed by
	// someone else (another refresh won the race) or revoked meanwhile.
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable reports that the database could not be reached. The
	// HTTP layer answers 503 unavailable.
	ErrUnavailable = errors.New("store: unavailable")
)

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// User is an account.
type User struct {
	ID       string
	Username string // as registered
	// UsernameKey is the unique form of Username that lookups compare
	// (the domain prepares it: PRECIS case-mapped). Empty means
	// strings.ToLower(Username).
	UsernameKey  string
	PasswordHash string // PHC string
	Role         string
	Permissions  []string // sorted, no duplicates; never nil when read
	Disabled     bool
	// MFA is whether the account has an active second factor (kept by
	// UpdateMFA, read with the user so the refresh path never reads the
	// factor tables).
	MFA       bool
	CreatedAt time.Time
}

// Key is the unique lookup form of the username.
func (u User) Key() string {
	if u.UsernameKey != "" {
		return u.UsernameKey
	}
	return strings.ToLower(u.Username)
}

// Session is one login. Its refresh token is not stored: it is recomputed from
// (ID, Generation, Nonce) under a key derived from the master secret, so the
// row stays one row however often the session is refreshed, and a database
// leak alone yields no usable token.
type Session struct {
	ID            string
	UserID        string
	Nonce         []byte // 32 random bytes mixed into the refresh-token MAC
	Generation    int64  // generation of the current refresh token
	RotatedAt     time.Time
	CreatedAt     time.Time
	LastUsedAt    time.Time
	IdleExpiresAt time.Time
	ExpiresAt     time.Time // absolute end of the session
	// AccessExpiresAt is the latest expiry of any access token issued for the
	// session; a revocation entry is needed until then and no longer.
	AccessExpiresAt time.Time
	// AuthTime is when the person last proved who they are in this session
	// (login or re-authentication); refreshes carry it unchanged.
	AuthTime time.Time
	// AMR (RFC 8176) and ACR are what that proof was: the methods proven
	// and the assurance level (aal1, aal2); refreshes carry them too.
	AMR []string
	ACR string
	// DPoPJKT is the RFC 7638 thumbprint of the key the session is bound
	// to (DPoP, RFC 9449), set at creation and never changed; "" when
	// unbound.
	DPoPJKT      string
	IP           string
	UserAgent    string
	RevokedAt    time.Time // zero while live
	RevokeReason string
}

// Proof is what a person proved in a session, and when.
type Proof struct {
	At  time.Time
	AMR []string
	ACR string
}

// Revoked reports whether the session has been revoked.
func (s *Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// Rotation is the compare-and-swap of a refresh: it succeeds only if the
// session is live and still at FromGeneration.
type Rotation struct {
	SessionID       string
	FromGeneration  int64
	Now             time.Time
	IdleExpiresAt   time.Time
	AccessExpiresAt time.Time
	IP              string
	UserAgent       string
	// Events, if any, commit with the rotation and only with it (the
	// outbox): ip_changed, decided from the row the compare-and-swap
	// proves unchanged since it was read.
	Events []Event
}

// FastRotator is implemented by stores that can do a whole ordinary refresh
// in one round trip (PostgreSQL): used when the refresh token's MAC has
// already been checked against a cached session nonce.
type FastRotator interface {
	// RotateIfCurrent rotates the session like RotateSession, but only if
	// additionally it is unexpired at r.Now, its user is not disabled and
	// it was last used from r.IP (or either address is unknown): a change
	// of address is an event, which the full path records with the
	// rotation. It caps IdleExpiresAt and AccessExpiresAt at the session's
	// end and ignores r.Events. It returns the rotated session and its
	// user. ErrConflict when any condition fails: the caller then reads the
	// session and decides (grace, reuse, expiry, a new address…).
	RotateIfCurrent(ctx context.Context, r Rotation) (Session, User, error)
}

// RevokedSession is an entry of the revocation list: access tokens carrying
// SessionID are refused until Until, after which none can be unexpired.
type RevokedSession struct {
	SessionID string
	Until     time.Time
}

// Revocation kinds in the revocation log.
const (
	KindSession = "session" // Subject is a session id
	KindUser    = "user"    // Subject is a user id; NotBefore is set
	KindGlobal  = "global"  // no Subject; NotBefore is set
)

// Revocation is one entry of the revocation log: the ordered record of every
// revocation, written in the same transaction as the change it records. The
// running server, the other instances and the resource servers follow it
// by sequence number; an entry can be dropped after Until, when no access
// token it covers can still be unexpired.
type Revocation struct {
	Seq       int64
	Kind      string
	Subject   string
	NotBefore time.Time // user and global kinds: tokens issued before are dead
	Until     time.Time
}

// SessionID is the revoked session of a session entry ("" otherwise).
func (r Revocation) SessionID() string {
	if r.Kind == KindSession {
		return r.Subject
	}
	return ""
}

// Cutoff is a "not before" for a user's or everyone's access tokens.
type Cutoff struct {
	NotBefore time.Time
	Until     time.Time
}

// UserUpdate is what an updater (see Store.UpdateUser) decides from the row
// the store has locked: the user as it is to be written, and the
// consequences committed in the same transaction.
type UserUpdate struct {
	User User
	// Cutoff, if set, refuses the user's access tokens issued before it.
	Cutoff *Cutoff
	// RevokeSessions revokes every live session of the user but
	// ExceptSession, with Reason, at Now.
	RevokeSessions bool
	ExceptSession  string
	Reason         string
	Now            time.Time
	// Events, if set, gives the security events that record the change,
	// from the sessions it revoked; they commit with it (the outbox).
	Events func(revoked []RevokedSession) []Event
}

// ErrNoChange, returned by an updater, leaves the row as it is: the store
// writes nothing and the update returns without error.
var ErrNoChange = errors.New("store: no change")

// EventFilter selects events, newest first. BeforeSeq (if > 0) is the paging
// cursor: only events older than it.
type EventFilter struct {
	UserID    string
	Type      string
	BeforeSeq int64
	Limit     int
}

// SigningKey is an access-token signing key. The private key is sealed under
// the master secret by the caller; the store only keeps bytes.
type SigningKey struct {
	ID            string // kid
	Algorithm     string
	PublicKey     []byte
	SealedPrivate []byte
	CreatedAt     time.Time
	// RetiredAt is when the key stopped signing; zero for the active key.
	RetiredAt time.Time
}

// ResourceKey is a registered client: a resource server (the revocation
// feed, introspection, revocation) or a service (client_credentials
// tokens). ID is its client_id. Only a SHA-256 of the secret is stored:
// secrets are 256-bit random strings, so a fast hash is enough and a
// database leak yields none. Resource keys of earlier releases are
// resource clients.
type ResourceKey struct {
	ID        string
	Name      string
	Hash      []byte
	CreatedAt time.Time
	// Kind is ClientResource or ClientService.
	Kind string
	// Audience is the API a resource client is (a registered audience
	// tokens may be narrowed to); "" for none.
	Audience string
	// Role and Permissions are a service client's, carried by its tokens.
	Role        string
	Permissions []string
}

// Client kinds.
const (
	ClientResource = "resource"
	ClientService  = "service"
)

// Event is a security event.
type Event struct {
	Seq       int64 // store order; the paging cursor
	ID        string
	Type      string
	At        time.Time
	UserID    string
	SessionID string
	IP        string
	UserAgent string
	Detail    string
}

// Store is everything the domain needs from a database. Every method is
// safe for concurrent use.
type Store interface {
	Ping(ctx context.Context) error
	Close() error
	MFAStore

	// CreateUser fails with ErrAlreadyExists when the lower-cased username
	// is taken.
	CreateUser(ctx context.Context, u User) error
	GetUserByID(ctx context.Context, id string) (User, error)
	// GetUserByUsername finds the user whose Key() is key.
	GetUserByUsername(ctx context.Context, key string) (User, error)
	// ListUsers pages through users ordered by their lookup key (Key(),
	// lower-cased: the unique column), starting after the key afterKey
	// ("" for the start), keeping those whose key contains contains ("" for
	// all). The key is stable and unique, so paging by it never skips or
	// repeats a user.
	ListUsers(ctx context.Context, afterKey, contains string, limit int) ([]User, error)
	// UpdateUser is the read-modify-write of an account (Dex's pattern):
	// in one transaction it locks the user's row, calls update with it, and
	// writes what update decides with its consequences. The decision is
	// made from the locked row, never from an earlier read, so two racing
	// changes both take effect or one sees the other's result. It returns
	// the user as written (as read, if update returned ErrNoChange) and the
	// sessions it revoked. ErrNotFound if absent; ErrLastAdmin if it would
	// demote or disable the last enabled admin; any other error of update
	// is returned as it is, with nothing written.
	UpdateUser(ctx context.Context, id string, update func(old User) (UserUpdate, error)) (User, []RevokedSession, error)
	// DeleteUser removes the account in one transaction: every session is
	// revoked into the revocation log and then erased with its IP and user
	// agent, the cutoff c is logged for the user (its access tokens die on
	// every instance and resource server), and the user row is deleted so
	// its name is free. Events keep the user id. It returns the revoked
	// sessions. ErrNotFound if absent; ErrLastAdmin for the last enabled
	// admin.
	// events, if set, gives the security events recording the deletion, from the
	// revoked sessions; they commit with it.
	DeleteUser(ctx context.Context, id string, c Cutoff, now time.Time, events func(revoked []RevokedSession) []Event) ([]RevokedSession, error)

	// CreateSession inserts s in a transaction that first locks its user's
	// row and passes it to check (if not nil): a non-nil error from check
	// aborts the insert and is returned as it is. A login uses it to open
	// a session only if the credential it verified is still the account's,
	// and the account still enabled, when the row commits: a password reset,
	// a ban or a deletion that lands during the (slow) hash wins.
	// ErrNotFound if the user does not exist. events commit with the
	// session.
	CreateSession(ctx context.Context, s Session, check func(u User) error, events ...Event) error
	GetSession(ctx context.Context, id string) (Session, error)
	// GetSessionWithUser reads a session and its user in one query: the
	// refresh and /v1/me paths need both.
	GetSessionWithUser(ctx context.Context, id string) (Session, User, error)
	// RotateSession advances the session to FromGeneration+1 in one write,
	// only if it is still at FromGeneration and not revoked; otherwise
	// ErrConflict (ErrNotFound if it does not exist), with nothing written.
	// r.Events commit with it. It returns the row as written.
	RotateSession(ctx context.Context, r Rotation) (Session, error)
	// ExtendAccess raises the session's AccessExpiresAt to at least t.
	ExtendAccess(ctx context.Context, sessionID string, t time.Time) error
	// Reauthenticate records a new proof in a live session (its AuthTime,
	// AMR and ACR) and raises its AccessExpiresAt to at least accessExp,
	// returning the session as written, with events; ErrConflict if it is
	// revoked, ErrNotFound if absent.
	Reauthenticate(ctx context.Context, sessionID string, p Proof, accessExp time.Time, events ...Event) (Session, error)
	// RevokeSession marks one session revoked and logs it, with events,
	// in one transaction. It reports whether this call revoked it (false
	// if it was already revoked: then nothing is written, events
	// included). ErrNotFound if absent.
	RevokeSession(ctx context.Context, id, reason string, now time.Time, events ...Event) (bool, error)
	// RevokeUserSessions revokes (and logs) every live session of the user
	// except exceptID (may be empty) and returns the entries it revoked;
	// events, if set, gives the security events recording them, which
	// commit with them.
	RevokeUserSessions(ctx context.Context, userID, exceptID, reason string, now time.Time, events func(revoked []RevokedSession) []Event) ([]RevokedSession, error)
	// ListActiveSessions returns the user's live, unexpired sessions, newest
	// first.
	ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]Session, error)
	// RevokeAll revokes every live session and logs a global cutoff, in one
	// transaction. It returns how many sessions it revoked.
	// events, if set, gives the events recording it from the count.
	RevokeAll(ctx context.Context, c Cutoff, reason string, now time.Time, events func(n int) []Event) (int, error)

	// LogCutoff appends a user (subject = user id) or global cutoff to the
	// revocation log.
	LogCutoff(ctx context.Context, kind, subject string, c Cutoff) error
	// RevocationsSince returns up to limit log entries with Seq > seq, in
	// sequence order. With seq 0 it is the whole (pruned) log: a snapshot.
	RevocationsSince(ctx context.Context, seq int64, limit int) ([]Revocation, error)
	// PruneRevocations drops log entries whose Until is before t.
	PruneRevocations(ctx context.Context, t time.Time) (int, error)

	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// UpdateSigningKeys is the read-modify-write of the key set: in one
	// transaction that excludes every other change of keys, it reads the
	// stored keys (oldest first), calls next with them, and stores the key
	// next returns as the active one, retiring the key that was active
	// (rotation). The decision is made from the keys as locked: two
	// processes starting at once on one database, each adding a first key
	// only if none is active, agree on one. If next returns ErrNoChange
	// nothing is written and UpdateSigningKeys returns nil; any other error
	// of next is returned as it is.
	UpdateSigningKeys(ctx context.Context, next func(keys []SigningKey) (SigningKey, error)) error

	AddResourceKey(ctx context.Context, k ResourceKey) error
	ListResourceKeys(ctx context.Context) ([]ResourceKey, error)
	// RemoveResourceKey deletes a client by id and, in the same
	// transaction, logs the cutoff c for its tokens (subject = its id),
	// when c is not nil; ErrNotFound if absent.
	RemoveResourceKey(ctx context.Context, id string, c *Cutoff) error
	// FindResourceKey returns the key with this hash; ErrNotFound if none.
	FindResourceKey(ctx context.Context, hash []byte) (ResourceKey, error)

	// AddEvent records an event that accompanies no change of state (a
	// refused request, a failed login). Events that record a change are
	// written by the change's own method, in its transaction.
	AddEvent(ctx context.Context, e Event) error
	// EventsSince returns up to limit events with Seq > seq, oldest first:
	// the outbox, as a sink (webhooks, an export) follows it.
	EventsSince(ctx context.Context, seq int64, limit int) ([]Event, error)
	// ListEvents returns events matching f, newest first.
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
	// PruneEvents drops events older than t.
	PruneEvents(ctx context.Context, t time.Time) (int, error)

	// UpdateLoginFailures is the login throttle's read-modify-write: in one
	// transaction it locks the state of account (its prepared username)
	// and of account from address (rows start zero), calls update with it
	// and writes what update returns. Instances sharing the database
	// therefore see every attempt another has reserved, and concurrent
	// attempts cannot all pass one check. An error from update (a refusal)
	// writes nothing and is returned as it is.
	UpdateLoginFailures(ctx context.Context, account, address string, update func(old LoginFailures) (LoginFailures, error)) error
	// PruneLoginFailures drops account debts paid off before debtBefore,
	// and address state whose last failure is before runBefore and whose
	// last success is before knownBefore.
	PruneLoginFailures(ctx context.Context, debtBefore, runBefore, knownBefore time.Time) (int, error)
}

// LoginFailures is the per-account state of the login throttle, kept in the
// database so that every instance, and a restarted one, sees the same
// budget (internal/throttle).
type LoginFailures struct {
	// Debt is the account's failure budget as a time (GCRA): each failure
	// pushes it one refill interval later; zero when nothing is owed.
	Debt time.Time
	// Failures is the run of consecutive failures (attempts reserved and
	// not yet proven right) on the account from this address, the last at
	// LastFailure.
	Failures    int
	LastFailure time.Time
	// KnownAt is the last successful sign-in to the account from this
	// address; zero if none. A known address keeps a budget of its own.
	KnownAt time.Time
}

// PoolStats describes one connection pool of a backend, for metrics.
type PoolStats struct {
	Pool         string // "writer", "reader" (SQLite) or "pool" (PostgreSQL)
	Max          int    // connections allowed
	InUse, Idle  int
	WaitCount    int64         // acquisitions that had to wait, since start
	WaitDuration time.Duration // total time spent waiting, since start
}

// PoolStatser is implemented by backends that report their pools.
type PoolStatser interface {
	PoolStats() []PoolStats
}

// GroupCommitStats counts the statements that carried the FastRotator's
// rotations, where a backend sends rotations arriving together as one
// (PostgreSQL's group commit), for metrics. Counts since start.
type GroupCommitStats struct {
	Single  int64 // statements of one rotation
	Batches int64 // statements of several
	Batched int64 // rotations carried by statements of several
	Retried int64 // batches aborted by a deadlock, then run one by one
}

// GroupCommitStatser is implemented by backends that batch rotations.
type GroupCommitStatser interface {
	GroupCommitStats() GroupCommitStats
}
