package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `gatehouse clients add|list|remove` against a running server: a service
// client gets tokens with client_secret_basic and drives the admin API; a
// resource client introspects; removing the service client (another
// process) refuses its token on the server within a second.
func TestCLIClients(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	p := start(t, dir, nil)
	add := func(args ...string) (id, secret string) {
		code, out := runCLI(t, "", nil, append([]string{"clients", "add", "--db", db}, args...)...)
		m := regexp.MustCompile(`client_id: (\S+)\nclient_secret: (ghs_\S+)`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("clients add %v: %d %s", args, code, out)
		}
		return m[1], m[2]
	}
	svcID, svcSecret := add("--name", "nightly", "--kind", "service", "--role", "admin", "--permissions", "reports:read")
	resID, resSecret := add("--name", "orders", "--kind", "resource", "--audience", "https://orders.example")
	if code, out := runCLI(t, "", nil, "clients", "add", "--db", db, "--name", "x", "--kind", "robot"); code == 0 {
		t.Fatalf("an unknown kind was accepted: %s", out)
	}
	code, out := runCLI(t, "", nil, "clients", "list", "--db", db)
	if code != 0 || !strings.Contains(out, svcID) || !strings.Contains(out, "https://orders.example") || strings.Contains(out, svcSecret) {
		t.Fatalf("clients list: %d %s", code, out)
	}
	form := func(path, id, secret string, v url.Values) (int, map[string]any) {
		req, _ := http.NewRequest("POST", p.base+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	st, tok := form("/v1/oauth/token", svcID, svcSecret, url.Values{"grant_type": {"client_credentials"}})
	if st != 200 {
		t.Fatalf("client_credentials: %d %v", st, tok)
	}
	at := tok["access_token"].(string)
	if st, out := p.call(t, "GET", "/v1/admin/users", at, nil); st != 200 {
		t.Fatalf("admin API with the service token: %d %v", st, out)
	}
	if st, out := form("/v1/oauth/introspect", resID, resSecret, url.Values{"token": {at}}); st != 200 || out["active"] != true || out["client_id"] != svcID {
		t.Fatalf("introspection by the resource client: %d %v", st, out)
	}
	if code, out := runCLI(t, "", nil, "clients", "remove", "--db", db, "--id", svcID); code != 0 {
		t.Fatalf("clients remove: %d %s", code, out)
	}
	waitFor(t, "removed client's token refused", func() bool { st, _ := p.call(t, "GET", "/v1/admin/users", at, nil); return st == 401 })
	if st, _ := form("/v1/oauth/token", svcID, svcSecret, url.Values{"grant_type": {"client_credentials"}}); st != 401 {
		t.Fatalf("a removed client's secret: %d", st)
	}
}
