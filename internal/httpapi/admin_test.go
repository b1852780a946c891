package httpapi_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// admin makes an admin account the way an operator would (CLI/bootstrap
// call the same domain function) and logs it in.
func (s *server) admin(t *testing.T) tokens {
	t.Helper()
	if _, err := s.svc.CreateUser(context.Background(), "root", "pw-root-long", "admin"); err != nil {
		t.Fatal(err)
	}
	return s.login(t, "root")
}

// adminAndUser makes the admin and a user, logs both in and returns the
// user's id: the cast of most admin tests.
func (s *server) adminAndUser(t *testing.T, name string) (root, user tokens, userID string) {
	t.Helper()
	root = s.admin(t)
	s.register(t, name)
	user = s.login(t, name)
	return root, user, s.userID(t, user)
}

// pages follows a listing's next_cursor from path to its last page (which
// must say null) and returns the items of every page under key.
func (s *server) pages(t *testing.T, path, key, access string) []map[string]any {
	t.Helper()
	var items []map[string]any
	cursor := ""
	for range 50 {
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		r := s.do(t, "GET", p, nil, bearer(access))
		if r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
		for _, x := range r.body[key].([]any) {
			items = append(items, x.(map[string]any))
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			if r.body["next_cursor"] != nil {
				t.Fatalf("next_cursor on the last page: %v", r.body["next_cursor"])
			}
			return items
		}
		cursor = next
	}
	t.Fatalf("%s: no last page after 50", path)
	return nil
}

func (s *server) userID(t *testing.T, tk tokens) string {
	t.Helper()
	r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access))
	if r.status != 200 {
		t.Fatalf("/v1/me: %d %s", r.status, r.raw)
	}
	return r.body["user"].(map[string]any)["id"].(string)
}

func TestAdminRoutesForbiddenToUsers(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	ann := s.login(t, "ann")
	id := s.userID(t, ann)
	for _, rt := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/admin/users", nil},
		{"POST", "/v1/admin/users", map[string]string{"username": "eve2", "password": "long enough", "role": "admin"}},
		{"PATCH", "/v1/admin/users/" + id, map[string]string{"role": "admin"}},
		{"GET", "/v1/admin/users/" + id + "/sessions", nil},
		{"DELETE", "/v1/admin/users/" + id + "/sessions", nil},
		{"DELETE", "/v1/admin/sessions/" + ann.session, nil},
		{"POST", "/v1/admin/revoke-all", nil},
		{"GET", "/v1/admin/events", nil},
	} {
		r := s.do(t, rt.method, rt.path, rt.body, bearer(ann.access))
		if r.status != 403 || r.errCode() != "forbidden" {
			t.Errorf("%s %s as a user: %d %s", rt.method, rt.path, r.status, r.raw)
		}
		if r := s.do(t, rt.method, rt.path, rt.body, nil); r.status != 401 {
			t.Errorf("%s %s anonymous: %d", rt.method, rt.path, r.status)
		}
	}
	// Nothing happened: ann is still a user with a live session.
	me := s.do(t, "GET", "/v1/me", nil, bearer(ann.access))
	if me.status != 200 || me.body["user"].(map[string]any)["role"] != "user" {
		t.Fatalf("after the attempts: %d %s", me.status, me.raw)
	}
	if _, err := s.svc.FindUser(context.Background(), "eve2"); err == nil {
		t.Fatal("a user created the account eve2")
	}
}

func TestAdminUsersPagingAndCreate(t *testing.T) {
	s := newServer(t, options{})
	root := s.admin(t)
	for _, n := range []string{"dave", "Bob", "carol", "alice"} {
		r := s.do(t, "POST", "/v1/admin/users", map[string]string{"username": n, "password": "long enough", "role": "user"}, bearer(root.access))
		if r.status != 201 {
			t.Fatalf("create %s: %d %s", n, r.status, r.raw)
		}
	}
	if r := s.do(t, "POST", "/v1/admin/users", map[string]string{"username": "BOB", "password": "long enough"}, bearer(root.access)); r.status != 409 {
		t.Fatalf("duplicate: %d", r.status)
	}
	if r := s.do(t, "POST", "/v1/admin/users", map[string]string{"username": "x1x", "password": "long enough", "role": "god"}, bearer(root.access)); r.status != 400 {
		t.Fatalf("bad role: %d", r.status)
	}
	var names []string
	for _, u := range s.pages(t, "/v1/admin/users?limit=2", "users", root.access) {
		names = append(names, u["username"].(string))
	}
	if fmt.Sprint(names) != "[alice Bob carol dave root]" {
		t.Fatalf("paged users %v", names)
	}
	if r := s.do(t, "GET", "/v1/admin/users?limit=0", nil, bearer(root.access)); r.status != 400 {
		t.Fatalf("limit=0: %d", r.status)
	}
}

