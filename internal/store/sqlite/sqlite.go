// Package sqlite is the embedded, zero-setup Store: a single SQLite file in
// WAL mode through the pure-Go modernc.org/sqlite driver (no cgo).
//
// Writes go through one connection (SQLite has one writer anyway; queueing in
// Go is cheaper than spinning on SQLITE_BUSY) and reads through a small pool
// of read-only connections, which WAL lets run beside the writer. With
// synchronous=NORMAL a committed transaction survives a process crash
// (kill -9); only a power loss can drop the last commits. Set
// Options.Synchronous to "FULL" to pay an fsync per commit instead.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlrow"
)

// Options tunes the database.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "NORMAL" (default) or "FULL".
	Synchronous string
}

// Store is a SQLite-backed store.Store.
type Store struct {
	w     *sql.DB  // single writer connection
	r     *sql.DB  // read-only pool
	stmts sync.Map // query text -> *sql.Stmt, per pool
	stop  chan struct{}
	done  chan struct{}
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// stmt returns a prepared statement for query on db, preparing it once.
// Without it every call re-parses its SQL, which costs more than running
// these single-row statements.
func (s *Store) stmt(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{db, query}
	if st, ok := s.stmts.Load(k); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, mapErr(err)
	}
	if prev, loaded := s.stmts.LoadOrStore(k, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// exec, query and queryRow run a statement through the statement cache.
func (s *Store) exec(ctx context.Context, db *sql.DB, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, db, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s *Store) query(ctx context.Context, db *sql.DB, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, db, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (s *Store) queryRow(ctx context.Context, db *sql.DB, query string, args ...any) interface{ Scan(...any) error } {
	st, err := s.stmt(ctx, db, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and applies
// migrations.
func Open(ctx context.Context, path string, opt Options) (*Store, error) {
	syncMode := strings.ToUpper(opt.Synchronous)
	if syncMode == "" {
		syncMode = "NORMAL"
	}
	if syncMode != "NORMAL" && syncMode != "FULL" {
		return nil, fmt.Errorf("sqlite: synchronous must be NORMAL or FULL, not %q", opt.Synchronous)
	}
	dsn := func(readOnly bool) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous("+syncMode+")")
		q.Add("_pragma", "foreign_keys(1)")
		// Reads through a shared memory map instead of a read syscall per
		// page, and a larger page cache: keeps rotation flat as the table
		// grows past the default 2 MB cache.
		q.Add("_pragma", "mmap_size(268435456)")
		q.Add("_pragma", "cache_size(-16384)")
		q.Add("_pragma", "journal_size_limit(67108864)")
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Add("_txlock", "immediate")
		}
		return "file:" + path + "?" + q.Encode()
	}
	// The file holds password hashes: create it private. SQLite gives the
	// -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	w, err := sql.Open("sqlite", dsn(false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(2, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	st := &Store{w: w, r: r, stop: make(chan struct{}), done: make(chan struct{})}
	go st.checkpointLoop(time.Second)
	return st, nil
}

// checkpointLoop resets the WAL regularly. SQLite's automatic checkpoints
// are passive: under a steady stream of reads they copy pages back but never
// get the moment without readers that lets the WAL start over, so the file
// grows without bound (100 MB in seconds under load) and every read gets
// slower. A RESTART checkpoint waits (busy_timeout) for the short reads in
// flight and then lets the next write begin at the start of the file.
func (s *Store) checkpointLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(RESTART)`)
			cancel()
		}
	}
}

var migrations = []string{
	// v1: accounts, sessions, keys, events.
	`CREATE TABLE users (
		id            TEXT PRIMARY KEY,
		username      TEXT NOT NULL,
		username_norm TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		role          TEXT NOT NULL,
		disabled      INTEGER NOT NULL DEFAULT 0,
		created_at    INTEGER NOT NULL
	);
	CREATE TABLE sessions (
		id              TEXT PRIMARY KEY,
		user_id         TEXT NOT NULL REFERENCES users(id),
		nonce           BLOB NOT NULL,
		generation      INTEGER NOT NULL,
		rotated_at      INTEGER NOT NULL,
		created_at      INTEGER NOT NULL,
		last_used_at    INTEGER NOT NULL,
		idle_expires_at INTEGER NOT NULL,
		expires_at      INTEGER NOT NULL,
		access_exp      INTEGER NOT NULL,
		ip              TEXT NOT NULL,
		user_agent      TEXT NOT NULL,
		revoked_at      INTEGER,
		revoke_reason   TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX sessions_user ON sessions(user_id, created_at);
	CREATE INDEX sessions_revoked ON sessions(access_exp) WHERE revoked_at IS NOT NULL;
	CREATE TABLE signing_keys (
		id             TEXT PRIMARY KEY,
		algorithm      TEXT NOT NULL,
		public_key     BLOB NOT NULL,
		sealed_private BLOB NOT NULL,
		created_at     INTEGER NOT NULL,
		retired_at     INTEGER
	);
	CREATE TABLE events (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		id         TEXT NOT NULL UNIQUE,
		type       TEXT NOT NULL,
		at         INTEGER NOT NULL,
		user_id    TEXT NOT NULL,
		session_id TEXT NOT NULL,
		ip         TEXT NOT NULL,
		user_agent TEXT NOT NULL,
		detail     TEXT NOT NULL
	);
	CREATE INDEX events_user ON events(user_id, seq);`,
	// v2: the revocation log (session, user and global revocations in
	// order), event filtering by type.
	`CREATE TABLE revocation_log (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		kind       TEXT NOT NULL,
		subject    TEXT NOT NULL,
		not_before INTEGER NOT NULL,
		until      INTEGER NOT NULL
	);
	CREATE INDEX revocation_log_until ON revocation_log(until);
	CREATE INDEX events_type ON events(type, seq);
	CREATE INDEX events_at ON events(at);`,
	// v3: resource-server keys.
	`CREATE TABLE resource_keys (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		hash       BLOB NOT NULL UNIQUE,
		created_at INTEGER NOT NULL
	);`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", mapErr(err))
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", mapErr(err))
	}
	if v > len(migrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this binary (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return fmt.Errorf("sqlite: set schema version: %w", err)
	}
	return tx.Commit()
}

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return mapErr(err)
	}
	return mapErr(s.r.PingContext(ctx))
}

// Close closes the database.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
	}
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return errors.Join(s.r.Close(), s.w.Close())
}

// mapErr turns driver errors into store sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	return err
}

// ns and fromNS encode times as Unix nanoseconds (see sqlrow).
var ns, fromNS = sqlrow.NS, sqlrow.Time

// --- users ---

const userCols = sqlrow.UserCols

func scanUser(r sqlrow.Row) (store.User, error) {
	u, err := sqlrow.ScanUser(r)
	return u, mapErr(err)
}

func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	_, err := s.exec(ctx, s.w,
		`INSERT INTO users (id, username, username_norm, password_hash, role, disabled, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Username, strings.ToLower(u.Username), u.PasswordHash, u.Role, u.Disabled, ns(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create user: %w", mapErr(err))
	}
	return nil
}

func (s *Store) GetUserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx, s.r, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

func (s *Store) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx, s.r,
		`SELECT `+userCols+` FROM users WHERE username_norm = ?`, strings.ToLower(username)))
	if err != nil {
		return u, fmt.Errorf("get user by name: %w", err)
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context, afterName string, limit int) ([]store.User, error) {
	rows, err := s.query(ctx, s.r,
		`SELECT `+userCols+` FROM users WHERE username_norm > ? ORDER BY username_norm LIMIT ?`,
		strings.ToLower(afterName), limit)
	return list("list users", rows, err, sqlrow.ScanUser)
}

func (s *Store) UpdateUser(ctx context.Context, id string, up store.UserUpdate) (store.User, []store.RevokedSession, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.User{}, nil, fmt.Errorf("update user: %w", mapErr(err))
	}
	defer tx.Rollback()
	u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, nil, fmt.Errorf("update user: %w", err)
	}
	if up.Role != nil {
		u.Role = *up.Role
	}
	if up.Disabled != nil {
		u.Disabled = *up.Disabled
	}
	if up.PasswordHash != nil {
		u.PasswordHash = *up.PasswordHash
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, disabled = ?, password_hash = ? WHERE id = ?`,
		u.Role, u.Disabled, u.PasswordHash, id); err != nil {
		return u, nil, fmt.Errorf("update user: %w", mapErr(err))
	}
	if up.Cutoff != nil {
		if err := logRevocation(ctx, tx, store.KindUser, id, ns(up.Cutoff.NotBefore), ns(up.Cutoff.Until)); err != nil {
			return u, nil, err
		}
	}
	var revoked []store.RevokedSession
	if up.RevokeSessions {
		if revoked, err = revokeUserSessionsTx(ctx, tx, id, up.ExceptSession, up.Reason, up.Now); err != nil {
			return u, nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return u, nil, fmt.Errorf("update user: %w", mapErr(err))
	}
	return u, revoked, nil
}

// --- sessions ---

const sessionCols = sqlrow.SessionCols

func scanSession(r sqlrow.Row) (store.Session, error) {
	x, err := sqlrow.ScanSession(r)
	return x, mapErr(err)
}

func (s *Store) CreateSession(ctx context.Context, x store.Session) error {
	_, err := s.exec(ctx, s.w,
		`INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
		   idle_expires_at, expires_at, access_exp, ip, user_agent)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		x.ID, x.UserID, x.Nonce, x.Generation, ns(x.RotatedAt), ns(x.CreatedAt), ns(x.LastUsedAt),
		ns(x.IdleExpiresAt), ns(x.ExpiresAt), ns(x.AccessExpiresAt), x.IP, x.UserAgent)
	if err != nil {
		return fmt.Errorf("create session: %w", mapErr(err))
	}
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.queryRow(ctx, s.r, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return x, fmt.Errorf("get session: %w", err)
	}
	return x, nil
}

