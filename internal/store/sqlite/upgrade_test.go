package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

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
			path := filepath.Join(t.TempDir(), "old.db")
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range migrations[:previous] {
				if _, err := db.ExecContext(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			old := storetest.PreviousReleaseRows(time.Now())
			for _, q := range old.SQL(sqlstore.SQLite, previous) {
				if _, err := db.ExecContext(ctx, q.Query, q.Args...); err != nil {
					t.Fatalf("%s: %v", q.Query, err)
				}
			}
			if _, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", previous)); err != nil {
				t.Fatal(err)
			}
			db.Close()

			s, err := Open(ctx, path, Options{})
			if err != nil {
				t.Fatalf("open the previous release's database: %v", err)
			}
			defer s.Close()
			old.Check(t, s)
		})
	}
}
