package guard_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/factortest"
)

func get(h http.Handler, tok string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "https://api.example.com/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func errorCode(w *httptest.ResponseRecorder) string {
	var body struct{ Error string }
	json.Unmarshal(w.Body.Bytes(), &body)
	return body.Error
}

func TestGuardClaimsStepUpAndPermissions(t *testing.T) {
	g := startGatehouse(t)
	// The guard's clock is the test's: auth_time is whole seconds, so on
	// the wall clock a fresh login can already look almost a second old
	// to a one-second max age (this test used to fail so under load).
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	gd := newGuard(t, g, func(c *guard.Config) { c.Now = func() time.Time { return time.Unix(0, clock.Load()) } })
	ctx := context.Background()
	ann := g.login(t, "ann")
	c, err := gd.Verify(ann.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if want := ann.Session.AuthTime.Truncate(time.Second); !c.AuthTime.Equal(want) {
		t.Fatalf("AuthTime = %v, want %v (the login, whole seconds)", c.AuthTime, want)
	}
	if len(c.Permissions) != 0 || c.HasPermission("orders:read") {
		t.Fatalf("permissions of a new user: %v", c.Permissions)
	}

	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	perm := gd.Middleware(guard.RequirePermission("orders:read", ok))
	role := gd.Middleware(guard.RequireRole("admin", ok))
	recent := gd.Middleware(gd.RequireRecentAuth(time.Second, ok))

	if w := get(perm, ann.AccessToken); w.Code != 403 || errorCode(w) != "forbidden" || !strings.Contains(w.Body.String(), "orders:read") {
		t.Fatalf("missing permission: %d %s", w.Code, w.Body)
	}
	if w := get(role, ann.AccessToken); w.Code != 403 || errorCode(w) != "forbidden" {
		t.Fatalf("missing role: %d %s", w.Code, w.Body)
	}
	clock.Store(c.AuthTime.UnixNano()) // the instant of the login's proof
	if w := get(recent, ann.AccessToken); w.Code != 200 {
		t.Fatalf("fresh login on a step-up route: %d %s", w.Code, w.Body)
	}

	// A permissions change: the old token is refused at once, the refreshed
	// one carries the permission.
	perms := []string{"orders:read"}
	if _, err := g.svc.ChangeUser(ctx, ann.User.ID, auth.UserChange{Permissions: &perms}, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, gd, ann.AccessToken, guard.ErrRevoked, time.Second)
	next, err := g.svc.Refresh(ctx, ann.RefreshToken, auth.Meta{IP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	waitAccepted(t, gd, next.AccessToken)
	if w := get(perm, next.AccessToken); w.Code != 200 {
		t.Fatalf("permission after refresh: %d %s", w.Code, w.Body)
	}
	// The refresh kept auth_time: it is still the login's.
	c2, _ := gd.Verify(next.AccessToken)
	if !c2.AuthTime.Equal(c.AuthTime) {
		t.Fatalf("refresh changed auth_time: %v -> %v", c.AuthTime, c2.AuthTime)
	}

	// Past maxAge, the RFC 9470 challenge.
	clock.Store(c.AuthTime.Add(1100 * time.Millisecond).UnixNano())
	w := get(recent, next.AccessToken)
	if w.Code != 401 || errorCode(w) != "insufficient_user_authentication" ||
		!strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) ||
		!strings.Contains(w.Header().Get("WWW-Authenticate"), "max_age=1") {
		t.Fatalf("stale auth_time: %d %s %q", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
}

// A deleted account's tokens are refused by the guard through the feed.
func TestGuardRefusesDeletedAccount(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, nil)
	ann := g.login(t, "ann")
	if _, err := gd.Verify(ann.AccessToken); err != nil {
		t.Fatal(err)
	}
	if err := g.svc.DeleteUser(context.Background(), ann.User.ID, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	took := refusedWithin(t, gd, ann.AccessToken, guard.ErrRevoked, time.Second)
	t.Logf("deletion reached the guard in %v", took)
}

func waitAccepted(t *testing.T, gd *guard.Guard, tok string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := gd.Verify(tok); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("token still refused: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Claims carry the proof's level and methods; RequireACR("aal2") passes a
// two-factor session and challenges a password-only one with acr_values.
func TestGuardRequireACR(t *testing.T) {
	g := startGatehouse(t)
	gd := newGuard(t, g, nil)
	ctx := context.Background()
	ann := g.login(t, "ann")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	aal2 := gd.Middleware(guard.RequireACR("aal2", ok))
	if c, err := gd.Verify(ann.AccessToken); err != nil || c.ACR != "aal1" || strings.Join(c.AMR, " ") != "pwd" {
		t.Fatalf("password login: %+v, %v", c, err)
	}
	w := get(aal2, ann.AccessToken)
	if w.Code != 401 || errorCode(w) != "insufficient_user_authentication" || !strings.Contains(w.Header().Get("WWW-Authenticate"), `acr_values="aal2"`) {
		t.Fatalf("aal1 on an aal2 route: %d %s %q", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
	// Enrol a TOTP factor, sign in with both.
	p, err := g.svc.Authenticate(ann.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	e, err := g.svc.EnrollTOTP(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	now, _ := factortest.TOTP(e.Secret, time.Now())
	if _, _, err := g.svc.VerifyFactor(ctx, p, e.Factor.ID, now, auth.Meta{IP: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	_, err = g.svc.Login(ctx, "ann", "password-ann", auth.Meta{IP: "127.0.0.1"})
	var mfa *auth.MFARequiredError
	if !errors.As(err, &mfa) {
		t.Fatalf("login with a factor: %v", err)
	}
	next, _ := factortest.TOTP(e.Secret, time.Now().Add(30*time.Second))
	tk, err := g.svc.CompleteMFA(ctx, mfa.Token, next, nil, auth.Meta{IP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := gd.Verify(tk.AccessToken); err != nil || c.ACR != "aal2" || strings.Join(c.AMR, " ") != "pwd otp mfa" {
		t.Fatalf("two-factor login: %+v, %v", c, err)
	}
	if w := get(aal2, tk.AccessToken); w.Code != 200 {
		t.Fatalf("aal2 on an aal2 route: %d %s", w.Code, w.Body)
	}
	if w := get(gd.Middleware(guard.RequireACR("aal9", ok)), tk.AccessToken); w.Code != 401 {
		t.Fatalf("an unknown level passed: %d", w.Code)
	}
}
