package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The events outbox under kill -9: a server changing accounts and sessions
// as fast as it can is killed at a random moment, again and again; after
// each kill every committed change has its event and every event its
// change. (Events written after their change, as before the outbox, leave
// a window in which a crash loses the event.)
func TestEventsCommitWithTheirChangesAcrossKill9(t *testing.T) {
	dir := t.TempDir()
	env := []string{"GATEHOUSE_ADMIN_USERNAME=root", "GATEHOUSE_ADMIN_PASSWORD=root-password"}
	flags := []string{"--login-rate-per-ip", "100000", "--max-sessions-per-user", "-1"}
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
		var wg sync.WaitGroup
		for w := range 3 {
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
					default: // logins and logouts (login_succeeded, session_revoked)
						_, out := p.tryCall("POST", "/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"})
						if at, ok := out["access_token"].(string); ok {
							p.tryCall("POST", "/v1/auth/logout", at, nil)
						}
					}
				}
			}()
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
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.base+path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
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
	rows, err := db.Query(`SELECT s.id, s.revoke_reason FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = 'ann'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, reason string
		rows.Scan(&id, &reason)
		sessions[id] = reason
	}
	rows.Close()
	logins, logouts := map[string]int{}, map[string]int{}
	var roles []string
	rows, err = db.Query(`SELECT e.type, e.session_id, e.detail FROM events e JOIN users u ON u.id = e.user_id
		WHERE u.username = 'ann' AND e.type IN ('login_succeeded', 'session_revoked', 'role_changed') ORDER BY e.seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, sid, detail string
		rows.Scan(&typ, &sid, &detail)
		switch typ {
		case "login_succeeded":
			logins[sid]++
		case "session_revoked":
			logouts[sid]++
		case "role_changed":
			roles = append(roles, detail)
		}
	}
	rows.Close()
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
	t.Logf("round %d: %d sessions, %d role changes, all audited", round, len(sessions), len(roles))
}
