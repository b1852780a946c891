package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
)

const pgResourceKey = "resource-key-shared-by-instances-0123456789"

var pgEnv = []string{"GATEHOUSE_SECRET=" + strings.Repeat("shared-secret-", 4), "GATEHOUSE_RESOURCE_KEY=" + pgResourceKey}

// TestTwoInstancesOnPostgres runs two `gatehouse serve` processes on one
// database: any instance serves any request, and a revocation on one is
// enforced by the other within a second.
func TestTwoInstancesOnPostgres(t *testing.T) {
	db := postgres.TestSchema(t)
	a := startDB(t, db, pgEnv)
	b := startDB(t, db, pgEnv)
	if rawGet(t, a.base+"/.well-known/jwks.json") != rawGet(t, b.base+"/.well-known/jwks.json") {
		t.Fatal("the instances publish different keys")
	}
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register on A: %d %v", st, out)
	}
	access, refresh := a.login(t, "ann", "ann-password")
	st, out := b.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	if st != 200 {
		t.Fatalf("refresh on B of a login on A: %d %v", st, out)
	}
	if st, _ := b.call(t, "GET", "/v1/me", access, nil); st != 200 {
		t.Fatalf("A's access token on B: %d", st)
	}
	newAccess := out["access_token"].(string)
	if st, _ := a.call(t, "GET", "/v1/me", newAccess, nil); st != 200 {
		t.Fatalf("B's access token on A: %d", st)
	}
	// A resource server long-polling A's feed hears of a revocation made on B.
	req, _ := http.NewRequest("GET", a.base+"/v1/revocations", nil)
	req.Header.Set("Authorization", "Bearer "+pgResourceKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var snap map[string]any
	json.NewDecoder(res.Body).Decode(&snap)
	res.Body.Close()
	feed := make(chan map[string]any, 1)
	go func() {
		req, _ := http.NewRequest("GET", a.base+"/v1/revocations?wait=20s&since="+snap["cursor"].(string), nil)
		req.Header.Set("Authorization", "Bearer "+pgResourceKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			feed <- nil
			return
		}
		defer res.Body.Close()
		var out map[string]any
		json.NewDecoder(res.Body).Decode(&out)
		feed <- out
	}()
	time.Sleep(100 * time.Millisecond)
	// Revoke on B; refused on A within a second.
	if st, _ := b.call(t, "POST", "/v1/auth/logout", newAccess, nil); st != 204 {
		t.Fatalf("logout on B: %d", st)
	}
	start := time.Now()
	for {
		st, out := a.call(t, "GET", "/v1/me", newAccess, nil)
		if st == 401 && out["error"] == "token_revoked" {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("A still accepts the token revoked on B after %v: %d %v", time.Since(start), st, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("revocation on B enforced on A after %v", time.Since(start))
	select {
	case out := <-feed:
		sessions, _ := out["sessions"].([]any)
		if len(sessions) != 1 {
			t.Fatalf("A's feed after a revocation on B: %v", out)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("A's feed long poll was not woken by a revocation on B")
	}
	if code, out := runCLI(t, "", nil, "migrate", "--db", db); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate on a migrated database: %d %s", code, out)
	}
	socketHearsOtherInstance(t, a, b, "ann", "ann-password")
	secondFactorRacesAcrossInstances(t, a, b)
}

// socketHearsOtherInstance: a socket on a receives the security event of a
// change made on b (a sign-in), read from the shared outbox, within the
// outbox's polling bound (0.5 s, with room for a loaded machine).
func socketHearsOtherInstance(t *testing.T, a, b *proc, user, pw string) {
	t.Helper()
	access, _ := a.login(t, user, pw)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(a.base, "http", "ws", 1)+"/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + access}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	read := func() map[string]any {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("socket on A: %v", err)
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		return m
	}
	if m := read(); m["type"] != "hello" {
		t.Fatalf("first message %v", m)
	}
	start := time.Now()
	st, out := b.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": user, "password": pw})
	if st != 200 {
		t.Fatalf("login on B: %d %v", st, out)
	}
	for {
		m := read()
		ev, _ := m["event"].(map[string]any)
		if m["type"] == "event" && ev["type"] == "login_succeeded" && ev["session_id"] == out["session_id"] {
			break
		}
	}
	took := time.Since(start)
	t.Logf("a sign-in on B reached a socket on A in %v", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Fatalf("a sign-in on B reached a socket on A after %v", took)
	}
}

// TestRefreshRaceAcrossInstances: the same refresh token presented to both
// instances at once never forks the session.
func TestRefreshRaceAcrossInstances(t *testing.T) {
	db := postgres.TestSchema(t)
	refreshRace(t, startDB(t, db, pgEnv), startDB(t, db, pgEnv))
}

// refreshRace presents one refresh token to instances a and b at once,
// 50 times: every answer carries the same successor.
func refreshRace(t *testing.T, a, b *proc) {
	t.Helper()
	a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"})
	_, refresh := a.login(t, "ann", "ann-password")
	const n = 50
	got := make([]string, n)
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := a
			if i%2 == 1 {
				p = b
			}
			body, _ := json.Marshal(map[string]string{"refresh_token": refresh})
			<-startGun
			res, err := http.Post(p.base+"/v1/auth/refresh", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var out map[string]any
			json.NewDecoder(res.Body).Decode(&out)
			if res.StatusCode != 200 {
				t.Errorf("refresh %d on %s: %d %v", i, p.base, res.StatusCode, out)
				return
			}
			got[i] = out["refresh_token"].(string)
		}()
	}
	close(startGun)
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("response %d carries another successor: the session forked", i)
		}
	}
	if st, _ := b.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": got[0]}); st != 200 {
		t.Fatalf("the one successor: %d", st)
	}
}

