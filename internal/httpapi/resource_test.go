package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

func (s *server) form(t *testing.T, path, key string, v url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: not JSON: %q", path, raw)
		}
	}
	return res.StatusCode, out, res.Header
}

func TestIntrospection(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tk.access}})
	if st != 200 || out["active"] != true || out["token_type"] != "Bearer" || out["cnf"] != nil || out["sid"] != tk.session || out["role"] != "user" || out["sub"] == nil {
		t.Fatalf("active access token: %d %v", st, out)
	}
	// RFC 7662 §2.2's fields, as the token says.
	claims := claimsOf(t, tk.access)
	for k, want := range map[string]any{"username": "ann", "client_id": "gatehouse", "scope": "", "iss": "http://gatehouse.test",
		"aud": "http://gatehouse.test", "jti": claims["jti"], "acr": "aal1", "exp": float64(int64(claims["exp"].(float64))),
		"iat": float64(int64(claims["iat"].(float64))), "nbf": float64(int64(claims["iat"].(float64)))} {
		if out[k] != want {
			t.Errorf("introspection %s = %v, want %v", k, out[k], want)
		}
	}
	// A refresh token is never active for a resource server: it must not
	// be mistaken for an access token.
	st, out, _ = s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tk.refresh}})
	if st != 200 || len(out) != 1 || out["active"] != false {
		t.Fatalf("refresh token introspected: %d %v", st, out)
	}
	// Introspecting is not using: the refresh token still works after.
	next := s.refresh(t, tk.refresh)
	if next.status != 200 {
		t.Fatalf("refresh after introspection: %d", next.status)
	}
	for name, tok := range map[string]string{"garbage": "nope", "forged refresh": "ghr_" + strings.Repeat("A", 75)} {
		st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tok}})
		if st != 200 || len(out) != 1 || out["active"] != false {
			t.Fatalf("%s: %d %v; want only {\"active\":false}", name, st, out)
		}
	}
	s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": next.body["refresh_token"].(string)}, nil)
	if _, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {tk.access}}); len(out) != 1 || out["active"] != false {
		t.Fatalf("revoked token: %v", out)
	}
	// Callers must authenticate.
	if st, out, hdr := s.form(t, "/v1/oauth/introspect", "", url.Values{"token": {tk.access}}); st != 401 || out["error"] != "invalid_client" || hdr.Get("WWW-Authenticate") != `Basic realm="gatehouse"` {
		t.Fatalf("no key: %d %v", st, out)
	}
	if st, _, _ := s.form(t, "/v1/oauth/introspect", tk.access, url.Values{"token": {tk.access}}); st != 401 {
		t.Fatalf("an access token as the resource key: %d", st)
	}
	if st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{}); st != 400 || out["error"] != "invalid_request" {
		t.Fatalf("no token: %d %v", st, out)
	}
}

func TestResourceKeyGuessingIsThrottled(t *testing.T) {
	s := newServer(t, options{})
	var last int
	var hdr http.Header
	for range 25 {
		last, _, hdr = s.form(t, "/v1/oauth/introspect", "guess-guess-guess-guess-guess-guess", url.Values{"token": {"x"}})
	}
	if last != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("after 25 wrong keys: %d", last)
	}
	// A guard at the same address holding a valid key is not throttled by
	// its neighbour's failures: the feed and introspection still answer.
	if st, out, _ := s.form(t, "/v1/oauth/introspect", resourceKey, url.Values{"token": {"x"}}); st != 200 {
		t.Fatalf("a valid key from the throttled address: %d %v", st, out)
	}
	if r := s.do(t, "GET", "/v1/revocations", nil, bearer(resourceKey)); r.status != 200 {
		t.Fatalf("the revocation feed with a valid key from the throttled address: %d %s", r.status, r.raw)
	}
	if last, _, _ = s.form(t, "/v1/oauth/introspect", "guess-guess-guess-guess-guess-guess", url.Values{"token": {"x"}}); last != 429 {
		t.Fatalf("wrong keys after a valid one: %d; still throttled", last)
	}
}

