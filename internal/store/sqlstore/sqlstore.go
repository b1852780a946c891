package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Store implements every store.Store method but Ping and Close, which the
// backend embedding it provides.
type Store struct {
	db      DB
	flavor  Flavor
	queries sync.Map // query as written -> query in the flavor
}

// New returns the shared SQL over db, in flavor.
func New(db DB, flavor Flavor) *Store {
	return &Store{db: db, flavor: flavor}
}

// q returns query in the store's flavor, translated once.
func (s *Store) q(query string) string {
	if v, ok := s.queries.Load(query); ok {
		return v.(string)
	}
	out := s.flavor.Rewrite(query)
	s.queries.Store(query, out)
	return out
}

// mapErr maps a driver error once: an error already carrying a store
// sentinel passes through unchanged.
func (s *Store) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrAlreadyExists),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrLastAdmin):
		return err
	}
	return s.db.MapErr(err)
}

// wrap reports err with what was being done, as a store error.
func (s *Store) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, s.mapErr(err))
}

func (s *Store) exec(ctx context.Context, c Conn, query string, args ...any) (int64, error) {
	return c.Exec(ctx, s.q(query), args...)
}

func (s *Store) queryRow(ctx context.Context, c Conn, query string, args ...any) Row {
	return c.QueryRow(ctx, s.q(query), args...)
}