// proxy is a TCP relay to PostgreSQL that the test can cut, to stage a
// database outage without touching the shared server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() { p.mu.Lock(); p.down = false; p.mu.Unlock() }

// TestPostgresOutage: with the database gone the server answers 503 and
// writes nothing half-way; when it returns, the server recovers by itself
// and the same refresh token still works.
func TestPostgresOutage(t *testing.T) {
	db := postgres.TestSchema(t)
	px := newProxy(t, "127.0.0.1:5432")
	viaProxy := strings.Replace(db, "127.0.0.1:5432", px.ln.Addr().String(), 1)
	p := startDB(t, viaProxy, pgEnv)
	p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"})
	_, refresh := p.login(t, "ann", "ann-password")

	px.cut()
	if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 503 || out["error"] != "unavailable" {
		t.Fatalf("refresh during the outage: %d %v", st, out)
	}
	if st, _ := p.call(t, "GET", "/readyz", "", nil); st != 503 {
		t.Fatalf("readyz during the outage: %d", st)
	}
	if st, _ := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 503 {
		t.Fatalf("login during the outage: %d", st)
	}
	if st, _ := p.call(t, "GET", "/healthz", "", nil); st != 200 { // alive, not ready
		t.Fatalf("healthz: %d", st)
	}
	px.restore()
	start := time.Now()
	for {
		st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
		if st == 200 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no recovery after the database came back: %d %v", st, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("recovered %v after the database came back", time.Since(start))
}

// TestDeletionAcrossInstances: an account deleted on B is dead on A at once
// (access and refresh tokens), the feed carries it, and a re-registered
// name on A is a new account. Bad input never looks like an outage on
// PostgreSQL (it refuses NUL bytes and invalid UTF-8 in text).
func TestDeletionAcrossInstances(t *testing.T) {
	db := postgres.TestSchema(t)
	a := startDB(t, db, pgEnv)
	b := startDB(t, db, pgEnv)
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	access, refresh := a.login(t, "ann", "ann-password")
	_, me := a.call(t, "GET", "/v1/me", access, nil)
	oldID := me["user"].(map[string]any)["id"].(string)

	// Deleted on B (fresh login there: DELETE /v1/me needs a recent proof).
	bAccess, _ := b.login(t, "ann", "ann-password")
	if st, out := b.call(t, "DELETE", "/v1/me", bAccess, nil); st != 204 {
		t.Fatalf("DELETE /v1/me on B: %d %v", st, out)
	}
	start := time.Now()
	for {
		st, out := a.call(t, "GET", "/v1/me", access, nil)
		if st == 401 && out["error"] == "token_revoked" {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("A still accepts a deleted account's token after %v: %d %v", time.Since(start), st, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("deletion on B enforced on A after %v", time.Since(start))
	if st, out := a.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 401 || out["error"] != "invalid_refresh_token" {
		t.Fatalf("refresh of a deleted account on A: %d %v", st, out)
	}
	// The feed carries the user cutoff.
	req, _ := http.NewRequest("GET", a.base+"/v1/revocations", nil)
	req.Header.Set("Authorization", "Bearer "+pgResourceKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Users []struct {
			UserID string `json:"user_id"`
		} `json:"users"`
	}
	json.NewDecoder(res.Body).Decode(&snap)
	res.Body.Close()
	found := false
	for _, u := range snap.Users {
		found = found || u.UserID == oldID
	}
	if !found {
		t.Fatalf("the feed does not carry the deleted user %s: %+v", oldID, snap)
	}
	// The name is free, and the new account is someone else.
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ANN", "password": "another-password"}); st != 201 || out["user"].(map[string]any)["id"] == oldID {
		t.Fatalf("re-register: %d %v", st, out)
	}
	newAccess, _ := b.login(t, "ann", "another-password")
	if st, out := a.call(t, "GET", "/v1/sessions", newAccess, nil); st != 200 || len(out["sessions"].([]any)) != 1 {
		t.Fatalf("new account's sessions: %d %v", st, out)
	}

	// Hostile input on PostgreSQL: a clear 4xx, never 503.
	for _, name := range []string{"nul\x00name", "bad\xffutf8"} {
		if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": name, "password": "long enough"}); st != 400 {
			t.Fatalf("register %q: %d %v", name, st, out)
		}
		if st, out := a.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": name, "password": "long enough"}); st != 401 {
			t.Fatalf("login %q: %d %v", name, st, out)
		}
	}
	// A user agent that is not UTF-8 (Go's client would refuse to send it:
	// write the request by hand).
	body := `{"username":"ann","password":"another-password"}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nUser-Agent: agent\xff\xfe with bad bytes\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	status, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.Contains(status, " 200 ") {
		t.Fatalf("login with a non-UTF-8 user agent on PostgreSQL: %q", status)
	}
	for _, path := range []string{"/v1/sessions/%00", "/v1/sessions/%FF"} {
		if st, out := a.call(t, "DELETE", path, newAccess, nil); st != 404 {
			t.Fatalf("DELETE %s: %d %v", path, st, out)
		}
	}
}

// The database password never reaches the log: not in the listening line,
// not through GATEHOUSE_DB, not in a driver's connection error.
func TestDatabasePasswordNotLogged(t *testing.T) {
	const pw = "S3cret-db-pass"
	u, err := url.Parse(postgres.TestSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw) // trust auth: any password connects
	withPW := u.String()
	assertClean := func(what, out string) {
		t.Helper()
		if strings.Contains(out, pw) || strings.Contains(out, url.QueryEscape(pw)) {
			t.Fatalf("%s: the database password is in the output:\n%s", what, out)
		}
	}
	t.Run("flag", func(t *testing.T) {
		p := startDB(t, withPW, pgEnv, "--log-level", "debug")
		p.call(t, "GET", "/readyz", "", nil)
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
		out := p.logs.String()
		if !strings.Contains(out, "gatehouse listening") || !strings.Contains(out, "xxxxx@") {
			t.Fatalf("no redacted listening line in:\n%s", out)
		}
		assertClean("serve --db", out)
	})
	t.Run("env", func(t *testing.T) {
		addr := freeAddr(t)
		cmd := exec.Command(binary, "serve", "--addr", addr, "--issuer", "http://gatehouse.test")
		cmd.Env = append(append(os.Environ(), pgEnv...), "GATEHOUSE_DB="+withPW)
		logs := &syncbuf.Buffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(logs.String(), "gatehouse listening") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		assertClean("GATEHOUSE_DB", logs.String())
		if !strings.Contains(logs.String(), "gatehouse listening") {
			t.Fatalf("did not start:\n%s", logs)
		}
	})
	t.Run("connection errors", func(t *testing.T) {
		bad := *u
		bad.Host = freeAddr(t) // nothing listens there
		for _, args := range [][]string{
			{"serve", "--addr", freeAddr(t), "--db", bad.String()},
			{"migrate", "--db", bad.String()},
			{"user", "list", "--db", bad.String()},
			{"serve", "--addr", freeAddr(t), "--db", "postgres://u:" + pw + "@[::1"},
		} {
			code, out := runCLI(t, "", pgEnv, args...)
			if code == 0 {
				t.Fatalf("%v succeeded", args)
			}
			assertClean(strings.Join(args[:1], " "), out)
		}
	})
}

// Two instances on one database give simultaneous guesses one budget: the
// attempts are reserved in the database before either instance hashes. The
// budget is the account's, 5 refilled one an hour, so that no attempt can
// honestly pass later in the test: the per-address back-off alone lets a
// sixth through one second after the fifth, and a loaded machine can take
// that long to reserve forty.
func TestConcurrentGuessesAcrossInstances(t *testing.T) {
	db := postgres.TestSchema(t)
	flags := []string{"--login-rate-per-ip", "100000", "--login-free-failures", "5",
		"--login-account-failures", "5", "--login-account-refill", "1h"}
	a := startDB(t, db, pgEnv, flags...)
	b := startDB(t, db, pgEnv, flags...)
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := []*proc{a, b}[i%2]
			st, _ := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "ann", "password": "wrong-password"})
			statuses <- st
		}()
	}
	wg.Wait()
	close(statuses)
	evaluated := 0
	for st := range statuses {
		switch st {
		case 401:
			evaluated++
		case 429:
		default:
			t.Fatalf("guess answered %d", st)
		}
	}
	if evaluated > 5 {
		t.Fatalf("%d of 40 simultaneous guesses on two instances were evaluated; 5 are free", evaluated)
	}
}

// Event cursors are 64-bit on PostgreSQL: once the sequence passes 2^31
// the second page of both feeds still answers.
func TestEventCursorsPast2To31OnPostgres(t *testing.T) {
	db := postgres.TestSchema(t)
	a := startDB(t, db, append(pgEnv, "GATEHOUSE_ADMIN_USERNAME=root", "GATEHOUSE_ADMIN_PASSWORD=root-password"))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT setval(pg_get_serial_sequence('events', 'seq'), 3000000000)`); err != nil {
		t.Fatal(err)
	}
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	var access string
	for range 3 {
		access, _ = a.login(t, "ann", "ann-password")
	}
	admin, _ := a.login(t, "root", "root-password")
	for _, tc := range []struct{ path, token string }{{"/v1/me/events", access}, {"/v1/admin/events", admin}} {
		st, first := a.call(t, "GET", tc.path+"?limit=1", tc.token, nil)
		cursor, _ := first["next_cursor"].(string)
		if st != 200 || cursor == "" {
			t.Fatalf("%s first page: %d %v", tc.path, st, first)
		}
		if n, err := strconv.ParseInt(cursor, 10, 64); err != nil || n <= 1<<31 {
			t.Fatalf("cursor %q is not past 2^31", cursor)
		}
		if st, second := a.call(t, "GET", tc.path+"?limit=1&cursor="+cursor, tc.token, nil); st != 200 || len(second["events"].([]any)) != 1 {
			t.Fatalf("%s second page past 2^31: %d %v", tc.path, st, second)
		}
	}
}

