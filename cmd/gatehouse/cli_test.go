package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond for up to 3 s: the server follows the revocation log
// every 500 ms.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 3s", what)
	return 0
}

// TestOperatorCLIAgainstRunningServer: every CLI action lands in the running
// server without a restart.
func TestOperatorCLIAgainstRunningServer(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	p := start(t, dir, nil)
	cli := func(stdin string, args ...string) (int, string) {
		return runCLI(t, stdin, nil, append(args, "--db", db)...)
	}
	if code, out := cli("ann-password\n", "user", "create", "--username", "ann"); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	if code, out := cli("bob-password\n", "user", "create", "--username", "bob"); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	if code, out := cli("", "user", "list"); code != 0 || !strings.Contains(out, "ann") || !strings.Contains(out, "bob") {
		t.Fatalf("list: %d %s", code, out)
	}

	// sessions revoke --user: the live token dies within a second.
	access, _ := p.login(t, "ann", "ann-password")
	if code, out := cli("", "sessions", "list", "--user", "ann"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("sessions list: %d %s", code, out)
	}
	if code, out := cli("", "sessions", "revoke", "--user", "ann"); code != 0 || !strings.Contains(out, "revoked 1 session of ann") {
		t.Fatalf("sessions revoke: %d %s", code, out)
	}
	took := waitFor(t, "CLI session revocation reaching the server", func() bool {
		st, out := p.call(t, "GET", "/v1/me", access, nil)
		return st == 401 && out["error"] == "token_revoked"
	})
	t.Logf("CLI revocation enforced by the running server after %v", took)

	// sessions revoke --session ID
	access, _ = p.login(t, "ann", "ann-password")
	_, me := p.call(t, "GET", "/v1/me", access, nil)
	sid := me["session"].(map[string]any)["id"].(string)
	if code, out := cli("", "sessions", "revoke", "--session", sid); code != 0 {
		t.Fatalf("revoke --session: %d %s", code, out)
	}
	waitFor(t, "revoke --session", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })

	// user disable / enable / set-role
	access, refresh := p.login(t, "ann", "ann-password")
	if code, out := cli("", "user", "disable", "--username", "ann"); code != 0 {
		t.Fatalf("disable: %d %s", code, out)
	}
	waitFor(t, "disable", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })
	if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 403 || out["error"] != "account_disabled" {
		t.Fatalf("refresh after CLI disable: %d %v", st, out)
	}
	if code, _ := cli("", "user", "enable", "--username", "ann"); code != 0 {
		t.Fatal("enable failed")
	}
	access, refresh = p.login(t, "ann", "ann-password")
	if code, out := cli("", "user", "set-role", "--username", "ann", "--role", "admin"); code != 0 {
		t.Fatalf("set-role: %d %s", code, out)
	}
	waitFor(t, "set-role", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })
	st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	if st != 200 || out["user"].(map[string]any)["role"] != "admin" {
		t.Fatalf("refresh after set-role: %d %v", st, out)
	}
	if st, _ := p.call(t, "GET", "/v1/admin/users", out["access_token"].(string), nil); st != 200 {
		t.Fatalf("promoted user on an admin route: %d", st)
	}

	// events
	if code, out := cli("", "events", "--user", "ann", "--type", "role_changed"); code != 0 || !strings.Contains(out, "role_changed") ||
		strings.Contains(out, "login_succeeded") || !strings.Contains(out, `"ann"`) {
		t.Fatalf("events: %d %s", code, out)
	}

	// sessions revoke --all: every token, the server's admin's too.
	bobAccess, _ := p.login(t, "bob", "bob-password")
	if code, out := cli("", "sessions", "revoke", "--all"); code != 0 {
		t.Fatalf("revoke --all: %d %s", code, out)
	}
	waitFor(t, "revoke --all", func() bool { st, _ := p.call(t, "GET", "/v1/me", bobAccess, nil); return st == 401 })

	// Errors and exit codes.
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"user", "disable", "--username", "nobody"}, exitNotFound},
		{[]string{"sessions", "revoke", "--session", "nope"}, exitNotFound},
		{[]string{"sessions", "revoke"}, exitUsage},
		{[]string{"sessions", "revoke", "--all", "--user", "ann"}, exitUsage},
		{[]string{"user", "set-role", "--username", "ann", "--role", "god"}, exitUsage},
		{[]string{"user", "frobnicate"}, exitUsage},
	} {
		if code, out := cli("", c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s", c.args, code, c.code, out)
		}
	}
	for _, group := range []string{"user", "sessions", "keys", "events"} {
		if code, out := runCLI(t, "", nil, group, "--help"); code != 0 || !strings.Contains(out, "Usage: gatehouse "+group) {
			t.Errorf("%s --help: %d %s", group, code, out)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	p := start(t, dir, nil)
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	oldAccess, _ := p.login(t, "ann", "ann-password")
	if code, out := runCLI(t, "", nil, "keys", "rotate", "--db", db); code != 0 {
		t.Fatalf("rotate: %d %s", code, out)
	}
	code, out := runCLI(t, "", nil, "keys", "list", "--db", db)
	if code != 0 || !strings.Contains(out, "active (signing)") || !strings.Contains(out, ", verifying until ") || !strings.Contains(out, "(for --access-ttl 5m0s)") {
		t.Fatalf("keys list: %d %s", code, out)
	}
	// The grace follows the server's --access-ttl, given to the CLI too.
	if code, out := runCLI(t, "", nil, "keys", "list", "--db", db, "--access-ttl", "1m"); code != 0 || !strings.Contains(out, "(for --access-ttl 1m0s)") {
		t.Fatalf("keys list --access-ttl 1m: %d %s", code, out)
	}
	p.kill9(t)
	p = start(t, dir, nil)
	var jwks struct {
		Keys []struct{ Kid string } `json:"keys"`
	}
	json.Unmarshal([]byte(rawGet(t, p.base+"/.well-known/jwks.json")), &jwks)
	if len(jwks.Keys) != 2 {
		t.Fatalf("JWKS after rotation has %d keys, want the new and the retired one", len(jwks.Keys))
	}
	if st, _ := p.call(t, "GET", "/v1/me", oldAccess, nil); st != 200 {
		t.Fatalf("token signed by the retired key: %d", st)
	}
	newAccess, _ := p.login(t, "ann", "ann-password")
	hdr := func(tok string) string { return strings.Split(tok, ".")[0] }
	if hdr(newAccess) == hdr(oldAccess) {
		t.Fatal("new tokens are still signed with the retired key")
	}
}

// The account-lifecycle commands reach a running server like the others:
// permissions (tokens refused, the next refresh carries them), a password
// reset (every session revoked, the new password works), deletion (tokens
// dead, name free again), the last admin kept.
func TestCLIAccountLifecycle(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	p := start(t, dir, nil)
	cli := func(stdin string, args ...string) (int, string) {
		return runCLI(t, stdin, nil, append(args, "--db", db)...)
	}
	if code, out := cli("ann-password\n", "user", "create", "--username", "ann"); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	if code, out := cli("root-password\n", "user", "create", "--username", "root", "--role", "admin"); code != 0 {
		t.Fatalf("create admin: %d %s", code, out)
	}

	access, refresh := p.login(t, "ann", "ann-password")
	if code, out := cli("", "user", "set-permissions", "--username", "ann", "--permissions", "orders:read,billing.write"); code != 0 {
		t.Fatalf("set-permissions: %d %s", code, out)
	}
	waitFor(t, "set-permissions", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })
	st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	if st != 200 || fmt.Sprint(out["user"].(map[string]any)["permissions"]) != "[billing.write orders:read]" {
		t.Fatalf("refresh after set-permissions: %d %v", st, out)
	}
	if code, _ := cli("", "user", "set-permissions", "--username", "ann", "--permissions", "Bad Perm"); code != exitUsage {
		t.Fatalf("invalid permission: exit %d", code)
	}

	access, refresh = p.login(t, "ann", "ann-password")
	if code, out := cli("a-new-password\n", "user", "set-password", "--username", "ann"); code != 0 {
		t.Fatalf("set-password: %d %s", code, out)
	}
	waitFor(t, "set-password", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })
	if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 401 {
		t.Fatalf("refresh after a password reset: %d %v", st, out)
	}
	if st, _ := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 401 {
		t.Fatalf("old password after reset: %d", st)
	}
	if code, _ := cli("short\n", "user", "set-password", "--username", "ann"); code != exitUsage {
		t.Fatalf("weak password accepted: exit %d", code)
	}

	access, refresh = p.login(t, "ann", "a-new-password")
	if code, out := cli("", "user", "delete", "--username", "ann"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s", code, out)
	}
	waitFor(t, "delete", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })
	if st, _ := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 401 {
		t.Fatalf("refresh of a deleted account: %d", st)
	}
	if code, out := cli("", "user", "delete", "--username", "ann"); code != exitNotFound {
		t.Fatalf("delete again: %d %s", code, out)
	}
	if code, out := cli("", "user", "delete", "--username", "root"); code != exitConflict || !strings.Contains(out, "last enabled admin") {
		t.Fatalf("delete the last admin: %d %s", code, out)
	}
	if code, out := cli("", "events", "--type", "account_deleted"); code != 0 || !strings.Contains(out, "account_deleted") || !strings.Contains(out, "(deleted)") {
		t.Fatalf("events: %d %s", code, out)
	}
}

func TestOperatorCommandsRefuseAMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nowhere", "gatehouse.db")
	for _, args := range [][]string{{"events"}, {"user", "list"}, {"sessions", "list", "--user", "ann"}, {"keys", "list"}} {
		code, out := runCLI(t, "", nil, append(args, "--db", missing)...)
		if code != exitFailure || !strings.Contains(out, "no database at "+missing) || !strings.Contains(out, "--db") {
			t.Fatalf("%v on a missing database: %d %s", args, code, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("an operator command created files: %v", entries)
	}
	// Unknown event types are a usage error.
	db := filepath.Join(dir, "gh.db")
	if code, out := runCLI(t, "", nil, "migrate", "--db", db); code != 0 { // creates the database
		t.Fatalf("migrate: %d %s", code, out)
	}
	if code, out := runCLI(t, "pw-root-long-enough\n", nil, "user", "create", "--username", "root", "--db", db); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	if code, out := runCLI(t, "", nil, "events", "--type", "no_such_event", "--db", db); code != exitUsage {
		t.Fatalf("events --type unknown: %d %s", code, out)
	}
}

func TestVersionAndConfigWarnings(t *testing.T) {
	if code, out := runCLI(t, "", nil, "version"); code != 0 || !strings.HasPrefix(out, "gatehouse ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %d %s", code, out)
	}
	for _, c := range []struct {
		addr, issuer, want string
	}{
		{"0.0.0.0:8080", "http://0.0.0.0:8080", "no client can reach"},
		{"0.0.0.0:8080", "http://localhost:8080", "loopback"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080", "loopback"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"0.0.0.0:8080", "https://auth.example.com", ""},
	} {
		ws := configWarnings(serveConfig{Addr: c.addr, Issuer: c.issuer})
		got := strings.Join(ws, "\n")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("addr %s issuer %s: warnings %q, want %q", c.addr, c.issuer, got, c.want)
		}
	}
	if ws := configWarnings(serveConfig{Addr: "127.0.0.1:1", Issuer: "http://127.0.0.1:1", InsecureDevCookies: true}); len(ws) != 1 || !strings.Contains(ws[0], "insecure-dev-cookies") {
		t.Errorf("dev cookies warning: %q", ws)
	}
}

