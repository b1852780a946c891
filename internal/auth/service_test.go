package auth

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// clock is a manual clock for tests: time moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var fastHash = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type fixture struct {
	svc   *Service
	st    store.Store
	clock *clock
	keys  *token.KeySet
}

// openStore makes the fixture's empty store: SQLite, unless a test
// switches it (runDomain).
var openStore = func(t *testing.T) (store.Store, error) {
	return sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "auth.db"), sqlite.Options{})
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	st, err := openStore(t)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	cfg := Config{
		Issuer: "http://gatehouse.test", RegistrationOpen: true, HashParams: fastHash,
		AccessTTL: 5 * time.Minute, RefreshIdleTTL: time.Hour, SessionMaxAge: 3 * time.Hour, ReuseGrace: 10 * time.Second,
		Now: c.Now, Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	keys := token.NewKeySet(token.GenerateKey())
	return &fixture{svc: New(cfg, st, keys, make([]byte, 32)), st: st, clock: c, keys: keys}
}

var meta = Meta{IP: "192.0.2.10", UserAgent: "test"}

func (f *fixture) login(t *testing.T, name string) Tokens {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, name, "password-"+name, meta); err != nil && !errors.Is(err, ErrUsernameTaken) {
		t.Fatal(err)
	}
	tk, err := f.svc.Login(ctx, name, "password-"+name, meta)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func testRegisterValidation(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	tests := []struct {
		name, user, pw string
		want           error
	}{
		{"ok", "ann", "long enough", nil},
		{"taken, other case", "ANN", "long enough", ErrUsernameTaken},
		{"short password", "bob", "short", ErrWeakPassword},
		{"long password", "bob", string(make([]byte, password.MaxLength+1)), ErrWeakPassword},
		{"bad username", "a b", "long enough", ErrInvalidRequest},
		{"empty username", "", "long enough", ErrInvalidRequest},
		{"NUL in username", "an\x00n", "long enough", ErrInvalidRequest},
		{"invalid UTF-8", "an\xffn", "long enough", ErrInvalidRequest},
		{"control character", "an\tn", "long enough", ErrInvalidRequest},
		{"65 characters", strings.Repeat("x", 65), "long enough", ErrInvalidRequest},
		{"Latin and Cyrillic", "p\u0430ypal", "long enough", ErrInvalidRequest},
		{"Latin and Greek", "\u03bfmega", "long enough", ErrInvalidRequest},
		{"taken after width mapping", "\uff21\uff2e\uff2e", "long enough", ErrUsernameTaken},
		{"one letter", "z", "long enough", nil},
		{"64 characters", strings.Repeat("y", 64), "long enough", nil},
		{"another script", "\u0437\u043e\u044f", "long enough", nil},
		{"Greek only", "\u03b1\u03b8\u03b7\u03bd\u03ac", "long enough", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Register(ctx, tc.user, tc.pw, meta)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Register = %v, want %v", err, tc.want)
			}
		})
	}
	closed := newFixture(t, func(c *Config) { c.RegistrationOpen = false })
	if _, err := closed.svc.Register(ctx, "carl", "long enough", meta); !errors.Is(err, ErrRegistrationDisabled) {
		t.Fatalf("closed registration: %v", err)
	}
	if _, err := closed.svc.CreateUser(ctx, "carl", "long enough", "admin"); err != nil {
		t.Fatalf("operators can still create users when registration is closed: %v", err)
	}
}

