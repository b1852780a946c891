package postgres

// Group commit of refresh rotations.
//
// A rotation on the fast path is one conditional UPDATE in a transaction of
// its own, and on a busy server most of its cost in PostgreSQL is not the
// row change but the statement and the commit around it (a WAL flush, the
// protocol round trip, the executor's start and end). Rotations that arrive
// together are therefore sent as one statement: one UPDATE over an array of
// rotations, one commit. Each element is still the exact compare-and-swap
// of the single statement — same conditions, evaluated per row — and comes
// back with its own outcome: the rows the statement returns carry the
// element's position, and an element with no row is a conflict (the caller
// then takes the full path, which decides grace, reuse, expiry, as before).
// Nothing is answered before the statement, and so its commit, returns.
//
// Batches form by themselves, with no timer to wait out: a rotation that
// finds no batch in flight is sent at once, by its own caller, with
// whatever else is queued; rotations arriving while a batch is in flight
// queue, and go together as the next batch when it is answered. Under
// light load every rotation goes alone, with no added wait or hand-off;
// under load the queue fills during each round trip, and the next batch
// carries all of it. One batch in flight at a time measured best
// (docs/PERFORMANCE.md: with 2 or 4 in flight, the batches are smaller and
// both the server and PostgreSQL spend more per rotation). But a batch
// can stall — a row lock held by another transaction, a deadlock being
// detected — and must not stall every refresh with it: once the batch in
// flight is older than stallAfter, the next one goes anyway, up to
// maxInFlight at once.
//
// A batch never holds two rotations of one session: PostgreSQL would update
// the row once with either (UPDATE … FROM with two matching rows), so the
// second waits for the next batch, where it sees the first's result as a
// separate statement would. Rows are updated in session-id order, so two
// batches contending for the same rows lock them in the same order; if the
// lock order is nevertheless crossed (another instance, a plan that scans
// differently, a revoke-all of the same user's sessions) and PostgreSQL
// breaks a deadlock by aborting the batch, nothing of it committed, and its
// rotations are retried one by one.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

const (
	// defaultMaxInFlight bounds the batches in flight at once when they
	// stall.
	defaultMaxInFlight = 4
	// stallAfter is how long a batch may be in flight before the next one
	// goes without waiting for it: some ten times a batch's round trip and
	// commit on a busy server.
	stallAfter = 20 * time.Millisecond
	// maxBatch bounds one statement's arrays.
	maxBatch = 128
)

// rotateOne is the single rotation: the fast path's conditional UPDATE.
const rotateOne = `UPDATE sessions s SET generation = s.generation + 1, rotated_at = $1, last_used_at = $1,
	   idle_expires_at = LEAST($2, s.expires_at), access_exp = GREATEST(s.access_exp, LEAST($3, s.expires_at)),
	   ip = $4, user_agent = $5
	 FROM users u
	 WHERE s.id = $6 AND s.generation = $7 AND s.revoked_at IS NULL
	   AND s.expires_at > $1 AND s.idle_expires_at > $1 AND u.id = s.user_id AND NOT u.disabled
	   AND (s.ip = $4 OR s.ip = '' OR $4 = '')
	 RETURNING ` + sqlstore.SessionUserCols

// rotateMany is rotateOne over arrays, one element per rotation: the same
// SET and WHERE with r's columns in place of the parameters, and r.i, the
// element's position (from 1), first in each returned row. The redundant
// s.id = ANY($1) is for the planner: without it, the generic plan pgx's
// prepared statement ends up with scans the whole sessions table into a
// hash join once the table has a few hundred rows; with it, sessions are
// found through the primary key, visited (and so locked) in id order.
const rotateMany = `UPDATE sessions s SET generation = s.generation + 1, rotated_at = r.now, last_used_at = r.now,
	   idle_expires_at = LEAST(r.idle, s.expires_at), access_exp = GREATEST(s.access_exp, LEAST(r.access, s.expires_at)),
	   ip = r.ip, user_agent = r.ua
	 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
	        WITH ORDINALITY AS r(id, gen, now, idle, access, ip, ua, i),
	      users u
	 WHERE s.id = ANY($1) AND s.id = r.id AND s.generation = r.gen AND s.revoked_at IS NULL
	   AND s.expires_at > r.now AND s.idle_expires_at > r.now AND u.id = s.user_id AND NOT u.disabled
	   AND (s.ip = r.ip OR s.ip = '' OR r.ip = '')
	 RETURNING r.i, ` + sqlstore.SessionUserCols

