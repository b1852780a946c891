package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Group commit (rotate.go), attacked: rotations that share a statement each
// get their own outcome, racing rotations of one session never both win,
// a batch that fails commits none of its rotations, and a deadlock costs a
// retry, not an error.

func openStore(t *testing.T, url string, opt Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// seed creates a user and a live session of it with the given id, last
// used from 192.0.2.1 with user agent "seed".
func seed(t *testing.T, s *Store, id string, now time.Time) store.Session {
	t.Helper()
	ctx := context.Background()
	u := store.User{ID: "u-" + id, Username: "n-" + id, PasswordHash: "$argon2id$x", Role: store.RoleUser, CreatedAt: now}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	x := store.Session{ID: id, UserID: u.ID, Nonce: []byte("0123456789abcdef0123456789abcdef"), Generation: 1,
		RotatedAt: now, CreatedAt: now, LastUsedAt: now, IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(24 * time.Hour),
		AccessExpiresAt: now.Add(5 * time.Minute), AuthTime: now, IP: "192.0.2.1", UserAgent: "seed"}
	if err := s.CreateSession(ctx, x, nil); err != nil {
		t.Fatal(err)
	}
	return x
}

func rotation(x store.Session, from int64, now time.Time, ua string) store.Rotation {
	return store.Rotation{SessionID: x.ID, FromGeneration: from, Now: now, IdleExpiresAt: now.Add(time.Hour),
		AccessExpiresAt: now.Add(5 * time.Minute), IP: x.IP, UserAgent: ua}
}

func queued(ctx context.Context, r store.Rotation) *pending {
	return &pending{ctx: ctx, r: r, done: make(chan outcome, 1)}
}

// One statement, every kind of outcome: each rotation is judged on its own
// row, exactly as the single statement would judge it.
func TestBatchOutcomesAreEachRotations(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, TestSchema(t), Options{RotateBatches: -1})
	now := time.Now().Truncate(time.Microsecond)
	later := now.Add(time.Minute)
	mk := func(id string) store.Session { return seed(t, s, id, now) }
	good, good2, stale, moved, banned, revoked, expired := mk("b-good"), mk("b-good2"), mk("b-stale"), mk("b-moved"), mk("b-banned"), mk("b-revoked"), mk("b-expired")
	if _, _, err := s.UpdateUser(ctx, banned.UserID, func(u store.User) (store.UserUpdate, error) {
		u.Disabled = true
		return store.UserUpdate{User: u}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSession(ctx, revoked.ID, "test", now); err != nil {
		t.Fatal(err)
	}
	anyIP := rotation(good2, 1, later, "ua-good2")
	anyIP.IP = "" // an unknown address matches any
	newIP := rotation(moved, 1, later, "ua-moved")
	newIP.IP = "198.51.100.7"
	batch := []*pending{
		queued(ctx, rotation(good, 1, later, "ua-good")),
		queued(ctx, anyIP),
		queued(ctx, rotation(stale, 4, later, "ua-stale")),
		queued(ctx, newIP),
		queued(ctx, rotation(banned, 1, later, "ua-banned")),
		queued(ctx, rotation(revoked, 1, later, "ua-revoked")),
		queued(ctx, rotation(expired, 1, now.Add(25*time.Hour), "ua-expired")),
		queued(ctx, rotation(store.Session{ID: "b-unknown", IP: "192.0.2.1"}, 1, later, "ua-unknown")),
	}
	want := map[string]bool{"b-good": true, "b-good2": true} // the rest conflict
	r := newRotator(s.db.Writer(), 5*time.Second, 1)
	r.run(append([]*pending(nil), batch...))
	for _, p := range batch {
		o := <-p.done
		if !want[p.r.SessionID] {
			if !errors.Is(o.err, store.ErrConflict) {
				t.Errorf("%s: %v, want a conflict", p.r.SessionID, o.err)
			}
			continue
		}
		if o.err != nil {
			t.Fatalf("%s: %v", p.r.SessionID, o.err)
		}
		if o.s.ID != p.r.SessionID || o.s.Generation != 2 || o.s.UserAgent != p.r.UserAgent || o.u.ID != "u-"+p.r.SessionID ||
			!o.s.LastUsedAt.Equal(later) || !o.s.IdleExpiresAt.Equal(later.Add(time.Hour)) {
			t.Fatalf("%s came back as %+v of user %s: not its own rotation", p.r.SessionID, o.s, o.u.ID)
		}
	}
	if st := r.stats(); st.Batches != 1 || st.Batched != int64(len(batch)) || st.Single != 0 {
		t.Fatalf("stats %+v; want 1 statement carrying %d", st, len(batch))
	}
	for _, x := range []store.Session{stale, moved, banned, revoked, expired} {
		cur, err := s.GetSession(ctx, x.ID)
		if err != nil || cur.Generation != 1 || cur.UserAgent != "seed" || cur.IP != "192.0.2.1" {
			t.Fatalf("%s was changed by a refused rotation: %+v, %v", x.ID, cur, err)
		}
	}
}

// A batch never carries two rotations of a session: the second waits for
// the next batch, behind the first, in arrival order.
func TestBatchHoldsBackASessionsSecondRotation(t *testing.T) {
	ctx := context.Background()
	a1 := queued(ctx, store.Rotation{SessionID: "a", FromGeneration: 1})
	b1 := queued(ctx, store.Rotation{SessionID: "b", FromGeneration: 1})
	a2 := queued(ctx, store.Rotation{SessionID: "a", FromGeneration: 2})
	a3 := queued(ctx, store.Rotation{SessionID: "a", FromGeneration: 3})
	batch, rest := take([]*pending{a1, b1, a2, a3})
	if len(batch) != 2 || batch[0] != a1 || batch[1] != b1 || len(rest) != 2 || rest[0] != a2 || rest[1] != a3 {
		t.Fatalf("take = %v, %v", batch, rest)
	}
	batch, rest = take(rest)
	if len(batch) != 1 || batch[0] != a2 || len(rest) != 1 || rest[0] != a3 {
		t.Fatalf("second take = %v, %v", batch, rest)
	}
	var many []*pending
	for i := range maxBatch + 3 {
		many = append(many, queued(ctx, store.Rotation{SessionID: fmt.Sprint(i)}))
	}
	if batch, rest = take(many); len(batch) != maxBatch || len(rest) != 3 || rest[0] != many[maxBatch] {
		t.Fatalf("take of %d: a batch of %d, %d left", len(many), len(batch), len(rest))
	}
}

// Many callers at once, several racing for each session at each
// generation: exactly one wins each race, every winner gets its own
// rotation back, and every acknowledged rotation is in the database.
func TestGroupCommitRaces(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("pooled=%v", pooled), func(t *testing.T) {
			url := ""
			if pooled {
				url, _ = TestPooledDatabase(t)
			} else {
				url = TestSchema(t)
			}
			s := openStore(t, url, Options{Pooled: pooled, MaxConns: 8, RotateBatches: 2})
			const sessions, rounds, racers = 24, 12, 3
			now := time.Now()
			xs := make([]store.Session, sessions)
			for i := range xs {
				xs[i] = seed(t, s, fmt.Sprintf("race-%02d", i), now)
			}
			var mu sync.Mutex
			wins := map[string]int64{} // session → acknowledged rotations
			var wg sync.WaitGroup
			for _, x := range xs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for gen := int64(1); gen <= rounds; gen++ {
						results := make(chan error, racers)
						for k := range racers {
							go func() {
								ua := fmt.Sprintf("%s/%d/%d", x.ID, gen, k)
								got, _, err := s.RotateIfCurrent(context.Background(), rotation(x, gen, time.Now(), ua))
								if err == nil && (got.ID != x.ID || got.Generation != gen+1 || got.UserAgent != ua) {
									err = fmt.Errorf("%s won generation %d but got back %s at %d with %q", ua, gen, got.ID, got.Generation, got.UserAgent)
								}
								results <- err
							}()
						}
						won := 0
						for range racers {
							err := <-results
							switch {
							case err == nil:
								won++
							case !errors.Is(err, store.ErrConflict):
								t.Error(err)
							}
						}
						if won != 1 {
							t.Errorf("%s generation %d: %d winners", x.ID, gen, won)
							return
						}
						mu.Lock()
						wins[x.ID]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for _, x := range xs {
				cur, err := s.GetSession(context.Background(), x.ID)
				if err != nil || cur.Generation != 1+wins[x.ID] {
					t.Fatalf("%s: generation %d in the database after %d acknowledged rotations (%v)", x.ID, cur.Generation, wins[x.ID], err)
				}
			}
			st := s.GroupCommitStats()
			t.Logf("%d rotations: %d alone, %d in %d shared statements", sessions*rounds*racers, st.Single, st.Batched, st.Batches)
			if st.Single+st.Batched != sessions*rounds*racers {
				t.Fatalf("stats %+v do not add up to the %d rotations", st, sessions*rounds*racers)
			}
			if st.Batches == 0 {
				t.Fatal("72 callers at once never shared a statement: no group commit happened")
			}
		})
	}
}

// A batch is one transaction: when its statement fails (here, a statement
// timeout while a row it needs is locked), none of its rotations commit
// and every one of them hears the error.
func TestFailedBatchCommitsNothing(t *testing.T) {
	ctx := context.Background()
	url := TestSchema(t)
	s := openStore(t, url, Options{RotateBatches: -1, StatementTimeout: 300 * time.Millisecond})
	now := time.Now()
	a, b := seed(t, s, "f-a", now), seed(t, s, "f-b", now)
	locker := lockRow(t, url, b.ID)
	defer locker.Rollback(ctx)
	batch := []*pending{queued(ctx, rotation(a, 1, now, "x")), queued(ctx, rotation(b, 1, now, "x"))}
	r := newRotator(s.db.Writer(), 5*time.Second, 1)
	r.run(append([]*pending(nil), batch...))
	for _, p := range batch {
		if o := <-p.done; !errors.Is(o.err, store.ErrUnavailable) {
			t.Fatalf("%s: %v, want ErrUnavailable", p.r.SessionID, o.err)
		}
	}
	locker.Rollback(ctx)
	if cur, err := s.GetSession(ctx, a.ID); err != nil || cur.Generation != 1 {
		t.Fatalf("a rotation of the failed batch committed: generation %d (%v)", cur.Generation, err)
	}
}

// A deadlock between a batch and another transaction aborts the batch
// whole; its rotations are then run one by one and succeed.
func TestBatchDeadlockIsRetriedOneByOne(t *testing.T) {
	ctx := context.Background()
	url := TestSchema(t)
	// The batch's backend looks for deadlocks after 2 s of waiting (time for
	// the locker to join the cycle, even on a loaded machine); the
	// locker's after 30 s: the batch is the one PostgreSQL aborts.
	s := openStore(t, url+"&deadlock_timeout=2s", Options{RotateBatches: -1})
	now := time.Now()
	a, b := seed(t, s, "d-a", now), seed(t, s, "d-b", now) // the batch locks a, then b
	locker := lockRow(t, url+"&deadlock_timeout=30s", b.ID)
	defer locker.Rollback(ctx)
	var pid int
	if err := locker.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	batch := []*pending{queued(ctx, rotation(a, 1, now, "ua-a")), queued(ctx, rotation(b, 1, now, "ua-b"))}
	r := newRotator(s.db.Writer(), 10*time.Second, 1)
	ran := make(chan struct{})
	go func() { r.run(append([]*pending(nil), batch...)); close(ran) }()
	waitBlockedBy(t, s, pid) // the batch holds a and waits for b
	// The locker now waits for a: a cycle, which the batch's backend finds.
	if _, err := locker.Exec(ctx, `UPDATE sessions SET user_agent = user_agent WHERE id = $1`, a.ID); err != nil {
		t.Fatalf("the locker was chosen as the deadlock's victim: %v", err)
	}
	if err := locker.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	<-ran
	for _, p := range batch {
		o := <-p.done
		if o.err != nil || o.s.Generation != 2 || o.s.UserAgent != p.r.UserAgent {
			t.Fatalf("%s after the deadlock: %+v, %v", p.r.SessionID, o.s, o.err)
		}
	}
	if st := r.stats(); st.Retried != 1 || st.Single != 2 {
		t.Fatalf("stats %+v; want 1 batch retried as 2 single statements", st)
	}
}

// lockRow opens a transaction on its own connection holding session id's
// row lock.
func lockRow(t *testing.T, url, id string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE sessions SET user_agent = user_agent WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitBlockedBy waits until some backend waits for a lock pid holds.
func waitBlockedBy(t *testing.T, s *Store, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := s.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited for the locked row")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Closing the store while rotations stream in answers every one of them:
// none hangs, none is answered twice.
func TestCloseAnswersEveryRotation(t *testing.T) {
	s, err := Open(context.Background(), TestSchema(t), Options{RotateBatches: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	x := seed(t, s, "c-x", now)
	var wg sync.WaitGroup
	for k := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gen := int64(1); ; gen++ {
				_, _, err := s.RotateIfCurrent(context.Background(), rotation(x, gen, time.Now(), fmt.Sprint(k)))
				if errors.Is(err, store.ErrUnavailable) {
					return // closed
				}
				if err != nil && !errors.Is(err, store.ErrConflict) {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	s.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("rotations still waiting 10 s after Close")
	}
}

// A batch stalled on a row lock does not hold up the other sessions'
// rotations: after stallAfter the next batch goes without waiting for it.
func TestStalledBatchDoesNotStallOthers(t *testing.T) {
	ctx := context.Background()
	url := TestSchema(t)
	s := openStore(t, url, Options{})
	now := time.Now()
	a, b := seed(t, s, "s-a", now), seed(t, s, "s-b", now)
	locker := lockRow(t, url, a.ID)
	defer locker.Rollback(ctx)
	stalled := make(chan error, 1)
	go func() {
		_, _, err := s.RotateIfCurrent(ctx, rotation(a, 1, now, "a"))
		stalled <- err
	}()
	time.Sleep(50 * time.Millisecond) // a's batch is in flight, waiting for the lock
	start := time.Now()
	got, _, err := s.RotateIfCurrent(ctx, rotation(b, 1, now, "b"))
	if err != nil || got.Generation != 2 {
		t.Fatalf("b while a's batch is stalled: %+v, %v", got, err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("b waited %v behind a's stalled batch", waited)
	}
	select {
	case err := <-stalled:
		t.Fatalf("a's rotation finished while its row was locked: %v", err)
	default:
	}
	locker.Rollback(ctx)
	if err := <-stalled; err != nil {
		t.Fatalf("a after the lock was released: %v", err)
	}
}
