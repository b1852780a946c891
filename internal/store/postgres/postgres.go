// Package postgres is the Store for several Gatehouse instances sharing one
// PostgreSQL database, through pgx's connection pool.
//
// Every operation is one statement or one transaction, so a database outage
// leaves nothing half-written: the caller gets store.ErrUnavailable (503) and
// the pool reconnects by itself when the database is back. pgx prepares each
// statement once per connection and reuses it. Revocations reach the other
// instances by LISTEN/NOTIFY: a trigger notifies on every revocation-log
// insert, and WatchRevocations listens, resyncing after a dropped connection
// so that no revocation is missed.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlrow"
)

// Channel is the NOTIFY channel of revocation-log inserts.
const Channel = "gatehouse_revocations"

// Options tunes the connection.
type Options struct {
	// StatementTimeout bounds each statement (default 5s).
	StatementTimeout time.Duration
	// Logger receives connection trouble of the revocation listener
	// (default slog.Default()).
	Logger *slog.Logger
	// MaxConns bounds the pool (default 16). pgx's own default (max(4,
	// CPUs)) is too small: refreshes mostly wait on commits, and more
	// connections in flight let PostgreSQL group those commits.
	MaxConns int32
}

// Store is a PostgreSQL-backed store.Store.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

var _ store.Store = (*Store)(nil)

// IsURL reports whether db names a PostgreSQL database rather than a file.
func IsURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// Open connects and applies pending migrations.
func Open(ctx context.Context, url string, opt Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad URL: %w", redact(err))
	}
	if opt.StatementTimeout <= 0 {
		opt.StatementTimeout = 5 * time.Second
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["statement_timeout"] = fmt.Sprint(opt.StatementTimeout.Milliseconds())
	rp["idle_in_transaction_session_timeout"] = fmt.Sprint((2 * opt.StatementTimeout).Milliseconds())
	rp["lock_timeout"] = fmt.Sprint(opt.StatementTimeout.Milliseconds())
	if opt.MaxConns <= 0 {
		opt.MaxConns = 16
	}
	cfg.MaxConns = opt.MaxConns
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", redact(err))
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Store{pool: pool, log: opt.Logger}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// redact keeps connection errors from echoing a password from the URL.
func redact(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			return errors.New(msg[:i+3] + "…" + msg[i+j:])
		}
	}
	return err
}

var migrations = []string{
	`CREATE TABLE users (
		id            TEXT PRIMARY KEY,
		username      TEXT NOT NULL,
		username_norm TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		role          TEXT NOT NULL,
		disabled      BOOLEAN NOT NULL DEFAULT false,
		created_at    BIGINT NOT NULL
	);
	CREATE TABLE sessions (
		id              TEXT PRIMARY KEY,
		user_id         TEXT NOT NULL REFERENCES users(id),
		nonce           BYTEA NOT NULL,
		generation      BIGINT NOT NULL,
		rotated_at      BIGINT NOT NULL,
		created_at      BIGINT NOT NULL,
		last_used_at    BIGINT NOT NULL,
		idle_expires_at BIGINT NOT NULL,
		expires_at      BIGINT NOT NULL,
		access_exp      BIGINT NOT NULL,
		ip              TEXT NOT NULL,
		user_agent      TEXT NOT NULL,
		revoked_at      BIGINT,
		revoke_reason   TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX sessions_user ON sessions(user_id, created_at);
	CREATE TABLE signing_keys (
		id             TEXT PRIMARY KEY,
		algorithm      TEXT NOT NULL,
		public_key     BYTEA NOT NULL,
		sealed_private BYTEA NOT NULL,
		created_at     BIGINT NOT NULL,
		retired_at     BIGINT
	);
	CREATE TABLE events (
		seq        BIGSERIAL PRIMARY KEY,
		id         TEXT NOT NULL UNIQUE,
		type       TEXT NOT NULL,
		at         BIGINT NOT NULL,
		user_id    TEXT NOT NULL,
		session_id TEXT NOT NULL,
		ip         TEXT NOT NULL,
		user_agent TEXT NOT NULL,
		detail     TEXT NOT NULL
	);
	CREATE INDEX events_user ON events(user_id, seq);
	CREATE INDEX events_type ON events(type, seq);
	CREATE INDEX events_at ON events(at);
	CREATE TABLE revocation_log (
		seq        BIGSERIAL PRIMARY KEY,
		kind       TEXT NOT NULL,
		subject    TEXT NOT NULL,
		not_before BIGINT NOT NULL,
		until      BIGINT NOT NULL
	);
	CREATE INDEX revocation_log_until ON revocation_log(until);
	CREATE FUNCTION gatehouse_notify_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM pg_notify('` + Channel + `', NEW.seq::text);
		RETURN NEW;
	END $$;
	CREATE TRIGGER revocation_log_notify AFTER INSERT ON revocation_log
		FOR EACH ROW EXECUTE FUNCTION gatehouse_notify_revocation();
	CREATE TABLE resource_keys (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		hash       BYTEA NOT NULL UNIQUE,
		created_at BIGINT NOT NULL
	);`,
	// v2: room in every page for the rotation's new row version, so the
	// update stays HOT (no index writes: it changes no indexed column).
	`ALTER TABLE sessions SET (fillfactor = 70);`,
	// v3: the IP before the last rotation, so the one-statement refresh can
	// report an IP change without reading the row first (SET sees old values,
	// RETURNING only new ones).
	`ALTER TABLE sessions ADD COLUMN prev_ip TEXT NOT NULL DEFAULT '';`,
}