// list runs query on c and scans every row with scan.
func list[T any](ctx context.Context, s *Store, c Conn, what string, scan func(Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := c.Query(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out, err := Collect(rows, scan)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// inLogTx is inTx for a transaction that may append to one of the logs
// followed by cursor, the revocation log or the events outbox: it takes the
// flavor's log lock first, before any row lock (one lock order, so no
// deadlock), and holds it to the commit.
func (s *Store) inLogTx(ctx context.Context, what string, f func(tx Tx) error) error {
	return s.inTx(ctx, what, func(tx Tx) error {
		if s.flavor.LockLogs != "" {
			if _, err := tx.Exec(ctx, s.flavor.LockLogs); err != nil {
				return s.wrap(what, err)
			}
		}
		return f(tx)
	})
}

// inTx runs f in a write transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, what string, f func(tx Tx) error) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return s.wrap(what, err)
	}
	defer tx.Rollback(ctx)
	if err := f(tx); err != nil {
		return err
	}
	return s.wrap(what, tx.Commit(ctx))
}

// --- users ---

func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.exec(ctx, s.db.Writer(),
		`INSERT INTO users (id, username, username_norm, password_hash, role, permissions, disabled, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, strings.ToLower(u.Key()), u.PasswordHash, u.Role, JoinPermissions(u.Permissions), u.Disabled, NS(u.CreatedAt))
	return s.wrap("create user", err)
}

func (s *Store) GetUserByID(ctx context.Context, id string) (store.User, error) {
	u, err := ScanUser(s.queryRow(ctx, s.db.Reader(), `SELECT `+UserCols+` FROM users WHERE id = ?`, id))
	return u, s.wrap("get user", err)
}

func (s *Store) GetUserByUsername(ctx context.Context, key string) (store.User, error) {
	u, err := ScanUser(s.queryRow(ctx, s.db.Reader(),
		`SELECT `+UserCols+` FROM users WHERE username_norm = ?`, strings.ToLower(key)))
	return u, s.wrap("get user by name", err)
}

func (s *Store) ListUsers(ctx context.Context, afterKey, contains string, limit int) ([]store.User, error) {
	// LIKE with the pattern's own wildcards escaped: a search for "a_b"
	// finds "a_b", not "axb". Both sides are lower-cased, so SQLite's
	// ASCII case folding and PostgreSQL's case-sensitive LIKE agree.
	pattern := "%" + likeEscaper.Replace(strings.ToLower(contains)) + "%"
	return list(ctx, s, s.db.Reader(), "list users", ScanUser,
		`SELECT `+UserCols+` FROM users WHERE username_norm > ? AND username_norm LIKE ? ESCAPE '!' ORDER BY username_norm LIMIT ?`,
		strings.ToLower(afterKey), pattern, limit)
}

var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

func (s *Store) UpdateUser(ctx context.Context, id string, update func(store.User) (store.UserUpdate, error)) (u store.User, revoked []store.RevokedSession, err error) {
	const what = "update user"
	err = s.inLogTx(ctx, what, func(tx Tx) error {
		// The enabled admins first, in id order, as DeleteUser does: the
		// last-admin rule needs a count no one can change before the
		// commit, and one lock order keeps two updates from deadlocking.
		others, err := s.lockAdmins(ctx, tx, id)
		if err != nil {
			return s.wrap(what, err)
		}
		old, err := ScanUser(s.queryRow(ctx, tx, `SELECT `+UserCols+` FROM users WHERE id = ? FOR UPDATE`, id))
		if err != nil {
			return s.wrap(what, err)
		}
		u = old
		up, err := update(old)
		if errors.Is(err, store.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		u = up.User
		u.ID, u.Username, u.UsernameKey, u.CreatedAt = old.ID, old.Username, old.UsernameKey, old.CreatedAt
		if u.Permissions == nil {
			u.Permissions = []string{}
		}
		wasAdmin := old.Role == store.RoleAdmin && !old.Disabled
		if wasAdmin && (u.Role != store.RoleAdmin || u.Disabled) && others == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrLastAdmin)
		}
		if _, err := s.exec(ctx, tx, `UPDATE users SET role = ?, disabled = ?, password_hash = ?, permissions = ? WHERE id = ?`,
			u.Role, u.Disabled, u.PasswordHash, JoinPermissions(u.Permissions), id); err != nil {
			return s.wrap(what, err)
		}
		if up.Cutoff != nil {
			if err := s.logRevocation(ctx, tx, store.KindUser, id, NS(up.Cutoff.NotBefore), NS(up.Cutoff.Until)); err != nil {
				return err
			}
		}
		if up.RevokeSessions {
			if revoked, err = s.revokeUserSessions(ctx, tx, id, up.ExceptSession, up.Reason, up.Now); err != nil {
				return err
			}
		}
		if up.Events != nil {
			return s.addEvents(ctx, tx, up.Events(revoked))
		}
		return nil
	})
	if err != nil {
		return u, nil, err
	}
	return u, revoked, nil
}

// lockAdmins locks every enabled admin's row, in id order (so two
// transactions demoting two admins serialize instead of deadlocking), and
// counts those other than id: the last-admin rule needs a count that
// cannot change before the commit.
func (s *Store) lockAdmins(ctx context.Context, tx Tx, id string) (others int, err error) {
	ids, err := list(ctx, s, tx, "lock admins", func(r Row) (string, error) {
		var v string
		return v, r.Scan(&v)
	}, `SELECT id FROM users WHERE role = ? AND disabled = ? ORDER BY id FOR UPDATE`, store.RoleAdmin, false)
	for _, v := range ids {
		if v != id {
			others++
		}
	}
	return others, err
}

func (s *Store) DeleteUser(ctx context.Context, id string, c store.Cutoff, now time.Time, events func([]store.RevokedSession) []store.Event) (revoked []store.RevokedSession, err error) {
	const what = "delete user"
	err = s.inLogTx(ctx, what, func(tx Tx) error {
		others, err := s.lockAdmins(ctx, tx, id)
		if err != nil {
			return s.wrap(what, err)
		}
		u, err := ScanUser(s.queryRow(ctx, tx, `SELECT `+UserCols+` FROM users WHERE id = ? FOR UPDATE`, id))
		if err != nil {
			return s.wrap(what, err)
		}
		if u.Role == store.RoleAdmin && !u.Disabled && others == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrLastAdmin)
		}
		// Revoke first, so the log carries every session to the other
		// instances and the resource servers; then erase them.
		if revoked, err = s.revokeUserSessions(ctx, tx, id, "", "account_deleted", now); err != nil {
			return err
		}
		if err := s.logRevocation(ctx, tx, store.KindUser, id, NS(c.NotBefore), NS(c.Until)); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM sessions WHERE user_id = ?`, `DELETE FROM factors WHERE user_id = ?`,
			`DELETE FROM recovery_codes WHERE user_id = ?`, `DELETE FROM tickets WHERE user_id = ?`} {
			if _, err := s.exec(ctx, tx, q, id); err != nil {
				return s.wrap(what, err)
			}
		}
		if _, err = s.exec(ctx, tx, `DELETE FROM users WHERE id = ?`, id); err != nil {
			return s.wrap(what, err)
		}
		if events != nil {
			return s.addEvents(ctx, tx, events(revoked))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

// --- sessions ---

func (s *Store) CreateSession(ctx context.Context, x store.Session, check func(store.User) error, events ...store.Event) error {
	const what = "create session"
	return s.inLogTx(ctx, what, func(tx Tx) error {
		// FOR SHARE: logins of one account run side by side, but a change
		// to the account (UpdateUser, DeleteUser lock it FOR UPDATE) waits
		// for them or they for it; either way the session is judged
		// against the row as committed.
		u, err := ScanUser(s.queryRow(ctx, tx, `SELECT `+UserCols+` FROM users WHERE id = ? FOR SHARE`, x.UserID))
		if err != nil {
			return s.wrap(what, err)
		}
		if check != nil {
			if err := check(u); err != nil {
				return err
			}
		}
		_, err = s.exec(ctx, tx,
			`INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
			   idle_expires_at, expires_at, access_exp, auth_time, amr, acr, dpop_jkt, ip, user_agent)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			x.ID, x.UserID, x.Nonce, x.Generation, NS(x.RotatedAt), NS(x.CreatedAt), NS(x.LastUsedAt),
			NS(x.IdleExpiresAt), NS(x.ExpiresAt), NS(x.AccessExpiresAt), NS(x.AuthTime), joinAMR(x.AMR), acrOr(x.ACR), x.DPoPJKT, x.IP, x.UserAgent)
		if err != nil {
			return s.wrap(what, err)
		}
		return s.addEvents(ctx, tx, events)
	})
}

func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := ScanSession(s.queryRow(ctx, s.db.Reader(), `SELECT `+SessionCols+` FROM sessions WHERE id = ?`, id))
	return x, s.wrap("get session", err)
}

func (s *Store) GetSessionWithUser(ctx context.Context, id string) (store.Session, store.User, error) {
	x, u, err := ScanSessionUser(s.queryRow(ctx, s.db.Reader(),
		`SELECT `+SessionUserCols+` FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`, id))
	return x, u, s.wrap("get session with user", err)
}

func (s *Store) RotateSession(ctx context.Context, r store.Rotation) (x store.Session, err error) {
	const what = "rotate session"
	rotate := func(c Conn) error {
		// The compare-and-swap and the read-back in one statement. The
		// losers of a race on one generation see the new generation and
		// match nothing.
		x, err = ScanSession(s.queryRow(ctx, c,
			`UPDATE sessions SET generation = generation + 1, rotated_at = ?, last_used_at = ?,
			   idle_expires_at = ?, access_exp = GREATEST(access_exp, ?), ip = ?, user_agent = ?
			 WHERE id = ? AND generation = ? AND revoked_at IS NULL
			 RETURNING `+SessionCols,
			NS(r.Now), NS(r.Now), NS(r.IdleExpiresAt), NS(r.AccessExpiresAt), r.IP, r.UserAgent,
			r.SessionID, r.FromGeneration))
		if err = s.mapErr(err); errors.Is(err, store.ErrNotFound) {
			return s.conflictOrMissing(ctx, c, what, r.SessionID)
		}
		if err != nil {
			return s.wrap(what, err)
		}
		return s.addEvents(ctx, c, r.Events)
	}
	if len(r.Events) == 0 {
		return x, rotate(s.db.Writer()) // the common refresh: one statement
	}
	return x, s.inLogTx(ctx, what, func(tx Tx) error { return rotate(tx) })
}

// conflictOrMissing explains why a conditional update of session id
// matched nothing: ErrNotFound if there is no such session, else
// ErrConflict (it changed or was revoked meanwhile).
func (s *Store) conflictOrMissing(ctx context.Context, c Conn, what, id string) error {
	var one int
	if err := s.mapErr(s.queryRow(ctx, c, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one)); err != nil {
		return s.wrap(what, err)
	}
	return fmt.Errorf("%s: %w", what, store.ErrConflict)
}

func (s *Store) ExtendAccess(ctx context.Context, id string, t time.Time) error {
	// Only a live session: once revoked, its log entry's Until was fixed
	// from access_exp and must not be outlived by a new token.
	n, err := s.exec(ctx, s.db.Writer(),
		`UPDATE sessions SET access_exp = GREATEST(access_exp, ?) WHERE id = ? AND revoked_at IS NULL`, NS(t), id)
	if err != nil {
		return s.wrap("extend access", err)
	}
	if n == 0 {
		return fmt.Errorf("extend access: %w", store.ErrConflict)
	}
	return nil
}

func (s *Store) Reauthenticate(ctx context.Context, id string, p store.Proof, accessExp time.Time, events ...store.Event) (x store.Session, err error) {
	const what = "reauthenticate"
	err = s.inLogTx(ctx, what, func(tx Tx) error {
		x, err = ScanSession(s.queryRow(ctx, tx,
			`UPDATE sessions SET auth_time = ?, amr = ?, acr = ?, access_exp = GREATEST(access_exp, ?)
			 WHERE id = ? AND revoked_at IS NULL
			 RETURNING `+SessionCols, NS(p.At), joinAMR(p.AMR), acrOr(p.ACR), NS(accessExp), id))
		if err = s.mapErr(err); errors.Is(err, store.ErrNotFound) {
			return s.conflictOrMissing(ctx, tx, what, id) // revoked, or no such session
		}
		if err != nil {
			return s.wrap(what, err)
		}
		return s.addEvents(ctx, tx, events)
	})
	return x, err
}

func (s *Store) RevokeSession(ctx context.Context, id, reason string, now time.Time, events ...store.Event) (revoked bool, err error) {
	err = s.inLogTx(ctx, "revoke session", func(tx Tx) error {
		var until int64
		err := s.mapErr(s.queryRow(ctx, tx,
			`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL
			 RETURNING access_exp`, NS(now), reason, id).Scan(&until))
		if errors.Is(err, store.ErrNotFound) {
			// Already revoked (nothing to do), or no such session.
			var one int
			return s.wrap("revoke session", s.queryRow(ctx, tx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one))
		}
		if err != nil {
			return s.wrap("revoke session", err)
		}
		revoked = true
		if err := s.logRevocation(ctx, tx, store.KindSession, id, 0, until); err != nil {
			return err
		}
		return s.addEvents(ctx, tx, events)
	})
	return revoked && err == nil, err
}

func (s *Store) logRevocation(ctx context.Context, c Conn, kind, subject string, notBefore, until int64) error {
	_, err := s.exec(ctx, c,
		`INSERT INTO revocation_log (kind, subject, not_before, until) VALUES (?, ?, ?, ?)`,
		kind, subject, notBefore, until)
	return s.wrap("log revocation", err)
}

func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptID, reason string, now time.Time, events func([]store.RevokedSession) []store.Event) (out []store.RevokedSession, err error) {
	err = s.inLogTx(ctx, "revoke user sessions", func(tx Tx) error {
		if out, err = s.revokeUserSessions(ctx, tx, userID, exceptID, reason, now); err != nil {
			return err
		}
		if events != nil {
			return s.addEvents(ctx, tx, events(out))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) revokeUserSessions(ctx context.Context, tx Tx, userID, exceptID, reason string, now time.Time) ([]store.RevokedSession, error) {
	out, err := list(ctx, s, tx, "revoke user sessions", ScanRevokedSession,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		 WHERE user_id = ? AND id != ? AND revoked_at IS NULL
		 RETURNING `+RevokedSessionCols,
		NS(now), reason, userID, exceptID)
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		if err := s.logRevocation(ctx, tx, store.KindSession, r.SessionID, 0, NS(r.Until)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) RevokeAll(ctx context.Context, c store.Cutoff, reason string, now time.Time, events func(int) []store.Event) (n int, err error) {
	err = s.inLogTx(ctx, "revoke all", func(tx Tx) error {
		revoked, err := s.exec(ctx, tx,
			`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE revoked_at IS NULL`, NS(now), reason)
		if err != nil {
			return s.wrap("revoke all", err)
		}
		n = int(revoked)
		if err := s.logRevocation(ctx, tx, store.KindGlobal, "", NS(c.NotBefore), NS(c.Until)); err != nil {
			return err
		}
		if events != nil {
			return s.addEvents(ctx, tx, events(n))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Store) ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error) {
	return list(ctx, s, s.db.Reader(), "list sessions", ScanSession,
		`SELECT `+SessionCols+` FROM sessions
		 WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND idle_expires_at > ?
		 ORDER BY created_at DESC, id DESC`, userID, NS(now), NS(now))
}

// --- revocation log ---

func (s *Store) LogCutoff(ctx context.Context, kind, subject string, c store.Cutoff) error {
	if err := s.inLogTx(ctx, "log cutoff", func(tx Tx) error {
		return s.logRevocation(ctx, tx, kind, subject, NS(c.NotBefore), NS(c.Until))
	}); err != nil {
		return fmt.Errorf("log cutoff: %w", err)
	}
	return nil
}

func (s *Store) RevocationsSince(ctx context.Context, seq int64, limit int) ([]store.Revocation, error) {
	return list(ctx, s, s.db.Reader(), fmt.Sprintf("revocations since %d", seq), ScanRevocation,
		`SELECT `+RevocationCols+` FROM revocation_log WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
}

func (s *Store) PruneRevocations(ctx context.Context, t time.Time) (int, error) {
	n, err := s.exec(ctx, s.db.Writer(), `DELETE FROM revocation_log WHERE until < ?`, NS(t))
	return int(n), s.wrap("prune revocations", err)
}

// --- keys ---

// allSigningKeys reads the key set, oldest first.
const allSigningKeys = `SELECT ` + SigningKeyCols + ` FROM signing_keys ORDER BY created_at`

func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	return list(ctx, s, s.db.Reader(), "list signing keys", ScanSigningKey,
		allSigningKeys)
}

func (s *Store) UpdateSigningKeys(ctx context.Context, next func([]store.SigningKey) (store.SigningKey, error)) error {
	const what = "update signing keys"
	return s.inTx(ctx, what, func(tx Tx) error {
		if s.flavor.LockSigningKeys != "" {
			if _, err := tx.Exec(ctx, s.flavor.LockSigningKeys); err != nil {
				return s.wrap(what, err)
			}
		}
		keys, err := list(ctx, s, tx, what, ScanSigningKey, allSigningKeys)
		if err != nil {
			return err
		}
		k, err := next(keys)
		if errors.Is(err, store.ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL`, NS(k.CreatedAt)); err != nil {
			return s.wrap(what, err)
		}
		_, err = s.exec(ctx, tx,
			`INSERT INTO signing_keys (id, algorithm, public_key, sealed_private, created_at, retired_at)
			 VALUES (?, ?, ?, ?, ?, NULL)`,
			k.ID, k.Algorithm, k.PublicKey, k.SealedPrivate, NS(k.CreatedAt))
		return s.wrap(what, err)
	})
}

// --- resource keys ---

func (s *Store) AddResourceKey(ctx context.Context, k store.ResourceKey) error {
	kind := k.Kind
	if kind == "" {
		kind = store.ClientResource
	}
	_, err := s.exec(ctx, s.db.Writer(), `INSERT INTO resource_keys (id, name, hash, created_at, kind, audience, role, permissions)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, NS(k.CreatedAt), kind, k.Audience, k.Role, JoinPermissions(k.Permissions))
	return s.wrap("add resource key", err)
}

func (s *Store) ListResourceKeys(ctx context.Context) ([]store.ResourceKey, error) {
	return list(ctx, s, s.db.Reader(), "list resource keys", ScanResourceKey,
		`SELECT `+ResourceKeyCols+` FROM resource_keys ORDER BY created_at, id`)
}

func (s *Store) RemoveResourceKey(ctx context.Context, id string, c *store.Cutoff) error {
	return s.inLogTx(ctx, "remove resource key", func(tx Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM resource_keys WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("remove resource key %s: %w", id, store.ErrNotFound)
		}
		if c == nil {
			return nil
		}
		return s.logRevocation(ctx, tx, store.KindUser, id, NS(c.NotBefore), NS(c.Until))
	})
}

func (s *Store) FindResourceKey(ctx context.Context, hash []byte) (store.ResourceKey, error) {
	k, err := ScanResourceKey(s.queryRow(ctx, s.db.Reader(), `SELECT `+ResourceKeyCols+` FROM resource_keys WHERE hash = ?`, hash))
	return k, s.wrap("find resource key", err)
}

// --- events ---

func (s *Store) AddEvent(ctx context.Context, e store.Event) error {
	return s.inLogTx(ctx, "add event", func(tx Tx) error { return s.addEvents(ctx, tx, []store.Event{e}) })
}

// addEvents writes events on c: the outbox, in the transaction of the
// change they record, which holds the log lock (inLogTx) so that the
// outbox's sequence order is its commit order.
func (s *Store) addEvents(ctx context.Context, c Conn, events []store.Event) error {
	for _, e := range events {
		if _, err := s.exec(ctx, c,
			`INSERT INTO events (id, type, at, user_id, session_id, ip, user_agent, detail)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.Type, NS(e.At), e.UserID, e.SessionID, e.IP, e.UserAgent, e.Detail); err != nil {
			return s.wrap("add event", err)
		}
	}
	return nil
}

func (s *Store) EventsSince(ctx context.Context, seq int64, limit int) ([]store.Event, error) {
	return list(ctx, s, s.db.Reader(), "events since", ScanEvent,
		`SELECT `+EventCols+` FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
}

func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	// The cursor is compared with seq alone, never with a literal: in
	// "? = 0" PostgreSQL types the parameter int4, and every cursor past
	// 2^31 failed to encode.
	before := f.BeforeSeq
	if before <= 0 {
		before = math.MaxInt64
	}
	return list(ctx, s, s.db.Reader(), "list events", ScanEvent,
		`SELECT `+EventCols+` FROM events
		 WHERE (? = '' OR user_id = ?) AND (? = '' OR type = ?) AND seq < ?
		 ORDER BY seq DESC LIMIT ?`,
		f.UserID, f.UserID, f.Type, f.Type, before, f.Limit)
}

func (s *Store) PruneEvents(ctx context.Context, t time.Time) (int, error) {
	n, err := s.exec(ctx, s.db.Writer(), `DELETE FROM events WHERE at < ?`, NS(t))
	return int(n), s.wrap("prune events", err)
}

// --- login throttle ---

func (s *Store) UpdateLoginFailures(ctx context.Context, account, addr string, update func(store.LoginFailures) (store.LoginFailures, error)) error {
	const what = "update login failures"
	return s.inTx(ctx, what, func(tx Tx) error {
		// Rows first (nothing to lock otherwise: two first attempts would
		// both read "none"), then locked in one order: account, address.
		if _, err := s.exec(ctx, tx, `INSERT INTO login_account_failures (account, debt) VALUES (?, 0)
			ON CONFLICT (account) DO NOTHING`, account); err != nil {
			return s.wrap(what, err)
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO login_ip_failures (account, ip, failures, last_at, known_at) VALUES (?, ?, 0, 0, 0)
			ON CONFLICT (account, ip) DO NOTHING`, account, addr); err != nil {
			return s.wrap(what, err)
		}
		var debt, last, known int64
		var n int
		if err := s.queryRow(ctx, tx, `SELECT debt FROM login_account_failures WHERE account = ? FOR UPDATE`, account).Scan(&debt); err != nil {
			return s.wrap(what, err)
		}
		if err := s.queryRow(ctx, tx, `SELECT failures, last_at, known_at FROM login_ip_failures WHERE account = ? AND ip = ? FOR UPDATE`,
			account, addr).Scan(&n, &last, &known); err != nil {
			return s.wrap(what, err)
		}
		next, err := update(store.LoginFailures{Debt: Time(debt), Failures: n, LastFailure: Time(last), KnownAt: Time(known)})
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE login_account_failures SET debt = ? WHERE account = ?`, NS(next.Debt), account); err != nil {
			return s.wrap(what, err)
		}
		_, err = s.exec(ctx, tx, `UPDATE login_ip_failures SET failures = ?, last_at = ?, known_at = ? WHERE account = ? AND ip = ?`,
			next.Failures, NS(next.LastFailure), NS(next.KnownAt), account, addr)
		return s.wrap(what, err)
	})
}

func (s *Store) PruneLoginFailures(ctx context.Context, debtBefore, runBefore, knownBefore time.Time) (int, error) {
	var total int64
	err := s.inTx(ctx, "prune login failures", func(tx Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM login_account_failures WHERE debt < ?`, NS(debtBefore))
		if err != nil {
			return s.wrap("prune login failures", err)
		}
		m, err := s.exec(ctx, tx, `DELETE FROM login_ip_failures WHERE last_at < ? AND known_at < ?`, NS(runBefore), NS(knownBefore))
		total = n + m
		return s.wrap("prune login failures", err)
	})
	return int(total), err
}