// On PostgreSQL too (two instances, each racing the other's deletion), a
// login or refresh racing the account's deletion is a 401, never 404 or
// 503.
func TestRacingDeletionOnPostgres(t *testing.T) {
	db := postgres.TestSchema(t)
	flags := []string{"--login-rate-per-ip", "100000", "--login-free-failures", "1000"}
	a := startDB(t, db, pgEnv, flags...)
	b := startDB(t, db, pgEnv, flags...)
	for round := range 10 {
		name := fmt.Sprintf("gone%d", round)
		if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": name, "password": "gone-password"}); st != 201 {
			t.Fatalf("register: %d %v", st, out)
		}
		access, refresh := a.login(t, name, "gone-password")
		var wg sync.WaitGroup
		type result struct {
			st  int
			out map[string]any
		}
		results := make(chan result, 8)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := []*proc{a, b}[i%2]
				var r result
				if i < 3 {
					r.st, r.out = p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": name, "password": "gone-password"})
				} else {
					r.st, r.out = p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
				}
				results <- r
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, out := b.call(t, "DELETE", "/v1/me", access, nil); st != 204 {
				t.Errorf("delete: %d %v", st, out)
			}
		}()
		wg.Wait()
		close(results)
		for r := range results {
			code, _ := r.out["error"].(string)
			switch {
			case r.st == 200:
			case r.st == 401 && code != "":
			default:
				t.Fatalf("round %d: %d %v racing the deletion", round, r.st, r.out)
			}
		}
	}
}