func TestDisableUserOverHTTP(t *testing.T) {
	s := newServer(t, options{})
	root, ann, id := s.adminAndUser(t, "ann")
	r := s.do(t, "PATCH", "/v1/admin/users/"+id, map[string]any{"disabled": true}, bearer(root.access))
	if r.status != 200 || r.body["user"].(map[string]any)["disabled"] != true {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); r.status != 401 || r.errCode() != "token_revoked" {
		t.Fatalf("disabled user's live token: %d %s", r.status, r.raw)
	}
	if r := s.refresh(t, ann.refresh); r.status != 403 || r.errCode() != "account_disabled" {
		t.Fatalf("disabled user's refresh token: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil); r.errCode() != "account_disabled" {
		t.Fatalf("disabled login: %s", r.raw)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+id, map[string]any{"disabled": false}, bearer(root.access)); r.status != 200 {
		t.Fatalf("enable: %d", r.status)
	}
	if r := s.refresh(t, ann.refresh); r.errCode() != "session_revoked" {
		t.Fatalf("old refresh token after re-enable: %s", r.raw)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/nope", map[string]any{"disabled": true}, bearer(root.access)); r.status != 404 {
		t.Fatalf("unknown user: %d", r.status)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+id, `{"disabled":"yes"}`, bearer(root.access)); r.status != 400 {
		t.Fatalf("wrong type: %d", r.status)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+id, map[string]any{"role": "superuser"}, bearer(root.access)); r.status != 400 {
		t.Fatalf("bad role: %d", r.status)
	}
}

// TestDemotedAdminAndSameSecond: an admin who demotes themselves loses the
// admin routes with the old token at once; the refreshed token, issued in
// the same second as the change, is accepted and carries the new role.
func TestDemotedAdminAndSameSecond(t *testing.T) {
	s := newServer(t, options{})
	root := s.admin(t)
	id := s.userID(t, root)
	// Not the last admin: that demotion is refused (409 last_admin).
	if r := s.do(t, "PATCH", "/v1/admin/users/"+id, map[string]any{"role": "user"}, bearer(root.access)); r.status != 409 || r.errCode() != "last_admin" {
		t.Fatalf("demote the last admin: %d %s", r.status, r.raw)
	}
	if _, err := s.svc.CreateUser(context.Background(), "second", "pw-second-long", "admin"); err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+id, map[string]any{"role": "user"}, bearer(root.access)); r.status != 200 {
		t.Fatalf("demote: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(root.access)); r.status != 401 || r.errCode() != "token_revoked" {
		t.Fatalf("demoted admin's old token: %d %s", r.status, r.raw)
	}
	rr := s.refresh(t, root.refresh)
	if rr.status != 200 || rr.body["user"].(map[string]any)["role"] != "user" {
		t.Fatalf("refresh after demotion: %d %s", rr.status, rr.raw)
	}
	fresh := rr.body["access_token"].(string)
	if r := s.do(t, "GET", "/v1/me", nil, bearer(fresh)); r.status != 200 {
		t.Fatalf("fresh token after the change: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(fresh)); r.status != 403 {
		t.Fatalf("demoted admin's new token on an admin route: %d", r.status)
	}
	// Promotion works the same way round, within one second of clock time.
	ann := func() tokens { s.register(t, "ann"); return s.login(t, "ann") }()
	s.clock.Advance(time.Microsecond)
	annID := s.userID(t, ann)
	if _, err := s.svc.UpdateUser(context.Background(), annID, strPtr("admin"), nil, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(ann.access)); r.errCode() != "token_revoked" {
		t.Fatalf("pre-promotion token: %s", r.raw)
	}
	rr = s.refresh(t, ann.refresh)
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(rr.body["access_token"].(string))); r.status != 200 {
		t.Fatalf("post-promotion token in the same instant: %d %s", r.status, r.raw)
	}
}

func strPtr(s string) *string { return &s }

func TestRevokeAllOverHTTP(t *testing.T) {
	s := newServer(t, options{})
	root, ann, _ := s.adminAndUser(t, "ann")
	if r := s.do(t, "POST", "/v1/admin/revoke-all", nil, bearer(root.access)); r.status != 204 {
		t.Fatalf("revoke-all: %d %s", r.status, r.raw)
	}
	for _, tk := range []tokens{root, ann} {
		if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.errCode() != "token_revoked" {
			t.Fatalf("token after revoke-all: %s", r.raw)
		}
		if r := s.refresh(t, tk.refresh); r.errCode() != "session_revoked" {
			t.Fatalf("refresh after revoke-all: %s", r.raw)
		}
	}
	again := s.login(t, "ann")
	if r := s.do(t, "GET", "/v1/me", nil, bearer(again.access)); r.status != 200 {
		t.Fatalf("login after revoke-all: %d %s", r.status, r.raw)
	}
}

func TestAdminSessionRoutes(t *testing.T) {
	s := newServer(t, options{})
	root := s.admin(t)
	s.register(t, "ann")
	a1 := s.login(t, "ann")
	a2 := s.login(t, "ann")
	id := s.userID(t, a1)
	r := s.do(t, "GET", "/v1/admin/users/"+id+"/sessions", nil, bearer(root.access))
	if r.status != 200 || len(r.body["sessions"].([]any)) != 2 {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/admin/sessions/"+a1.session, nil, bearer(root.access)); r.status != 204 {
		t.Fatalf("revoke one: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a1.access)); r.errCode() != "token_revoked" {
		t.Fatal(r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a2.access)); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := s.do(t, "DELETE", "/v1/admin/users/"+id+"/sessions", nil, bearer(root.access)); r.status != 204 {
		t.Fatalf("revoke user sessions: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a2.access)); r.errCode() != "token_revoked" {
		t.Fatal(r.raw)
	}
	for _, p := range []string{"/v1/admin/sessions/nope", "/v1/admin/users/nope/sessions"} {
		if r := s.do(t, "DELETE", p, nil, bearer(root.access)); r.status != 404 {
			t.Fatalf("DELETE %s: %d", p, r.status)
		}
	}
	if r := s.do(t, "GET", "/v1/admin/users/nope/sessions", nil, bearer(root.access)); r.status != 404 {
		t.Fatalf("GET sessions of unknown user: %d", r.status)
	}
}

func TestPasswordChangeOverHTTP(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	victim := s.login(t, "ann")
	thief := s.login(t, "ann") // the thief holds this session's refresh token
	r := s.do(t, "POST", "/v1/me/password", map[string]string{"current_password": "pw-ann-long", "new_password": "brand-new-pass"}, bearer(victim.access))
	if r.status != 204 {
		t.Fatalf("password change: %d %s", r.status, r.raw)
	}
	if r := s.refresh(t, thief.refresh); r.status != 401 || r.errCode() != "session_revoked" {
		t.Fatalf("stolen refresh token after the password change: %d %s", r.status, r.raw)
	}
	if r := s.refresh(t, victim.refresh); r.status != 200 {
		t.Fatalf("victim's own session: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "POST", "/v1/me/password", map[string]string{"current_password": "wrong-wrong", "new_password": "another-pass"}, bearer(victim.access)); r.errCode() != "invalid_credentials" {
		t.Fatalf("wrong current password: %s", r.raw)
	}
	if r := s.do(t, "POST", "/v1/me/password", map[string]string{"current_password": "brand-new-pass", "new_password": "short"}, bearer(victim.access)); r.errCode() != "weak_password" {
		t.Fatalf("weak new password: %s", r.raw)
	}
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "brand-new-pass"}, nil); r.status != 200 {
		t.Fatalf("login with the new password: %d", r.status)
	}
}

func TestCSRFOnAdminRoutes(t *testing.T) {
	s := newServer(t, options{})
	root, ann, id := s.adminAndUser(t, "ann")
	cookie := map[string]string{"Cookie": "__Host-gatehouse_access=" + root.access, "Sec-Fetch-Site": "cross-site"}
	for _, rt := range []struct{ method, path string }{
		{"PATCH", "/v1/admin/users/" + id},
		{"POST", "/v1/admin/revoke-all"},
		{"DELETE", "/v1/admin/users/" + id + "/sessions"},
	} {
		r := s.do(t, rt.method, rt.path, map[string]any{"disabled": true}, cookie)
		if r.status != 403 || r.errCode() != "csrf_failed" {
			t.Fatalf("cross-site %s %s: %d %s", rt.method, rt.path, r.status, r.raw)
		}
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.access)); r.status != 200 {
		t.Fatalf("the forged requests changed something: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(root.access)); r.status != 200 {
		t.Fatalf("revoke-all went through: %d", r.status)
	}
}

func TestLoginRateLimitAndReset(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	for i := range 5 {
		r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "wrong-guess"}, nil)
		if r.errCode() != "invalid_credentials" {
			t.Fatalf("guess %d: %s", i, r.raw)
		}
	}
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil)
	if r.status != 429 || r.errCode() != "rate_limited" {
		t.Fatalf("6th attempt: %d %s", r.status, r.raw)
	}
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	s.clock.Advance(time.Duration(retry) * time.Second)
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil); r.status != 200 {
		t.Fatalf("after Retry-After: %d %s", r.status, r.raw)
	}
	// The success reset the counter: one wrong guess is not throttled.
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "wrong-guess"}, nil); r.status != 401 {
		t.Fatalf("after reset: %d", r.status)
	}
}

