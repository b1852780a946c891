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
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// Options tunes the database.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "NORMAL" (default) or "FULL".
	Synchronous string
}

// mmapSize is the mmap_size pragma: 0, no memory map (see dsn). A variable
// so that BenchmarkMmap can compare it with one.
var mmapSize = 0

// Store is a SQLite-backed store.Store: the shared SQL (sqlstore) over a
// single writer connection and a pool of readers.
type Store struct {
	*sqlstore.Store
	w, r  *sql.DB
	stmts sync.Map // stmtKey -> *sql.Stmt
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
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(k, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
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
		// No memory map: with one, SQLite unmaps and remaps the file at
		// each read transaction that follows another connection's commit
		// (munmap alone was ~10% of server CPU under refresh load);
		// without, refresh is 1.05-1.07x and /v1/me 1.05-1.13x faster
		// (docs/PERFORMANCE.md). A larger page cache keeps rotation flat
		// as the table grows past the default 2 MB cache.
		q.Add("_pragma", fmt.Sprintf("mmap_size(%d)", mmapSize))
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
	st.Store = sqlstore.New(newAdapter(st), sqlstore.SQLite)
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

// migrate applies sqlstore.Migrations. The writer's transactions are
// IMMEDIATE, so two processes opening one file migrate one after the other.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", mapErr(err))
	}
	defer tx.Rollback()
	// Releases before the shared list kept the version in user_version.
	legacy := func(ctx context.Context) (v int, err error) {
		return v, tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	}
	if err := sqlstore.Migrate(ctx, schemaTx{tx}, sqlstore.SQLite, legacy); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return tx.Commit()
}

type schemaTx struct{ tx *sql.Tx }

func (t schemaTx) Exec(ctx context.Context, query string, args ...any) error {
	_, err := t.tx.ExecContext(ctx, query, args...)
	return err
}

func (t schemaTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return t.tx.QueryRowContext(ctx, query, args...)
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

// adapter is sqlstore.DB over database/sql: reads on the read-only pool,
// writes and transactions on the one writer connection, single statements
// through the prepared-statement cache.
type adapter struct {
	w      *sql.DB
	reader sqlstore.Conn
	writer sqlstore.Conn
}

func newAdapter(s *Store) adapter {
	return adapter{w: s.w, reader: &pooled{s, s.r}, writer: &pooled{s, s.w}}
}

func (a adapter) Reader() sqlstore.Conn  { return a.reader }
func (a adapter) Writer() sqlstore.Conn  { return a.writer }
func (a adapter) MapErr(err error) error { return mapErr(err) }

func (a adapter) Begin(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := a.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return txConn{tx}, nil
}

// pooled runs single statements on a pool, prepared once.
type pooled struct {
	s  *Store
	db *sql.DB
}

func (p *pooled) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := p.s.stmt(ctx, p.db, query)
	if err != nil {
		return 0, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (p *pooled) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	st, err := p.s.stmt(ctx, p.db, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (p *pooled) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	st, err := p.s.stmt(ctx, p.db, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// txConn runs statements in a transaction (not prepared: they run once).
type txConn struct{ tx *sql.Tx }

func (t txConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t txConn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t txConn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t txConn) Commit(context.Context) error   { return t.tx.Commit() }
func (t txConn) Rollback(context.Context) error { return t.tx.Rollback() }

// sqlRows adapts *sql.Rows (whose Close returns an error nobody needs).
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// PoolStats reports the writer and reader pools.
func (s *Store) PoolStats() []store.PoolStats {
	out := make([]store.PoolStats, 0, 2)
	for _, p := range []struct {
		name string
		db   *sql.DB
	}{{"writer", s.w}, {"reader", s.r}} {
		st := p.db.Stats()
		out = append(out, store.PoolStats{Pool: p.name, Max: st.MaxOpenConnections, InUse: st.InUse, Idle: st.Idle,
			WaitCount: st.WaitCount, WaitDuration: st.WaitDuration})
	}
	return out
}
