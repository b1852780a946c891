package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// claimsOf decodes an access token's payload (already verified by the
// server in these tests).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(raw, &c)
	return c
}

// ageTokens moves the clock past --reauth-max-age (10m) while keeping the
// sessions alive with refreshes, as clients would: the returned tokens are
// fresh, their auth_time is the login's.
func (s *server) ageTokens(t *testing.T, tks ...*tokens) {
	t.Helper()
	for range 3 {
		s.clock.Advance(4 * time.Minute)
		for _, tk := range tks {
			r := s.refresh(t, tk.refresh)
			if r.status != 200 {
				t.Fatalf("refresh: %d %s", r.status, r.raw)
			}
			*tk = tokens{r.body["access_token"].(string), r.body["refresh_token"].(string), tk.session}
		}
	}
}

func TestStepUpGate(t *testing.T) {
	s := newServer(t, options{})
	root, ann, annID := s.adminAndUser(t, "ann")
	loginAuthTime := claimsOf(t, root.access)["auth_time"].(float64)
	if loginAuthTime == 0 || loginAuthTime != float64(s.clock.Now().Unix()) {
		t.Fatalf("auth_time at login = %v, want %d", loginAuthTime, s.clock.Now().Unix())
	}
	s.ageTokens(t, &root, &ann)
	if at := claimsOf(t, root.access)["auth_time"].(float64); at != loginAuthTime {
		t.Fatalf("a refresh changed auth_time: %v -> %v", loginAuthTime, at)
	}

	gated := []struct {
		method, path string
		body         any
		tok          string
	}{
		{"POST", "/v1/admin/users", map[string]string{"username": "mallory", "password": "pw-mallory-long", "role": "admin"}, root.access},
		{"PATCH", "/v1/admin/users/" + annID, map[string]any{"disabled": true}, root.access},
		{"PATCH", "/v1/admin/users/" + annID, map[string]any{"role": "admin"}, root.access},
		{"PATCH", "/v1/admin/users/" + annID, map[string]any{"password": "pw-taken-over"}, root.access},
		{"PATCH", "/v1/admin/users/" + annID, map[string]any{"permissions": []string{"x"}}, root.access},
		{"DELETE", "/v1/admin/users/" + annID, nil, root.access},
		{"DELETE", "/v1/admin/users/" + annID + "/sessions", nil, root.access},
		{"DELETE", "/v1/admin/sessions/" + ann.session, nil, root.access},
		{"POST", "/v1/admin/revoke-all", nil, root.access},
		{"DELETE", "/v1/sessions?scope=others", nil, ann.access},
		{"DELETE", "/v1/sessions?scope=all", nil, ann.access},
		{"DELETE", "/v1/me", nil, ann.access},
	}
	for _, g := range gated {
		r := s.do(t, g.method, g.path, g.body, bearer(g.tok))
		if r.status != 401 || r.errCode() != "insufficient_user_authentication" {
			t.Fatalf("%s %s with an old auth_time: %d %s", g.method, g.path, r.status, r.raw)
		}
		www := r.header.Get("WWW-Authenticate")
		if !strings.HasPrefix(www, `Bearer error="insufficient_user_authentication"`) || !strings.Contains(www, "max_age=600") {
			t.Fatalf("%s %s: WWW-Authenticate %q", g.method, g.path, www)
		}
	}
	// Nothing changed.
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); r.status != 200 ||
		r.body["user"].(map[string]any)["disabled"] != false || r.body["user"].(map[string]any)["role"] != "user" {
		t.Fatalf("ann after refused changes: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(root.access)); r.status != 200 || strings.Contains(r.raw, "mallory") {
		t.Fatalf("users after refused changes: %s", r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil); r.status != 200 {
		t.Fatal("ann's password changed")
	}
	// Reads and the routes that carry their own proof are not gated.
	if r := s.do(t, "GET", "/v1/admin/users/"+annID+"/sessions", nil, bearer(root.access)); r.status != 200 {
		t.Fatalf("admin read with an old auth_time: %d", r.status)
	}

	// Step up: a wrong password is invalid_credentials; the right one gives
	// a new access token for the same session, auth_time now, and the
	// session's current refresh token (not rotated).
	if r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "wrong-password"}, bearer(root.access)); r.status != 401 || r.errCode() != "invalid_credentials" {
		t.Fatalf("wrong password: %d %s", r.status, r.raw)
	}
	r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "pw-root-long"}, bearer(root.access))
	if r.status != 200 || r.body["session_id"] != root.session || r.body["refresh_token"] != root.refresh {
		t.Fatalf("reauthenticate: %d %s (want session %s, refresh token unchanged)", r.status, r.raw, root.session)
	}
	stepped := r.body["access_token"].(string)
	if at := claimsOf(t, stepped)["auth_time"].(float64); at != float64(s.clock.Now().Unix()) {
		t.Fatalf("auth_time after step-up = %v, want now %d", at, s.clock.Now().Unix())
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+annID, map[string]any{"permissions": []string{"orders:read"}}, bearer(stepped)); r.status != 200 {
		t.Fatalf("gated route after step-up: %d %s", r.status, r.raw)
	}
	// The next refresh carries the new auth_time; later ones keep it.
	rr := s.refresh(t, root.refresh)
	if at := claimsOf(t, rr.body["access_token"].(string))["auth_time"].(float64); at != float64(s.clock.Now().Unix()) {
		t.Fatalf("refresh after step-up: auth_time %v", at)
	}
	aged := tokens{rr.body["access_token"].(string), rr.body["refresh_token"].(string), root.session}
	s.ageTokens(t, &aged)
	if r := s.do(t, "POST", "/v1/admin/revoke-all", nil, bearer(aged.access)); r.errCode() != "insufficient_user_authentication" {
		t.Fatalf("refreshes renewed the step-up: %s", r.raw)
	}
	// Without a token, or with a bad one, reauthenticate is a plain 401.
	if r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "pw-root-long"}, nil); r.status != 401 || r.errCode() != "invalid_token" {
		t.Fatalf("reauthenticate without a token: %d %s", r.status, r.raw)
	}
	var events int
	list, _, _ := s.svc.Events(t.Context(), eventQuery("reauthenticated"))
	events = len(list)
	if events != 1 {
		t.Fatalf("%d reauthenticated events, want 1", events)
	}
}

