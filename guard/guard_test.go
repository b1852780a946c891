package guard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

func timeNow() time.Time { return time.Now() }

func newGuard(t testing.TB, g *gatehouse, mod func(*guard.Config)) *guard.Guard {
	t.Helper()
	cfg := guard.Config{Issuer: g.URL, ResourceKey: resourceKey}
	if mod != nil {
		mod(&cfg)
	}
	gd, err := guard.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gd.Close)
	return gd
}

// refusedWithin polls until Verify refuses tok with want, and returns how
// long that took.
func refusedWithin(t *testing.T, gd *guard.Guard, tok string, want error, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, err := gd.Verify(tok)
		if errors.Is(err, want) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("token still %v after %v; want %v", err, limit, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGuardFollowsRevocations(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, nil)
	ctx := context.Background()
	ann := g.login(t, "ann")
	c, err := gd.Verify(ann.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != ann.User.ID || c.SessionID != ann.Session.ID || c.Role != "user" {
		t.Fatalf("claims %+v", c)
	}

	// One session revoked (logout): refused within a second.
	if err := g.svc.Logout(ctx, ann.RefreshToken, "", auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	took := refusedWithin(t, gd, ann.AccessToken, guard.ErrRevoked, time.Second)
	t.Logf("logout reached the guard in %v", took)

	// A role change: the user's older tokens.
	bob := g.login(t, "bob")
	other := g.login(t, "carl")
	time.Sleep(time.Microsecond)
	admin := "admin"
	if _, err := g.svc.UpdateUser(ctx, bob.User.ID, &admin, nil, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, gd, bob.AccessToken, guard.ErrRevoked, time.Second)
	if _, err := gd.Verify(other.AccessToken); err != nil {
		t.Fatalf("another user's token after bob's role change: %v", err)
	}
	// The refreshed token, issued after the change, passes.
	fresh, err := g.svc.Refresh(ctx, bob.RefreshToken, auth.Meta{IP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := gd.Verify(fresh.AccessToken); err != nil || c.Role != "admin" {
		t.Fatalf("token after the role change: %+v, %v", c, err)
	}

	// Revoke-all: everything issued before.
	if _, err := g.svc.RevokeAll(ctx, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, gd, other.AccessToken, guard.ErrRevoked, time.Second)
	refusedWithin(t, gd, fresh.AccessToken, guard.ErrRevoked, time.Second)
}

func TestGuardCatchesUpAfterLateStartAndGap(t *testing.T) {
	g := startGatehouse(t)
	ctx := context.Background()
	early := g.login(t, "ann")
	if err := g.svc.Logout(ctx, early.RefreshToken, "", auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	gd := newGuard(t, g, func(c *guard.Config) { c.MaxStaleness = 30 * time.Second })
	if _, err := gd.Verify(early.AccessToken); !errors.Is(err, guard.ErrRevoked) {
		t.Fatalf("revocation from before the guard started: %v", err)
	}
	// A gap: the feed is unreachable while a session is revoked.
	late := g.login(t, "bob")
	g.down.Store(true)
	if err := g.svc.Logout(ctx, late.RefreshToken, "", auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	g.down.Store(false)
	refusedWithin(t, gd, late.AccessToken, guard.ErrRevoked, 10*time.Second)
}

func TestGuardFailsClosedWhenFeedIsLost(t *testing.T) {
	g := startGatehouse(t)
	ann := g.login(t, "ann")
	gd := newGuard(t, g, func(c *guard.Config) { c.MaxStaleness = time.Second })
	if _, err := gd.Verify(ann.AccessToken); err != nil {
		t.Fatal(err)
	}
	g.down.Store(true)
	took := refusedWithin(t, gd, ann.AccessToken, guard.ErrStale, 3*time.Second)
	t.Logf("guard failed closed %v after losing the feed (bound 1s)", took)
	g.down.Store(false)
	start := time.Now()
	for {
		if _, err := gd.Verify(ann.AccessToken); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("guard never recovered after the feed came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGuardRefusesForgedAndForeignTokens(t *testing.T) {
	g := startGatehouse(t)
	foreign := startGatehouse(t) // another Gatehouse: another issuer and key
	gd := newGuard(t, g, nil)
	ann := g.login(t, "ann")
	stranger := foreign.login(t, "ann")
	forger := token.NewKeySet(token.GenerateKey())
	forged, _ := forger.Sign(token.Claims{Issuer: g.URL, Subject: ann.User.ID, SessionID: ann.Session.ID, ID: "x", Role: "admin",
		IssuedAt: token.NumericDate{Time: time.Now()}, ExpiresAt: token.NumericDate{Time: time.Now().Add(time.Hour)}})
	parts := strings.Split(ann.AccessToken, ".")
	for name, tok := range map[string]string{
		"foreign issuer":     stranger.AccessToken,
		"forged signature":   forged,
		"altered payload":    parts[0] + "." + parts[1] + "x." + parts[2],
		"alg none":           "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + parts[1] + ".",
		"refresh token":      ann.RefreshToken,
		"garbage":            "not a token",
		"oversized":          strings.Repeat("a", 5000),
		"our header, no sig": parts[0] + "." + parts[1] + ".",
	} {
		if _, err := gd.Verify(tok); !errors.Is(err, guard.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := gd.Verify(ann.AccessToken); err != nil {
		t.Fatalf("the genuine token: %v", err)
	}
	expired := newGuard(t, g, func(c *guard.Config) { c.Now = func() time.Time { return time.Now().Add(time.Hour) } })
	if _, err := expired.Verify(ann.AccessToken); !errors.Is(err, guard.ErrExpired) && !errors.Is(err, guard.ErrStale) {
		t.Fatalf("an hour later: %v", err)
	}
}

func TestGuardRefetchesJWKSForNewKey(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, func(c *guard.Config) { c.JWKSMinInterval = time.Millisecond })
	if err := g.keys.Rotate(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	ann := g.login(t, "ann") // signed with the new key
	if _, err := gd.Verify(ann.AccessToken); err != nil {
		t.Fatalf("token of a rotated-in key: %v", err)
	}
}

func TestGuardBadConfig(t *testing.T) {
	g := startGatehouse(t)
	if _, err := guard.New(context.Background(), guard.Config{Issuer: g.URL}); err == nil {
		t.Fatal("no resource key accepted")
	}
	if _, err := guard.New(context.Background(), guard.Config{Issuer: g.URL, ResourceKey: "wrong-key-wrong-key-wrong-key-wrong"}); err == nil {
		t.Fatal("a wrong resource key was accepted by the feed")
	}
}

func TestMiddleware(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, nil)
	ann := g.login(t, "ann")
	h := gd.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFrom(r.Context())
		w.Write([]byte(c.Subject))
	}))
	do := func(path, authz string) (int, string) {
		r := httptest.NewRequest("GET", path, nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, body := do("/", "Bearer "+ann.AccessToken); code != 200 || body != ann.User.ID {
		t.Fatalf("valid token: %d %s", code, body)
	}
	for _, tc := range []struct {
		path, authz string
		code        int
		err         string
	}{
		{"/", "", 401, "invalid_token"},
		{"/", "Bearer junk", 401, "invalid_token"},
		{"/?access_token=" + ann.AccessToken, "", 400, "query_token_disabled"},
	} {
		code, body := do(tc.path, tc.authz)
		var e map[string]string
		json.Unmarshal([]byte(body), &e)
		if code != tc.code || e["error"] != tc.err || e["error_description"] == "" {
			t.Errorf("%s %q: %d %s", tc.path, tc.authz, code, body)
		}
	}
	g.svc.Logout(context.Background(), ann.RefreshToken, "", auth.Meta{})
	refusedWithin(t, gd, ann.AccessToken, guard.ErrRevoked, time.Second)
	if code, body := do("/", "Bearer "+ann.AccessToken); code != 401 || !strings.Contains(body, "token_revoked") {
		t.Fatalf("revoked: %d %s", code, body)
	}
}