// pending is one caller's rotation, waiting for its batch.
type pending struct {
	ctx  context.Context
	r    store.Rotation
	done chan outcome // buffered: a batch never blocks on a caller
}

type outcome struct {
	s   store.Session
	u   store.User
	err error
}

// rotator is the group commit: the queue of rotations and the batches in
// flight.
type rotator struct {
	db          sqlstore.Conn
	timeout     time.Duration // bounds a batch: no caller's context governs it
	maxInFlight int

	mu       sync.Mutex
	queue    []*pending // waiting for a batch, in arrival order
	inFlight int        // batches sent and not answered
	current  *flight    // of those, the one not stalled, if any
	closed   bool
	wg       sync.WaitGroup // batches in flight

	// Counters for metrics, tests and benchmarks: statements of one
	// rotation and of several, the rotations the latter carried, and the
	// batches aborted by a deadlock and run again one by one.
	single, batches, batched, retried atomic.Int64
}

// flight is one batch in flight. Its stall timer is armed once a rotation
// waits behind it: a batch sent from the queue has one from the start
// (armed by its sender, outside mu, as it goes), a lone rotation only if
// another queues while it is in flight (under mu).
type flight struct {
	timer *time.Timer // set by the sender of a batch from the queue, else under mu
	// Guarded by rotator.mu:
	lone          bool      // sent by rotate's caller, not from the queue
	started       time.Time // when, if lone
	stalled, done bool
}

func newRotator(db sqlstore.Conn, timeout time.Duration, maxInFlight int) *rotator {
	return &rotator{db: db, timeout: timeout, maxInFlight: maxInFlight}
}

// close waits for the batches in flight; rotations still queued are
// answered ErrUnavailable.
func (r *rotator) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.queue {
		p.done <- outcome{err: fmt.Errorf("rotate if current: %w: store closed", store.ErrUnavailable)}
	}
	r.queue = nil
}

// rotate sends one rotation, with the others that arrive together, and
// waits for its outcome. When nothing is in flight or queued the caller
// sends it itself, in its own goroutine and without queueing: a lone
// rotation costs no hand-off and nothing the queue needs. It waits even if
// ctx ends meanwhile: once sent, the rotation may commit, and its caller
// must not be told otherwise (the batch's own timeout bounds the wait).
func (r *rotator) rotate(ctx context.Context, rot store.Rotation) (store.Session, store.User, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return store.Session{}, store.User{}, fmt.Errorf("rotate if current: %w: store closed", store.ErrUnavailable)
	}
	if len(r.queue) == 0 && r.mayStart() {
		f := r.start()
		f.lone, f.started = true, time.Now()
		r.mu.Unlock()
		o := r.alone(ctx, rot)
		r.finish(f)
		return o.s, o.u, o.err
	}
	p := &pending{ctx: ctx, r: rot, done: make(chan outcome, 1)}
	r.queue = append(r.queue, p)
	batch, f := r.next()
	if cur := r.current; batch == nil && cur != nil && cur.lone && cur.timer == nil {
		cur.timer = r.stallTimer(cur, stallAfter-time.Since(cur.started))
	}
	r.mu.Unlock()
	if batch != nil {
		r.send(batch, f)
	}
	o := <-p.done
	return o.s, o.u, o.err
}

