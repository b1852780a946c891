package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/secret"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

func ptr[T any](v T) *T { return &v }

func testDisableTakesEffectAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	a := f.login(t, "ann")
	b := f.login(t, "ann")
	f.clock.Advance(time.Microsecond)
	if _, err := f.svc.UpdateUser(ctx, a.User.ID, nil, ptr(true), meta); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []Tokens{a, b} {
		if _, err := f.svc.Authenticate(tk.AccessToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("access token of a disabled user: %v", err)
		}
		if _, err := f.svc.Refresh(ctx, tk.RefreshToken, meta); !errors.Is(err, ErrAccountDisabled) {
			t.Fatalf("refresh of a disabled user: %v", err)
		}
	}
	if _, err := f.svc.Login(ctx, "ann", "password-ann", meta); !errors.Is(err, ErrAccountDisabled) {
		t.Fatalf("login of a disabled user: %v", err)
	}
	// Re-enabling does not resurrect the old sessions.
	f.clock.Advance(time.Second)
	if _, err := f.svc.UpdateUser(ctx, a.User.ID, nil, ptr(false), meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, a.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
		t.Fatalf("old session after re-enable: %v", err)
	}
	if _, err := f.svc.Authenticate(b.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("old access token after re-enable: %v", err)
	}
	fresh := f.login(t, "ann")
	if _, err := f.svc.Authenticate(fresh.AccessToken); err != nil {
		t.Fatalf("new login after re-enable: %v", err)
	}
	types := eventTypes(t, f, a.User.ID)
	if !strings.Contains(types, EventAccountDisabled) || !strings.Contains(types, EventAccountEnabled) {
		t.Fatalf("events %s", types)
	}
}

