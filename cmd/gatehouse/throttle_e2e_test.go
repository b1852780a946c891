package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
)

// throttleFlags make the per-account budget small and slow to refill, and
// believe X-Forwarded-For from the test, so each attempt can come from its
// own address (the per-IP limits, which stay per instance, never fire).
var throttleFlags = []string{"--login-account-failures", "4", "--login-account-refill", "1h", "--trusted-proxy", "127.0.0.1"}

// loginFrom attempts a login as if from ip and returns the status.
func (p *proc) loginFrom(t *testing.T, ip, user, pw string) (int, http.Header) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	req, _ := http.NewRequest("POST", p.base+"/v1/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// spendBudget fails four logins on ann, from four addresses, spread over
// the given instances in turn.
func spendBudget(t *testing.T, instances ...*proc) {
	t.Helper()
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"} {
		if st, _ := instances[i%len(instances)].loginFrom(t, ip, "ann", "wrong-password"); st != 401 {
			t.Fatalf("failure %d: %d, want 401 (budget spent early?)", i+1, st)
		}
	}
}

// Two instances on one PostgreSQL give an attacker one per-account budget,
// not two: failures on either count on both.
func TestLoginBudgetSharedAcrossInstances(t *testing.T) {
	db := postgres.TestSchema(t)
	a := startDB(t, db, pgEnv, throttleFlags...)
	b := startDB(t, db, pgEnv, throttleFlags...)
	if st, out := a.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	spendBudget(t, a, b)
	for name, p := range map[string]*proc{"A": a, "B": b} {
		st, hdr := p.loginFrom(t, "198.51.100.9", "ann", "wrong-password")
		if st != 429 || hdr.Get("Retry-After") == "" {
			t.Fatalf("attempt on %s after 4 failures split over both: %d (Retry-After %q), want 429", name, st, hdr.Get("Retry-After"))
		}
	}
	// Another account is untouched.
	if st, out := b.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "bob", "password": "bob-password"}); st != 201 {
		t.Fatalf("register bob: %d %v", st, out)
	}
	if st, _ := a.loginFrom(t, "198.51.100.9", "bob", "bob-password"); st != 200 {
		t.Fatalf("bob's login: %d", st)
	}
}

// A kill -9 and a restart do not reset the budget (SQLite).
func TestLoginBudgetSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, nil, throttleFlags...)
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	spendBudget(t, p)
	p.kill9(t)
	p = start(t, dir, nil, throttleFlags...)
	if st, _ := p.loginFrom(t, "198.51.100.9", "ann", "ann-password"); st != 429 {
		t.Fatalf("login after a kill -9 with the budget spent: %d, want 429", st)
	}
	if strings.Contains(p.logs.String(), "ann-password") {
		t.Fatal("a password in the log")
	}
}

// --metrics-addr moves /metrics off the public listener.
func TestMetricsAddr(t *testing.T) {
	maddr := freeAddr(t)
	p := start(t, t.TempDir(), nil, "--metrics-addr", maddr)
	if st, _ := p.call(t, "GET", "/metrics", "", nil); st != 404 {
		t.Fatalf("public /metrics with --metrics-addr: %d, want 404", st)
	}
	if st, _ := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "nobody", "password": "x"}); st != 401 {
		t.Fatalf("login of nobody: %d", st)
	}
	body := rawGet(t, "http://"+maddr+"/metrics")
	for _, want := range []string{`gatehouse_build_info{commit=`, `gatehouse_logins_total{outcome="invalid_credentials"} 1`,
		"go_goroutines", "process_open_fds", `gatehouse_db_connections{pool="writer",state="idle"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics listener lacks %s", want)
		}
	}
}
