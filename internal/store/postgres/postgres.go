// Package postgres is the Store for several Gatehouse instances sharing one
// PostgreSQL database, through pgx's connection pool.
//
// Every operation is one statement or one transaction, so a database outage
// leaves nothing half-written: the caller gets store.ErrUnavailable (503) and
// the pool reconnects by itself when the database is back. pgx prepares each
// statement once per connection and reuses it. Fast-path refresh rotations
// that arrive together share one statement and one commit (group commit,
// rotate.go). Revocations reach the other
// instances by LISTEN/NOTIFY: a trigger notifies on every revocation-log
// insert, and WatchRevocations listens, resyncing after a dropped connection
// so that no revocation is missed.
//
// Behind a transaction-mode pooler (PgBouncer, Options.Pooled) a pooled
// connection carries no session state from one transaction to the next, so
// the store assumes none: no startup parameters (the pooler refuses them),
// no named prepared statements (they would collide on the pooler's shared
// server connections), timeouts set locally in each transaction — a lone
// statement is pipelined behind the settings, in one round trip — and LISTEN
// only on a direct connection (Options.ListenURL); without one
// the revocation log is polled.
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

	"github.com/gatehouse-auth/gatehouse/internal/redact"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// Channel is the NOTIFY channel of revocation-log inserts.
const Channel = sqlstore.RevocationChannel

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
	// Pooled says the URL is a transaction-mode pooler such as PgBouncer.
	Pooled bool
	// ListenURL is a direct connection (not through the pooler) for LISTEN.
	// With Pooled and no ListenURL, revocations are not pushed: callers
	// poll the revocation log (PushesRevocations reports false).
	ListenURL string
	// RotateBatches bounds the batches of rotations (group commit, see
	// rotate.go) in flight at once, when they stall (default 4); negative
	// sends each rotation as a statement of its own.
	RotateBatches int
}