func eventTypes(t *testing.T, f *fixture, userID string) string {
	t.Helper()
	evs, _, err := f.svc.Events(context.Background(), EventQuery{UserID: userID, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return strings.Join(out, ",")
}

// TestRoleChangeCutoffWithinOneSecond: tokens issued before a role change
// are refused and tokens issued after are accepted, even in the same second
// (and the same microsecond) as the change.
func testRoleChangeCutoffWithinOneSecond(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.clock.t = time.Date(2026, 11, 22, 10, 0, 0, 400_000_000, time.UTC) // mid-second
	old := f.login(t, "ann")
	f.clock.Advance(time.Microsecond)
	if _, err := f.svc.UpdateUser(ctx, old.User.ID, ptr(store.RoleAdmin), nil, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(old.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("token issued before the role change: %v", err)
	}
	// Same instant as the cutoff: the refresh reads the new role.
	fresh, err := f.svc.Refresh(ctx, old.RefreshToken, meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Authenticate(fresh.AccessToken)
	if err != nil {
		t.Fatalf("token issued in the same instant after the change: %v", err)
	}
	if p.Role != store.RoleAdmin {
		t.Fatalf("refreshed token role %q, want admin", p.Role)
	}
	if p.IssuedAt.Unix() != old.IssuedAt.Unix() {
		t.Fatalf("test setup: tokens in different seconds (%v, %v)", p.IssuedAt, old.IssuedAt)
	}
	// The session lived on: no new login was needed.
	if fresh.Session.ID != old.Session.ID {
		t.Fatal("role change ended the session")
	}
	if !strings.Contains(eventTypes(t, f, old.User.ID), EventRoleChanged) {
		t.Fatal("no role_changed event")
	}
}

func testRevokeAll(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	admin := f.login(t, "root")
	ann := f.login(t, "ann")
	f.clock.Advance(time.Microsecond)
	n, err := f.svc.RevokeAll(ctx, meta)
	if err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v", n, err)
	}
	for _, tk := range []Tokens{admin, ann} {
		if _, err := f.svc.Authenticate(tk.AccessToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("access token after revoke-all: %v", err)
		}
		if _, err := f.svc.Refresh(ctx, tk.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
			t.Fatalf("refresh after revoke-all: %v", err)
		}
	}
	after := f.login(t, "ann") // same instant as the cutoff
	if _, err := f.svc.Authenticate(after.AccessToken); err != nil {
		t.Fatalf("login after revoke-all: %v", err)
	}
	evs, _, _ := f.svc.Events(ctx, EventQuery{Type: EventGlobalRevoke})
	if len(evs) != 1 {
		t.Fatalf("%d global_revoke events", len(evs))
	}
}

// TestCutoffsSurviveRestartAndReachOtherProcesses: a second Service on the
// same store plays the CLI (or a restarted server).
func testCutoffsSurviveRestartAndReachOtherProcesses(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	ann := f.login(t, "ann")
	bob := f.login(t, "bob")
	carl := f.login(t, "carl")
	f.clock.Advance(time.Microsecond)

	cli := New(f.svc.cfg, f.st, f.keys, make([]byte, 32))
	if _, err := cli.UpdateUser(ctx, ann.User.ID, ptr(store.RoleAdmin), nil, meta); err != nil {
		t.Fatal(err)
	}
	if err := cli.RevokeSession(ctx, bob.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	// The server has not synced yet: it still accepts them...
	if _, err := f.svc.Authenticate(ann.AccessToken); err != nil {
		t.Fatalf("sanity: %v", err)
	}
	// ...and after one sync, refuses them.
	if err := f.svc.SyncRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	for name, tk := range map[string]Tokens{"role change": ann, "revoked session": bob} {
		if _, err := f.svc.Authenticate(tk.AccessToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("%s from another process: %v", name, err)
		}
	}
	if _, err := f.svc.Authenticate(carl.AccessToken); err != nil {
		t.Fatalf("untouched user: %v", err)
	}
	if _, err := cli.RevokeAll(ctx, meta); err != nil {
		t.Fatal(err)
	}
	restarted := New(f.svc.cfg, f.st, f.keys, make([]byte, 32))
	if err := restarted.LoadRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tk := range []Tokens{ann, bob, carl} {
		if _, err := restarted.Authenticate(tk.AccessToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("after restart: %v", err)
		}
	}
}

func testChangePassword(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	mine := f.login(t, "ann")
	stolen := f.login(t, "ann")
	p, _ := f.svc.Authenticate(mine.AccessToken)
	if err := f.svc.ChangePassword(ctx, p, "wrong-current", "new-password-1", meta); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, p, "password-ann", "short", meta); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("weak new password: %v", err)
	}
	if err := f.svc.ChangePassword(ctx, p, "password-ann", "new-password-1", meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, stolen.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
		t.Fatalf("stolen refresh token after the password change: %v", err)
	}
	if _, err := f.svc.Authenticate(stolen.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("stolen access token after the password change: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, mine.RefreshToken, meta); err != nil {
		t.Fatalf("the session that changed the password: %v", err)
	}
	if _, err := f.svc.Login(ctx, "ann", "password-ann", meta); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if _, err := f.svc.Login(ctx, "ann", "new-password-1", meta); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func testSessionLimitEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxSessionsPerUser = 3 })
	ctx := context.Background()
	var s [3]Tokens
	for i := range s {
		s[i] = f.login(t, "ann")
		f.clock.Advance(time.Second)
	}
	// Session 0 is the oldest but was just used; session 1 is the LRU.
	if _, err := f.svc.Refresh(ctx, s[0].RefreshToken, meta); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	newest := f.login(t, "ann")
	list, _ := f.svc.ListSessions(ctx, Principal{UserID: newest.User.ID})
	if len(list) != 3 {
		t.Fatalf("%d sessions, limit 3", len(list))
	}
	if _, err := f.svc.Authenticate(s[1].AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("LRU session not evicted: %v", err)
	}
	for _, tk := range []Tokens{s[2], newest} {
		if _, err := f.svc.Authenticate(tk.AccessToken); err != nil {
			t.Fatalf("a recent session was evicted: %v", err)
		}
	}
	evs, _, _ := f.svc.Events(ctx, EventQuery{Type: EventSessionLimit})
	if len(evs) != 1 || evs[0].SessionID != s[1].Session.ID {
		t.Fatalf("session_limit_evicted events %+v", evs)
	}
}

func testIPPolicy(t *testing.T) {
	moved := Meta{IP: "198.51.100.77", UserAgent: "test"}
	t.Run("warn", func(t *testing.T) {
		f := newFixture(t, nil)
		tk := f.login(t, "ann")
		next, err := f.svc.Refresh(context.Background(), tk.RefreshToken, moved)
		if err != nil {
			t.Fatalf("warn policy refused the refresh: %v", err)
		}
		if next.Session.IP != moved.IP {
			t.Fatalf("session IP %q not updated", next.Session.IP)
		}
		// From the new address again: nothing new to record (on PostgreSQL
		// this is the one-statement path again).
		if _, err := f.svc.Refresh(context.Background(), next.RefreshToken, moved); err != nil {
			t.Fatal(err)
		}
		evs, _, _ := f.svc.Events(context.Background(), EventQuery{Type: EventIPChanged})
		if len(evs) != 1 || evs[0].IP != moved.IP || !strings.Contains(evs[0].Detail, meta.IP) {
			t.Fatalf("ip_changed events %+v", evs)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.IPPolicy = IPPolicyRevoke })
		tk := f.login(t, "ann")
		if _, err := f.svc.Refresh(context.Background(), tk.RefreshToken, meta); err != nil {
			t.Fatalf("same IP: %v", err)
		}
		tk2, _ := f.svc.Refresh(context.Background(), tk.RefreshToken, meta) // grace: same chain
		if _, err := f.svc.Refresh(context.Background(), tk2.RefreshToken, moved); !errors.Is(err, ErrSessionRevoked) {
			t.Fatalf("new IP under revoke policy: %v", err)
		}
		if _, err := f.svc.Authenticate(tk2.AccessToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("access token after IP revocation: %v", err)
		}
		// Both events, committed with the revocation; nothing rotated.
		moves, _, _ := f.svc.Events(context.Background(), EventQuery{Type: EventIPChanged})
		revs, _, _ := f.svc.Events(context.Background(), EventQuery{Type: EventSessionRevoked})
		if len(moves) != 1 || len(revs) != 1 || revs[0].Detail != ReasonIPChanged {
			t.Fatalf("events: ip_changed %+v, session_revoked %+v", moves, revs)
		}
		if _, err := f.svc.Refresh(context.Background(), tk2.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
			t.Fatalf("the revoked chain from the old address: %v", err)
		}
	})
}