// Wrong passwords at the step-up count with login failures: the same
// throttle stops a thief holding an access token from guessing.
func TestReauthenticateThrottled(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	ann := s.login(t, "ann")
	for i := range 5 {
		r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "guess-" + string(rune('a'+i)) + "-long"}, bearer(ann.access))
		if r.errCode() != "invalid_credentials" {
			t.Fatalf("guess %d: %s", i, r.raw)
		}
	}
	if r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "pw-ann-long"}, bearer(ann.access)); r.status != 429 {
		t.Fatalf("6th step-up attempt: %d %s", r.status, r.raw)
	}
	// Shared with login.
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil); r.status != 429 {
		t.Fatalf("login after step-up guesses: %d %s", r.status, r.raw)
	}
	list, _, _ := s.svc.Events(t.Context(), eventQuery("login_failed"))
	if len(list) < 5 {
		t.Fatalf("%d login_failed events for 5 wrong step-up passwords", len(list))
	}
}

func TestReauthenticateTransports(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	ann := s.login(t, "ann")
	hdr := bearer(ann.access)
	hdr["Gatehouse-Transport"] = "refresh-cookie"
	r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "pw-ann-long"}, hdr)
	if r.status != 200 || r.body["access_token"] == nil || r.body["refresh_token"] != nil {
		t.Fatalf("refresh-cookie step-up: %d %s", r.status, r.raw)
	}
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 || cookies[0].Name != "__Secure-gatehouse_refresh" || cookies[0].Value != ann.refresh {
		t.Fatalf("refresh-cookie step-up cookies: %v", cookies)
	}
	hdr["Gatehouse-Transport"] = "cookie"
	r = s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": "pw-ann-long"}, hdr)
	if r.status != 200 || r.body["access_token"] != nil || len((&http.Response{Header: r.header}).Cookies()) != 2 {
		t.Fatalf("cookie step-up: %d %s", r.status, r.raw)
	}
	// Strict body.
	if r := s.do(t, "POST", "/v1/auth/reauthenticate", `{"password":"pw-ann-long","PASSWORD":"x"}`, bearer(ann.access)); r.status != 400 {
		t.Fatalf("duplicate-ish keys: %d", r.status)
	}
}