func TestAdminEvents(t *testing.T) {
	s := newServer(t, options{})
	root, ann, _ := s.adminAndUser(t, "ann")
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "not-it-at-all"}, map[string]string{"User-Agent": "evil\tagent"})
	annID := s.userID(t, ann)
	r := s.do(t, "GET", "/v1/admin/events?user_id="+annID+"&type=login_failed", nil, bearer(root.access))
	evs := r.body["events"].([]any)
	if r.status != 200 || len(evs) != 1 {
		t.Fatalf("filtered events: %d %s", r.status, r.raw)
	}
	e := evs[0].(map[string]any)
	if e["type"] != "login_failed" || e["user_id"] != annID || e["ip"] != "127.0.0.1" || e["user_agent"] != "evil\tagent" || e["id"] == "" || e["at"] == "" {
		t.Fatalf("event %v", e)
	}
	// Newest first, paged.
	var types []string
	for _, e := range s.pages(t, "/v1/admin/events?limit=2", "events", root.access) {
		types = append(types, e["type"].(string))
	}
	if len(types) != 3 || types[0] != "login_failed" || types[2] != "login_succeeded" {
		t.Fatalf("all events newest first: %v", types)
	}
	for _, secret := range []string{"not-it-at-all", "pw-ann-long", ann.refresh, ann.access} {
		if strings.Contains(r.raw, secret) {
			t.Fatal("an event holds a secret")
		}
	}
	if r := s.do(t, "GET", "/v1/admin/events?cursor=abc", nil, bearer(root.access)); r.status != 400 {
		t.Fatalf("bad cursor: %d", r.status)
	}
}