func testLoginFailures(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.login(t, "ann")
	if _, err := f.svc.Login(ctx, "ann", "wrong password", meta); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := f.svc.Login(ctx, "nobody", "whatever1", meta); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := f.svc.Login(ctx, "ANN", "password-ann", meta); err != nil {
		t.Fatalf("usernames are case-insensitive at login: %v", err)
	}
	// A disabled account is revealed only to whoever knows the password.
	if err := f.st.CreateUser(ctx, store.User{ID: "dis", Username: "dis", Role: "user", Disabled: true,
		PasswordHash: password.Hash("password-dis", fastHash), CreatedAt: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, "dis", "wrong password", meta); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("disabled, wrong password: %v", err)
	}
	if _, err := f.svc.Login(ctx, "dis", "password-dis", meta); !errors.Is(err, ErrAccountDisabled) {
		t.Fatalf("disabled, right password: %v", err)
	}
	evs, _, _ := f.svc.Events(ctx, EventQuery{UserID: "", Limit: 100})
	failed := 0
	for _, e := range evs {
		if e.Type == EventLoginFailed {
			failed++
		}
	}
	if failed != 4 {
		t.Fatalf("%d login_failed events, want 4", failed)
	}
}

func testRefreshRotationAndGrace(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	t1 := f.login(t, "ann")

	f.clock.Advance(time.Second)
	t2, err := f.svc.Refresh(ctx, t1.RefreshToken, meta)
	if err != nil {
		t.Fatal(err)
	}
	if t2.RefreshToken == t1.RefreshToken || t2.Session.Generation != 2 {
		t.Fatalf("refresh did not rotate: gen %d", t2.Session.Generation)
	}
	// The previous token inside the grace window returns the current one.
	f.clock.Advance(9 * time.Second)
	t2b, err := f.svc.Refresh(ctx, t1.RefreshToken, meta)
	if err != nil {
		t.Fatalf("previous token within grace: %v", err)
	}
	if t2b.RefreshToken != t2.RefreshToken {
		t.Fatal("grace refresh returned a different refresh token: the session forked")
	}
	if _, err := f.svc.Authenticate(t2b.AccessToken); err != nil {
		t.Fatalf("access token from the grace path: %v", err)
	}
	// The current token still rotates normally.
	t3, err := f.svc.Refresh(ctx, t2.RefreshToken, meta)
	if err != nil || t3.Session.Generation != 3 {
		t.Fatalf("rotate after grace use: %v", err)
	}
}

func testReuseRevokesSession(t *testing.T) {
	tests := []struct {
		name  string
		stale func(t1, t2 Tokens) string
		wait  time.Duration
	}{
		{"previous token after the grace window", func(t1, _ Tokens) string { return t1.RefreshToken }, 11 * time.Second},
		{"older token inside the grace window", func(t1, _ Tokens) string { return t1.RefreshToken }, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			ctx := context.Background()
			t1 := f.login(t, "ann")
			t2, err := f.svc.Refresh(ctx, t1.RefreshToken, meta)
			if err != nil {
				t.Fatal(err)
			}
			current := t2
			if tc.wait < 0 { // rotate once more: t1 is now two generations old
				if current, err = f.svc.Refresh(ctx, t2.RefreshToken, meta); err != nil {
					t.Fatal(err)
				}
			} else {
				f.clock.Advance(tc.wait)
			}
			if _, err := f.svc.Refresh(ctx, tc.stale(t1, t2), meta); !errors.Is(err, ErrRefreshTokenReused) {
				t.Fatalf("reuse: %v, want ErrRefreshTokenReused", err)
			}
			// The whole session is dead: its live refresh token and its
			// unexpired access tokens.
			if _, err := f.svc.Refresh(ctx, current.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
				t.Fatalf("current refresh token after reuse: %v, want ErrSessionRevoked", err)
			}
			for _, at := range []string{t1.AccessToken, current.AccessToken} {
				if _, err := f.svc.Authenticate(at); !errors.Is(err, ErrTokenRevoked) {
					t.Fatalf("access token after reuse: %v, want ErrTokenRevoked", err)
				}
			}
			evs, _, _ := f.svc.Events(ctx, EventQuery{UserID: t1.User.ID, Limit: 10})
			if len(evs) == 0 || evs[0].Type != EventRefreshTokenReused || evs[0].SessionID != t1.Session.ID {
				t.Fatalf("events = %+v; want refresh_token_reused first", evs)
			}
			// Another session of the same user is untouched.
			other := f.login(t, "ann")
			if _, err := f.svc.Authenticate(other.AccessToken); err != nil {
				t.Fatalf("other session: %v", err)
			}
		})
	}
}

