package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
)

// These tests run the real binary: start, kill -9, restart.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gatehouse")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd  *exec.Cmd
	base string
	logs *syncbuf.Buffer
}

// start runs `gatehouse serve` on dir's database and waits until ready.
func start(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startDB(t, filepath.Join(dir, "gh.db"), env, args...)
}

// startDB runs `gatehouse serve` on db (a file or a postgres:// URL).
func startDB(t *testing.T, db string, env []string, args ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	// A fixed issuer: the default (http://ADDR) would change with the port,
	// and instances behind one load balancer share one issuer.
	cmd := exec.Command(binary, append([]string{"serve", "--addr", addr, "--issuer", "http://gatehouse.test", "--db", db}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr, logs: logs}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(p.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not become ready: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

func (p *proc) call(t *testing.T, method, path, bearer string, body any) (int, map[string]any) {
	t.Helper()
	hdr := map[string]string{}
	if bearer != "" {
		hdr["Authorization"] = "Bearer " + bearer
	}
	return p.callWith(t, method, path, hdr, body)
}

func (p *proc) login(t *testing.T, user, pw string) (access, refresh string) {
	t.Helper()
	st, out := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": user, "password": pw})
	if st != 200 {
		t.Fatalf("login %s: %d %v", user, st, out)
	}
	return out["access_token"].(string), out["refresh_token"].(string)
}

func rawGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestRestartAfterKill9: every revoked session and token stays revoked,
// every live session keeps working, the JWKS is unchanged.
func TestRestartAfterKill9(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, nil)
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	jwks := rawGet(t, p.base+"/.well-known/jwks.json")

	deadAccess, deadRefresh := p.login(t, "ann", "ann-password")
	if st, _ := p.call(t, "POST", "/v1/auth/logout", "", map[string]string{"refresh_token": deadRefresh}); st != 204 {
		t.Fatalf("logout: %d", st)
	}
	// A reused token: its session is revoked by theft detection.
	_, stolen := p.login(t, "ann", "ann-password")
	st, rotated := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": stolen})
	if st != 200 {
		t.Fatalf("refresh: %d", st)
	}
	liveAccess, liveRefresh := p.login(t, "ann", "ann-password")
	st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": liveRefresh})
	if st != 200 {
		t.Fatalf("refresh live: %d", st)
	}
	liveRefresh = out["refresh_token"].(string)

	p.kill9(t) // the last rotation must already be durable
	p = start(t, dir, nil, "--reuse-grace", "0")

	if got := rawGet(t, p.base+"/.well-known/jwks.json"); got != jwks {
		t.Fatalf("JWKS changed across restart:\n%s\n%s", jwks, got)
	}
	if st, out := p.call(t, "GET", "/v1/me", deadAccess, nil); st != 401 || out["error"] != "token_revoked" {
		t.Fatalf("logged-out session's access token after restart: %d %v", st, out)
	}
	if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": deadRefresh}); st != 401 || out["error"] != "session_revoked" {
		t.Fatalf("logged-out refresh token after restart: %d %v", st, out)
	}
	if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": stolen}); st != 401 || out["error"] != "refresh_token_reused" {
		t.Fatalf("reuse after restart: %d %v", st, out)
	}
	if st, out := p.call(t, "GET", "/v1/me", rotated["access_token"].(string), nil); st != 401 || out["error"] != "token_revoked" {
		t.Fatalf("access token of the session revoked for reuse: %d %v", st, out)
	}
	if st, out := p.call(t, "GET", "/v1/me", liveAccess, nil); st != 200 {
		t.Fatalf("live access token after restart: %d %v", st, out)
	}
	if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": liveRefresh}); st != 200 {
		t.Fatalf("live session's latest refresh token after restart: %d %v", st, out)
	}
	for _, secret := range []string{"ann-password", liveRefresh, deadAccess} {
		if strings.Contains(p.logs.String(), secret) {
			t.Fatal("server log contains a secret")
		}
	}
	info, err := os.Stat(filepath.Join(dir, "gatehouse.secret"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
}

func runCLI(t *testing.T, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestUserCreateCLI(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	if code, out := runCLI(t, "", nil, "migrate", "--db", db); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	code, out := runCLI(t, "root-password\n", nil, "user", "create", "--db", db, "--username", "root", "--role", "admin")
	if code != 0 || !strings.Contains(out, "created admin root") {
		t.Fatalf("user create: %d %s", code, out)
	}
	if strings.Contains(out, "root-password") {
		t.Fatal("the password was echoed")
	}
	if code, out := runCLI(t, "root-password\n", nil, "user", "create", "--db", db, "--username", "ROOT"); code != exitConflict {
		t.Fatalf("duplicate: %d %s", code, out)
	}
	if code, _ := runCLI(t, "short\n", nil, "user", "create", "--db", db, "--username", "bob"); code != exitUsage {
		t.Fatalf("weak password: exit %d, want %d", code, exitUsage)
	}
	if code, _ := runCLI(t, "", nil, "user", "create", "--db", db, "--username", "bob", "--password", "x"); code != exitUsage {
		t.Fatal("a --password flag must not exist: passwords never go in argv")
	}
	if code, out := runCLI(t, "", nil, "user", "create", "--help"); code != 0 || !strings.Contains(out, "stdin") {
		t.Fatalf("--help: %d %s", code, out)
	}
	// The account works against a server on the same database.
	p := start(t, dir, nil)
	_, _ = p.login(t, "root", "root-password")
	st, me := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "root", "password": "root-password"})
	if st != 200 || me["user"].(map[string]any)["role"] != "admin" {
		t.Fatalf("login as the CLI-made admin: %d %v", st, me)
	}
}

func TestServeConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, []string{
		"GATEHOUSE_ADMIN_USERNAME=boss", "GATEHOUSE_ADMIN_PASSWORD=boss-password",
		"GATEHOUSE_ACCESS_TTL=1m", "GATEHOUSE_REGISTRATION=closed",
		"GATEHOUSE_SECRET=" + strings.Repeat("s", 40),
	})
	st, out := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "boss", "password": "boss-password"})
	if st != 200 || out["expires_in"] != float64(60) || out["user"].(map[string]any)["role"] != "admin" {
		t.Fatalf("bootstrap admin login: %d %v", st, out)
	}
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "eve", "password": "eve-password"}); st != 403 || out["error"] != "registration_disabled" {
		t.Fatalf("register with GATEHOUSE_REGISTRATION=closed: %d %v", st, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "gatehouse.secret")); err == nil {
		t.Fatal("a secret file was written although GATEHOUSE_SECRET was set")
	}
	// A restart with another secret cannot read the signing keys: refuse
	// to start rather than serve with keys nobody trusts.
	p.kill9(t)
	cmd := exec.Command(binary, "serve", "--addr", freeAddr(t), "--db", filepath.Join(dir, "gh.db"))
	cmd.Env = append(os.Environ(), "GATEHOUSE_SECRET="+strings.Repeat("x", 40))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Start()
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(logs.String(), "wrong master secret") {
			t.Fatalf("start with the wrong secret: %v\n%s", err, logs.String())
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatal("server started with the wrong master secret")
	}
}

func TestBadFlagsExitWithUsage(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--registration", "maybe"},
		{"serve", "--access-ttl", "0s"},
		{"serve", "--no-such-flag"},
		{"serve", "--metrics-addr", "nonsense"},
		{"serve", "--metrics-addr", "127.0.0.1:8080"},
		{"serve", "--login-account-failures", "0"},
		{"serve", "--login-account-refill", "1ms"},
		{"serve", "--login-free-failures", "-1"},
		{"frobnicate"},
	} {
		if code, out := runCLI(t, "", nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, out)
		}
	}
	if code, _ := runCLI(t, "", []string{"GATEHOUSE_ACCESS_TTL=soon"}, "serve"); code != exitUsage {
		t.Errorf("bad env value: exit %d, want %d", code, exitUsage)
	}
}