// Two instances through a transaction-mode PgBouncer (what managed
// PostgreSQL often offers): tokens cross, refreshes racing on both never
// fork a session, and a revocation on one reaches the other, pushed over a
// direct LISTEN connection when one is given and polled within a second
// otherwise.
func TestTwoInstancesThroughPgBouncer(t *testing.T) {
	for _, listen := range []bool{true, false} {
		t.Run(map[bool]string{true: "with --db-listen-url", false: "polling"}[listen], func(t *testing.T) {
			pooled, direct := postgres.TestPooledDatabase(t)
			args := []string{"--db-pooler"}
			if listen {
				args = append(args, "--db-listen-url", direct)
			}
			a := startDB(t, pooled, pgEnv, args...)
			b := startDB(t, pooled, pgEnv, args...)
			refreshRace(t, a, b)
			access, refresh := a.login(t, "ann", "ann-password")
			if st, out := b.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); st != 200 {
				t.Fatalf("refresh on B of a login on A: %d %v", st, out)
			}
			if st, _ := b.call(t, "GET", "/v1/me", access, nil); st != 200 {
				t.Fatalf("A's token on B: %d", st)
			}
			// A resource server long-polls A's feed; the logout is made on B.
			// The feed answers when A learns of it: that is the propagation.
			snap := feedPoll(t, a, "")
			woke := make(chan map[string]any, 1)
			go func() { woke <- feedPoll(t, a, "?wait=10s&since="+snap["cursor"].(string)) }()
			time.Sleep(200 * time.Millisecond) // the poll is waiting
			start := time.Now()
			if st, _ := b.call(t, "POST", "/v1/auth/logout", access, nil); st != 204 {
				t.Fatalf("logout on B: %d", st)
			}
			page := <-woke
			took := time.Since(start)
			if sessions, _ := page["sessions"].([]any); len(sessions) == 0 {
				t.Fatalf("A's feed woke without the revocation: %v", page)
			}
			t.Logf("revocation reached the other instance in %v", took.Round(time.Millisecond))
			if bound := map[bool]time.Duration{true: time.Second, false: 1500 * time.Millisecond}[listen]; took > bound {
				t.Fatalf("a logout on B reached A in %v; the bound is %v", took, bound)
			}
			socketHearsOtherInstance(t, a, b, "ann", "ann-password")
			secondFactorRacesAcrossInstances(t, a, b)
			for _, p := range []*proc{a, b} {
				if strings.Contains(p.logs.String(), "prepared statement") || strings.Contains(p.logs.String(), "unsupported startup parameter") {
					t.Fatalf("pooler trouble in the logs:\n%s", p.logs)
				}
			}
		})
	}
}