func testRefreshRejectsForgeries(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	t1 := f.login(t, "ann")
	// A token for the real session id under the wrong key: refused, and
	// the session is not revoked by it (no revocation by session id).
	forged, _ := token.NewRefreshCodec([]byte("another key, another key, 32 by")).Make(t1.Session.ID, 1, t1.Session.Nonce)
	if _, err := f.svc.Refresh(ctx, forged, meta); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("forged token: %v", err)
	}
	forgedOld, _ := token.NewRefreshCodec(make([]byte, 32)).Make(t1.Session.ID, 5, []byte("x"))
	if _, err := f.svc.Refresh(ctx, forgedOld, meta); !errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("forged future generation: %v", err)
	}
	if err := f.svc.Logout(ctx, forged, "", meta); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "ghr_x", t1.AccessToken} {
		if _, err := f.svc.Refresh(ctx, bad, meta); !errors.Is(err, ErrInvalidRefreshToken) {
			t.Fatalf("Refresh(%.10q) = %v", bad, err)
		}
	}
	if _, err := f.svc.Authenticate(t1.RefreshToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("refresh token as access token: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, t1.RefreshToken, meta); err != nil {
		t.Fatalf("the real token after the attacks: %v", err)
	}
}

func testTimeouts(t *testing.T) {
	t.Run("access token expiry", func(t *testing.T) {
		f := newFixture(t, nil)
		tk := f.login(t, "ann")
		f.clock.Advance(5*time.Minute - time.Second)
		if _, err := f.svc.Authenticate(tk.AccessToken); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		f.clock.Advance(time.Second)
		if _, err := f.svc.Authenticate(tk.AccessToken); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("at expiry: %v", err)
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		f := newFixture(t, nil)
		tk := f.login(t, "ann")
		f.clock.Advance(time.Hour)
		if _, err := f.svc.Refresh(context.Background(), tk.RefreshToken, meta); !errors.Is(err, ErrSessionExpired) {
			t.Fatalf("after idle ttl: %v", err)
		}
	})
	t.Run("absolute lifetime", func(t *testing.T) {
		f := newFixture(t, nil)
		ctx := context.Background()
		tk := f.login(t, "ann")
		end := tk.Session.ExpiresAt
		var err error
		for i := 0; ; i++ {
			f.clock.Advance(50 * time.Minute) // always within the idle ttl
			var next Tokens
			next, err = f.svc.Refresh(ctx, tk.RefreshToken, meta)
			if err != nil {
				break
			}
			if next.RefreshExpiresAt.After(end) || next.AccessExpiresAt.After(end) {
				t.Fatalf("tokens outlive the session: refresh %v access %v end %v", next.RefreshExpiresAt, next.AccessExpiresAt, end)
			}
			tk = next
			if i > 10 {
				t.Fatal("session never hit its absolute lifetime")
			}
		}
		if !errors.Is(err, ErrSessionExpired) || f.clock.Now().Before(end) {
			t.Fatalf("ended with %v at %v (end %v)", err, f.clock.Now(), end)
		}
	})
}

// TestConcurrentRefreshNeverForks races many refreshes of one token: all
// must succeed with the same successor, and the session advances once.
func testConcurrentRefreshNeverForks(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	t1 := f.login(t, "ann")
	const n = 64
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tk, err := f.svc.Refresh(ctx, t1.RefreshToken, meta)
			results[i], errs[i] = tk.RefreshToken, err
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Fatalf("refresh %d got a different successor: the session forked", i)
		}
	}
	s, _ := f.st.GetSession(ctx, t1.Session.ID)
	if s.Generation != 2 || s.Revoked() {
		t.Fatalf("session generation %d revoked=%v; want 2, live", s.Generation, s.Revoked())
	}
	if _, err := f.svc.Refresh(ctx, results[0], meta); err != nil {
		t.Fatalf("the one successor: %v", err)
	}
}

