package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/factortest"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

func snap(sid, uid string, gen uint64, at int64) snapshot {
	return snapshot{sess: store.Session{ID: sid, UserID: uid}, user: store.User{ID: uid}, gen: gen, at: at}
}

// TestSnapshots attacks the cache's rules directly: a read that began
// before a change is never kept, a change to the user hides every one of
// its sessions, age expires, and neither a flood of sessions nor one of
// changes grows it past its bound.
func TestSnapshots(t *testing.T) {
	var now int64
	c := newSnapshots(64, time.Second)
	c.clock = func() int64 { return now }

	gen, at := c.begin()
	c.put(snap("s1", "u1", gen, at))
	if _, ok := c.get("s1"); !ok {
		t.Fatal("a fresh snapshot is not served")
	}

	// A read racing a rotation: it began before, it must not be kept.
	gen, at = c.begin()
	c.forgetSession("s1")
	c.put(snap("s1", "u1", gen, at))
	if _, ok := c.get("s1"); ok {
		t.Fatal("a read that began before the session changed was kept")
	}
	gen, at = c.begin()
	c.put(snap("s1", "u1", gen, at))
	if _, ok := c.get("s1"); !ok {
		t.Fatal("a read after the change is not kept")
	}

	// A change to the user hides all of its sessions, and a racing read.
	c.put(snap("s2", "u1", gen, at))
	c.forgetUser("u1")
	for _, sid := range []string{"s1", "s2"} {
		if _, ok := c.get(sid); ok {
			t.Fatalf("%s served after its user changed", sid)
		}
	}
	c.put(snap("s2", "u1", gen, at))
	if _, ok := c.get("s2"); ok {
		t.Fatal("a read that began before the user changed was kept")
	}

	// Age: what other instances change unannounced is at most a TTL old.
	gen, at = c.begin()
	c.put(snap("s3", "u3", gen, at))
	now += int64(time.Second) + 1
	if _, ok := c.get("s3"); ok {
		t.Fatal("a snapshot older than the TTL is served")
	}

	// Everything: a read begun before revoke-all is not kept either.
	gen, at = c.begin()
	c.forgetAll()
	c.put(snap("s4", "u4", gen, at))
	if _, ok := c.get("s4"); ok {
		t.Fatal("a read that began before forgetAll was kept")
	}

	// Floods: distinct sessions, and distinct changes, stay bounded; a
	// trim forgets everything, so no stale read slips in through it.
	gen, at = c.begin()
	for i := range 1000 {
		c.put(snap(fmt.Sprint("flood", i), "u", gen, at))
		if n := c.len(); n > 64 {
			t.Fatalf("%d snapshots kept, bound 64", n)
		}
	}
	stale, staleAt := c.begin()
	for i := range 1000 {
		c.forgetSession(fmt.Sprint("changed", i))
		c.forgetUser(fmt.Sprint("changed-user", i))
		if n := len(c.sessionChanged) + len(c.userChanged); n > 64 {
			t.Fatalf("%d change records kept, bound 64", n)
		}
	}
	c.put(snap("changed999", "u", stale, staleAt))
	if _, ok := c.get("changed999"); ok {
		t.Fatal("a read older than a trim was kept")
	}
}

// TestSnapshotsSteadyChanges: many distinct sessions changing steadily
// (every refresh records a change) no longer empty the cache each time the
// change records fill up: records older than the TTL are dropped instead,
// and a read begun before a dropped record's change is still refused.
func TestSnapshotsSteadyChanges(t *testing.T) {
	var now int64
	c := newSnapshots(64, time.Second)
	c.clock = func() int64 { return now }

	// A read begun before x changed, put back only after x's change
	// record has aged out and been dropped: refused all the same.
	stale, staleAt := c.begin()
	c.forgetSession("x")
	for i := range 63 { // 64 records: the bound
		c.forgetSession(fmt.Sprint("fill", i))
	}
	now += int64(time.Second) + 1
	c.forgetSession("trigger") // past the bound: trim drops the 64 aged records
	if _, kept := c.sessionChanged["x"]; kept || len(c.sessionChanged) != 1 || c.floor != 0 {
		t.Fatalf("after a trim of aged records: x kept %v, %d records, floor %d", kept, len(c.sessionChanged), c.floor)
	}
	c.put(snap("x", "ux", stale, staleAt))
	if _, kept := c.entries["x"]; kept {
		t.Fatal("a read begun before a change was kept once the change's record was dropped")
	}

	// 5,000 changes at 20 per TTL: at most 20 records are ever younger
	// than the TTL, so nothing needs forgetting wholesale.
	floor := c.floor
	for i := range 5000 {
		now += int64(time.Second / 20)
		gen, at := c.begin()
		c.put(snap("steady", "us", gen, at))
		c.forgetSession(fmt.Sprint("s", i))
		if n := len(c.sessionChanged) + len(c.userChanged); n > 64 {
			t.Fatalf("%d change records kept, bound 64", n)
		}
		if _, ok := c.get("steady"); !ok {
			t.Fatalf("change %d: an unrelated fresh snapshot was forgotten", i)
		}
	}
	if c.floor != floor {
		t.Fatal("steady changes made the cache forget everything")
	}

	// A burst faster than the TTL still forgets everything, and stays
	// bounded.
	for i := range 1000 {
		c.forgetSession(fmt.Sprint("burst", i))
		if n := len(c.sessionChanged) + len(c.userChanged); n > 64 {
			t.Fatalf("%d change records kept, bound 64", n)
		}
	}
	if c.floor == floor {
		t.Fatal("a burst of changes within one TTL did not fall back to forgetting everything")
	}
}

// countingStore counts the session reads /v1/me would make.
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (c *countingStore) GetSessionWithUser(ctx context.Context, id string) (store.Session, store.User, error) {
	c.reads.Add(1)
	return c.Store.GetSessionWithUser(ctx, id)
}

