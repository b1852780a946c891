package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

func TestUpgradeFromPreviousRelease(t *testing.T) {
	storetest.RunUpgrade(t, storetest.Upgrade{
		Flavor: sqlstore.SQLite,
		Empty: func(t *testing.T) (func(string, ...any) error, func() (store.Store, error)) {
			path := filepath.Join(t.TempDir(), "old.db")
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			exec := func(q string, args ...any) error {
				_, err := db.ExecContext(context.Background(), q, args...)
				return err
			}
			open := func() (store.Store, error) {
				db.Close() // as the old release would have, before the new one starts
				return Open(context.Background(), path, Options{})
			}
			return exec, open
		},
		RecordVersion: func(v int) string { return fmt.Sprintf("PRAGMA user_version = %d", v) },
	})
}

// A database migrated by a newer binary is refused, not downgraded.
func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE gatehouse_schema SET version = ?`, len(sqlstore.Migrations)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(context.Background(), path, Options{}); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}