func TestPermissionsOverHTTP(t *testing.T) {
	s := newServer(t, options{})
	root, ann, annID := s.adminAndUser(t, "ann")
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); !strings.Contains(r.raw, `"permissions":[]`) {
		t.Fatalf("User without permissions must carry []: %s", r.raw)
	}
	if _, ok := claimsOf(t, ann.access)["permissions"]; ok {
		t.Fatal("a token without permissions carries the claim")
	}
	for _, bad := range []any{
		[]string{"Orders"}, []string{"a b"}, []string{""}, []string{strings.Repeat("p", 65)}, []string{"x\u0000"},
		make([]string, 65), "orders", []any{1},
	} {
		if bad != nil {
			if list, ok := bad.([]string); ok && len(list) == 65 {
				for i := range list {
					list[i] = "p" + strings.Repeat("x", i%3) + string(rune('a'+i%26))
				}
			}
		}
		r := s.do(t, "PATCH", "/v1/admin/users/"+annID, map[string]any{"permissions": bad}, bearer(root.access))
		if r.status != 400 {
			t.Fatalf("permissions %v: %d %s", bad, r.status, r.raw)
		}
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); r.status != 200 {
		t.Fatalf("refused permission changes revoked the token: %d", r.status)
	}
	r := s.do(t, "PATCH", "/v1/admin/users/"+annID, map[string]any{"permissions": []string{"orders:write", "billing.read", "orders:write"}}, bearer(root.access))
	if r.status != 200 || !strings.Contains(r.raw, `"permissions":["billing.read","orders:write"]`) {
		t.Fatalf("set permissions: %d %s", r.status, r.raw)
	}
	// Same instant both ways: the old token is refused, the refreshed one
	// (issued at the very instant of the change) is accepted.
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); r.errCode() != "token_revoked" {
		t.Fatalf("token from before the change: %s", r.raw)
	}
	rr := s.refresh(t, ann.refresh)
	fresh := rr.body["access_token"].(string)
	if r := s.do(t, "GET", "/v1/me", nil, bearer(fresh)); r.status != 200 {
		t.Fatalf("token from the same instant after the change: %d %s", r.status, r.raw)
	}
	if p := claimsOf(t, fresh)["permissions"]; p == nil || len(p.([]any)) != 2 {
		t.Fatalf("permissions claim: %v", p)
	}
	list, _, _ := s.svc.Events(t.Context(), eventQuery("permissions_changed"))
	if len(list) != 1 || list[0].UserID != annID {
		t.Fatalf("permissions_changed events: %+v", list)
	}
}

func TestAdminPasswordReset(t *testing.T) {
	s := newServer(t, options{})
	root, ann, _ := s.adminAndUser(t, "ann")
	other := s.login(t, "ann")
	annID := s.userID(t, ann)
	if r := s.do(t, "PATCH", "/v1/admin/users/"+annID, map[string]any{"password": "short"}, bearer(root.access)); r.status != 400 || r.errCode() != "weak_password" {
		t.Fatalf("weak reset: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+annID, map[string]any{"password": "a-brand-new-password"}, bearer(root.access)); r.status != 200 {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	for _, tk := range []tokens{ann, other} {
		if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.status != 401 {
			t.Fatalf("a session survived the reset: %d", r.status)
		}
		if r := s.refresh(t, tk.refresh); r.status != 401 {
			t.Fatalf("a refresh token survived the reset: %d", r.status)
		}
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil); r.status != 401 {
		t.Fatal("old password still works")
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "a-brand-new-password"}, nil); r.status != 200 {
		t.Fatal("new password does not work")
	}
	if list, _, _ := s.svc.Events(t.Context(), eventQuery("password_reset")); len(list) != 1 {
		t.Fatalf("password_reset events: %d", len(list))
	}
}

