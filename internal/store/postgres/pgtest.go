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
	base := os.Getenv("GATEHOUSE_TEST_POSTGRES")
	if base == "" {
		base = DefaultTestURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_POSTGRES") == "1" {
			tb.Fatalf("PostgreSQL required (GATEHOUSE_REQUIRE_POSTGRES=1) but unreachable at %s: %v", base, err)
		}
		tb.Skipf("*** SKIPPING: no PostgreSQL at %s (%v); set GATEHOUSE_TEST_POSTGRES ***", base, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "gh_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return fmt.Sprint(u)
}