// GET /v1/me/events shows the caller their own events only, newest first and
// paged; no parameter reaches another account's log.
func TestMyEvents(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	s.register(t, "bob")
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "wrong-password"}, nil)
	ann := s.login(t, "ann")
	bob := s.login(t, "bob")
	annID, bobID := s.userID(t, ann), s.userID(t, bob)

	var types []string
	cursor := ""
	for range 10 {
		// user_id is the admin route's filter: here it must be ignored.
		path := "/v1/me/events?limit=1&user_id=" + bobID
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := s.do(t, "GET", path, nil, bearer(ann.access))
		if r.status != 200 {
			t.Fatalf("me/events: %d %s", r.status, r.raw)
		}
		for _, x := range r.body["events"].([]any) {
			e := x.(map[string]any)
			if e["user_id"] != annID {
				t.Fatalf("ann sees an event of another user: %v", e)
			}
			types = append(types, e["type"].(string))
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(types) != 2 || types[0] != "login_succeeded" || types[1] != "login_failed" {
		t.Fatalf("ann's events newest first: %v", types)
	}
	for _, bad := range []string{"?limit=0", "?limit=501", "?cursor=-3", "?cursor=x", "?type=nope"} {
		if r := s.do(t, "GET", "/v1/me/events"+bad, nil, bearer(ann.access)); r.status != 400 || r.errCode() != "invalid_request" {
			t.Fatalf("%s: %d %s", bad, r.status, r.raw)
		}
	}
	if r := s.do(t, "GET", "/v1/me/events", nil, nil); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
}

func TestTrustedProxy(t *testing.T) {
	xff := map[string]string{"X-Forwarded-For": "192.0.2.200, 203.0.113.7"}
	plain := newServer(t, options{})
	plain.register(t, "ann")
	r := plain.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, xff)
	me := plain.do(t, "GET", "/v1/me", nil, bearer(r.body["access_token"].(string)))
	if ip := me.body["session"].(map[string]any)["ip"]; ip != "127.0.0.1" {
		t.Fatalf("without a trusted proxy, X-Forwarded-For was believed: %v", ip)
	}
	proxied := newServer(t, options{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	proxied.register(t, "ann")
	r = proxied.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, xff)
	me = proxied.do(t, "GET", "/v1/me", nil, bearer(r.body["access_token"].(string)))
	// The rightmost untrusted hop: what our proxy saw, not what the client wrote.
	if ip := me.body["session"].(map[string]any)["ip"]; ip != "203.0.113.7" {
		t.Fatalf("behind a trusted proxy: ip %v, want 203.0.113.7", ip)
	}
}