func (s *Store) GetSessionWithUser(ctx context.Context, id string) (store.Session, store.User, error) {
	x, u, err := sqlrow.ScanSessionUser(s.queryRow(ctx, s.r,
		`SELECT `+sqlrow.SessionUserCols+` FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`, id))
	if err != nil {
		return x, u, fmt.Errorf("get session with user: %w", mapErr(err))
	}
	return x, u, nil
}

func (s *Store) RotateSession(ctx context.Context, r store.Rotation) (store.Session, error) {
	// One statement, one write transaction: the compare-and-swap and the
	// read-back happen together.
	x, err := scanSession(s.queryRow(ctx, s.w,
		`UPDATE sessions SET generation = generation + 1, rotated_at = ?, last_used_at = ?,
		   idle_expires_at = ?, access_exp = MAX(access_exp, ?), ip = ?, user_agent = ?
		 WHERE id = ? AND generation = ? AND revoked_at IS NULL
		 RETURNING `+sessionCols,
		ns(r.Now), ns(r.Now), ns(r.IdleExpiresAt), ns(r.AccessExpiresAt), r.IP, r.UserAgent,
		r.SessionID, r.FromGeneration))
	if errors.Is(err, store.ErrNotFound) {
		// Tell a lost race from a missing session.
		if _, gerr := s.GetSession(ctx, r.SessionID); gerr != nil {
			return x, gerr
		}
		return x, fmt.Errorf("rotate session: %w", store.ErrConflict)
	}
	if err != nil {
		return x, fmt.Errorf("rotate session: %w", err)
	}
	return x, nil
}

