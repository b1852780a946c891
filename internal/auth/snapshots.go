package auth

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Snapshots: GET /v1/me and socket authentication answer from memory. A
// snapshot is a session and its user as last read from the store, kept
// until something may have changed them:
//
//   - every write this process makes to a user or a session forgets them
//     (snapshotStore wraps the store's writes, so no flow can forget to);
//   - every revocation-log entry applied, by whichever instance or CLI it
//     was written, forgets its session, its user or everything;
//   - every event the outbox feed delivers forgets its user;
//   - what another instance changes without either (a refresh's last use
//     and address, a second factor enrolled there while no socket follows
//     the outbox here) is at most snapshotTTL old.
//
// Whether a token is accepted never depends on a snapshot: the caller has
// checked it against the revocation state, in memory, on this very
// request. A read that began before a change is not kept after it: each
// read takes the generation first, and a change bumps it and records it
// against the session or user it touched.

// snapshotTTL bounds how stale a snapshot can be for what no instance
// announces (above).
const snapshotTTL = time.Second

// snapshotMax bounds the memory: a snapshot is a session and a user, about
// 1 KB, so some 32 MiB at most. When full the cache starts over.
const snapshotMax = 1 << 15

type snapshot struct {
	sess store.Session
	user store.User
	gen  uint64 // generation when the read began
	at   int64  // monotonic nanoseconds when the read began
}

type snapshots struct {
	mu      sync.RWMutex
	gen     uint64
	floor   uint64 // reads that began before it are stale
	entries map[string]snapshot
	// The last change of each session or user. A record matters only for
	// a TTL: a read that began before the change is older than that after
	// it, and neither kept nor served (trim).
	sessionChanged map[string]change
	userChanged    map[string]change
	max            int
	ttl            time.Duration
	clock          func() int64 // monotonic nanoseconds
}

// change is when a session or user last changed: the generation and the
// monotonic time.
type change struct {
	gen uint64
	at  int64
}

var monoStart = time.Now()

func monotonic() int64 { return int64(time.Since(monoStart)) }

func newSnapshots(max int, ttl time.Duration) *snapshots {
	return &snapshots{
		entries:        map[string]snapshot{},
		sessionChanged: map[string]change{},
		userChanged:    map[string]change{},
		max:            max,
		ttl:            ttl,
		clock:          monotonic,
	}
}

// begin returns what a read starting now records in its snapshot.
func (c *snapshots) begin() (gen uint64, at int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen, c.clock()
}

// get returns session sid's snapshot if it is still current.
func (c *snapshots) get(sid string) (snapshot, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[sid]
	if !ok || c.clock()-e.at > int64(c.ttl) || e.gen < c.userChanged[e.user.ID].gen {
		return snapshot{}, false
	}
	return e, true
}

// put keeps a snapshot unless its session or user changed (or everything
// was forgotten) after its read began, or the read began more than a TTL
// ago (it would not be served, and the change records it would be checked
// against may be gone: trim).
func (c *snapshots) put(e snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	if now-e.at > int64(c.ttl) || e.gen < c.floor || e.gen < c.sessionChanged[e.sess.ID].gen || e.gen < c.userChanged[e.user.ID].gen {
		return
	}
	if len(c.entries) >= c.max {
		// Full: drop the expired; if that frees less than half, all (so
		// that each scan pays for at least max/2 insertions).
		for sid, old := range c.entries {
			if now-old.at > int64(c.ttl) {
				delete(c.entries, sid)
			}
		}
		if len(c.entries) >= c.max/2 {
			clear(c.entries)
		}
	}
	c.entries[e.sess.ID] = e
}

func (c *snapshots) forgetSession(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, sid)
	c.sessionChanged[sid] = change{c.gen, c.clock()}
	c.trim()
}

func (c *snapshots) forgetUser(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.userChanged[uid] = change{c.gen, c.clock()} // get and put compare with it
	c.trim()
}

func (c *snapshots) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetAllLocked()
}

func (c *snapshots) forgetAllLocked() {
	c.gen++
	c.floor = c.gen
	clear(c.entries)
	clear(c.sessionChanged)
	clear(c.userChanged)
}

