// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a constructor for an empty store;
// new behaviour the domain relies on is specified here once.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Run runs the whole suite. newStore must return an empty store; it is
// called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []test{
		{"Users", testUsers},
		{"SessionLifecycle", testSessionLifecycle},
		{"RotateCompareAndSwap", testRotateCAS},
		{"RotateIfCurrent", testRotateIfCurrent},
		{"RevokeUserSessions", testRevokeUserSessions},
		{"RevocationLog", testRevocationLog},
		{"UsersPaging", testUsersPaging},
		{"ListActiveSessions", testListActive},
		{"SigningKeys", testSigningKeys},
		{"Events", testEvents},
		{"ResourceKeys", testResourceKeys},
		{"TimePrecision", testTimePrecision},
		{"Permissions", testPermissions},
		{"UsernameKey", testUsernameKey},
		{"AuthTime", testAuthTime},
		{"LastAdmin", testLastAdmin},
		{"DeleteUser", testDeleteUser},
		{"LoginFailures", testLoginFailures},
		{"UpdateUserInTransaction", testUpdateUserInTransaction},
		{"CreateSessionChecked", testCreateSessionChecked},
		{"Outbox", testOutbox},
		{"MFA", testMFA},
		{"Tickets", testTickets},
	}
	run(t, newStore, tests)
}

// RunConcurrency is the suite of the contract's guarantees under
// concurrency (Dex's RunTransactionTests): racing compare-and-swaps,
// read-modify-writes and checked inserts, each either taking effect in turn
// or refused cleanly, never a silent loss.
func RunConcurrency(t *testing.T, newStore func(t *testing.T) store.Store) {
	run(t, newStore, []test{
		{"RotateConcurrent", testRotateConcurrent},
		{"LastAdminConcurrent", testLastAdminConcurrent},
		{"UpdateUserConcurrent", testUpdateUserConcurrent},
		{"CreateSessionRacingReset", testCreateSessionRacingReset},
		{"LoginFailuresConcurrent", testLoginFailuresConcurrent},
		{"SigningKeysConcurrent", testSigningKeysConcurrent},
		{"ReauthenticateRacingRevoke", testReauthenticateRacingRevoke},
		{"RevocationLogFollower", testRevocationLogFollower},
		{"OutboxFollower", testOutboxFollower},
		{"MFAConcurrent", testMFAConcurrent},
	})
}

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

func run(t *testing.T, newStore func(t *testing.T) store.Store, tests []test) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var base = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

