package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/factortest"
)

// callWith calls p with request headers hdr and body (JSON, if not nil).
func (p *proc) callWith(t *testing.T, method, path string, hdr map[string]string, body any) (int, map[string]any) {
	t.Helper()
	st, out, _ := p.callHeaders(t, method, path, hdr, body)
	return st, out
}

// callHeaders is callWith that returns the response's headers too.
func (p *proc) callHeaders(t *testing.T, method, path string, hdr map[string]string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, p.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, res.Header
}

// enrolTOTPOn registers name on p with an active TOTP factor and returns
// its secret and recovery codes.
func enrolTOTPOn(t *testing.T, p *proc, name string) (secret string, codes []string) {
	t.Helper()
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": name, "password": name + "-password"}); st != 201 {
		t.Fatalf("register %s: %d %v", name, st, out)
	}
	access, _ := p.login(t, name, name+"-password")
	st, e := p.call(t, "POST", "/v1/me/factors/totp", access, map[string]string{})
	if st != 201 {
		t.Fatalf("enrol: %d %v", st, e)
	}
	secret = e["secret"].(string)
	id := e["factor"].(map[string]any)["id"].(string)
	st, v := p.call(t, "POST", "/v1/me/factors/"+id+"/verify", access, map[string]string{"code": code(t, secret)})
	if st != 200 {
		t.Fatalf("verify: %d %v", st, v)
	}
	for _, c := range v["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	return secret, codes
}

func code(t *testing.T, secret string) string {
	t.Helper()
	c, err := factortest.TOTP(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nextCode is the code of the next time step: unused after an enrolment
// that consumed the current one, and accepted now (one step of skew).
func nextCode(t *testing.T, secret string) string {
	t.Helper()
	c, err := factortest.TOTP(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mfaTicket signs name in on p with the password: the mfa_token.
func mfaTicket(t *testing.T, p *proc, name string) string {
	t.Helper()
	st, out := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": name, "password": name + "-password"})
	if st != 403 || out["error"] != "mfa_required" {
		t.Fatalf("login %s: %d %v", name, st, out)
	}
	return out["mfa_token"].(string)
}

// raceOn runs f(i, instance) for i < n at once, alternating instances,
// and counts the 2xx answers.
func raceOn(n int, procs []*proc, f func(i int, p *proc) int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range n {
		wg.Go(func() {
			if st := f(i, procs[i%len(procs)]); st >= 200 && st < 300 {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return won
}

// secondFactorRacesAcrossInstances: one TOTP code, one recovery code and
// one elevation token, each used at once on two instances sharing one
// database, are each accepted exactly once.
func secondFactorRacesAcrossInstances(t *testing.T, a, b *proc) {
	procs := []*proc{a, b}
	// Four racers: the losers' wrong answers count toward the login
	// throttle, whose five free failures they stay within.
	const n = 4
	secret, codes := enrolTOTPOn(t, a, "mia")
	c := nextCode(t, secret)
	tickets := make([]string, n)
	for i := range tickets {
		tickets[i] = mfaTicket(t, procs[i%2], "mia")
	}
	if won := raceOn(n, procs, func(i int, p *proc) int {
		st, _ := p.call(t, "POST", "/v1/auth/mfa", "", map[string]string{"mfa_token": tickets[i], "code": c})
		return st
	}); won != 1 {
		t.Fatalf("one TOTP code on two instances at once: %d accepted, want 1", won)
	}

	_, codes = enrolTOTPOn(t, b, "max")
	for i := range tickets {
		tickets[i] = mfaTicket(t, procs[i%2], "max")
	}
	if won := raceOn(n, procs, func(i int, p *proc) int {
		st, _ := p.call(t, "POST", "/v1/auth/mfa", "", map[string]string{"mfa_token": tickets[i], "code": codes[0]})
		return st
	}); won != 1 {
		t.Fatalf("one recovery code on two instances at once: %d accepted, want 1", won)
	}

	secret, codes = enrolTOTPOn(t, a, "mo")
	st, out := b.call(t, "POST", "/v1/auth/mfa", "", map[string]string{"mfa_token": mfaTicket(t, b, "mo"), "code": nextCode(t, secret)})
	if st != 200 {
		t.Fatalf("mfa: %d %v", st, out)
	}
	access := out["access_token"].(string)
	st, out = a.callWith(t, "POST", "/v1/auth/reauthenticate", map[string]string{"Authorization": "Bearer " + access, "Gatehouse-Elevation": "one-time"},
		map[string]string{"password": "mo-password", "code": codes[0]})
	if st != 200 {
		t.Fatalf("one-time elevation: %d %v", st, out)
	}
	elevation := out["elevation_token"].(string)
	if won := raceOn(n, procs, func(i int, p *proc) int {
		st, _ := p.callWith(t, "DELETE", "/v1/sessions?scope=others", map[string]string{"Authorization": "Bearer " + access, "Gatehouse-Elevation": elevation}, nil)
		return st
	}); won != 1 {
		t.Fatalf("one elevation token on two instances at once: %d accepted, want 1", won)
	}
}

// gatehouse user mfa-reset removes a running server's account's factors:
// its sessions die at once, the password alone signs in again.
func TestCLIMFAReset(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gh.db")
	p := start(t, dir, nil)
	secret, _ := enrolTOTPOn(t, p, "ann")
	st, out := p.call(t, "POST", "/v1/auth/mfa", "", map[string]string{"mfa_token": mfaTicket(t, p, "ann"), "code": nextCode(t, secret)})
	if st != 200 {
		t.Fatalf("mfa: %d %v", st, out)
	}
	access := out["access_token"].(string)
	if code, out := runCLI(t, "", nil, "user", "mfa-reset", "--username", "ann", "--db", db); code != 0 || !strings.Contains(out, "second factors removed") {
		t.Fatalf("mfa-reset: %d %s", code, out)
	}
	waitFor(t, "mfa-reset", func() bool { st, _ := p.call(t, "GET", "/v1/me", access, nil); return st == 401 })
	if st, out := p.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 200 || out["user"].(map[string]any)["mfa"] != false {
		t.Fatalf("login after the reset: %d %v", st, out)
	}
	if code, _ := runCLI(t, "", nil, "user", "mfa-reset", "--username", "nobody", "--db", db); code == 0 {
		t.Fatal("mfa-reset of an unknown user succeeded")
	}
}