// feedPoll calls p's revocation feed with query.
func feedPoll(t *testing.T, p *proc, query string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", p.base+"/v1/revocations"+query, nil)
	req.Header.Set("Authorization", "Bearer "+pgResourceKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return out
}

// TestKill9DuringGroupCommit: 16 clients refresh as fast as they can, their
// rotations sharing statements (group commit), and the server is killed
// with SIGKILL mid-stream. Every rotation a client was answered for is in
// the database — at most the one in flight at the kill went further — and
// after a restart each client's last token still refreshes.
func TestKill9DuringGroupCommit(t *testing.T) {
	db := postgres.TestSchema(t)
	flags := []string{"--login-rate-per-ip", "1000000", "--max-sessions-per-user", "-1"}
	p := startDB(t, db, pgEnv, flags...)
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	const clients = 16
	type chain struct {
		sid     string
		start   int64  // generation after login
		acked   int64  // rotations answered 200
		refresh string // the last refresh token received
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	generation := func(sid string) int64 {
		var g int64
		if err := conn.QueryRow(context.Background(), `SELECT generation FROM sessions WHERE id = $1`, sid).Scan(&g); err != nil {
			t.Fatalf("session %s: %v", sid, err)
		}
		return g
	}
	chains := make([]*chain, clients)
	for i := range chains {
		access, refresh := p.login(t, "ann", "ann-password")
		c := &chain{sid: claim(t, access, "sid"), refresh: refresh}
		c.start = generation(c.sid)
		chains[i] = c
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for _, c := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				body, _ := json.Marshal(map[string]string{"refresh_token": c.refresh})
				res, err := client.Post(p.base+"/v1/auth/refresh", "application/json", bytes.NewReader(body))
				if err != nil {
					return // killed
				}
				var out map[string]any
				err = json.NewDecoder(res.Body).Decode(&out)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 {
					return // cut off mid-answer: not acknowledged
				}
				c.refresh, c.acked = out["refresh_token"].(string), c.acked+1
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	metrics := rawGet(t, p.base+"/metrics")
	p.kill9(t)
	wg.Wait()

	if batches := metricValue(t, metrics, `gatehouse_db_rotation_statements_total{kind="batch"}`); batches == 0 {
		t.Fatalf("no rotation shared a statement under %d clients: group commit never ran\n%s", clients, metrics)
	}
	total := int64(0)
	for _, c := range chains {
		got := generation(c.sid)
		if got < c.start+c.acked || got > c.start+c.acked+1 {
			t.Fatalf("session %s: generation %d after %d acknowledged rotations from %d: an acknowledged rotation was lost, or more than the one in flight committed",
				c.sid, got, c.acked, c.start)
		}
		total += c.acked
	}
	t.Logf("%d rotations acknowledged before the kill", total)
	if total < clients*5 {
		t.Fatalf("only %d rotations before the kill: the test proved little", total)
	}
	p = startDB(t, db, pgEnv, flags...)
	for _, c := range chains {
		if st, out := p.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": c.refresh}); st != 200 {
			t.Fatalf("the last acknowledged refresh token of %s after the restart: %d %v", c.sid, st, out)
		}
	}
}

// claim reads one string claim of a JWT (already trusted: our own server's).
func claim(t *testing.T, jwt, name string) string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	v, _ := claims[name].(string)
	if v == "" {
		t.Fatalf("no %s claim", name)
	}
	return v
}

// metricValue finds one series' value in Prometheus text.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}
