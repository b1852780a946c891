package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

func TestUpgradeFromPreviousRelease(t *testing.T) {
	storetest.RunUpgrade(t, storetest.Upgrade{
		Flavor: sqlstore.PostgreSQL,
		Empty: func(t *testing.T) (func(string, ...any) error, func() (store.Store, error)) {
			ctx := context.Background()
			url := TestSchema(t)
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close(ctx) })
			exec := func(q string, args ...any) error {
				_, err := conn.Exec(ctx, q, args...)
				return err
			}
			return exec, func() (store.Store, error) { return Open(ctx, url, Options{}) }
		},
		RecordVersion: func(v int) string {
			return fmt.Sprintf(`CREATE TABLE gatehouse_schema (version INT NOT NULL); INSERT INTO gatehouse_schema VALUES (%d)`, v)
		},
	})
}