// mayStart reports whether a batch may go now: none is in flight, or the
// ones in flight have all stalled and fewer than maxInFlight are. The
// caller holds mu.
func (r *rotator) mayStart() bool {
	return !r.closed && r.current == nil && r.inFlight < r.maxInFlight
}

// start records a batch going now. The caller holds mu and has asked
// mayStart.
func (r *rotator) start() *flight {
	f := &flight{}
	r.inFlight++
	r.current = f
	r.wg.Add(1)
	return f
}

// next takes the next batch off the queue if one may go now. The caller
// holds mu and sends the batch.
func (r *rotator) next() ([]*pending, *flight) {
	if len(r.queue) == 0 || !r.mayStart() {
		return nil, nil
	}
	var batch []*pending
	batch, r.queue = take(r.queue)
	return batch, r.start()
}

// stallTimer returns f's stall timer, to fire after d: should f still be
// in flight then, the next batch goes without waiting for it.
func (r *rotator) stallTimer(f *flight, d time.Duration) *time.Timer {
	return time.AfterFunc(max(d, 0), func() {
		r.mu.Lock()
		if f.done || f.stalled {
			r.mu.Unlock()
			return
		}
		f.stalled = true
		r.current = nil
		next, nf := r.next()
		r.mu.Unlock()
		if next != nil {
			r.send(next, nf)
		}
	})
}

// finish records f answered, and sends the next batch if rotations queued
// meanwhile.
func (r *rotator) finish(f *flight) {
	r.mu.Lock()
	f.done = true
	if f.timer != nil {
		f.timer.Stop()
	}
	r.inFlight--
	if r.current == f {
		r.current = nil
	}
	next, nf := r.next()
	r.mu.Unlock()
	r.wg.Done()
	if next != nil {
		go r.send(next, nf)
	}
}

// send runs a batch taken off the queue, then finishes it.
func (r *rotator) send(batch []*pending, f *flight) {
	f.timer = r.stallTimer(f, stallAfter)
	r.run(batch)
	r.finish(f)
}

// take forms a batch from the front of the queue: up to maxBatch
// rotations, at most one per session; the rest stays queued, in arrival
// order (a session's rotations keep theirs).
func take(queue []*pending) (batch, rest []*pending) {
	if len(queue) == 1 {
		return queue, nil
	}
	seen := make(map[string]struct{}, min(len(queue), maxBatch))
	for _, p := range queue {
		if _, dup := seen[p.r.SessionID]; dup || len(batch) == maxBatch {
			rest = append(rest, p)
			continue
		}
		seen[p.r.SessionID] = struct{}{}
		batch = append(batch, p)
	}
	return batch, rest
}

// run executes one batch and answers each of its rotations.
func (r *rotator) run(batch []*pending) {
	// A caller gone before its rotation is sent is answered without it.
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- outcome{err: gone(err)}
			continue
		}
		live = append(live, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	switch {
	case len(live) == 0:
	case len(live) == 1:
		r.one(ctx, live[0])
	default:
		err := r.many(ctx, live)
		if isDeadlock(err) {
			// Aborted whole: nothing committed. One by one cannot deadlock
			// (a single statement locks a single session row).
			r.retried.Add(1)
			for _, p := range live {
				r.one(ctx, p)
			}
			return
		}
		if err != nil {
			for _, p := range live {
				p.done <- outcome{err: fmt.Errorf("rotate if current: %w", mapErr(err))}
			}
		}
	}
}