// Migrate applies pending migrations under an advisory lock, so instances
// starting together migrate once.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7318004661)`); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", mapErr(err))
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS gatehouse_schema (version INT NOT NULL)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", mapErr(err))
	}
	var v int
	err = tx.QueryRow(ctx, `SELECT version FROM gatehouse_schema`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO gatehouse_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("postgres: migrate: %w", mapErr(err))
		}
	} else if err != nil {
		return fmt.Errorf("postgres: read schema version: %w", mapErr(err))
	}
	if v > len(migrations) {
		return fmt.Errorf("postgres: database schema version %d is newer than this binary (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("postgres: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE gatehouse_schema SET version = $1`, len(migrations)); err != nil {
		return fmt.Errorf("postgres: set schema version: %w", err)
	}
	return mapErr(tx.Commit(ctx))
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return mapErr(s.pool.Ping(ctx)) }

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// mapErr turns driver errors into store sentinels. Anything that is not a
// well-formed answer from the server (refused connection, timeout, server
// shutting down) is ErrUnavailable.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505" || pe.Code == "23503": // unique or foreign key violation
			return fmt.Errorf("%w: %s", store.ErrAlreadyExists, pe.Message)
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57"),
			pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03":
			return fmt.Errorf("%w: %s", store.ErrUnavailable, pe.Message)
		}
		return err
	}
	return fmt.Errorf("%w: %v", store.ErrUnavailable, redact(err))
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
	_, err := s.pool.Exec(ctx,
		`INSERT INTO users (id, username, username_norm, password_hash, role, disabled, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Username, strings.ToLower(u.Username), u.PasswordHash, u.Role, u.Disabled, ns(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create user: %w", mapErr(err))
	}
	return nil
}

func (s *Store) GetUserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return u, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

func (s *Store) GetUserByUsername(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE username_norm = $1`, strings.ToLower(username)))
	if err != nil {
		return u, fmt.Errorf("get user by name: %w", err)
	}
	return u, nil
}

func (s *Store) ListUsers(ctx context.Context, afterName string, limit int) ([]store.User, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+userCols+` FROM users WHERE username_norm > $1 ORDER BY username_norm LIMIT $2`,
		strings.ToLower(afterName), limit)
	return list("list users", rows, err, sqlrow.ScanUser)
}

// list collects a query's rows, mapping driver errors; it closes rows.
func list[T any](what string, rows pgx.Rows, err error, scan func(sqlrow.Row) (T, error)) ([]T, error) {
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

func (s *Store) UpdateUser(ctx context.Context, id string, up store.UserUpdate) (store.User, []store.RevokedSession, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.User{}, nil, fmt.Errorf("update user: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 FOR UPDATE`, id))
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
	if _, err := tx.Exec(ctx, `UPDATE users SET role = $1, disabled = $2, password_hash = $3 WHERE id = $4`,
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
	if err := tx.Commit(ctx); err != nil {
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
	_, err := s.pool.Exec(ctx,
		`INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
		   idle_expires_at, expires_at, access_exp, ip, user_agent)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		x.ID, x.UserID, x.Nonce, x.Generation, ns(x.RotatedAt), ns(x.CreatedAt), ns(x.LastUsedAt),
		ns(x.IdleExpiresAt), ns(x.ExpiresAt), ns(x.AccessExpiresAt), x.IP, x.UserAgent)
	if err != nil {
		return fmt.Errorf("create session: %w", mapErr(err))
	}
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return x, fmt.Errorf("get session: %w", err)
	}
	return x, nil
}

func (s *Store) GetSessionWithUser(ctx context.Context, id string) (store.Session, store.User, error) {
	x, u, err := sqlrow.ScanSessionUser(s.pool.QueryRow(ctx,
		`SELECT `+sqlrow.SessionUserCols+` FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1`, id))
	if err != nil {
		return x, u, fmt.Errorf("get session with user: %w", mapErr(err))
	}
	return x, u, nil
}

func (s *Store) RotateSession(ctx context.Context, r store.Rotation) (store.Session, error) {
	// One statement, one round trip, one commit: the compare-and-swap and
	// the read-back together. Row locking makes concurrent swaps on one
	// generation serialize; the losers see the new generation and match
	// nothing.
	x, err := scanSession(s.pool.QueryRow(ctx,
		`UPDATE sessions SET generation = generation + 1, rotated_at = $1, last_used_at = $1,
		   idle_expires_at = $2, access_exp = GREATEST(access_exp, $3), ip = $4, user_agent = $5
		 WHERE id = $6 AND generation = $7 AND revoked_at IS NULL
		 RETURNING `+sessionCols,
		ns(r.Now), ns(r.IdleExpiresAt), ns(r.AccessExpiresAt), r.IP, r.UserAgent, r.SessionID, r.FromGeneration))
	if errors.Is(err, store.ErrNotFound) {
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

var _ store.FastRotator = (*Store)(nil)

func (s *Store) RotateIfCurrent(ctx context.Context, r store.Rotation) (store.Session, store.User, string, error) {
	var prevIP string
	x, u, err := sqlrow.ScanSessionUser(s.pool.QueryRow(ctx,
		`UPDATE sessions s SET generation = s.generation + 1, rotated_at = $1, last_used_at = $1,
		   idle_expires_at = LEAST($2, s.expires_at), access_exp = GREATEST(s.access_exp, LEAST($3, s.expires_at)),
		   prev_ip = s.ip, ip = $4, user_agent = $5
		 FROM users u
		 WHERE s.id = $6 AND s.generation = $7 AND s.revoked_at IS NULL
		   AND s.expires_at > $1 AND s.idle_expires_at > $1 AND u.id = s.user_id AND NOT u.disabled
		 RETURNING `+sqlrow.SessionUserCols+`, s.prev_ip`,
		ns(r.Now), ns(r.IdleExpiresAt), ns(r.AccessExpiresAt), r.IP, r.UserAgent, r.SessionID, r.FromGeneration), &prevIP)
	if errors.Is(err, pgx.ErrNoRows) {
		return x, u, "", fmt.Errorf("rotate if current: %w", store.ErrConflict)
	}
	if err != nil {
		return x, u, "", fmt.Errorf("rotate if current: %w", mapErr(err))
	}
	return x, u, prevIP, nil
}

func (s *Store) ExtendAccess(ctx context.Context, id string, t time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE sessions SET access_exp = GREATEST(access_exp, $1) WHERE id = $2 AND revoked_at IS NULL`, ns(t), id)
	if err != nil {
		return fmt.Errorf("extend access: %w", mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("extend access: %w", store.ErrConflict)
	}
	return nil
}

func logRevocation(ctx context.Context, tx pgx.Tx, kind, subject string, notBefore, until int64) error {
	if _, err := tx.Exec(ctx,
		`INSERT INTO revocation_log (kind, subject, not_before, until) VALUES ($1, $2, $3, $4)`,
		kind, subject, notBefore, until); err != nil {
		return fmt.Errorf("log revocation: %w", mapErr(err))
	}
	return nil
}

func (s *Store) RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	var until int64
	err = tx.QueryRow(ctx,
		`UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL
		 RETURNING access_exp`, ns(now), reason, id).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM sessions WHERE id = $1`, id).Scan(&one); err != nil {
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
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("revoke session: %w", mapErr(err))
	}
	return true, nil
}

func (s *Store) RevokeUserSessions(ctx context.Context, userID, exceptID, reason string, now time.Time) ([]store.RevokedSession, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("revoke user sessions: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	out, err := revokeUserSessionsTx(ctx, tx, userID, exceptID, reason, now)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("revoke user sessions: %w", mapErr(err))
	}
	return out, nil
}

func revokeUserSessionsTx(ctx context.Context, tx pgx.Tx, userID, exceptID, reason string, now time.Time) ([]store.RevokedSession, error) {
	rows, err := tx.Query(ctx,
		`UPDATE sessions SET revoked_at = $1, revoke_reason = $2
		 WHERE user_id = $3 AND id != $4 AND revoked_at IS NULL
		 RETURNING `+sqlrow.RevokedSessionCols, ns(now), reason, userID, exceptID)
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
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("revoke all: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE revoked_at IS NULL`, ns(now), reason)
	if err != nil {
		return 0, fmt.Errorf("revoke all: %w", mapErr(err))
	}
	if err := logRevocation(ctx, tx, store.KindGlobal, "", ns(c.NotBefore), ns(c.Until)); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("revoke all: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]store.Session, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+sessionCols+` FROM sessions
		 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND idle_expires_at > $2
		 ORDER BY created_at DESC, id DESC`, userID, ns(now))
	return list("list sessions", rows, err, sqlrow.ScanSession)
}

// --- revocation log ---

func (s *Store) LogCutoff(ctx context.Context, kind, subject string, c store.Cutoff) error {
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO revocation_log (kind, subject, not_before, until) VALUES ($1, $2, $3, $4)`,
		kind, subject, ns(c.NotBefore), ns(c.Until)); err != nil {
		return fmt.Errorf("log cutoff: %w", mapErr(err))
	}
	return nil
}

func (s *Store) RevocationsSince(ctx context.Context, seq int64, limit int) ([]store.Revocation, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+sqlrow.RevocationCols+` FROM revocation_log WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit)
	return list(fmt.Sprintf("revocations since %d", seq), rows, err, sqlrow.ScanRevocation)
}

func (s *Store) PruneRevocations(ctx context.Context, t time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM revocation_log WHERE until < $1`, ns(t))
	if err != nil {
		return 0, fmt.Errorf("prune revocations: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// WatchRevocations calls notify whenever a revocation-log entry is
// inserted, by any instance, until ctx ends. It holds one connection with
// LISTEN; after that connection drops it reconnects and calls notify once
// more, so the caller resyncs from its cursor and misses nothing.
func (s *Store) WatchRevocations(ctx context.Context, notify func()) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listen(ctx, notify)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("revocation listener lost its connection; reconnecting", slog.Any("err", redact(err)), slog.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		notify() // the gap may have hidden notifications
	}
}

func (s *Store) listen(ctx context.Context, notify func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return err
	}
	defer func() {
		// Hand the connection back clean (or not at all if it is broken).
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `UNLISTEN `+Channel); err != nil {
			conn.Conn().Close(ctx)
		}
	}()
	notify() // anything committed before LISTEN took effect
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		notify()
	}
}

