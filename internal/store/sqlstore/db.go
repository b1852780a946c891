// Package sqlstore is the SQL that every relational backend shares: the
// statements, transactions, row scanning and the mapping of "no row" and
// "changed meanwhile" to store errors, written once. A backend (sqlite,
// postgres) supplies a thin adapter over its driver (DB) and a Flavor naming
// its few differences in syntax, and keeps only what is really its own:
// connections, migrations, pragmas, LISTEN/NOTIFY, a faster refresh.
//
// Queries are written with ? placeholders and PostgreSQL-style functions
// (GREATEST, FOR UPDATE); Flavor rewrites them once per query text for the
// dialect, as Dex's storage/sql "flavors" do.
package sqlstore

import (
	"context"
	"strconv"
	"strings"
)

// Conn runs statements: a pool, or a transaction.
type Conn interface {
	// Exec runs a statement and reports how many rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow returns a row whose Scan reports the query's error, if any.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Tx is a write transaction.
type Tx interface {
	Conn
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// DB is what a backend's adapter provides.
type DB interface {
	// Reader runs reads; Writer runs single-statement writes. They may be
	// the same pool (PostgreSQL) or a read-only pool and the one writer
	// connection (SQLite).
	Reader() Conn
	Writer() Conn
	// Begin starts a write transaction.
	Begin(ctx context.Context) (Tx, error)
	// MapErr turns a driver error into the store's sentinels: its "no
	// rows" into store.ErrNotFound, constraint violations into
	// store.ErrAlreadyExists, lost connections into store.ErrUnavailable.
	// Other errors are returned as they are.
	MapErr(err error) error
}

// Flavor is a dialect's syntax. The zero Flavor is SQLite's syntax with ?
// placeholders, minus what Replace rewrites.
type Flavor struct {
	// Numbered placeholders ($1, $2, …) instead of ?.
	Numbered bool
	// Replace rewrites fragments of every query, e.g. GREATEST( to MAX(.
	Replace *strings.Replacer
	// LockSigningKeys, if set, runs first in UpdateSigningKeys' transaction:
	// it serializes key creation across processes sharing the database.
	LockSigningKeys string
	// LockLogs, if set, runs first in every transaction that may append to
	// the revocation log or the events outbox. Held to the commit, it makes
	// each log's sequence order its commit order: a follower reading "after
	// the last entry I saw" (another instance, a resource server, the
	// sockets' event feed) can then never skip an entry that was allocated
	// earlier but committed later.
	LockLogs string
}

// PostgreSQL is the flavor of PostgreSQL.
var PostgreSQL = Flavor{
	Numbered:        true,
	LockSigningKeys: `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`,
	LockLogs:        `SELECT pg_advisory_xact_lock(7318004662)`,
}

// SQLite is the flavor of SQLite. Its one writer connection serializes
// writes, so rows need no FOR UPDATE and key creation no lock.
var SQLite = Flavor{
	Replace: strings.NewReplacer("GREATEST(", "MAX(", " FOR UPDATE", "", " FOR SHARE", ""),
}

// Rewrite translates query, written with ? placeholders, into the flavor.
func (f Flavor) Rewrite(query string) string {
	if f.Replace != nil {
		query = f.Replace.Replace(query)
	}
	if !f.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}