func testLoginThrottle(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.login(t, "ann")
	attacker := Meta{IP: "203.0.113.66"}
	for range 5 {
		if _, err := f.svc.Login(ctx, "ann", "guess", attacker); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("guess: %v", err)
		}
	}
	_, err := f.svc.Login(ctx, "ann", "password-ann", attacker)
	var rl *RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) || rl.RetryAfter <= 0 {
		t.Fatalf("6th attempt from the attacker: %v", err)
	}
	// The owner, from their own address, is not locked out.
	if _, err := f.svc.Login(ctx, "ann", "password-ann", meta); err != nil {
		t.Fatalf("owner locked out: %v", err)
	}
	// The back-off ends by itself.
	f.clock.Advance(rl.RetryAfter)
	if _, err := f.svc.Login(ctx, "ann", "password-ann", attacker); err != nil {
		t.Fatalf("after the back-off: %v", err)
	}
	if evs, _, _ := f.svc.Events(ctx, EventQuery{Type: EventRateLimited}); len(evs) != 1 {
		t.Fatalf("%d rate_limited events", len(evs))
	}
}

func testEventsPaging(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for range 7 {
		f.login(t, "ann")
	}
	var seen []string
	cursor := int64(0)
	for {
		page, next, err := f.svc.Events(ctx, EventQuery{Type: EventLoginSucceeded, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.ID)
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(seen) != 7 {
		t.Fatalf("paged %d events, want 7", len(seen))
	}
}

func testEventRetention(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.EventRetention = time.Hour })
	ctx := context.Background()
	f.login(t, "ann")
	f.clock.Advance(2 * time.Hour)
	f.login(t, "ann")
	f.svc.pruneStore(ctx)
	evs, _, _ := f.svc.Events(ctx, EventQuery{})
	if len(evs) != 1 || !evs[0].At.Equal(f.clock.Now()) {
		t.Fatalf("after pruning: %+v; want only the recent login", evs)
	}
}