func id() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func mkUser(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u := store.User{ID: id(), Username: name, PasswordHash: "$argon2id$x", Role: store.RoleUser, CreatedAt: base}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

// set is an updater that changes the locked row with f and nothing else.
func set(f func(u *store.User)) func(store.User) (store.UserUpdate, error) {
	return func(old store.User) (store.UserUpdate, error) {
		f(&old)
		return store.UserUpdate{User: old}, nil
	}
}

func mkSession(t *testing.T, s store.Store, userID string, created time.Time) store.Session {
	t.Helper()
	x := store.Session{
		ID: id(), UserID: userID, Nonce: []byte("0123456789abcdef0123456789abcdef"), Generation: 1,
		RotatedAt: created, CreatedAt: created, LastUsedAt: created,
		IdleExpiresAt: created.Add(time.Hour), ExpiresAt: created.Add(24 * time.Hour),
		AccessExpiresAt: created.Add(5 * time.Minute), AuthTime: created, IP: "192.0.2.1", UserAgent: "ua",
	}
	if err := s.CreateSession(context.Background(), x, nil); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return x
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "Ann")
	got, err := s.GetUserByID(ctx, u.ID)
	if err != nil || got.Username != "Ann" || got.Role != store.RoleUser || got.Disabled || !got.CreatedAt.Equal(base) {
		t.Fatalf("GetUserByID = %+v, %v", got, err)
	}
	for _, name := range []string{"ann", "ANN", "Ann"} {
		got, err := s.GetUserByUsername(ctx, name)
		if err != nil || got.ID != u.ID {
			t.Errorf("GetUserByUsername(%q) = %+v, %v; want user %s", name, got, err, u.ID)
		}
	}
	err = s.CreateUser(ctx, store.User{ID: id(), Username: "aNN", PasswordHash: "x", Role: "user", CreatedAt: base})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateUser with a name differing only in case: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.GetUserByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserByID(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUserByUsername(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUserByUsername(missing) = %v, want ErrNotFound", err)
	}
}

func testSessionLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "bob")
	x := mkSession(t, s, u.ID, base)
	got, err := s.GetSession(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != u.ID || got.Generation != 1 || string(got.Nonce) != string(x.Nonce) ||
		!got.ExpiresAt.Equal(x.ExpiresAt) || !got.IdleExpiresAt.Equal(x.IdleExpiresAt) ||
		!got.AccessExpiresAt.Equal(x.AccessExpiresAt) || got.IP != "192.0.2.1" || got.Revoked() {
		t.Fatalf("GetSession = %+v", got)
	}
	gs, gu, err := s.GetSessionWithUser(ctx, x.ID)
	if err != nil || gs.ID != x.ID || gs.Generation != 1 || !gs.CreatedAt.Equal(x.CreatedAt) || string(gs.Nonce) != string(x.Nonce) ||
		gu.ID != u.ID || gu.Username != "bob" || gu.Role != store.RoleUser || !gu.CreatedAt.Equal(base) {
		t.Fatalf("GetSessionWithUser = %+v, %+v, %v", gs, gu, err)
	}
	if _, _, err := s.GetSessionWithUser(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSessionWithUser(missing) = %v, want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, x, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateSession(duplicate id) = %v, want ErrAlreadyExists", err)
	}
	if got.DPoPJKT != "" {
		t.Errorf("unbound session reads back bound to %q", got.DPoPJKT)
	}
	// A DPoP-bound session keeps its key's thumbprint through rotation.
	bound := x
	bound.ID, bound.DPoPJKT = id(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	if err := s.CreateSession(ctx, bound, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateSession(ctx, store.Rotation{SessionID: bound.ID, FromGeneration: 1, Now: base,
		IdleExpiresAt: bound.IdleExpiresAt, AccessExpiresAt: bound.AccessExpiresAt}); err != nil {
		t.Fatal(err)
	}
	if b, _, err := s.GetSessionWithUser(ctx, bound.ID); err != nil || b.DPoPJKT != bound.DPoPJKT || b.Generation != 2 {
		t.Fatalf("bound session after rotation: %+v, %v", b, err)
	}
	if err := s.ExtendAccess(ctx, x.ID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.ExtendAccess(ctx, x.ID, base.Add(time.Minute)); err != nil { // lower: no effect
		t.Fatal(err)
	}
	got, _ = s.GetSession(ctx, x.ID)
	if !got.AccessExpiresAt.Equal(base.Add(time.Hour)) {
		t.Errorf("AccessExpiresAt = %v, want it raised to %v and never lowered", got.AccessExpiresAt, base.Add(time.Hour))
	}
	changed, err := s.RevokeSession(ctx, x.ID, "logout", base.Add(time.Second))
	if err != nil || !changed {
		t.Fatalf("RevokeSession = %v, %v; want true", changed, err)
	}
	changed, err = s.RevokeSession(ctx, x.ID, "again", base.Add(2*time.Second))
	if err != nil || changed {
		t.Fatalf("second RevokeSession = %v, %v; want false, nil", changed, err)
	}
	got, _ = s.GetSession(ctx, x.ID)
	if !got.Revoked() || got.RevokeReason != "logout" || !got.RevokedAt.Equal(base.Add(time.Second)) {
		t.Errorf("revoked session = %+v; want the first revocation kept", got)
	}
	if _, err := s.RevokeSession(ctx, "missing", "x", base); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeSession(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession(missing) = %v, want ErrNotFound", err)
	}
}

func testRotateCAS(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "carol")
	x := mkSession(t, s, u.ID, base)
	now := base.Add(time.Minute)
	rot := store.Rotation{SessionID: x.ID, FromGeneration: 1, Now: now, IdleExpiresAt: now.Add(time.Hour),
		AccessExpiresAt: now.Add(5 * time.Minute), IP: "198.51.100.7", UserAgent: "ua2"}
	got, err := s.RotateSession(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || !got.RotatedAt.Equal(now) || !got.LastUsedAt.Equal(now) ||
		!got.IdleExpiresAt.Equal(now.Add(time.Hour)) || got.IP != "198.51.100.7" || got.UserAgent != "ua2" ||
		!got.CreatedAt.Equal(base) || !got.ExpiresAt.Equal(x.ExpiresAt) || string(got.Nonce) != string(x.Nonce) {
		t.Fatalf("RotateSession returned %+v", got)
	}
	stored, _ := s.GetSession(ctx, x.ID)
	if stored.Generation != 2 {
		t.Fatalf("stored generation = %d, want 2", stored.Generation)
	}
	// The same swap again loses: the row is no longer at generation 1.
	if _, err := s.RotateSession(ctx, rot); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale RotateSession = %v, want ErrConflict", err)
	}
	if _, err := s.RotateSession(ctx, store.Rotation{SessionID: "missing", FromGeneration: 1, Now: now}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RotateSession(missing) = %v, want ErrNotFound", err)
	}
	// A revoked session never rotates.
	if _, err := s.RevokeSession(ctx, x.ID, "r", now); err != nil {
		t.Fatal(err)
	}
	rot.FromGeneration = 2
	if _, err := s.RotateSession(ctx, rot); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RotateSession(revoked) = %v, want ErrConflict", err)
	}
	if stored, _ := s.GetSession(ctx, x.ID); stored.Generation != 2 {
		t.Errorf("revoked session rotated to generation %d", stored.Generation)
	}
}

// testRotateConcurrent races many callers on one generation: exactly one
// may win, the rest must see ErrConflict, and the row advances once.
func testRotateConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "dave")
	x := mkSession(t, s, u.ID, base)
	const n = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			now := base.Add(time.Duration(i) * time.Millisecond)
			_, err := s.RotateSession(ctx, store.Rotation{SessionID: x.ID, FromGeneration: 1, Now: now,
				IdleExpiresAt: now.Add(time.Hour), AccessExpiresAt: now.Add(time.Minute)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("RotateSession: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins != 1 || conflicts != n-1 {
		t.Fatalf("wins=%d conflicts=%d; want exactly one winner of %d", wins, conflicts, n)
	}
	if got, _ := s.GetSession(ctx, x.ID); got.Generation != 2 {
		t.Fatalf("generation = %d after the race, want 2", got.Generation)
	}
}

func testRevokeUserSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "erin")
	other := mkUser(t, s, "frank")
	a := mkSession(t, s, u.ID, base)
	b := mkSession(t, s, u.ID, base.Add(time.Second))
	c := mkSession(t, s, u.ID, base.Add(2*time.Second))
	o := mkSession(t, s, other.ID, base)
	if _, err := s.RevokeSession(ctx, c.ID, "earlier", base); err != nil {
		t.Fatal(err)
	}
	got, err := s.RevokeUserSessions(ctx, u.ID, a.ID, "others", base.Add(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SessionID != b.ID || !got[0].Until.Equal(b.AccessExpiresAt) {
		t.Fatalf("RevokeUserSessions(except a) = %+v; want only b, with its access expiry", got)
	}
	if x, _ := s.GetSession(ctx, a.ID); x.Revoked() {
		t.Error("the excepted session was revoked")
	}
	if x, _ := s.GetSession(ctx, c.ID); x.RevokeReason != "earlier" {
		t.Errorf("an already revoked session was revoked again: reason %q", x.RevokeReason)
	}
	if x, _ := s.GetSession(ctx, o.ID); x.Revoked() {
		t.Error("another user's session was revoked")
	}
	got, err = s.RevokeUserSessions(ctx, u.ID, "", "all", base.Add(time.Minute), nil)
	if err != nil || len(got) != 1 || got[0].SessionID != a.ID {
		t.Fatalf("RevokeUserSessions(all) = %+v, %v; want a", got, err)
	}
}

func testRevocationLog(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "gina")
	a := mkSession(t, s, u.ID, base) // access until base+5m
	b := mkSession(t, s, u.ID, base)
	c := mkSession(t, s, u.ID, base)
	if err := s.ExtendAccess(ctx, b.ID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, x := range []store.Session{a, b} {
		if _, err := s.RevokeSession(ctx, x.ID, "r", base.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// A revoked session's access expiry is frozen: a late grace-path
	// extension must fail rather than outlive the log entry.
	if err := s.ExtendAccess(ctx, a.ID, base.Add(2*time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("ExtendAccess on a revoked session = %v, want ErrConflict", err)
	}
	if _, err := s.RevokeSession(ctx, a.ID, "again", base.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := s.RevocationsSince(ctx, 0, 100)
	if err != nil || len(got) != 2 || got[0].SessionID() != a.ID || got[1].SessionID() != b.ID || got[0].Seq >= got[1].Seq {
		t.Fatalf("RevocationsSince(0) = %+v, %v; want a then b, once each", got, err)
	}
	if got[0].Kind != store.KindSession || !got[0].Until.Equal(a.AccessExpiresAt) || !got[1].Until.Equal(base.Add(time.Hour)) {
		t.Fatalf("entries = %+v; want Until = the sessions' access expiry", got)
	}
	// User cutoffs and user-wide session revocation, in one transaction.
	role := store.RoleAdmin
	cut := store.Cutoff{NotBefore: base.Add(3 * time.Second), Until: base.Add(time.Hour)}
	nu, revoked, err := s.UpdateUser(ctx, u.ID, func(old store.User) (store.UserUpdate, error) {
		old.Role = role
		return store.UserUpdate{User: old, Cutoff: &cut, RevokeSessions: true, Reason: "disabled", Now: base.Add(3 * time.Second)}, nil
	})
	if err != nil || nu.Role != store.RoleAdmin || len(revoked) != 1 || revoked[0].SessionID != c.ID {
		t.Fatalf("UpdateUser = %+v, %+v, %v; want role admin and c revoked", nu, revoked, err)
	}
	all, err := s.RevocationsSince(ctx, 0, 100)
	if err != nil || len(all) != 4 {
		t.Fatalf("RevocationsSince(0) = %+v, %v; want 4 entries", all, err)
	}
	if all[2].Kind != store.KindUser || all[2].Subject != u.ID || !all[2].NotBefore.Equal(cut.NotBefore) {
		t.Fatalf("user entry = %+v", all[2])
	}
	if all[3].SessionID() != c.ID {
		t.Fatalf("last entry = %+v, want c", all[3])
	}
	rest, _ := s.RevocationsSince(ctx, all[1].Seq, 1)
	if len(rest) != 1 || rest[0].Seq != all[2].Seq {
		t.Fatalf("RevocationsSince(cursor, 1) = %+v; want exactly the next entry", rest)
	}
	// Revoke-all: every live session, one global entry.
	d := mkSession(t, s, u.ID, base)
	other := mkUser(t, s, "hank")
	e := mkSession(t, s, other.ID, base)
	n, err := s.RevokeAll(ctx, store.Cutoff{NotBefore: base.Add(4 * time.Second), Until: base.Add(time.Hour)}, "global", base.Add(4*time.Second), nil)
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v; want 2", n, err)
	}
	for _, x := range []store.Session{d, e} {
		if got, _ := s.GetSession(ctx, x.ID); !got.Revoked() {
			t.Fatalf("session %s alive after RevokeAll", x.ID)
		}
	}
	last, _ := s.RevocationsSince(ctx, all[3].Seq, 100)
	if len(last) != 1 || last[0].Kind != store.KindGlobal || !last[0].NotBefore.Equal(base.Add(4*time.Second)) {
		t.Fatalf("after RevokeAll: %+v; want one global entry", last)
	}
	if err := s.LogCutoff(ctx, store.KindUser, "u9", store.Cutoff{NotBefore: base.Add(5 * time.Second), Until: base.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if tail, _ := s.RevocationsSince(ctx, last[0].Seq, 100); len(tail) != 1 || tail[0].Subject != "u9" || !tail[0].NotBefore.Equal(base.Add(5*time.Second)) {
		t.Fatalf("after LogCutoff: %+v", tail)
	}
	pruned, err := s.PruneRevocations(ctx, base.Add(30*time.Minute))
	if err != nil || pruned != 2 { // a and c (until base+5m)
		t.Fatalf("PruneRevocations = %d, %v; want 2", pruned, err)
	}
	if _, _, err := s.UpdateUser(ctx, "missing", set(func(*store.User) {})); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateUser(missing) = %v", err)
	}
}

func testUsersPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, n := range []string{"Carol", "alice", "bob", "Dave", "eve"} {
		mkUser(t, s, n)
	}
	// pages lists every user matching q, two at a time.
	pages := func(q string) string {
		var names []string
		after := ""
		for {
			page, err := s.ListUsers(ctx, after, q, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return fmt.Sprint(names)
			}
			for _, u := range page {
				names = append(names, u.Username)
			}
			after = page[len(page)-1].Username
		}
	}
	if names := pages(""); names != "[alice bob Carol Dave eve]" {
		t.Fatalf("paged users = %v; want each once, case-insensitively ordered", names)
	}
	// Search: any case, anywhere in the name, wildcards taken literally,
	// and paged like the full list.
	mkUser(t, s, "a_lice")
	mkUser(t, s, "al%ice")
	for q, want := range map[string]string{
		"A": "[a_lice al%ice alice Carol Dave]", "li": "[a_lice alice]", "ice": "[a_lice al%ice alice]", "_": "[a_lice]", "%": "[al%ice]",
		"E": "[a_lice al%ice alice Dave eve]", "zz": "[]", "!": "[]",
	} {
		if got := pages(q); got != want {
			t.Errorf("search %q = %v; want %v", q, got, want)
		}
	}
	u, _ := s.GetUserByUsername(ctx, "eve")
	dis := true
	hash := "$new"
	got, revoked, err := s.UpdateUser(ctx, u.ID, set(func(u *store.User) { u.Disabled, u.PasswordHash = dis, hash }))
	if err != nil || !got.Disabled || got.PasswordHash != "$new" || got.Role != store.RoleUser || len(revoked) != 0 {
		t.Fatalf("UpdateUser = %+v, %v, %v", got, revoked, err)
	}
	again, _ := s.GetUserByID(ctx, u.ID)
	if !again.Disabled || again.PasswordHash != "$new" {
		t.Fatalf("stored user = %+v", again)
	}
}

func testListActive(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "hal")
	old := mkSession(t, s, u.ID, base)
	newer := mkSession(t, s, u.ID, base.Add(time.Minute))
	revoked := mkSession(t, s, u.ID, base.Add(2*time.Minute))
	if _, err := s.RevokeSession(ctx, revoked.ID, "r", base); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListActiveSessions(ctx, u.ID, base.Add(2*time.Minute))
	if err != nil || len(got) != 2 || got[0].ID != newer.ID || got[1].ID != old.ID {
		t.Fatalf("ListActiveSessions = %+v, %v; want newer then old", got, err)
	}
	// old idles out at base+1h, newer at base+1h1m.
	got, _ = s.ListActiveSessions(ctx, u.ID, base.Add(time.Hour+30*time.Second))
	if len(got) != 1 || got[0].ID != newer.ID {
		t.Fatalf("after old's idle expiry: %+v; want only newer", got)
	}
}

// firstKey adds k if no key is active, as a process starting does.
func firstKey(k store.SigningKey) func([]store.SigningKey) (store.SigningKey, error) {
	return func(keys []store.SigningKey) (store.SigningKey, error) {
		for _, old := range keys {
			if old.RetiredAt.IsZero() {
				return store.SigningKey{}, store.ErrNoChange
			}
		}
		return k, nil
	}
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	k1 := store.SigningKey{ID: "k1", Algorithm: "EdDSA", PublicKey: []byte("pub1"), SealedPrivate: []byte("sealed1"), CreatedAt: base}
	if err := s.UpdateSigningKeys(ctx, firstKey(k1)); err != nil {
		t.Fatal(err)
	}
	k2 := k1
	k2.ID = "k2"
	if err := s.UpdateSigningKeys(ctx, firstKey(k2)); err != nil {
		t.Fatalf("a first key beside an active one: %v", err)
	}
	if keys, _ := s.ListSigningKeys(ctx); len(keys) != 1 {
		t.Fatalf("ErrNoChange wrote: %+v", keys)
	}
	refuse := errors.New("refused")
	if err := s.UpdateSigningKeys(ctx, func([]store.SigningKey) (store.SigningKey, error) { return k2, refuse }); !errors.Is(err, refuse) {
		t.Fatalf("an updater's error: %v", err)
	}
	k2.CreatedAt = base.Add(time.Hour)
	var saw []store.SigningKey
	if err := s.UpdateSigningKeys(ctx, func(keys []store.SigningKey) (store.SigningKey, error) { saw = keys; return k2, nil }); err != nil {
		t.Fatal(err)
	}
	if len(saw) != 1 || saw[0].ID != "k1" || string(saw[0].PublicKey) != "pub1" {
		t.Fatalf("the updater saw %+v; want k1", saw)
	}
	keys, err := s.ListSigningKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListSigningKeys = %+v, %v", keys, err)
	}
	if keys[0].ID != "k1" || !keys[0].RetiredAt.Equal(base.Add(time.Hour)) || string(keys[0].SealedPrivate) != "sealed1" {
		t.Errorf("k1 = %+v; want retired when k2 was added", keys[0])
	}
	if keys[1].ID != "k2" || !keys[1].RetiredAt.IsZero() {
		t.Errorf("k2 = %+v; want active", keys[1])
	}
}

func testEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 6 {
		uid := "u1"
		if i%2 == 1 {
			uid = "u2"
		}
		typ := "login_failed"
		if i%3 == 0 {
			typ = "login_succeeded"
		}
		if err := s.AddEvent(ctx, store.Event{ID: id(), Type: typ, At: base.Add(time.Duration(i) * time.Hour),
			UserID: uid, SessionID: "s", IP: "ip", UserAgent: "ua", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	details := func(es []store.Event) string {
		var d []string
		for _, e := range es {
			d = append(d, e.Detail)
		}
		return fmt.Sprint(d)
	}
	got, err := s.ListEvents(ctx, store.EventFilter{UserID: "u1"})
	if err != nil || details(got) != "[4 2 0]" {
		t.Fatalf("ListEvents(u1) = %s, %v; want newest first", details(got), err)
	}
	got, _ = s.ListEvents(ctx, store.EventFilter{Type: "login_succeeded"})
	if details(got) != "[3 0]" {
		t.Fatalf("ListEvents(type) = %s", details(got))
	}
	page1, _ := s.ListEvents(ctx, store.EventFilter{Limit: 4})
	page2, _ := s.ListEvents(ctx, store.EventFilter{Limit: 4, BeforeSeq: page1[len(page1)-1].Seq})
	if details(page1) != "[5 4 3 2]" || details(page2) != "[1 0]" {
		t.Fatalf("pages %s %s", details(page1), details(page2))
	}
	n, err := s.PruneEvents(ctx, base.Add(150*time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("PruneEvents = %d, %v; want 3", n, err)
	}
	got, _ = s.ListEvents(ctx, store.EventFilter{})
	if details(got) != "[5 4 3]" {
		t.Fatalf("after prune: %s", details(got))
	}
}

// testTimePrecision: revocation ordering relies on sub-second times.
func testTimePrecision(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "ivy")
	x := mkSession(t, s, u.ID, base)
	got, _ := s.GetSession(ctx, x.ID)
	if !got.CreatedAt.Equal(base) {
		t.Fatalf("CreatedAt = %v, want %v exactly (sub-second precision kept)", got.CreatedAt, base)
	}
}

func testResourceKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	k := store.ResourceKey{ID: "rk1", Name: "api", Hash: []byte("hash-1"), CreatedAt: base}
	if err := s.AddResourceKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.AddResourceKey(ctx, store.ResourceKey{ID: "rk2", Name: "dup", Hash: []byte("hash-1"), CreatedAt: base}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate hash: %v", err)
	}
	got, err := s.FindResourceKey(ctx, []byte("hash-1"))
	if err != nil || got.ID != "rk1" || got.Name != "api" || !got.CreatedAt.Equal(base) || got.Kind != store.ClientResource {
		t.Fatalf("FindResourceKey = %+v, %v", got, err)
	}
	// A service client keeps its role and permissions; removing it logs
	// the cutoff of its tokens in the same transaction.
	svc := store.ResourceKey{ID: "svc1", Name: "batch", Hash: []byte("hash-svc"), CreatedAt: base,
		Kind: store.ClientService, Role: store.RoleAdmin, Permissions: []string{"a:b", "c"}}
	if err := s.AddResourceKey(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindResourceKey(ctx, []byte("hash-svc")); err != nil || got.Kind != store.ClientService || got.Role != store.RoleAdmin ||
		strings.Join(got.Permissions, " ") != "a:b c" || got.Audience != "" {
		t.Fatalf("service client = %+v, %v", got, err)
	}
	before, _ := s.RevocationsSince(ctx, 0, 1000)
	cut := store.Cutoff{NotBefore: base, Until: base.Add(time.Hour)}
	if err := s.RemoveResourceKey(ctx, "svc1", &cut); err != nil {
		t.Fatal(err)
	}
	after, _ := s.RevocationsSince(ctx, 0, 1000)
	if len(after) != len(before)+1 || after[len(after)-1].Kind != store.KindUser || after[len(after)-1].Subject != "svc1" {
		t.Fatalf("removing a service client logged %+v", after[len(before):])
	}
	if _, err := s.FindResourceKey(ctx, []byte("hash-2")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}
	if list, _ := s.ListResourceKeys(ctx); len(list) != 1 {
		t.Fatalf("list = %+v", list)
	}
	if err := s.RemoveResourceKey(ctx, "rk1", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveResourceKey(ctx, "rk1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := s.FindResourceKey(ctx, []byte("hash-1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed key still found: %v", err)
	}
}

// testRotateIfCurrent checks the one-round-trip refresh of stores that
// offer it; others skip.
func testRotateIfCurrent(t *testing.T, s store.Store) {
	fr, ok := s.(store.FastRotator)
	if !ok {
		t.Skip("store has no fast path")
	}
	ctx := context.Background()
	u := mkUser(t, s, "fast")
	x := mkSession(t, s, u.ID, base) // idle until base+1h, ends base+24h
	now := base.Add(time.Minute)
	rot := store.Rotation{SessionID: x.ID, FromGeneration: 1, Now: now, IdleExpiresAt: now.Add(48 * time.Hour),
		AccessExpiresAt: now.Add(48 * time.Hour), IP: "198.51.100.1", UserAgent: "ua2"}
	// A new address is an event to record: the full path's business.
	if _, _, err := fr.RotateIfCurrent(ctx, rot); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotation from a new address: %v", err)
	}
	rot.IP = x.IP
	got, gu, err := fr.RotateIfCurrent(ctx, rot)
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 || gu.ID != u.ID || got.IP != x.IP || got.UserAgent != "ua2" {
		t.Fatalf("RotateIfCurrent = %+v, %+v", got, gu)
	}
	if !got.IdleExpiresAt.Equal(x.ExpiresAt) || !got.AccessExpiresAt.Equal(x.ExpiresAt) {
		t.Fatalf("expiries not capped at the session end: idle %v access %v end %v", got.IdleExpiresAt, got.AccessExpiresAt, x.ExpiresAt)
	}
	if _, _, err := fr.RotateIfCurrent(ctx, rot); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale generation: %v", err)
	}
	rot.FromGeneration = 2
	late := rot
	late.Now = base.Add(25 * time.Hour)
	if _, _, err := fr.RotateIfCurrent(ctx, late); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("expired session: %v", err)
	}
	dis := true
	if _, _, err := s.UpdateUser(ctx, u.ID, set(func(u *store.User) { u.Disabled = dis })); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fr.RotateIfCurrent(ctx, rot); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("disabled user: %v", err)
	}
	if cur, _ := s.GetSession(ctx, x.ID); cur.Generation != 2 {
		t.Fatalf("refused rotations changed the row: generation %d", cur.Generation)
	}
}

func mkAdmin(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u := store.User{ID: id(), Username: name, PasswordHash: "$argon2id$x", Role: store.RoleAdmin, CreatedAt: base}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

func testPermissions(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "perm")
	got, err := s.GetUserByID(ctx, u.ID)
	if err != nil || got.Permissions == nil || len(got.Permissions) != 0 {
		t.Fatalf("new user's permissions = %#v, %v; want an empty, non-nil list", got.Permissions, err)
	}
	perms := []string{"billing:read", "orders.write", "x_y-z"}
	written, _, err := s.UpdateUser(ctx, u.ID, set(func(u *store.User) { u.Permissions = perms }))
	if err != nil || fmt.Sprint(written.Permissions) != fmt.Sprint(perms) {
		t.Fatalf("UpdateUser(permissions) = %v, %v", written.Permissions, err)
	}
	for _, read := range []func() (store.User, error){
		func() (store.User, error) { return s.GetUserByID(ctx, u.ID) },
		func() (store.User, error) { return s.GetUserByUsername(ctx, "perm") },
		func() (store.User, error) {
			x := mkSession(t, s, u.ID, base)
			_, uu, err := s.GetSessionWithUser(ctx, x.ID)
			return uu, err
		},
	} {
		got, err := read()
		if err != nil || fmt.Sprint(got.Permissions) != fmt.Sprint(perms) {
			t.Fatalf("read back %v, %v; want %v", got.Permissions, err, perms)
		}
	}
	// Other fields are untouched by a permissions change, and back to none.
	none := []string{}
	written, _, err = s.UpdateUser(ctx, u.ID, set(func(u *store.User) { u.Permissions = none }))
	if err != nil || len(written.Permissions) != 0 || written.Role != store.RoleUser || written.PasswordHash != u.PasswordHash {
		t.Fatalf("clearing permissions: %+v, %v", written, err)
	}
	created := store.User{ID: id(), Username: "withperms", PasswordHash: "h", Role: store.RoleUser,
		Permissions: []string{"a", "b"}, CreatedAt: base}
	if err := s.CreateUser(ctx, created); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUserByID(ctx, created.ID); fmt.Sprint(got.Permissions) != "[a b]" {
		t.Fatalf("created with permissions: %v", got.Permissions)
	}
}

// The domain decides the lookup key; the store keeps the name as given.
func testUsernameKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := store.User{ID: id(), Username: "Ｚoë", UsernameKey: "zoë", PasswordHash: "h", Role: store.RoleUser, CreatedAt: base}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUserByUsername(ctx, "zoë")
	if err != nil || got.ID != u.ID || got.Username != "Ｚoë" || got.Key() != "zoë" {
		t.Fatalf("by key: %+v, %v", got, err)
	}
	err = s.CreateUser(ctx, store.User{ID: id(), Username: "zoë", PasswordHash: "h", Role: store.RoleUser, CreatedAt: base})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("a second user with the same key: %v", err)
	}
}