func (c *countingStore) GetUserByID(ctx context.Context, id string) (store.User, error) {
	c.reads.Add(1)
	return c.Store.GetUserByID(ctx, id)
}

// countedAnn makes a Service with cfg over f's store that counts its
// account reads, and signs ann in on it.
func countedAnn(t *testing.T, f *fixture, cfg Config) (*Service, *countingStore, Tokens, Principal) {
	t.Helper()
	counting := &countingStore{Store: f.st}
	svc := New(cfg, counting, f.keys, make([]byte, 32))
	ctx := context.Background()
	if _, err := svc.Register(ctx, "ann", "password-ann", meta); err != nil {
		t.Fatal(err)
	}
	tk, err := svc.Login(ctx, "ann", "password-ann", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(tk.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return svc, counting, tk, p
}

// enrolTOTP enrols and verifies a TOTP factor for p on svc.
func enrolTOTP(t *testing.T, f *fixture, svc *Service, p Principal) {
	t.Helper()
	ctx := context.Background()
	e, err := svc.EnrollTOTP(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := factortest.TOTP(e.Secret, f.clock.Now())
	if _, _, err := svc.VerifyFactor(ctx, p, e.Factor.ID, code, meta); err != nil {
		t.Fatal(err)
	}
}

// TestRequireEnrollmentFromMemory: --require-mfa's check of an aal1 token
// reads the account once, not per request, and sees this process's
// enrolment at once.
func TestRequireEnrollmentFromMemory(t *testing.T) {
	f := newFixture(t, nil)
	cfg := f.svc.cfg
	cfg.RequireMFARoles = []string{store.RoleUser}
	svc, counting, _, p := countedAnn(t, f, cfg)
	ctx := context.Background()
	before := counting.reads.Load()
	for range 5 {
		if err := svc.RequireEnrollment(ctx, p); !errors.Is(err, ErrMFAEnrollmentRequired) {
			t.Fatalf("before enrolment: %v", err)
		}
	}
	if n := counting.reads.Load() - before; n != 1 {
		t.Fatalf("5 checks read the store %d times, want 1", n)
	}
	enrolTOTP(t, f, svc, p)
	if err := svc.RequireEnrollment(ctx, p); err != nil {
		t.Fatalf("right after enrolment, the same aal1 token: %v", err)
	}
}

// TestMeFromMemory: repeated /v1/me reads the store once, and every write
// this process makes to the session or the user is seen on the very next
// call (a refresh from a new address, a second factor enrolled).
func TestMeFromMemory(t *testing.T) {
	f := newFixture(t, nil)
	svc, counting, tk, p := countedAnn(t, f, f.svc.cfg)
	ctx := context.Background()
	for range 5 {
		if _, _, err := svc.Me(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if n := counting.reads.Load(); n != 1 {
		t.Fatalf("5 calls read the store %d times, want 1", n)
	}

	f.clock.Advance(time.Minute)
	moved := Meta{IP: "198.51.100.7", UserAgent: "elsewhere"}
	next, err := svc.Refresh(ctx, tk.RefreshToken, moved)
	if err != nil {
		t.Fatal(err)
	}
	p, _ = svc.Authenticate(next.AccessToken)
	_, sess, err := svc.Me(ctx, p)
	if err != nil || sess.IP != moved.IP || sess.UserAgent != moved.UserAgent || sess.LastUsedAt.Before(f.clock.Now().Add(-time.Second)) {
		t.Fatalf("after a refresh from a new address /v1/me says %+v, %v", sess, err)
	}

	enrolTOTP(t, f, svc, p)
	if u, _, err := svc.Me(ctx, p); err != nil || !u.MFA {
		t.Fatalf("after enrolling a factor /v1/me says mfa=%v (%v)", u.MFA, err)
	}
}

// TestMeAcrossInstances: what another instance changes reaches this one's
// snapshots through the revocation log at once, and otherwise within the
// TTL.
func TestMeAcrossInstances(t *testing.T) {
	f := newFixture(t, nil)
	other := New(f.svc.cfg, f.st, f.keys, make([]byte, 32))
	ctx := context.Background()
	tk := f.login(t, "ann")
	p, _ := f.svc.Authenticate(tk.AccessToken)
	var now int64
	f.svc.snaps.clock = func() int64 { return now }
	if _, _, err := f.svc.Me(ctx, p); err != nil {
		t.Fatal(err)
	}

	// Unannounced: a refresh there from a new address.
	moved := Meta{IP: "198.51.100.7", UserAgent: "elsewhere"}
	if _, err := other.Refresh(ctx, tk.RefreshToken, moved); err != nil {
		t.Fatal(err)
	}
	if _, sess, _ := f.svc.Me(ctx, p); sess.IP != meta.IP {
		t.Fatalf("within the TTL the snapshot says %s", sess.IP)
	}
	now += int64(snapshotTTL) + 1
	if _, sess, _ := f.svc.Me(ctx, p); sess.IP != moved.IP {
		t.Fatalf("past the TTL /v1/me still says %s", sess.IP)
	}

	// Announced: logging out there is in the revocation log, and the
	// snapshot goes with the next sync, whatever its age.
	if err := other.RevokeOwnSessions(ctx, p, true, meta); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.svc.snaps.get(p.SessionID); !ok {
		t.Fatal("test premise: the snapshot is still current before the sync")
	}
	if err := f.svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.svc.snaps.get(p.SessionID); ok {
		t.Fatal("a session revoked by another instance kept its snapshot after the sync")
	}
	if _, err := f.svc.Authenticate(tk.AccessToken); err == nil {
		t.Fatal("the revoked session's token is still accepted")
	}
}