// Store is a PostgreSQL-backed store.Store: the shared SQL (sqlstore) over
// pgx used natively (its per-connection statement cache and pool), plus
// what only PostgreSQL does here: the one-statement refresh
// (RotateIfCurrent), its group commit (rotate.go), LISTEN/NOTIFY and
// migrations under an advisory lock.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
	log  *slog.Logger
	opt  Options
	// setLocal runs first in every transaction when pooled: the timeouts.
	setLocal string
	db       adapter
	rot      *rotator // nil: no group commit
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
		return nil, fmt.Errorf("postgres: bad URL: %w", redact.Error(err))
	}
	if opt.StatementTimeout <= 0 {
		opt.StatementTimeout = 5 * time.Second
	}
	timeouts := map[string]string{
		"statement_timeout":                   fmt.Sprint(opt.StatementTimeout.Milliseconds()),
		"idle_in_transaction_session_timeout": fmt.Sprint((2 * opt.StatementTimeout).Milliseconds()),
		"lock_timeout":                        fmt.Sprint(opt.StatementTimeout.Milliseconds()),
	}
	var setLocal string // run first in every transaction, when pooled
	if opt.Pooled {
		// No session state: the pooler hands each transaction whichever
		// server connection is free. Unnamed statements only, and the
		// timeouts per transaction instead of per session: one statement
		// (set_config's is_local is SET LOCAL), so that it can also be
		// pipelined before a lone statement in the extended protocol.
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		var sets []string
		for _, k := range []string{"statement_timeout", "idle_in_transaction_session_timeout", "lock_timeout"} {
			sets = append(sets, fmt.Sprintf("set_config('%s', '%s', true)", k, timeouts[k]))
		}
		setLocal = "SELECT " + strings.Join(sets, ", ")
	} else {
		for k, v := range timeouts {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	if opt.MaxConns <= 0 {
		opt.MaxConns = 16
	}
	cfg.MaxConns = opt.MaxConns
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", redact.Error(err))
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Store{pool: pool, log: opt.Logger, opt: opt, setLocal: setLocal}
	s.db = newAdapter(pool, setLocal)
	s.Store = sqlstore.New(s.db, sqlstore.PostgreSQL)
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if opt.RotateBatches == 0 {
		opt.RotateBatches = defaultMaxInFlight
	}
	if opt.RotateBatches > 0 {
		s.rot = newRotator(s.db.Writer(), 2*opt.StatementTimeout, opt.RotateBatches)
	}
	return s, nil
}

// Migrate applies pending migrations (sqlstore.Migrations) under an
// advisory lock, so instances starting together migrate once.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", mapErr(err))
	}
	defer tx.Rollback(ctx)
	if s.setLocal != "" {
		if _, err := tx.Exec(ctx, s.setLocal); err != nil {
			return fmt.Errorf("postgres: migrate: %w", mapErr(err))
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7318004661)`); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", mapErr(err))
	}
	if err := sqlstore.Migrate(ctx, schemaTx{tx}, sqlstore.PostgreSQL, nil); err != nil {
		return fmt.Errorf("postgres: %w", redact.Error(err))
	}
	return mapErr(tx.Commit(ctx))
}

type schemaTx struct{ tx pgx.Tx }

func (t schemaTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.Exec(ctx, query, args...)
	return err
}

func (t schemaTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return t.tx.QueryRow(ctx, query, args...)
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return mapErr(s.pool.Ping(ctx)) }

// Close lets the group commit's batches in flight finish, then closes the
// pool.
func (s *Store) Close() error {
	if s.rot != nil {
		s.rot.close()
	}
	s.pool.Close()
	return nil
}

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
	return fmt.Errorf("%w: %v", store.ErrUnavailable, redact.Error(err))
}

var _ store.FastRotator = (*Store)(nil)

// RotateIfCurrent is the fast path's rotation: one conditional UPDATE,
// sent together with the rotations that arrive with it (group commit,
// rotate.go) unless Options.RotateBatches is negative.
func (s *Store) RotateIfCurrent(ctx context.Context, r store.Rotation) (store.Session, store.User, error) {
	if s.rot != nil {
		return s.rot.rotate(ctx, r)
	}
	return rotateSingle(ctx, s.db.Writer(), r)
}

// PushesRevocations reports whether WatchRevocations can push: always on a
// direct connection; behind a pooler only with a ListenURL (a pooled
// connection cannot keep a LISTEN).
func (s *Store) PushesRevocations() bool { return !s.opt.Pooled || s.opt.ListenURL != "" }

// WatchRevocations calls notify whenever a revocation-log entry is
// inserted, by any instance, until ctx ends. It holds one connection with
// LISTEN (its own direct one, with ListenURL); after that connection drops
// it reconnects and calls notify once more, so the caller resyncs from its
// cursor and misses nothing. Without PushesRevocations it returns at once.
func (s *Store) WatchRevocations(ctx context.Context, notify func()) {
	if !s.PushesRevocations() {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listen(ctx, notify)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("revocation listener lost its connection; reconnecting", slog.Any("err", redact.Error(err)), slog.Duration("backoff", backoff))
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
	var conn *pgx.Conn
	if s.opt.ListenURL != "" {
		c, err := pgx.Connect(ctx, s.opt.ListenURL)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		conn = c
	} else {
		pc, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer pc.Release()
		defer func() {
			// Hand the connection back clean (or not at all if it is broken).
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := pc.Exec(ctx, `UNLISTEN `+Channel); err != nil {
				pc.Conn().Close(ctx)
			}
		}()
		conn = pc.Conn()
	}
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return err
	}
	notify() // anything committed before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		notify()
	}
}

// adapter is sqlstore.DB over pgx, used natively: one pool for reads and
// writes, pgx's statement cache on each connection.
type adapter struct {
	pool     *pgxpool.Pool
	conn     sqlstore.Conn // the pool as a Conn, made once
	setLocal string        // run first in every transaction (pooled: the timeouts)
}

func newAdapter(pool *pgxpool.Pool, setLocal string) adapter {
	if setLocal != "" {
		return adapter{pool: pool, conn: ownTx{pool, setLocal}, setLocal: setLocal}
	}
	return adapter{pool: pool, conn: conn{pool}}
}

func (a adapter) Reader() sqlstore.Conn  { return a.conn }
func (a adapter) Writer() sqlstore.Conn  { return a.conn }
func (a adapter) MapErr(err error) error { return mapErr(err) }

func (a adapter) Begin(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if a.setLocal != "" {
		if _, err := tx.Exec(ctx, a.setLocal); err != nil {
			tx.Rollback(ctx)
			return nil, err
		}
	}
	return txConn{conn{tx}, tx}, nil
}

// querier is what the pool and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type conn struct{ q querier }

func (c conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (c conn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return c.q.Query(ctx, query, args...)
}

func (c conn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return c.q.QueryRow(ctx, query, args...)
}

// ownTx runs each lone statement in a transaction of its own that sets the
// timeouts first (behind a pooler no session carries them): the settings
// and the statement go in one batch, one round trip as the statement alone
// would. Up to its Sync a pipeline is one implicit transaction, which the
// pooler keeps on one server connection and the settings (set_config's
// is_local) last for; an explicit BEGIN and COMMIT would cost the server
// two more statements for nothing.
type ownTx struct {
	pool     *pgxpool.Pool
	setLocal string
}

// send starts the batch and reads the settings' answer.
func (c ownTx) send(ctx context.Context, query string, args []any) pgx.BatchResults {
	b := &pgx.Batch{}
	b.Queue(c.setLocal)
	b.Queue(query, args...)
	br := c.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		return failedBatch{br, err}
	}
	return br
}

// commit ends the batch (its Sync commits); err, the statement's, comes
// first.
func commit(br pgx.BatchResults, err error) error {
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c ownTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	br := c.send(ctx, query, args)
	tag, err := br.Exec()
	return tag.RowsAffected(), commit(br, err)
}

func (c ownTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	br := c.send(ctx, query, args)
	rows, err := br.Query()
	if err != nil {
		return nil, commit(br, err)
	}
	return &ownTxRows{Rows: rows, br: br}, nil
}

func (c ownTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return ownTxRow{c.send(ctx, query, args)}
}

type ownTxRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error // the transaction's end, known after Close
}

// Close ends the rows and then the transaction (the batch's Sync commits
// it): a write's commit can still fail there, and Err reports it.
func (r *ownTxRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = commit(r.br, nil)
}

func (r *ownTxRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

type ownTxRow struct{ br pgx.BatchResults }

func (r ownTxRow) Scan(dest ...any) error { return commit(r.br, r.br.QueryRow().Scan(dest...)) }

// failedBatch answers every read with the error that broke the batch.
type failedBatch struct {
	pgx.BatchResults
	err error
}

func (f failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, f.err }
func (f failedBatch) Query() (pgx.Rows, error)         { return nil, f.err }
func (f failedBatch) QueryRow() pgx.Row                { return errRow{f.err} }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type txConn struct {
	conn
	tx pgx.Tx
}

func (t txConn) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t txConn) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }

// GroupCommitStats counts the rotation statements (zeros without group
// commit).
func (s *Store) GroupCommitStats() store.GroupCommitStats {
	if s.rot == nil {
		return store.GroupCommitStats{}
	}
	return s.rot.stats()
}

// PoolStats reports the connection pool.
func (s *Store) PoolStats() []store.PoolStats {
	st := s.pool.Stat()
	return []store.PoolStats{{Pool: "pool", Max: int(st.MaxConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()),
		WaitCount: st.EmptyAcquireCount(), WaitDuration: st.EmptyAcquireWaitTime()}}
}
