package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
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