// TestKeyRotatedByAnotherInstance: a token signed with a key another
// instance rotated in moments ago verifies here at once (on-demand reload),
// while forged unknown keys cannot make this instance reload more than
// once per interval.
func testKeyRotatedByAnotherInstance(t *testing.T) {
	st, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	master, _ := secret.New([]byte("master secret for this test, 32+ bytes"))
	open := func() (*Service, *Keyring) {
		kr, err := OpenKeyring(ctx, st, master.NewSealer("k"), time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		svc := New(Config{Issuer: "http://gh.test", RegistrationOpen: true, HashParams: fastHash,
			Logger:     slog.New(slog.DiscardHandler),
			ReloadKeys: func(ctx context.Context) error { return kr.Reload(ctx, time.Now()) }}, st, kr.Set(), master.Derive("r"))
		return svc, kr
	}
	a, krA := open()
	b, _ := open()
	if _, err := a.Register(ctx, "ann", "password-ann", meta); err != nil {
		t.Fatal(err)
	}
	if err := krA.Rotate(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	tk, err := a.Login(ctx, "ann", "password-ann", meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(tk.AccessToken); err != nil {
		t.Fatalf("token of a key rotated in on another instance: %v", err)
	}
	if len(b.Keys().JWKS().Keys) != 2 {
		t.Fatal("the reload did not bring in the new key beside the old")
	}
	// A forged kid right after: refused, and no second reload yet.
	if b.reloadKeysNow() {
		t.Fatal("reloaded twice within the interval")
	}
}

// failingStore makes RevocationsSince fail on demand: a lost database.
type failingStore struct {
	store.Store
	down atomic.Bool
}

func (f *failingStore) RevocationsSince(ctx context.Context, seq int64, limit int) ([]store.Revocation, error) {
	if f.down.Load() {
		return nil, store.ErrUnavailable
	}
	return f.Store.RevocationsSince(ctx, seq, limit)
}

func testRevocationsFreshFailsClosed(t *testing.T) {
	base, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	fs := &failingStore{Store: base}
	svc := New(Config{Issuer: "http://gh.test", HashParams: fastHash, SyncInterval: 10 * time.Millisecond,
		MaxSyncAge: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, fs, token.NewKeySet(token.GenerateKey()), make([]byte, 32))
	if !svc.RevocationsFresh() {
		t.Fatal("not following yet: must count as fresh")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go svc.Run(ctx)
	time.Sleep(50 * time.Millisecond)
	if !svc.RevocationsFresh() {
		t.Fatal("following a healthy store: not fresh")
	}
	fs.down.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for svc.RevocationsFresh() {
		if time.Now().After(deadline) {
			t.Fatal("still fresh long after the store went away")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fs.down.Store(false)
	for !svc.RevocationsFresh() {
		if time.Now().After(deadline.Add(2 * time.Second)) {
			t.Fatal("never fresh again after the store came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --signing-alg: a fresh store gets a key of the configured algorithm; a
// restart with another one rotates (the old key keeps verifying its
// tokens); the CLI, which names no algorithm, keeps the active key.
func testSigningAlgSwitch(t *testing.T) {
	st, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	master, _ := secret.New([]byte("master secret for this test, 32+ bytes"))
	open := func(alg ...string) (*Service, *Keyring) {
		kr, err := OpenKeyring(ctx, st, master.NewSealer("k"), time.Hour, time.Now(), alg...)
		if err != nil {
			t.Fatal(err)
		}
		return New(Config{Issuer: "http://gh.test", RegistrationOpen: true, HashParams: fastHash,
			Logger: slog.New(slog.DiscardHandler)}, st, kr.Set(), master.Derive("r")), kr
	}
	es, _ := open("ES256")
	if es.Keys().Alg() != "ES256" {
		t.Fatalf("first key %s", es.Keys().Alg())
	}
	if _, err := es.Register(ctx, "ann", "password-ann", meta); err != nil {
		t.Fatal(err)
	}
	old, err := es.Login(ctx, "ann", "password-ann", meta)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := open("RS256")
	if rs.Keys().Alg() != "RS256" || len(rs.Keys().JWKS().Keys) != 2 {
		t.Fatalf("after switching to RS256: %s, %d keys", rs.Keys().Alg(), len(rs.Keys().JWKS().Keys))
	}
	if _, err := rs.Authenticate(old.AccessToken); err != nil {
		t.Fatalf("an ES256 token after the switch: %v", err)
	}
	tk, err := rs.Login(ctx, "ann", "password-ann", meta)
	if err != nil || !strings.HasPrefix(tk.AccessToken, "eyJhbGciOiJSUzI1NiIs") {
		t.Fatalf("a token after the switch: %v %.30s", err, tk.AccessToken)
	}
	cli, kr := open()
	if cli.Keys().Alg() != "RS256" {
		t.Fatalf("the CLI switched the key to %s", cli.Keys().Alg())
	}
	if err := kr.Rotate(ctx, time.Now()); err != nil || kr.Set().Alg() != "RS256" {
		t.Fatalf("rotation by the CLI: %v, %s", err, kr.Set().Alg())
	}
	if _, err := OpenKeyring(ctx, st, master.NewSealer("k"), time.Hour, time.Now(), "HS256"); err == nil {
		t.Fatal("HS256 accepted")
	}
}