// --- keys ---

func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.SigningKeyCols+` FROM signing_keys ORDER BY created_at`)
	return list("list signing keys", rows, err, sqlrow.ScanSigningKey)
}

func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey, ifNone bool) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	// Serialize key creation across instances.
	if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	var active int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL`).Scan(&active); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	if ifNone && active > 0 {
		return fmt.Errorf("add signing key: %w", store.ErrAlreadyExists)
	}
	if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`, ns(k.CreatedAt)); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO signing_keys (id, algorithm, public_key, sealed_private, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.Algorithm, k.PublicKey, k.SealedPrivate, ns(k.CreatedAt)); err != nil {
		return fmt.Errorf("add signing key: %w", mapErr(err))
	}
	return mapErr(tx.Commit(ctx))
}

// --- resource keys ---

func (s *Store) AddResourceKey(ctx context.Context, k store.ResourceKey) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO resource_keys (id, name, hash, created_at) VALUES ($1, $2, $3, $4)`,
		k.ID, k.Name, k.Hash, ns(k.CreatedAt)); err != nil {
		return fmt.Errorf("add resource key: %w", mapErr(err))
	}
	return nil
}

func (s *Store) ListResourceKeys(ctx context.Context) ([]store.ResourceKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sqlrow.ResourceKeyCols+` FROM resource_keys ORDER BY created_at, id`)
	return list("list resource keys", rows, err, sqlrow.ScanResourceKey)
}

func (s *Store) RemoveResourceKey(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM resource_keys WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("remove resource key: %w", mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("remove resource key %s: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) FindResourceKey(ctx context.Context, hash []byte) (store.ResourceKey, error) {
	k, err := sqlrow.ScanResourceKey(s.pool.QueryRow(ctx, `SELECT `+sqlrow.ResourceKeyCols+` FROM resource_keys WHERE hash = $1`, hash))
	if err != nil {
		return k, fmt.Errorf("find resource key: %w", mapErr(err))
	}
	return k, nil
}

// --- events ---

func (s *Store) AddEvent(ctx context.Context, e store.Event) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO events (id, type, at, user_id, session_id, ip, user_agent, detail)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
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
	rows, err := s.pool.Query(ctx,
		`SELECT `+sqlrow.EventCols+` FROM events
		 WHERE ($1 = '' OR user_id = $1) AND ($2 = '' OR type = $2) AND ($3 = 0 OR seq < $3)
		 ORDER BY seq DESC LIMIT $4`, f.UserID, f.Type, f.BeforeSeq, f.Limit)
	return list("list events", rows, err, sqlrow.ScanEvent)
}

func (s *Store) PruneEvents(ctx context.Context, t time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE at < $1`, ns(t))
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}