// alone runs a lone rotation in its caller's goroutine, as run would have
// run it in a batch of one: not sent if its caller is gone, else under the
// batch's timeout, not the caller's context.
func (r *rotator) alone(callerCtx context.Context, rot store.Rotation) outcome {
	if err := callerCtx.Err(); err != nil {
		return outcome{err: gone(err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	r.single.Add(1)
	s, u, err := rotateSingle(ctx, r.db, rot)
	return outcome{s, u, err}
}

// gone is the answer to a rotation whose caller left before it was sent.
func gone(err error) error {
	return fmt.Errorf("rotate if current: %w: %v", store.ErrUnavailable, err)
}

func (r *rotator) one(ctx context.Context, p *pending) {
	r.single.Add(1)
	s, u, err := rotateSingle(ctx, r.db, p.r)
	p.done <- outcome{s, u, err}
}

// rotateSingle runs rotateOne.
func rotateSingle(ctx context.Context, db sqlstore.Conn, rot store.Rotation) (store.Session, store.User, error) {
	x, u, err := sqlstore.ScanSessionUser(db.QueryRow(ctx, rotateOne,
		sqlstore.NS(rot.Now), sqlstore.NS(rot.IdleExpiresAt), sqlstore.NS(rot.AccessExpiresAt), rot.IP, rot.UserAgent, rot.SessionID, rot.FromGeneration))
	if errors.Is(err, pgx.ErrNoRows) {
		return x, u, fmt.Errorf("rotate if current: %w", store.ErrConflict)
	}
	if err != nil {
		return x, u, fmt.Errorf("rotate if current: %w", mapErr(err))
	}
	return x, u, nil
}

// many runs rotateMany for batch and answers every rotation in it, unless
// the statement failed (then it answers none and returns the error: the
// statement is one transaction, so none of it committed).
func (r *rotator) many(ctx context.Context, batch []*pending) error {
	// Session-id order: batches contending for rows lock them alike.
	slices.SortFunc(batch, func(a, b *pending) int {
		switch {
		case a.r.SessionID < b.r.SessionID:
			return -1
		case a.r.SessionID > b.r.SessionID:
			return 1
		}
		return 0
	})
	n := len(batch)
	ids, uas, ips := make([]string, n), make([]string, n), make([]string, n)
	gens, nows, idles, accs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, p := range batch {
		ids[i], gens[i], ips[i], uas[i] = p.r.SessionID, p.r.FromGeneration, p.r.IP, p.r.UserAgent
		nows[i], idles[i], accs[i] = sqlstore.NS(p.r.Now), sqlstore.NS(p.r.IdleExpiresAt), sqlstore.NS(p.r.AccessExpiresAt)
	}
	rows, err := r.db.Query(ctx, rotateMany, ids, gens, nows, idles, accs, ips, uas)
	if err != nil {
		return err
	}
	got := make([]outcome, n)
	answered := make([]bool, n)
	for rows.Next() {
		var i int64
		s, u, err := sqlstore.ScanSessionUser(indexedRow{rows, &i})
		if err == nil && (i < 1 || i > int64(n) || answered[i-1] || s.ID != batch[i-1].r.SessionID) {
			err = fmt.Errorf("batch returned row %d for %d rotations, or twice, or for another session", i, n)
		}
		if err != nil {
			rows.Close()
			return err
		}
		got[i-1], answered[i-1] = outcome{s: s, u: u}, true
	}
	rows.Close()
	// Rows is done only after the statement completed, and with it the
	// commit of its implicit transaction: only now may anyone hear of it.
	if err := rows.Err(); err != nil {
		return err
	}
	r.batches.Add(1)
	r.batched.Add(int64(n))
	for i, p := range batch {
		if !answered[i] {
			got[i].err = fmt.Errorf("rotate if current: %w", store.ErrConflict)
		}
		p.done <- got[i]
	}
	return nil
}

// indexedRow scans the position column, then the rest.
type indexedRow struct {
	rows sqlstore.Rows
	i    *int64
}

func (r indexedRow) Scan(dest ...any) error {
	return r.rows.Scan(append([]any{r.i}, dest...)...)
}

func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}

func (r *rotator) stats() store.GroupCommitStats {
	return store.GroupCommitStats{Single: r.single.Load(), Batches: r.batches.Load(), Batched: r.batched.Load(), Retried: r.retried.Load()}
}
