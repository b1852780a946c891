package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The events outbox under kill -9: a server changing accounts and sessions
// as fast as it can is killed at a random moment, again and again; after
// each kill every committed change has its event and every event its
// change: logins, logouts, role changes, and refreshes from alternating
// addresses (each rotation to a new address with its ip_changed). (Events written after their change, as before the outbox, leave
// a window in which a crash loses the event.)
func TestEventsCommitWithTheirChangesAcrossKill9(t *testing.T) {
	dir := t.TempDir()
	env := []string{"GATEHOUSE_ADMIN_USERNAME=root", "GATEHOUSE_ADMIN_PASSWORD=root-password"}
	flags := []string{"--login-rate-per-ip", "100000", "--max-sessions-per-user", "-1", "--trusted-proxy", "127.0.0.1"}
	p := start(t, dir, env, flags...)
	if st, out := p.call(t, "POST", "/v1/auth/register", "", map[string]string{"username": "ann", "password": "ann-password"}); st != 201 {
		t.Fatalf("register: %d %v", st, out)
	}
	var annID string
	for round := range 6 {
		admin, _ := p.login(t, "root", "root-password")
		if annID == "" {
			_, out := p.call(t, "GET", "/v1/admin/users?q=ann", admin, nil)
			annID = out["users"].([]any)[0].(map[string]any)["id"].(string)
		}
		stop := make(chan struct{})
		var moved atomic.Int32 // refreshes answered from a new address this round
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					switch w {
					case 0: // role changes (role_changed)
						p.tryCall("PATCH", "/v1/admin/users/"+annID, admin, map[string]string{"role": []string{"admin", "user"}[i%2]})
					case 1: // one session refreshed from two addresses in turn (ip_changed)
						_, out := p.tryCallFrom("198.51.100.1", "/v1/auth/login", map[string]string{"username": "ann", "password": "ann-password"})
						for j := 1; ; j++ {
							rt, ok := out["refresh_token"].(string)
							if !ok {
								break
							}
							select {
							case <-stop:
								return
							default:
							}
							_, out = p.tryCallFrom(fmt.Sprintf("198.51.100.%d", 1+j%2), "/v1/auth/refresh", map[string]string{"refresh_token": rt})
							if _, ok := out["refresh_token"]; ok {
								moved.Add(1)
							}
						}
					default: // logins and logouts (login_succeeded, session_revoked)
						_, out := p.tryCall("POST", "/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"})
						if at, ok := out["access_token"].(string); ok {
							p.tryCall("POST", "/v1/auth/logout", at, nil)
						}
					}
				}
			}()
		}
		// Kill at a random moment, but only once an address change has
		// committed: on a loaded machine the first login's hash alone could
		// outlast the random delay, and the round would test nothing.
		for deadline := time.Now().Add(30 * time.Second); moved.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(150+rand.IntN(350)) * time.Millisecond)
		p.kill9(t)
		close(stop)
		wg.Wait()
		checkOutbox(t, filepath.Join(dir, "gh.db"), round)
		p = start(t, dir, env, flags...)
	}
}

// tryCall is call for a server that may be killed under it: a failed
// request is status 0.
func (p *proc) tryCall(method, path, bearer string, body any) (int, map[string]any) {
	hdr := http.Header{}
	if bearer != "" {
		hdr.Set("Authorization", "Bearer "+bearer)
	}
	return p.tryRequest(method, path, hdr, body)
}

// tryCallFrom POSTs body to path as a client at ip (behind the trusted
// proxy that the test is).
func (p *proc) tryCallFrom(ip, path string, body any) (int, map[string]any) {
	return p.tryRequest("POST", path, http.Header{"X-Forwarded-For": {ip}}, body)
}

func (p *proc) tryRequest(method, path string, hdr http.Header, body any) (int, map[string]any) {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.base+path, bytes.NewReader(j))
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func checkOutbox(t *testing.T, path string, round int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sessions := map[string]string{} // ann's sessions: id -> revoke reason
	lastIP := map[string]string{}   // id -> the address it was last used from
	rows, err := db.Query(`SELECT s.id, s.revoke_reason, s.ip FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'ann'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, reason, ip string
		rows.Scan(&id, &reason, &ip)
		sessions[id], lastIP[id] = reason, ip
	}
	rows.Close()
	logins, logouts := map[string]int{}, map[string]int{}
	eventIP := map[string]string{} // id -> the address its events say it moved to last
	moves := 0
	var roles []string
	rows, err = db.Query(`SELECT e.type, e.session_id, e.detail, e.ip FROM events e JOIN users u ON u.id = e.user_id
		WHERE u.username = 'ann' AND e.type IN ('login_succeeded', 'session_revoked', 'role_changed', 'ip_changed') ORDER BY e.seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, sid, detail, ip string
		rows.Scan(&typ, &sid, &detail, &ip)
		switch typ {
		case "login_succeeded":
			logins[sid]++
			eventIP[sid] = ip
		case "session_revoked":
			logouts[sid]++
		case "role_changed":
			roles = append(roles, detail)
		case "ip_changed": // each from the address the last one moved to
			if want := "previous IP " + eventIP[sid]; detail != want {
				t.Fatalf("round %d: session %s: ip_changed %q, want %q: a move is missing its event", round, sid, detail, want)
			}
			eventIP[sid] = ip
			moves++
		}
	}
	rows.Close()
	for id, ip := range lastIP {
		if eventIP[id] != ip {
			t.Fatalf("round %d: session %s was last used from %s, its events end at %s", round, id, ip, eventIP[id])
		}
	}
	for id, reason := range sessions {
		if logins[id] != 1 {
			t.Fatalf("round %d: session %s has %d login_succeeded events; want 1", round, id, logins[id])
		}
		if want := map[bool]int{true: 1, false: 0}[reason == "logout"]; logouts[id] != want {
			t.Fatalf("round %d: session %s (revoked for %q) has %d session_revoked events; want %d", round, id, reason, logouts[id], want)
		}
	}
	for id := range logins {
		if _, ok := sessions[id]; !ok {
			t.Fatalf("round %d: login_succeeded for session %s, which was never created", round, id)
		}
	}
	var role string
	if err := db.QueryRow(`SELECT role FROM users WHERE username = 'ann'`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	prev := "user"
	for i, d := range roles { // committed in order: each replaces the last
		from, to, _ := strings.Cut(d, " -> ")
		if from != prev {
			t.Fatalf("round %d: role_changed #%d says %q after %q: a change is missing its event", round, i+1, d, prev)
		}
		prev = to
	}
	if prev != role {
		t.Fatalf("round %d: the account's role is %q, its events end at %q", round, role, prev)
	}
	if moves == 0 {
		t.Fatalf("round %d: no refresh from a new address was audited: the test exercised nothing", round)
	}
	t.Logf("round %d: %d sessions, %d role changes, %d address changes, all audited", round, len(sessions), len(roles), moves)
}
