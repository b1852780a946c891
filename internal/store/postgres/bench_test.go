package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

// BenchmarkRotate measures a refresh's database work — the read of the
// session and the compare-and-swap (one UPDATE … RETURNING, one commit) —
// on random sessions of a table of 10k and 1M sessions, from 1 and from 8
// goroutines per CPU.
func BenchmarkRotate(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s := benchStore(b, Options{}, n)
			for _, par := range []int{1, 8} {
				b.Run(fmt.Sprintf("conc=%d", par), func(b *testing.B) {
					b.SetParallelism(par)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							id := fmt.Sprintf("s%d", 1+rand.IntN(n))
							if err := storetest.RotateCurrent(ctx, s, id); err != nil {
								b.Fatal(err)
							}
						}
					})
				})
			}
		})
	}
}

// benchStore opens a fresh schema holding n live sessions, s1…sn, of one
// user; it is closed when the benchmark ends.
func benchStore(b *testing.B, opt Options, n int) *Store {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, TestSchema(b), opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.pool.Exec(ctx, `INSERT INTO users (id, username, username_norm, password_hash, role, created_at) VALUES ('u', 'u', 'u', 'h', 'user', 0)`); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixNano()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
		b.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
		idle_expires_at, expires_at, access_exp, ip, user_agent)
		SELECT 's' || i, 'u', '\x00', 1, $1, $1, $1, $2, $2, $1, '127.0.0.1', 'seed' FROM generate_series(1, $3) AS i`,
		now, now+int64(24*time.Hour), n); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	s.pool.Exec(ctx, `ANALYZE sessions`)
	return s
}

// BenchmarkGroupCommit measures the fast path's rotation (RotateIfCurrent)
// with group commit and without, from 8 and 32 goroutines, each chaining
// rotations of its own session as a client chains refresh tokens. Every
// rotation must succeed: a conflict would mean an acknowledged rotation
// went missing. Reports the rotations per statement.
func BenchmarkGroupCommit(b *testing.B) {
	for _, mode := range []struct {
		name    string
		batches int
	}{{"batched", 0}, {"single", -1}} {
		for _, clients := range []int{8, 32} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, clients), func(b *testing.B) {
				ctx := context.Background()
				s := benchStore(b, Options{RotateBatches: mode.batches}, 10_000)
				var next atomic.Int64
				b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					id := fmt.Sprintf("s%d", 1+next.Add(1))
					for gen := int64(1); pb.Next(); gen++ {
						t := time.Now()
						_, _, err := s.RotateIfCurrent(ctx, store.Rotation{SessionID: id, FromGeneration: gen, Now: t,
							IdleExpiresAt: t.Add(time.Hour), AccessExpiresAt: t.Add(5 * time.Minute), IP: "127.0.0.1", UserAgent: "b"})
						if err != nil {
							b.Fatal(err)
						}
					}
				})
				b.StopTimer()
				if st := s.GroupCommitStats(); st.Single+st.Batches > 0 {
					b.ReportMetric(float64(st.Single+st.Batched)/float64(st.Single+st.Batches), "rotations/stmt")
				}
			})
		}
	}
}