func testAuthTime(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "auth")
	x := mkSession(t, s, u.ID, base)
	got, err := s.GetSession(ctx, x.ID)
	if err != nil || !got.AuthTime.Equal(base) {
		t.Fatalf("AuthTime = %v, %v; want %v", got.AuthTime, err, base)
	}
	// A rotation keeps it.
	rot, err := s.RotateSession(ctx, store.Rotation{SessionID: x.ID, FromGeneration: 1, Now: base.Add(time.Minute),
		IdleExpiresAt: base.Add(time.Hour), AccessExpiresAt: base.Add(6 * time.Minute)})
	if err != nil || !rot.AuthTime.Equal(base) {
		t.Fatalf("after rotation AuthTime = %v, %v", rot.AuthTime, err)
	}
	// Reauthenticate renews it and extends the access expiry, never lowers it.
	later := base.Add(2*time.Minute + 7)
	if !slices.Equal(rot.AMR, []string{"pwd"}) || rot.ACR != "aal1" {
		t.Fatalf("a session created without a proof's methods: amr %q acr %q; want [pwd] aal1", rot.AMR, rot.ACR)
	}
	mfa := store.Proof{At: later, AMR: []string{"pwd", "otp", "mfa"}, ACR: "aal2"}
	re, err := s.Reauthenticate(ctx, x.ID, mfa, base.Add(7*time.Minute))
	if err != nil || !re.AuthTime.Equal(later) || !re.AccessExpiresAt.Equal(base.Add(7*time.Minute)) || re.Generation != 2 {
		t.Fatalf("Reauthenticate = %+v, %v", re, err)
	}
	if got, _ := s.GetSession(ctx, x.ID); !slices.Equal(got.AMR, mfa.AMR) || got.ACR != "aal2" {
		t.Fatalf("the proof's methods and level were not stored: %q %q", got.AMR, got.ACR)
	}
	re, err = s.Reauthenticate(ctx, x.ID, store.Proof{At: later}, base.Add(time.Minute))
	if err != nil || !re.AccessExpiresAt.Equal(base.Add(7*time.Minute)) {
		t.Fatalf("Reauthenticate lowered access_exp: %+v, %v", re, err)
	}
	if _, err := s.Reauthenticate(ctx, "missing", store.Proof{At: later}, later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Reauthenticate(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.RevokeSession(ctx, x.ID, "test", later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reauthenticate(ctx, x.ID, store.Proof{At: later}, later); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Reauthenticate(revoked) = %v, want ErrConflict", err)
	}
}

func testLastAdmin(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := mkAdmin(t, s, "root")
	user, off := store.RoleUser, true
	for name, up := range map[string]func(*store.User){
		"demote": func(u *store.User) { u.Role = user }, "disable": func(u *store.User) { u.Disabled = off },
	} {
		if _, _, err := s.UpdateUser(ctx, a.ID, set(up)); !errors.Is(err, store.ErrLastAdmin) {
			t.Fatalf("%s the last admin: %v, want ErrLastAdmin", name, err)
		}
	}
	if _, err := s.DeleteUser(ctx, a.ID, store.Cutoff{NotBefore: base, Until: base.Add(time.Hour)}, base, nil); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("delete the last admin: %v, want ErrLastAdmin", err)
	}
	if got, _ := s.GetUserByID(ctx, a.ID); got.Role != store.RoleAdmin || got.Disabled {
		t.Fatalf("a refused change changed the admin: %+v", got)
	}
	// A disabled admin does not count as the other admin.
	b := mkAdmin(t, s, "root2")
	if _, _, err := s.UpdateUser(ctx, b.ID, set(func(u *store.User) { u.Disabled = off })); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateUser(ctx, a.ID, set(func(u *store.User) { u.Role = user })); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("demote with only a disabled other admin: %v", err)
	}
	// With another enabled admin, fine; other changes to the last admin too.
	on := false
	if _, _, err := s.UpdateUser(ctx, b.ID, set(func(u *store.User) { u.Disabled = on })); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateUser(ctx, a.ID, set(func(u *store.User) { u.Role = user })); err != nil {
		t.Fatalf("demote with another admin: %v", err)
	}
	perms := []string{"p"}
	if _, _, err := s.UpdateUser(ctx, b.ID, set(func(u *store.User) { u.Permissions = perms })); err != nil {
		t.Fatalf("permissions of the last admin: %v", err)
	}
}

