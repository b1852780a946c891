package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

// Databases of earlier releases (schema v3: no permissions, no auth_time;
// v4: no shared login throttle; v5, the previous release: no known
// addresses) are upgraded in
// place, and their sessions keep working.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	for _, previous := range []int{3, 4, 5} {
		t.Run(fmt.Sprintf("v%d", previous), func(t *testing.T) {
			ctx := context.Background()
			url := TestSchema(t)
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range migrations[:previous] {
				if _, err := conn.Exec(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE gatehouse_schema (version INT NOT NULL); INSERT INTO gatehouse_schema VALUES (%d)`, previous)); err != nil {
				t.Fatal(err)
			}
			old := storetest.PreviousReleaseRows(time.Now())
			for _, q := range old.SQL(sqlstore.PostgreSQL, previous) {
				if _, err := conn.Exec(ctx, q.Query, q.Args...); err != nil {
					t.Fatalf("%s: %v", q.Query, err)
				}
			}
			conn.Close(ctx)

			s, err := Open(ctx, url, Options{})
			if err != nil {
				t.Fatalf("open the previous release's database: %v", err)
			}
			defer s.Close()
			old.Check(t, s)
		})
	}
}