func TestOAuthRevoke(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	a := s.login(t, "ann")
	b := s.login(t, "ann")
	if st, _, _ := s.form(t, "/v1/oauth/revoke", resourceKey, url.Values{"token": {a.refresh}, "token_type_hint": {"refresh_token"}}); st != 200 {
		t.Fatalf("revoke refresh token: %d", st)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(a.access)); r.errCode() != "token_revoked" {
		t.Fatalf("session of a revoked refresh token: %s", r.raw)
	}
	if st, _, _ := s.form(t, "/v1/oauth/revoke", resourceKey, url.Values{"token": {b.access}}); st != 200 {
		t.Fatalf("revoke access token: %d", st)
	}
	if r := s.refresh(t, b.refresh); r.errCode() != "session_revoked" {
		t.Fatalf("session of a revoked access token: %s", r.raw)
	}
	if st, _, _ := s.form(t, "/v1/oauth/revoke", resourceKey, url.Values{"token": {"unknown-token"}}); st != 200 {
		t.Fatalf("unknown token: %d", st)
	}
	if st, _, _ := s.form(t, "/v1/oauth/revoke", "", url.Values{"token": {b.refresh}}); st != 401 {
		t.Fatalf("unauthenticated revoke: %d", st)
	}
}

func TestRevocationFeed(t *testing.T) {
	s := newServer(t, options{realClock: true})
	s.register(t, "ann")
	a := s.login(t, "ann")
	b := s.login(t, "ann")
	get := func(q string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", s.URL+"/v1/revocations"+q, nil)
		req.Header.Set("Authorization", "Bearer "+resourceKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": a.refresh}, nil)
	st, snap := get("")
	sessions := snap["sessions"].([]any)
	if st != 200 || len(sessions) != 1 || sessions[0].(map[string]any)["sid"] != a.session || snap["global_not_before"] != nil {
		t.Fatalf("snapshot: %d %v", st, snap)
	}
	cursor := snap["cursor"].(string)
	// Nothing new: a long poll waits, then answers empty with the same cursor.
	start := time.Now()
	st, empty := get("?since=" + cursor + "&wait=300ms")
	if st != 200 || len(empty["sessions"].([]any)) != 0 || empty["cursor"] != cursor || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("empty long poll: %d %v after %v", st, empty, time.Since(start))
	}
	// A revocation during the long poll answers it at once.
	done := make(chan map[string]any)
	go func() { _, out := get("?since=" + cursor + "&wait=20s"); done <- out }()
	time.Sleep(100 * time.Millisecond)
	revokedAt := time.Now()
	s.do(t, "DELETE", "/v1/sessions/"+b.session, nil, bearer(b.access))
	select {
	case out := <-done:
		got := out["sessions"].([]any)
		if len(got) != 1 || got[0].(map[string]any)["sid"] != b.session {
			t.Fatalf("long poll answer %v", out)
		}
		t.Logf("long poll answered %v after the revocation", time.Since(revokedAt))
		cursor = out["cursor"].(string)
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not wake up on a revocation")
	}
	// User and global cutoffs.
	root, _ := s.svc.CreateUser(context.Background(), "root", "pw-root-long", "admin")
	_ = root
	annID := s.userID(t, s.login(t, "ann"))
	admin := "admin"
	s.svc.UpdateUser(context.Background(), annID, &admin, nil, auth.Meta{})
	s.svc.RevokeAll(context.Background(), auth.Meta{})
	_, out := get("?since=" + cursor)
	users := out["users"].([]any)
	if len(users) != 1 || users[0].(map[string]any)["user_id"] != annID || out["global_not_before"] == nil {
		t.Fatalf("cutoffs: %v", out)
	}
	if _, err := time.Parse(time.RFC3339Nano, out["global_not_before"].(string)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"?since=abc", "?since=-4", "?wait=forever"} {
		if st, _ := get(q); st != 400 {
			t.Errorf("%s: %d", q, st)
		}
	}
	req, _ := http.NewRequest("GET", s.URL+"/v1/revocations", nil)
	if res, _ := http.DefaultClient.Do(req); res.StatusCode != 401 {
		t.Fatalf("feed without a key: %d", res.StatusCode)
	}
}
