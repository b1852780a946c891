package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTestURL is the PostgreSQL the tests use unless
// GATEHOUSE_TEST_POSTGRES says otherwise.
const DefaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// TestSchema creates a fresh schema for one test (so runs never collide)
// and returns a URL whose search_path points at it; the schema is dropped
// when the test ends. Without a reachable PostgreSQL the test is skipped
// with a loud notice, or fails when GATEHOUSE_REQUIRE_POSTGRES=1 (CI).
func TestSchema(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, base := testServer(ctx, tb)
	defer conn.Close(ctx)
	schema := createForTest(ctx, tb, conn, base, "gh_test_", "CREATE SCHEMA %s", "DROP SCHEMA %s CASCADE")
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return fmt.Sprint(u)
}

// TestPooledDatabase creates a fresh database for one test and returns its
// URL through the transaction-mode PgBouncer named by
// GATEHOUSE_TEST_PGBOUNCER (scripts/pgbouncer.sh starts one) and its direct
// URL (for LISTEN). A database of its own, not a schema: a pooled
// connection cannot keep a search_path. Without the pooler the test is
// skipped with a notice, or fails when GATEHOUSE_REQUIRE_PGBOUNCER=1 (CI).
func TestPooledDatabase(tb testing.TB) (pooled, direct string) {
	tb.Helper()
	bouncer := os.Getenv("GATEHOUSE_TEST_PGBOUNCER")
	if bouncer == "" {
		if os.Getenv("GATEHOUSE_REQUIRE_PGBOUNCER") == "1" {
			tb.Fatal("PgBouncer required (GATEHOUSE_REQUIRE_PGBOUNCER=1) but GATEHOUSE_TEST_PGBOUNCER is not set")
		}
		tb.Skip("*** SKIPPING: no PgBouncer; run scripts/pgbouncer.sh and set GATEHOUSE_TEST_PGBOUNCER=postgres://postgres@127.0.0.1:6432/ ***")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, base := testServer(ctx, tb)
	defer conn.Close(ctx)
	name := createForTest(ctx, tb, conn, base, "gh_pool_", "CREATE DATABASE %s", "DROP DATABASE %s WITH (FORCE)")
	withDB := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			tb.Fatal(err)
		}
		u.Path = "/" + name
		q := u.Query()
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return withDB(bouncer), withDB(base)
}

// testServer connects to the tests' PostgreSQL (GATEHOUSE_TEST_POSTGRES),
// skipping the test with a loud notice when there is none, or failing it
// when GATEHOUSE_REQUIRE_POSTGRES=1 (CI).
func testServer(ctx context.Context, tb testing.TB) (*pgx.Conn, string) {
	tb.Helper()
	base := os.Getenv("GATEHOUSE_TEST_POSTGRES")
	if base == "" {
		base = DefaultTestURL
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL required (GATEHOUSE_REQUIRE_POSTGRES=1) but unreachable at %s: %v", base, err)
		}
		tb.Skipf("*** SKIPPING: no PostgreSQL at %s (%v); set GATEHOUSE_TEST_POSTGRES ***", base, err)
	}
	return conn, base
}

// createForTest creates a uniquely named object (create, with %s for the
// name) for one test and drops it (drop) when the test ends.
func createForTest(ctx context.Context, tb testing.TB, conn *pgx.Conn, base, prefix, create, drop string) string {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, fmt.Sprintf(create, name)); err != nil {
		tb.Fatalf("%s: %v", fmt.Sprintf(create, name), err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			c.Exec(ctx, fmt.Sprintf(drop, name))
			c.Close(ctx)
		}
	})
	return name
}