// trim keeps the change records bounded. Past the limit, the records older
// than a TTL go: a read that began before such a change began more than a
// TTL ago, so put refuses it and get would not serve it (change records
// are taken under the lock that orders them with begin, on one monotonic
// clock). If that frees less than half (more than max/2 changes within a
// TTL), everything is forgotten at once, which the floor makes as safe as
// the records were. Each scan thus pays for at least max/2 changes.
func (c *snapshots) trim() {
	if len(c.sessionChanged)+len(c.userChanged) <= c.max {
		return
	}
	now := c.clock()
	for _, m := range []map[string]change{c.sessionChanged, c.userChanged} {
		for k, ch := range m {
			if now-ch.at > int64(c.ttl) {
				delete(m, k)
			}
		}
	}
	if len(c.sessionChanged)+len(c.userChanged) > c.max/2 {
		c.forgetAllLocked()
	}
}

func (c *snapshots) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// snapshotStore is the store as the Service writes to it: each write to a
// user or a session forgets their snapshots once it returns, whatever it
// returns (a failed commit may still have committed).
type snapshotStore struct {
	store.Store
	snaps *snapshots
}

func (s snapshotStore) UpdateUser(ctx context.Context, id string, update func(old store.User) (store.UserUpdate, error)) (store.User, []store.RevokedSession, error) {
	defer s.snaps.forgetUser(id)
	return s.Store.UpdateUser(ctx, id, update)
}

func (s snapshotStore) DeleteUser(ctx context.Context, id string, c store.Cutoff, now time.Time, events func(revoked []store.RevokedSession) []store.Event) ([]store.RevokedSession, error) {
	defer s.snaps.forgetUser(id)
	return s.Store.DeleteUser(ctx, id, c, now, events)
}

func (s snapshotStore) UpdateMFA(ctx context.Context, userID string, update func(old store.MFA) (store.MFAUpdate, error)) (store.MFA, []store.RevokedSession, error) {
	defer s.snaps.forgetUser(userID)
	return s.Store.UpdateMFA(ctx, userID, update)
}

func (s snapshotStore) CreateSession(ctx context.Context, sess store.Session, check func(u store.User) error, events ...store.Event) error {
	// A new session may evict the user's oldest ones (the session limit).
	defer s.snaps.forgetUser(sess.UserID)
	return s.Store.CreateSession(ctx, sess, check, events...)
}

func (s snapshotStore) RotateSession(ctx context.Context, r store.Rotation) (store.Session, error) {
	defer s.snaps.forgetSession(r.SessionID)
	return s.Store.RotateSession(ctx, r)
}

func (s snapshotStore) ExtendAccess(ctx context.Context, sessionID string, t time.Time) error {
	defer s.snaps.forgetSession(sessionID)
	return s.Store.ExtendAccess(ctx, sessionID, t)
}

func (s snapshotStore) Reauthenticate(ctx context.Context, sessionID string, p store.Proof, accessExp time.Time, events ...store.Event) (store.Session, error) {
	defer s.snaps.forgetSession(sessionID)
	return s.Store.Reauthenticate(ctx, sessionID, p, accessExp, events...)
}

func (s snapshotStore) RevokeSession(ctx context.Context, id, reason string, now time.Time, events ...store.Event) (bool, error) {
	defer s.snaps.forgetSession(id)
	return s.Store.RevokeSession(ctx, id, reason, now, events...)
}

func (s snapshotStore) RevokeUserSessions(ctx context.Context, userID, exceptID, reason string, now time.Time, events func(revoked []store.RevokedSession) []store.Event) ([]store.RevokedSession, error) {
	defer s.snaps.forgetUser(userID)
	return s.Store.RevokeUserSessions(ctx, userID, exceptID, reason, now, events)
}

func (s snapshotStore) RevokeAll(ctx context.Context, c store.Cutoff, reason string, now time.Time, events func(n int) []store.Event) (int, error) {
	defer s.snaps.forgetAll()
	return s.Store.RevokeAll(ctx, c, reason, now, events)
}

// snapshotRotator is the one-round-trip refresh, forgetting likewise.
type snapshotRotator struct {
	store.FastRotator
	snaps *snapshots
}

func (s snapshotRotator) RotateIfCurrent(ctx context.Context, r store.Rotation) (store.Session, store.User, error) {
	defer s.snaps.forgetSession(r.SessionID)
	return s.FastRotator.RotateIfCurrent(ctx, r)
}

// forgetRevoked forgets what a revocation-log entry covers.
func (c *snapshots) forgetRevoked(r store.Revocation) {
	switch r.Kind {
	case store.KindSession:
		c.forgetSession(r.Subject)
	case store.KindUser:
		c.forgetUser(r.Subject)
	default:
		c.forgetAll()
	}
}