func testLogoutAndSessions(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	a := f.login(t, "ann")
	b := f.login(t, "ann")
	c := f.login(t, "ann")
	bob := f.login(t, "bob")
	pa, _ := f.svc.Authenticate(a.AccessToken)

	list, err := f.svc.ListSessions(ctx, pa)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListSessions = %d, %v", len(list), err)
	}
	if err := f.svc.RevokeOwnSession(ctx, pa, bob.Session.ID, meta); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking another user's session: %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Authenticate(bob.AccessToken); err != nil {
		t.Fatalf("bob after ann's attempt: %v", err)
	}
	if err := f.svc.RevokeOwnSession(ctx, pa, b.Session.ID, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(b.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked session's token: %v", err)
	}
	if err := f.svc.RevokeOwnSessions(ctx, pa, false, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(c.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("scope=others left c alive: %v", err)
	}
	if _, err := f.svc.Authenticate(a.AccessToken); err != nil {
		t.Fatalf("scope=others killed the current session: %v", err)
	}
	// Logout by refresh token, then again: idempotent.
	for range 2 {
		if err := f.svc.Logout(ctx, a.RefreshToken, "", meta); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Authenticate(a.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("after logout: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, a.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
		t.Fatalf("refresh after logout: %v", err)
	}
	// Logout by access token alone.
	if err := f.svc.Logout(ctx, "", bob.AccessToken, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, bob.RefreshToken, meta); !errors.Is(err, ErrSessionRevoked) {
		t.Fatalf("bob's refresh after logout by access token: %v", err)
	}
}

// TestRevocationsSurviveRestart builds a second Service on the same store,
// as a restarted server would.
func testRevocationsSurviveRestart(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	dead := f.login(t, "ann")
	live := f.login(t, "ann")
	if err := f.svc.Logout(ctx, dead.RefreshToken, "", meta); err != nil {
		t.Fatal(err)
	}
	restarted := New(f.svc.cfg, f.st, f.keys, make([]byte, 32))
	if _, err := restarted.Authenticate(dead.AccessToken); err != nil {
		t.Fatal("sanity: before loading, the new process knows nothing")
	}
	if err := restarted.LoadRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Authenticate(dead.AccessToken); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked token after restart: %v", err)
	}
	if _, err := restarted.Authenticate(live.AccessToken); err != nil {
		t.Fatalf("live token after restart: %v", err)
	}
	if _, err := restarted.Refresh(ctx, live.RefreshToken, meta); err != nil {
		t.Fatalf("live refresh after restart: %v", err)
	}
}

func testRevocationsPruneAndCutoffs(t *testing.T) {
	r := NewRevocations()
	now := time.Unix(1000, 0)
	r.AddSession("s1", now.Add(time.Minute))
	if !r.Revoked("s1", "u", now) || r.Revoked("s2", "u", now) {
		t.Fatal("session layer")
	}
	r.Prune(now.Add(2 * time.Minute))
	if r.Len() != 0 {
		t.Fatalf("Len after prune = %d", r.Len())
	}
	// A cutoff and tokens in the same second, ordered by microseconds.
	cut := time.Unix(2000, 500_000_000)
	r.SetUserNotBefore("u", cut, cut.Add(time.Hour))
	if !r.Revoked("s", "u", cut.Add(-time.Microsecond)) {
		t.Error("token issued just before the user cutoff accepted")
	}
	if r.Revoked("s", "u", cut) || r.Revoked("s", "u", cut.Add(time.Microsecond)) {
		t.Error("token issued at or after the user cutoff refused")
	}
	r.SetGlobalNotBefore(cut.Add(time.Second))
	if !r.Revoked("s", "other", cut) {
		t.Error("global cutoff not applied")
	}
}

func testRevocationLookupAllocatesNothing(t *testing.T) {
	r := NewRevocations()
	for i := range 10000 {
		r.AddSession(string(rune('a'+i%26))+time.Duration(i).String(), time.Now().Add(time.Hour))
	}
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { r.Revoked("not-revoked-session", "user", now) }); n != 0 {
		t.Fatalf("Revoked allocates %.1f times per call", n)
	}
}
