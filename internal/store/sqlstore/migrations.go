package sqlstore

import (
	"context"
	"fmt"
)

// The schema's history: one numbered list for every backend (Dex's
// storage/sql "all SQL flavors share migration strategies"). A step is SQL
// both dialects run, or, where they differ, one text per flavor. The number
// of the last step applied is kept in one place on every backend, the
// gatehouse_schema table.
//
// Until v3 the two backends' lists grew apart (SQLite added the revocation
// log and resource keys in v2 and v3, PostgreSQL had them in v1 and used v2
// and v3 for a fill factor and prev_ip); those steps stay as they were
// released, per flavor, so databases of every release upgrade in place.
// From v4 on a step is one change on both: after v3 the schemas are the
// same but for PostgreSQL's prev_ip and fill factor, which serve its
// one-statement refresh.

// Migration is one step of the schema.
type Migration struct {
	// SQL is the step for every flavor, unless the flavor's own is set.
	SQL, SQLite, PostgreSQL string
}

// RevocationChannel is the PostgreSQL NOTIFY channel of revocation-log
// inserts (the v1 trigger).
const RevocationChannel = "gatehouse_revocations"

// Migrations is every step, oldest first; step i+1 is Migrations[i].
var Migrations = []Migration{
	{
		// v1: accounts, sessions, keys, events.
		SQLite: `CREATE TABLE users (
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
		// v1: accounts, sessions, keys, events, the revocation log (with its
		// NOTIFY trigger) and resource keys.
		PostgreSQL: `CREATE TABLE users (
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
			PERFORM pg_notify('` + RevocationChannel + `', NEW.seq::text);
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
	},
	{
		// v2: the revocation log (session, user and global revocations in
		// order), event filtering by type.
		SQLite: `CREATE TABLE revocation_log (
			seq        INTEGER PRIMARY KEY AUTOINCREMENT,
			kind       TEXT NOT NULL,
			subject    TEXT NOT NULL,
			not_before INTEGER NOT NULL,
			until      INTEGER NOT NULL
		);
		CREATE INDEX revocation_log_until ON revocation_log(until);
		CREATE INDEX events_type ON events(type, seq);
		CREATE INDEX events_at ON events(at);`,
		// v2: room in every page for the rotation's new row version, so the
		// update stays HOT (no index writes: it changes no indexed column).
		PostgreSQL: `ALTER TABLE sessions SET (fillfactor = 70);`,
	},
	{
		// v3: resource-server keys.
		SQLite: `CREATE TABLE resource_keys (
			id         TEXT PRIMARY KEY,
			name       TEXT NOT NULL,
			hash       BLOB NOT NULL UNIQUE,
			created_at INTEGER NOT NULL
		);`,
		// v3: the IP before the last rotation, so the one-statement refresh can
		// report an IP change without reading the row first (SET sees old values,
		// RETURNING only new ones).
		PostgreSQL: `ALTER TABLE sessions ADD COLUMN prev_ip TEXT NOT NULL DEFAULT '';`,
	},
	// v4: permissions; auth_time (the session's last proof of the
	// password: for existing sessions, their login).
	{SQL: `ALTER TABLE users ADD COLUMN permissions TEXT NOT NULL DEFAULT '';
	ALTER TABLE sessions ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
	UPDATE sessions SET auth_time = created_at;`},
	// v5: the login throttle's per-account state, shared by every instance
	// and kept across restarts (internal/throttle).
	{SQL: `CREATE TABLE login_account_failures (
		account TEXT PRIMARY KEY,
		debt    BIGINT NOT NULL
	);
	CREATE INDEX login_account_failures_debt ON login_account_failures(debt);
	CREATE TABLE login_ip_failures (
		account  TEXT NOT NULL,
		ip       TEXT NOT NULL,
		failures INTEGER NOT NULL,
		last_at  BIGINT NOT NULL,
		PRIMARY KEY (account, ip)
	);
	CREATE INDEX login_ip_failures_last ON login_ip_failures(last_at);`},
	// v6: the last successful sign-in from an address, so a known address
	// keeps a login budget of its own (internal/throttle).
	{SQL: `ALTER TABLE login_ip_failures ADD COLUMN known_at BIGINT NOT NULL DEFAULT 0;`},
	// v7: second factors. The type names are PostgreSQL's; SQLite takes
	// them too (BYTEA and BOOLEAN get NUMERIC affinity, which stores blobs
	// as they are and booleans as 0 and 1). A session's proof gains its
	// methods and level: sessions of earlier releases proved a password.
	// Tickets are short-lived single-use credentials (the mfa_token,
	// WebAuthn challenges, one-time elevations), stored hashed.
	{SQL: `CREATE TABLE factors (
		id           TEXT PRIMARY KEY,
		user_id      TEXT NOT NULL REFERENCES users(id),
		type         TEXT NOT NULL,
		label        TEXT NOT NULL,
		secret       BYTEA NOT NULL,
		credential   BYTEA,
		counter      BIGINT NOT NULL,
		active       BOOLEAN NOT NULL,
		created_at   BIGINT NOT NULL,
		last_used_at BIGINT NOT NULL
	);
	CREATE INDEX factors_user ON factors(user_id, created_at);
	CREATE UNIQUE INDEX factors_credential ON factors(credential) WHERE credential IS NOT NULL;
	CREATE TABLE recovery_codes (
		user_id TEXT NOT NULL REFERENCES users(id),
		hash    BYTEA NOT NULL,
		PRIMARY KEY (user_id, hash)
	);
	CREATE TABLE tickets (
		id         BYTEA PRIMARY KEY,
		kind       TEXT NOT NULL,
		user_id    TEXT NOT NULL,
		session_id TEXT NOT NULL,
		data       BYTEA NOT NULL,
		failures   INTEGER NOT NULL,
		expires_at BIGINT NOT NULL
	);
	CREATE INDEX tickets_expires ON tickets(expires_at);
	ALTER TABLE users ADD COLUMN mfa BOOLEAN NOT NULL DEFAULT false;
	ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
	ALTER TABLE sessions ADD COLUMN acr TEXT NOT NULL DEFAULT 'aal1';`},
	// v8: DPoP. A session created with a proof is bound to the key's
	// RFC 7638 thumbprint ('' for unbound sessions, every earlier one).
	{SQL: `ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';`},
	// v9: clients. Resource keys become registered clients (their id the
	// client_id): resource servers with an optional audience, or service
	// clients with the role and permissions of their tokens.
	{SQL: `ALTER TABLE resource_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'resource';
	ALTER TABLE resource_keys ADD COLUMN audience TEXT NOT NULL DEFAULT '';
	ALTER TABLE resource_keys ADD COLUMN role TEXT NOT NULL DEFAULT '';
	ALTER TABLE resource_keys ADD COLUMN permissions TEXT NOT NULL DEFAULT '';`},
}

// Migration returns step i (0-based) in the flavor.
func (f Flavor) Migration(i int) string {
	m := Migrations[i]
	switch {
	case f.Numbered && m.PostgreSQL != "":
		return m.PostgreSQL
	case !f.Numbered && m.SQLite != "":
		return m.SQLite
	}
	return m.SQL
}

// SchemaTx is the transaction Migrate runs in: the backend opens it, with
// whatever lock keeps two processes from migrating at once.
type SchemaTx interface {
	Exec(ctx context.Context, query string, args ...any) error
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Migrate applies the steps the database lacks, in tx, and records the new
// version. legacy reads the version a database of an earlier release kept
// elsewhere (SQLite's PRAGMA user_version), for a database without the
// table yet; nil means none.
func Migrate(ctx context.Context, tx SchemaTx, f Flavor, legacy func(context.Context) (int, error)) error {
	if err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS gatehouse_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var rows, v int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(version), 0) FROM gatehouse_schema`).Scan(&rows, &v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if rows == 0 {
		if legacy != nil {
			var err error
			if v, err = legacy(ctx); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
		}
		if err := tx.Exec(ctx, f.Rewrite(`INSERT INTO gatehouse_schema (version) VALUES (?)`), v); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if v > len(Migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary (%d)", v, len(Migrations))
	}
	for i := v; i < len(Migrations); i++ {
		if err := tx.Exec(ctx, f.Migration(i)); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if err := tx.Exec(ctx, f.Rewrite(`UPDATE gatehouse_schema SET version = ?`), len(Migrations)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return nil
}