func (s *Store) ExtendAccess(ctx context.Context, id string, t time.Time) error {
	// Only a live session: once revoked, its log entry's Until was fixed
	// from access_exp and must not be outlived by a new token.
	res, err := s.exec(ctx, s.w,
		`UPDATE sessions SET access_exp = MAX(access_exp, ?) WHERE id = ? AND revoked_at IS NULL`, ns(t), id)
	if err != nil {
		return fmt.Errorf("extend access: %w", mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("extend access: %w", store.ErrConflict)
	}
	return nil
}

func (s *Store) RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", mapErr(err))
	}
	defer tx.Rollback()
	var until int64
	err = tx.QueryRowContext(ctx,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL
		 RETURNING access_exp`, ns(now), reason, id).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one); err != nil {
			return false, fmt.Errorf("revoke session: %w", mapErr(err))
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", mapErr(err))
	}
	if err := logRevocation(ctx, tx, store.KindSession, id, 0, until); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("revoke session: %w", mapErr(err))
	}
	return true, nil
}

func logRevocation(ctx context.Context, tx *sql.Tx, kind, subject string, notBefore, until int64) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO revocation_log (kind, subject, not_before, until) VALUES (?, ?, ?, ?)`,
		kind, subject, notBefore, until); err != nil {
		return fmt.Errorf("log revocation: %w", mapErr(err))
	}
	return nil
}

