package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

// BenchmarkRotate measures the refresh compare-and-swap (one UPDATE …
// RETURNING, one write transaction) on random sessions of a table holding
// 10k and 100k sessions. Target: no slowdown with size (the primary key
// lookup is O(log n) and the row does not grow with refreshes).
func BenchmarkRotate(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ids := seed(b, s, n)
			gens := make([]int64, n)
			for i := range gens {
				gens[i] = 1
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				i := rand.IntN(n)
				now := time.Now()
				if _, err := s.RotateSession(ctx, store.Rotation{SessionID: ids[i], FromGeneration: gens[i], Now: now,
					IdleExpiresAt: now.Add(time.Hour), AccessExpiresAt: now.Add(5 * time.Minute), IP: "127.0.0.1", UserAgent: "bench"}); err != nil {
					b.Fatal(err)
				}
				gens[i]++
			}
		})
	}
}

// seed inserts n sessions in one transaction.
func seed(b *testing.B, s *Store, n int) []string {
	b.Helper()
	ctx := context.Background()
	now := time.Now().UnixNano()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO users (id, username, username_norm, password_hash, role, created_at) VALUES ('u', 'u', 'u', 'h', 'user', 0)`); err != nil {
		b.Fatal(err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
		idle_expires_at, expires_at, access_exp, ip, user_agent) VALUES (?, 'u', ?, 1, ?, ?, ?, ?, ?, ?, '127.0.0.1', 'seed')`)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	nonce := make([]byte, 32)
	for i := range ids {
		ids[i] = fmt.Sprintf("%022d", rand.Int64())
		if _, err := st.ExecContext(ctx, ids[i], nonce, now, now, now, now+int64(time.Hour), now+int64(24*time.Hour), now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return ids
}

// BenchmarkMmap compares SQLite without a memory map (the default) and with
// a 256 MiB one, on tables of 10k and 1M sessions, under what a refresh does
// to the database from 8 goroutines per CPU: read a random session on a
// reader connection, then rotate it on the writer. With a map, each read
// transaction that follows another connection's commit unmaps and remaps
// the file (issue 23, item 3).
func BenchmarkMmap(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		dir := b.TempDir()
		path := filepath.Join(dir, "bench.db")
		var ids []string
		for _, mm := range []int{0, 256 << 20} {
			b.Run(fmt.Sprintf("sessions=%d/mmap=%dMiB", n, mm>>20), func(b *testing.B) {
				defer func(old int) { mmapSize = old }(mmapSize)
				mmapSize = mm
				ctx := context.Background()
				s, err := Open(ctx, path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if ids == nil {
					ids = seed(b, s, n) // once per size: both settings share the file
				}
				var gotMap int
				if err := s.r.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&gotMap); err != nil || gotMap != mm {
					b.Fatalf("mmap_size = %d, %v; want %d", gotMap, err, mm)
				}
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := storetest.RotateCurrent(ctx, s, ids[rand.IntN(len(ids))]); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