// Two admins demoting each other at once: one wins, the other gets
// ErrLastAdmin; never zero admins.
func testLastAdminConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	user := store.RoleUser
	var left []store.User // the admin left by the previous round
	for round := range 5 {
		pair := []store.User{mkAdmin(t, s, fmt.Sprintf("a%d", round)), mkAdmin(t, s, fmt.Sprintf("b%d", round))}
		for _, x := range left { // now the pair are the only admins
			if _, _, err := s.UpdateUser(ctx, x.ID, set(func(u *store.User) { u.Role = user })); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, x := range pair {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = s.UpdateUser(ctx, x.ID, set(func(u *store.User) { u.Role = user }))
			}()
		}
		wg.Wait()
		left = nil
		for i, err := range errs {
			switch {
			case err == nil:
			case errors.Is(err, store.ErrLastAdmin):
				left = append(left, pair[i])
			default:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if len(left) != 1 {
			t.Fatalf("round %d: %v; want exactly one demotion refused", round, errs)
		}
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAdmin(t, s, "keeper")
	u := mkUser(t, s, "leaver")
	x1 := mkSession(t, s, u.ID, base)
	x2 := mkSession(t, s, u.ID, base.Add(time.Second))
	other := mkUser(t, s, "stayer")
	ox := mkSession(t, s, other.ID, base)
	if err := s.AddEvent(ctx, store.Event{ID: id(), Type: "login_succeeded", At: base, UserID: u.ID, SessionID: x1.ID, IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	before, err := s.RevocationsSince(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	cut := store.Cutoff{NotBefore: base.Add(time.Minute), Until: base.Add(time.Hour)}
	revoked, err := s.DeleteUser(ctx, u.ID, cut, base.Add(time.Minute), nil)
	if err != nil || len(revoked) != 2 {
		t.Fatalf("DeleteUser = %v, %v; want 2 sessions revoked", revoked, err)
	}
	// The log carries every session and the user cutoff.
	after, _ := s.RevocationsSince(ctx, 0, 1000)
	logged := map[string]bool{}
	for _, r := range after[len(before):] {
		logged[r.Kind+":"+r.Subject] = true
		if r.Kind == store.KindUser && (!r.NotBefore.Equal(cut.NotBefore) || !r.Until.Equal(cut.Until)) {
			t.Errorf("user cutoff logged as %+v", r)
		}
	}
	for _, k := range []string{"session:" + x1.ID, "session:" + x2.ID, "user:" + u.ID} {
		if !logged[k] {
			t.Errorf("revocation log lacks %s: %v", k, logged)
		}
	}
	// Erased: the user, its sessions (with their IPs and user agents).
	if _, err := s.GetUserByID(ctx, u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still readable: %v", err)
	}
	for _, x := range []store.Session{x1, x2} {
		if _, err := s.GetSession(ctx, x.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session of a deleted user still readable: %v", err)
		}
	}
	// Others untouched; events keep the old id.
	if got, err := s.GetSession(ctx, ox.ID); err != nil || got.Revoked() {
		t.Errorf("another user's session: %+v, %v", got, err)
	}
	if ev, _ := s.ListEvents(ctx, store.EventFilter{UserID: u.ID}); len(ev) != 1 {
		t.Errorf("events of the deleted user: %d, want 1 (kept for audit)", len(ev))
	}
	// The name is free; the new account is a new row.
	again := mkUser(t, s, "leaver")
	if again.ID == u.ID {
		t.Fatal("id reused")
	}
	if list, _ := s.ListActiveSessions(ctx, again.ID, base); len(list) != 0 {
		t.Errorf("new account inherits sessions: %v", list)
	}
	if _, err := s.DeleteUser(ctx, u.ID, cut, base, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting again: %v, want ErrNotFound", err)
	}
}

func testLoginFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	const cost = 30 * time.Second
	errRead := errors.New("read only")
	read := func(account, ip string) store.LoginFailures {
		t.Helper()
		var lf store.LoginFailures
		err := s.UpdateLoginFailures(ctx, account, ip, func(old store.LoginFailures) (store.LoginFailures, error) {
			lf = old
			return old, errRead // an updater's error writes nothing
		})
		if !errors.Is(err, errRead) {
			t.Fatal(err)
		}
		return lf
	}
	update := func(account, ip string, f func(*store.LoginFailures)) {
		t.Helper()
		if err := s.UpdateLoginFailures(ctx, account, ip, func(lf store.LoginFailures) (store.LoginFailures, error) {
			f(&lf)
			return lf, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	record := func(account, ip string, at time.Time) {
		t.Helper()
		update(account, ip, func(lf *store.LoginFailures) {
			if lf.Debt.Before(at) {
				lf.Debt = at
			}
			lf.Debt = lf.Debt.Add(cost)
			lf.Failures++
			if lf.LastFailure.Before(at) {
				lf.LastFailure = at
			}
		})
	}
	if lf := read("alice", "192.0.2.1"); !lf.Debt.IsZero() || lf.Failures != 0 || !lf.LastFailure.IsZero() || !lf.KnownAt.IsZero() {
		t.Fatalf("fresh account: %+v", lf)
	}
	record("alice", "192.0.2.1", base)
	record("alice", "192.0.2.1", base.Add(time.Second))
	lf := read("alice", "192.0.2.1")
	if !lf.Debt.Equal(base.Add(2*cost)) || lf.Failures != 2 || !lf.LastFailure.Equal(base.Add(time.Second)) {
		t.Fatalf("after two failures: %+v", lf)
	}
	// Another address: its own run, the account's one debt.
	record("alice", "198.51.100.7", base.Add(2*time.Second))
	if lf := read("alice", "198.51.100.7"); !lf.Debt.Equal(base.Add(3*cost)) || lf.Failures != 1 {
		t.Fatalf("second address: %+v", lf)
	}
	// A debt already paid off starts again from now.
	later := base.Add(time.Hour)
	record("alice", "192.0.2.1", later)
	if lf := read("alice", "192.0.2.1"); !lf.Debt.Equal(later.Add(cost)) || lf.Failures != 3 {
		t.Fatalf("after the debt was paid: %+v", lf)
	}
	update("alice", "192.0.2.1", func(lf *store.LoginFailures) { lf.Failures, lf.KnownAt = 0, later })
	if lf := read("alice", "192.0.2.1"); lf.Failures != 0 || !lf.Debt.Equal(later.Add(cost)) || !lf.KnownAt.Equal(later) {
		t.Fatalf("a success clears the run and marks the address known, not the debt: %+v", lf)
	}
	if lf := read("alice", "198.51.100.7"); lf.Failures != 1 {
		t.Fatalf("clearing one address cleared another: %+v", lf)
	}
	if lf := read("bob", "192.0.2.1"); !lf.Debt.IsZero() || lf.Failures != 0 {
		t.Fatalf("another account: %+v", lf)
	}

	// Concurrent failures (as from several instances) all count.
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.UpdateLoginFailures(ctx, "carol", "203.0.113.5", func(lf store.LoginFailures) (store.LoginFailures, error) {
				lf.Debt = maxT(lf.Debt, base).Add(cost)
				lf.Failures++
				return lf, nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if lf := read("carol", "203.0.113.5"); !lf.Debt.Equal(base.Add(n*cost)) || lf.Failures != n {
		t.Fatalf("%d concurrent failures: %+v", n, lf)
	}

	// Prune drops paid debts and old runs only.
	pruned, err := s.PruneLoginFailures(ctx, base.Add(n*cost+time.Nanosecond), base.Add(3*time.Second), later)
	if err != nil {
		t.Fatal(err)
	}
	if pruned != 3 { // carol's debt and run, alice's run from 198.51.100.7
		t.Fatalf("pruned %d rows, want 3", pruned)
	}
	if lf := read("carol", "203.0.113.5"); !lf.Debt.IsZero() || lf.Failures != 0 {
		t.Fatalf("carol after prune: %+v", lf)
	}
	if lf := read("alice", "198.51.100.7"); !lf.Debt.Equal(later.Add(cost)) || lf.Failures != 0 {
		t.Fatalf("alice after prune: %+v", lf)
	}
}

// A check inside the transaction holds under concurrency: of n attempts
// each allowed only while fewer than 5 are counted, exactly 5 pass (reading
// first and writing after would let all of them through).
func testLoginFailuresConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	passed := make(chan bool, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			full := errors.New("budget spent")
			err := s.UpdateLoginFailures(ctx, "dave", "203.0.113.6", func(lf store.LoginFailures) (store.LoginFailures, error) {
				if lf.Failures >= 5 {
					return lf, full
				}
				lf.Failures++
				return lf, nil
			})
			if err != nil && !errors.Is(err, full) {
				t.Error(err)
			}
			passed <- err == nil
		}()
	}
	wg.Wait()
	close(passed)
	got := 0
	for ok := range passed {
		if ok {
			got++
		}
	}
	if got != 5 {
		t.Fatalf("%d of %d concurrent reservations passed a budget of 5", got, n)
	}
}

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// The updater sees the row as stored; ErrNoChange and errors write nothing
// (no row change, no cutoff, no revocation).
func testUpdateUserInTransaction(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "rmw")
	mkSession(t, s, u.ID, base)
	cut := store.Cutoff{NotBefore: base, Until: base.Add(time.Hour)}
	boom := errors.New("refused by the updater")
	for name, tc := range map[string]struct {
		ret  error
		want error
	}{"no change": {store.ErrNoChange, nil}, "error": {boom, boom}} {
		got, revoked, err := s.UpdateUser(ctx, u.ID, func(old store.User) (store.UserUpdate, error) {
			if old.PasswordHash != u.PasswordHash || old.Role != store.RoleUser {
				t.Errorf("%s: updater saw %+v", name, old)
			}
			old.Role = store.RoleAdmin
			return store.UserUpdate{User: old, Cutoff: &cut, RevokeSessions: true, Now: base}, tc.ret
		})
		if !errors.Is(err, tc.want) || len(revoked) != 0 {
			t.Fatalf("%s: UpdateUser = %v, %v; want %v and nothing revoked", name, revoked, err, tc.want)
		}
		if tc.want == nil && got.Role != store.RoleUser {
			t.Fatalf("%s: returned %+v; want the row as read", name, got)
		}
		if again, _ := s.GetUserByID(ctx, u.ID); again.Role != store.RoleUser {
			t.Fatalf("%s: stored role %q", name, again.Role)
		}
		if log, _ := s.RevocationsSince(ctx, 0, 10); len(log) != 0 {
			t.Fatalf("%s: revocation log %+v; want nothing written", name, log)
		}
		if live, _ := s.ListActiveSessions(ctx, u.ID, base); len(live) != 1 {
			t.Fatalf("%s: %d live sessions; want 1", name, len(live))
		}
	}
	// The identity of the row is the store's, whatever the updater returns.
	got, _, err := s.UpdateUser(ctx, u.ID, func(old store.User) (store.UserUpdate, error) {
		old.ID, old.Username = "other", "other"
		return store.UserUpdate{User: old}, nil
	})
	if err != nil || got.ID != u.ID || got.Username != "rmw" {
		t.Fatalf("UpdateUser(identity changed) = %+v, %v", got, err)
	}
}

// Concurrent read-modify-writes of one user never lose an update: each
// adds a permission to what the row holds.
func testUpdateUserConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "racer")
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = s.UpdateUser(ctx, u.ID, func(old store.User) (store.UserUpdate, error) {
				old.Permissions = append(slices.Clone(old.Permissions), fmt.Sprintf("p%02d", i))
				slices.Sort(old.Permissions)
				return store.UserUpdate{User: old}, nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	got, _ := s.GetUserByID(ctx, u.ID)
	if len(got.Permissions) != n {
		t.Fatalf("permissions after %d concurrent additions: %v; an update was lost", n, got.Permissions)
	}
}

// CreateSession judges the session against the user row it locks.
func testCreateSessionChecked(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "checked")
	x := store.Session{ID: id(), UserID: u.ID, Nonce: make([]byte, 32), Generation: 1, RotatedAt: base, CreatedAt: base,
		LastUsedAt: base, IdleExpiresAt: base.Add(time.Hour), ExpiresAt: base.Add(time.Hour), AccessExpiresAt: base, AuthTime: base}
	refuse := errors.New("credential changed")
	var seen store.User
	if err := s.CreateSession(ctx, x, func(cur store.User) error { seen = cur; return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("CreateSession(refused) = %v", err)
	}
	if seen.ID != u.ID || seen.PasswordHash != u.PasswordHash {
		t.Fatalf("check saw %+v", seen)
	}
	if _, err := s.GetSession(ctx, x.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused session was written: %v", err)
	}
	gone := x
	gone.ID, gone.UserID = id(), "no-such-user"
	if err := s.CreateSession(ctx, gone, func(store.User) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateSession(no user) = %v, want ErrNotFound", err)
	}
	if err := s.CreateSession(ctx, x, func(store.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// A login's session and a password reset racing: either the login sees the
// new hash and opens nothing, or its session exists when the reset revokes
// the user's sessions. Never a live session proven by the old password.
func testCreateSessionRacingReset(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := range 20 {
		u := mkUser(t, s, fmt.Sprintf("reset%d", round))
		var wg sync.WaitGroup
		var created bool
		x := store.Session{ID: id(), UserID: u.ID, Nonce: make([]byte, 32), Generation: 1, RotatedAt: base, CreatedAt: base,
			LastUsedAt: base, IdleExpiresAt: base.Add(time.Hour), ExpiresAt: base.Add(time.Hour), AccessExpiresAt: base, AuthTime: base}
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := s.CreateSession(ctx, x, func(cur store.User) error {
				if cur.PasswordHash != u.PasswordHash {
					return store.ErrConflict
				}
				return nil
			})
			created = err == nil
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Errorf("round %d: CreateSession: %v", round, err)
			}
		}()
		go func() {
			defer wg.Done()
			_, _, err := s.UpdateUser(ctx, u.ID, func(old store.User) (store.UserUpdate, error) {
				old.PasswordHash = "$reset"
				return store.UserUpdate{User: old, RevokeSessions: true, Reason: "password_reset", Now: base}, nil
			})
			if err != nil {
				t.Errorf("round %d: UpdateUser: %v", round, err)
			}
		}()
		wg.Wait()
		if live, _ := s.ListActiveSessions(ctx, u.ID, base); len(live) != 0 {
			t.Fatalf("round %d: a session proven by the old password survived the reset (created=%v)", round, created)
		}
	}
}

// Events that record a change commit with it, in its transaction: every
// change that happened is recorded, and nothing that did not.
func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	ev := func(typ string) store.Event {
		return store.Event{ID: id(), Type: typ, At: base, Detail: typ}
	}
	types := func() []string {
		t.Helper()
		list, err := s.EventsSince(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i, e := range list {
			if i > 0 && e.Seq <= list[i-1].Seq {
				t.Fatalf("EventsSince out of order: %+v", list)
			}
			out = append(out, e.Type)
		}
		return out
	}
	u := mkUser(t, s, "outbox")
	admin := mkAdmin(t, s, "only-admin")
	x := store.Session{ID: id(), UserID: u.ID, Nonce: make([]byte, 32), Generation: 1, RotatedAt: base, CreatedAt: base,
		LastUsedAt: base, IdleExpiresAt: base.Add(time.Hour), ExpiresAt: base.Add(time.Hour), AccessExpiresAt: base, AuthTime: base}
	refuse := errors.New("refused")
	// Refused or failed changes record nothing.
	if err := s.CreateSession(ctx, x, func(store.User) error { return refuse }, ev("refused_login")); !errors.Is(err, refuse) {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateUser(ctx, admin.ID, func(old store.User) (store.UserUpdate, error) {
		old.Role = store.RoleUser
		return store.UserUpdate{User: old, Events: func([]store.RevokedSession) []store.Event { return []store.Event{ev("last_admin_demoted")} }}, nil
	}); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("demote the last admin: %v", err)
	}
	if got := types(); len(got) != 0 {
		t.Fatalf("refused changes recorded %v", got)
	}
	// Changes record their events, with what they revoked.
	if err := s.CreateSession(ctx, x, nil, ev("login_succeeded")); err != nil {
		t.Fatal(err)
	}
	dup := x
	if err := s.CreateSession(ctx, dup, nil, ev("duplicate_login")); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate session: %v", err)
	}
	if _, err := s.Reauthenticate(ctx, x.ID, store.Proof{At: base}, base, ev("reauthenticated")); err != nil {
		t.Fatal(err)
	}
	rot := store.Rotation{SessionID: x.ID, FromGeneration: 1, Now: base, IdleExpiresAt: base.Add(time.Hour),
		AccessExpiresAt: base, IP: "198.51.100.7", Events: []store.Event{ev("ip_changed")}}
	if _, err := s.RotateSession(ctx, rot); err != nil {
		t.Fatal(err)
	}
	rot.Events = []store.Event{ev("ip_changed_lost_race")}
	if _, err := s.RotateSession(ctx, rot); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale rotation: %v", err)
	}
	var sawRevoked int
	if _, _, err := s.UpdateUser(ctx, u.ID, func(old store.User) (store.UserUpdate, error) {
		old.Disabled = true
		return store.UserUpdate{User: old, RevokeSessions: true, Reason: "disabled", Now: base,
			Events: func(revoked []store.RevokedSession) []store.Event {
				sawRevoked = len(revoked)
				return []store.Event{ev("account_disabled")}
			}}, nil
	}); err != nil || sawRevoked != 1 {
		t.Fatalf("disable: %v (events saw %d revoked sessions, want 1)", err, sawRevoked)
	}
	// Revoking what is already revoked records nothing.
	if changed, err := s.RevokeSession(ctx, x.ID, "logout", base, ev("session_revoked_twice")); err != nil || changed {
		t.Fatalf("revoke a revoked session: %v %v", changed, err)
	}
	y := mkSession(t, s, admin.ID, base)
	if changed, err := s.RevokeSession(ctx, y.ID, "logout", base, ev("session_revoked")); err != nil || !changed {
		t.Fatalf("revoke: %v %v", changed, err)
	}
	if _, err := s.Reauthenticate(ctx, y.ID, store.Proof{At: base}, base, ev("reauth_of_revoked")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reauthenticate a revoked session: %v", err)
	}
	mkSession(t, s, admin.ID, base)
	if _, err := s.RevokeUserSessions(ctx, admin.ID, "", "admin", base, func(r []store.RevokedSession) []store.Event {
		return []store.Event{ev(fmt.Sprintf("sessions_revoked_%d", len(r)))}
	}); err != nil {
		t.Fatal(err)
	}
	cut := store.Cutoff{NotBefore: base, Until: base.Add(time.Hour)}
	if _, err := s.RevokeAll(ctx, cut, "global", base, func(n int) []store.Event { return []store.Event{ev(fmt.Sprintf("global_revoke_%d", n))} }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteUser(ctx, u.ID, cut, base, func(r []store.RevokedSession) []store.Event { return []store.Event{ev("account_deleted")} }); err != nil {
		t.Fatal(err)
	}
	want := "[login_succeeded reauthenticated ip_changed account_disabled session_revoked sessions_revoked_1 global_revoke_0 account_deleted]"
	if got := fmt.Sprint(types()); got != want {
		t.Fatalf("outbox = %s\nwant     %s", got, want)
	}
}

// Processes starting at once on one database agree on one signing key: of
// concurrent first keys exactly one is decided and stored. Concurrent
// rotations all take effect, in turn: every key stored, one active.
func testSigningKeysConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	race := func(next func(i int) func([]store.SigningKey) (store.SigningKey, error)) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.UpdateSigningKeys(ctx, next(i)); err != nil {
					t.Errorf("key %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
	}
	key := func(name string, i int) store.SigningKey {
		return store.SigningKey{ID: fmt.Sprintf("%s%d", name, i), Algorithm: "EdDSA",
			PublicKey: []byte("pub"), SealedPrivate: []byte("sealed"), CreatedAt: base.Add(time.Duration(i) * time.Second)}
	}
	var decided atomic.Int32
	race(func(i int) func([]store.SigningKey) (store.SigningKey, error) {
		first := firstKey(key("first", i))
		return func(keys []store.SigningKey) (store.SigningKey, error) {
			k, err := first(keys)
			if err == nil {
				decided.Add(1)
			}
			return k, err
		}
	})
	keys, _ := s.ListSigningKeys(ctx)
	if decided.Load() != 1 || len(keys) != 1 {
		t.Fatalf("%d of %d first keys decided, %d stored; want one", decided.Load(), n, len(keys))
	}
	race(func(i int) func([]store.SigningKey) (store.SigningKey, error) {
		return func([]store.SigningKey) (store.SigningKey, error) { return key("rotated", i), nil }
	})
	keys, _ = s.ListSigningKeys(ctx)
	active := 0
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			active++
		}
	}
	if len(keys) != n+1 || active != 1 {
		t.Fatalf("after %d concurrent rotations: %d keys, %d active; want %d and 1", n, len(keys), active, n+1)
	}
}

// A re-authentication racing the session's revocation either fails
// (ErrConflict) or lands before it, and then the revocation's entry covers
// the access token the re-authentication issued (its Until is at least the
// raised access expiry): never a token outliving its session's revocation.
func testReauthenticateRacingRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	u := mkUser(t, s, "racer")
	for round := range 20 {
		x := mkSession(t, s, u.ID, base)
		later := base.Add(time.Duration(round+10) * time.Hour)
		var wg sync.WaitGroup
		var rerr error
		wg.Add(2)
		go func() { defer wg.Done(); _, rerr = s.Reauthenticate(ctx, x.ID, store.Proof{At: base}, later) }()
		go func() {
			defer wg.Done()
			if _, err := s.RevokeSession(ctx, x.ID, "logout", base); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if rerr != nil && !errors.Is(rerr, store.ErrConflict) {
			t.Fatalf("round %d: Reauthenticate: %v", round, rerr)
		}
		log, err := s.RevocationsSince(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var until time.Time
		for _, r := range log {
			if r.SessionID() == x.ID {
				until = r.Until
			}
		}
		if rerr == nil && until.Before(later) {
			t.Fatalf("round %d: the re-authenticated token lives until %v, the revocation only until %v", round, later, until)
		}
	}
}

// follow reads a log "after the last entry I saw" in small pages, as every
// instance, resource server and event sink does, until the returned stop is
// called and the log is drained; stop returns the keys of what it saw.
func follow[T any](t *testing.T, read func(after int64, limit int) ([]T, error), seq func(T) int64, key func(T) string) (stop func() map[string]bool) {
	done := make(chan struct{})
	followed := make(chan struct{})
	seen := map[string]bool{}
	go func() {
		defer close(followed)
		var cursor int64
		for stopping := false; ; {
			select {
			case <-done:
				stopping = true
			default:
			}
			list, err := read(cursor, 7)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range list {
				seen[key(e)] = true
				cursor = seq(e)
			}
			if stopping && len(list) == 0 {
				return
			}
		}
	}()
	return func() map[string]bool {
		close(done)
		<-followed
		return seen
	}
}

// A follower of the revocation log (every instance, every resource server)
// misses nothing while revocations commit concurrently: the log's order is
// its commit order.
func testRevocationLogFollower(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 6, 15
	var want []string
	var wg sync.WaitGroup
	users := make([]store.User, writers)
	for w := range writers {
		users[w] = mkUser(t, s, fmt.Sprintf("w%d", w))
	}
	sessions := make([][]store.Session, writers)
	for w := range writers {
		for range each {
			x := mkSession(t, s, users[w].ID, base)
			sessions[w] = append(sessions[w], x)
			want = append(want, x.ID)
		}
	}
	stop := follow(t, func(after int64, limit int) ([]store.Revocation, error) { return s.RevocationsSince(ctx, after, limit) },
		func(r store.Revocation) int64 { return r.Seq }, store.Revocation.SessionID)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, x := range sessions[w] {
				if i%5 == 4 { // some in bulk, with a cutoff first, as a ban does
					cut := store.Cutoff{NotBefore: base, Until: base.Add(time.Hour)}
					if _, _, err := s.UpdateUser(ctx, users[w].ID, func(old store.User) (store.UserUpdate, error) {
						return store.UserUpdate{User: old, Cutoff: &cut, RevokeSessions: true, Reason: "disabled", Now: base}, nil
					}); err != nil {
						t.Error(err)
					}
					continue
				}
				if _, err := s.RevokeSession(ctx, x.ID, "logout", base); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	seen := stop()
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("the follower never saw the revocation of session %s: an entry committed behind its cursor", id)
		}
	}
}

// A follower of the events outbox (the sockets' live events on every
// instance, a webhook sink) misses nothing while the changes that record
// events commit concurrently — logins, rotations, revocations, refusals —
// however long one of them holds its transaction open.
func testOutboxFollower(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 6, 12
	users := make([]store.User, writers)
	for w := range writers {
		users[w] = mkUser(t, s, fmt.Sprintf("o%d", w))
	}
	stop := follow(t, func(after int64, limit int) ([]store.Event, error) { return s.EventsSince(ctx, after, limit) },
		func(e store.Event) int64 { return e.Seq }, func(e store.Event) string { return e.ID })
	var mu sync.Mutex
	var want []string
	ev := func(typ string) store.Event {
		e := store.Event{ID: id(), Type: typ, At: base}
		mu.Lock()
		want = append(want, e.ID)
		mu.Unlock()
		return e
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				x := store.Session{ID: id(), UserID: users[w].ID, Nonce: make([]byte, 32), Generation: 1, RotatedAt: base, CreatedAt: base,
					LastUsedAt: base, IdleExpiresAt: base.Add(time.Hour), ExpiresAt: base.Add(time.Hour), AccessExpiresAt: base}
				slow := func(store.User) error {
					if i%3 == 0 {
						time.Sleep(5 * time.Millisecond) // a login holding its transaction open
					}
					return nil
				}
				var err error
				switch i % 4 {
				case 0, 1:
					err = s.CreateSession(ctx, x, slow, ev("login_succeeded"))
				case 2:
					err = s.AddEvent(ctx, ev("login_failed"))
				case 3:
					if err = s.CreateSession(ctx, x, nil); err == nil {
						_, err = s.RotateSession(ctx, store.Rotation{SessionID: x.ID, FromGeneration: 1, Now: base,
							IdleExpiresAt: base.Add(time.Hour), AccessExpiresAt: base, Events: []store.Event{ev("ip_changed")}})
					}
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	seen := stop()
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("the outbox follower never saw event %s: an event committed behind its cursor", id)
		}
	}
}