func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptID, reason string, now time.Time) ([]store.RevokedSession, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("revoke user sessions: %w", mapErr(err))
	}
	defer tx.Rollback()
	out, err := revokeUserSessionsTx(ctx, tx, userID, exceptID, reason, now)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("revoke user sessions: %w", mapErr(err))
	}
	return out, nil
}

func revokeUserSessionsTx(ctx context.Context, tx *sql.Tx, userID, exceptID, reason string, now time.Time) ([]store.RevokedSession, error) {
	rows, err := tx.QueryContext(ctx,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		 WHERE user_id = ? AND id != ? AND revoked_at IS NULL
		 RETURNING `+sqlrow.RevokedSessionCols,
		ns(now), reason, userID, exceptID)
	out, err := list("revoke user sessions", rows, err, sqlrow.ScanRevokedSession)
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		if err := logRevocation(ctx, tx, store.KindSession, r.SessionID, 0, ns(r.Until)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) RevokeAll(ctx context.Context, c store.Cutoff, reason string, now time.Time) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("revoke all: %w", mapErr(err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE revoked_at IS NULL`, ns(now), reason)
	if err != nil {
		return 0, fmt.Errorf("revoke all: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	if err := logRevocation(ctx, tx, store.KindGlobal, "", ns(c.NotBefore), ns(c.Until)); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("revoke all: %w", mapErr(err))
	}
	return int(n), nil
}

// list collects a query's rows, mapping driver errors; it closes rows.
func list[T any](what string, rows *sql.Rows, err error, scan func(sqlrow.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	defer rows.Close()
	out, err := sqlrow.Collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

func (s *Store) ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error) {
	rows, err := s.query(ctx, s.r,
		`SELECT `+sessionCols+` FROM sessions
		 WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND idle_expires_at > ?
		 ORDER BY created_at DESC, id DESC`, userID, ns(now), ns(now))
	return list("list sessions", rows, err, sqlrow.ScanSession)
}

const revocationCols = `seq, kind, subject, not_before, until`

func (s *Store) LogCutoff(ctx context.Context, kind, subject string, c store.Cutoff) error {
	if _, err := s.exec(ctx, s.w,
		`INSERT INTO revocation_log (kind, subject, not_before, until) VALUES (?, ?, ?, ?)`,
		kind, subject, ns(c.NotBefore), ns(c.Until)); err != nil {
		return fmt.Errorf("log cutoff: %w", mapErr(err))
	}
	return nil
}

func (s *Store) RevocationsSince(ctx context.Context, seq int64, limit int) ([]store.Revocation, error) {
	rows, err := s.query(ctx, s.r,
		`SELECT `+sqlrow.RevocationCols+` FROM revocation_log WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
	return list(fmt.Sprintf("revocations since %d", seq), rows, err, sqlrow.ScanRevocation)
}

func (s *Store) PruneRevocations(ctx context.Context, t time.Time) (int, error) {
	res, err := s.exec(ctx, s.w, `DELETE FROM revocation_log WHERE until < ?`, ns(t))
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// --- keys ---

func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+sqlrow.SigningKeyCols+` FROM signing_keys ORDER BY created_at`)
	return list("list signing keys", rows, err, sqlrow.ScanSigningKey)
}

func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey, ifNone bool) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	defer tx.Rollback()
	var active int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL`).Scan(&active); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	if ifNone && active > 0 {
		return fmt.Errorf("add signing key: %w", store.ErrAlreadyExists)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL`, ns(k.CreatedAt)); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO signing_keys (id, algorithm, public_key, sealed_private, created_at, retired_at)
		 VALUES (?, ?, ?, ?, ?, NULL)`,
		k.ID, k.Algorithm, k.PublicKey, k.SealedPrivate, ns(k.CreatedAt)); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	return mapErr(tx.Commit())
}

// --- resource keys ---

func (s *Store) AddResourceKey(ctx context.Context, k store.ResourceKey) error {
	if _, err := s.exec(ctx, s.w, `INSERT INTO resource_keys (id, name, hash, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, k.Name, k.Hash, ns(k.CreatedAt)); err != nil {
		return fmt.Errorf("add resource key: %w", mapErr(err))
	}
	return nil
}

func (s *Store) ListResourceKeys(ctx context.Context) ([]store.ResourceKey, error) {
	rows, err := s.query(ctx, s.r, `SELECT `+sqlrow.ResourceKeyCols+` FROM resource_keys ORDER BY created_at, id`)
	return list("list resource keys", rows, err, sqlrow.ScanResourceKey)
}

func (s *Store) RemoveResourceKey(ctx context.Context, id string) error {
	res, err := s.exec(ctx, s.w, `DELETE FROM resource_keys WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("remove resource key: %w", mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("remove resource key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) FindResourceKey(ctx context.Context, hash []byte) (store.ResourceKey, error) {
	k, err := sqlrow.ScanResourceKey(s.queryRow(ctx, s.r, `SELECT `+sqlrow.ResourceKeyCols+` FROM resource_keys WHERE hash = ?`, hash))
	if err != nil {
		return k, fmt.Errorf("find resource key: %w", mapErr(err))
	}
	return k, nil
}

// --- events ---

func (s *Store) AddEvent(ctx context.Context, e store.Event) error {
	_, err := s.exec(ctx, s.w,
		`INSERT INTO events (id, type, at, user_id, session_id, ip, user_agent, detail)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Type, ns(e.At), e.UserID, e.SessionID, e.IP, e.UserAgent, e.Detail)
	if err != nil {
		return fmt.Errorf("add event: %w", mapErr(err))
	}
	return nil
}

func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	rows, err := s.query(ctx, s.r,
		`SELECT `+sqlrow.EventCols+` FROM events
		 WHERE (? = '' OR user_id = ?) AND (? = '' OR type = ?) AND (? = 0 OR seq < ?)
		 ORDER BY seq DESC LIMIT ?`,
		f.UserID, f.UserID, f.Type, f.Type, f.BeforeSeq, f.BeforeSeq, f.Limit)
	return list("list events", rows, err, sqlrow.ScanEvent)
}

func (s *Store) PruneEvents(ctx context.Context, t time.Time) (int, error) {
	res, err := s.exec(ctx, s.w, `DELETE FROM events WHERE at < ?`, ns(t))
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