func TestAccountDeletion(t *testing.T) {
	s := newServer(t, options{devCookies: true})
	root := s.admin(t)
	rootID := s.userID(t, root)
	s.register(t, "Ann")
	ann := s.login(t, "Ann")
	annID := s.userID(t, ann)
	second := s.login(t, "Ann")

	r := s.do(t, "DELETE", "/v1/me", nil, bearer(ann.access))
	if r.status != 204 {
		t.Fatalf("DELETE /v1/me: %d %s", r.status, r.raw)
	}
	for _, tk := range []tokens{ann, second} {
		if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.status != 401 {
			t.Fatalf("access token of a deleted account: %d %s", r.status, r.raw)
		}
		if r := s.refresh(t, tk.refresh); r.status != 401 || r.errCode() != "invalid_refresh_token" {
			t.Fatalf("refresh token of a deleted account: %d %s", r.status, r.raw)
		}
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-Ann-long"}, nil); r.status != 401 {
		t.Fatalf("login to a deleted account: %d", r.status)
	}
	// The name is free; the new account is someone else entirely.
	s.register(t, "ann")
	fresh := s.login(t, "ann")
	freshID := s.userID(t, fresh)
	if freshID == annID {
		t.Fatal("a new account got the deleted one's id")
	}
	if r := s.do(t, "GET", "/v1/sessions", nil, bearer(fresh.access)); len(r.body["sessions"].([]any)) != 1 {
		t.Fatalf("new account sees sessions of the old: %s", r.raw)
	}
	if r := s.do(t, "GET", "/v1/admin/users/"+annID+"/sessions", nil, bearer(root.access)); r.status != 404 {
		t.Fatalf("deleted account's sessions: %d %s", r.status, r.raw)
	}
	// The old tokens stay dead even with the name taken again.
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); r.status != 401 {
		t.Fatal("old token revived by the new account")
	}
	// History stays auditable under the old id.
	list, _, _ := s.svc.Events(t.Context(), eventQueryUser("account_deleted", annID))
	if len(list) != 1 {
		t.Fatalf("account_deleted events for the old id: %d", len(list))
	}
	// Admin deletion, and the last admin.
	if r := s.do(t, "DELETE", "/v1/admin/users/"+freshID, nil, bearer(root.access)); r.status != 204 {
		t.Fatalf("admin delete: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/admin/users/"+freshID, nil, bearer(root.access)); r.status != 404 {
		t.Fatalf("delete again: %d", r.status)
	}
	if r := s.do(t, "DELETE", "/v1/admin/users/"+rootID, nil, bearer(root.access)); r.status != 409 || r.errCode() != "last_admin" {
		t.Fatalf("delete the last admin: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/me", nil, bearer(root.access)); r.status != 409 || r.errCode() != "last_admin" {
		t.Fatalf("the last admin deleting themselves: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/admin/users/%00", nil, bearer(root.access)); r.status != 404 {
		t.Fatalf("hostile id: %d %s", r.status, r.raw)
	}
}

// Client strings a database could refuse never reach it as they are.
func TestHostileStringsAreStorable(t *testing.T) {
	s := newServer(t, options{})
	for _, name := range []string{"a\x00b", "a\xffb", "", " ", "a\u202eb"} {
		r := s.do(t, "POST", "/v1/auth/register", map[string]string{"username": name, "password": "long enough"}, nil)
		if r.status != 400 || r.errCode() != "invalid_request" {
			t.Fatalf("register %q: %d %s", name, r.status, r.raw)
		}
		if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": name, "password": "long enough"}, nil); r.status != 401 {
			t.Fatalf("login %q: %d %s", name, r.status, r.raw)
		}
	}
	s.register(t, "ann")
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"User-Agent": "bad\xff\xfeagent" + strings.Repeat("x", 600)})
	if r.status != 200 {
		t.Fatalf("login with a non-UTF-8 user agent: %d %s", r.status, r.raw)
	}
	me := s.do(t, "GET", "/v1/me", nil, bearer(r.body["access_token"].(string)))
	ua := me.body["session"].(map[string]any)["user_agent"].(string)
	if !strings.HasPrefix(ua, "bad\ufffd") || len(ua) > 512 {
		t.Fatalf("stored user agent %q (%d bytes)", ua, len(ua))
	}
}

func eventQuery(typ string) auth.EventQuery { return auth.EventQuery{Type: typ, Limit: 500} }

func eventQueryUser(typ, user string) auth.EventQuery {
	return auth.EventQuery{Type: typ, UserID: user, Limit: 500}
}