// One command shape: help on stdout (exit 0) for --help at every level,
// usage errors on stderr (exit 2), required flags refused before the
// database is touched, flag help that reads right, and the valid event
// types named when one is wrong.
func TestCommandShape(t *testing.T) {
	call := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"user", "--help"}, {"user", "create", "--help"}, {"keys", "resource", "--help"},
		{"keys", "resource", "add", "-h"}, {"clients", "add", "--help"}, {"events", "--help"}, {"serve", "--help"}, {"migrate", "--help"},
		{"bench", "--help"}, {"healthcheck", "--help"}, {"sessions", "revoke", "--help"},
	} {
		code, out, errOut := call(args...)
		if code != exitOK || !strings.Contains(out, "Usage: gatehouse") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the help on stdout", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{}, {"user"}, {"keys", "frobnicate"}, {"user", "create", "--nope"}} {
		code, out, errOut := call(args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, "Usage") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want usage on stderr, exit 2", args, code, out, errOut)
		}
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"user", "create"}, "--username"},
		{[]string{"user", "set-role", "--username", "ann"}, "--role"},
		{[]string{"sessions", "list"}, "--user"},
		{[]string{"keys", "resource", "remove"}, "--id"},
	} {
		code, _, errOut := call(append(c.args, "--db", missing)...)
		if code != exitUsage || !strings.Contains(errOut, c.flag+" is required") {
			t.Errorf("%v: exit %d, %q; want %s is required", c.args, code, errOut, c.flag)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%v opened the database before checking its flags", c.args)
		}
	}
	_, serveHelp, _ := call("serve", "--help")
	if strings.Contains(serveHelp, "-resource-key gatehouse") || !strings.Contains(serveHelp, "created on first run") {
		t.Errorf("serve --help reads wrong:\n%s", serveHelp)
	}
	_, opHelp, _ := call("user", "list", "--help")
	if strings.Contains(opHelp, "created on first run") || !strings.Contains(opHelp, "the server's database") {
		t.Errorf("an operator command's help says its database is created:\n%s", opHelp)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	if code, _, errOut := call("migrate", "--db", db); code != exitOK {
		t.Fatalf("migrate: %d %s", code, errOut)
	}
	code, _, errOut := call("events", "--db", db, "--type", "no_such_event")
	if code != exitUsage || !strings.Contains(errOut, "login_succeeded") || !strings.Contains(errOut, "csrf_failed") {
		t.Errorf("unknown event type: exit %d, %q; want the valid types listed", code, errOut)
	}
	// bench reads the environment like every command.
	t.Setenv("GATEHOUSE_CONCURRENCY", "0")
	if code, _, errOut := call("bench"); code != exitUsage || !strings.Contains(errOut, "bad concurrency") {
		t.Errorf("bench with GATEHOUSE_CONCURRENCY=0: exit %d, %q", code, errOut)
	}
}

// bench drives a real server through every scenario without a failed
// request, each virtual user chaining its own refresh tokens: with no reuse
// grace, a token presented twice is reuse, which revokes the session and
// fails every later refresh of that user.
func TestBenchAgainstRunningServer(t *testing.T) {
	p := start(t, t.TempDir(), nil, "--reuse-grace", "0s")
	code, out := runCLI(t, "", nil, "bench", "--url", p.base, "--duration", "300ms", "--concurrency", "1,3", "--scenarios", "refresh,me,refresh")
	if code != exitOK {
		t.Fatalf("bench: exit %d\n%s", code, out)
	}
	rows := 0
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] == "scenario" {
			continue
		}
		rows++
		if rps, _ := strconv.ParseFloat(f[2], 64); rps <= 0 || f[5] != "0" {
			t.Errorf("row %q: want requests per second and no errors", line)
		}
	}
	if rows != 6 || strings.Contains(out, "first error") {
		t.Fatalf("want six clean rows:\n%s", out)
	}
}
