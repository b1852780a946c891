package httpapi_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/factortest"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// totpAt is the code of secret at t (factortest.TOTP).
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := factortest.TOTP(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// mfaUser is an account with an active TOTP factor.
type mfaUser struct {
	name, password, secret, factor string
	codes                          []string
	tk                             tokens // the session that enrolled
}

// enrolTOTP registers name and enrols and verifies a TOTP factor from a
// fresh login.
func (s *server) enrolTOTP(t *testing.T, name string) mfaUser {
	t.Helper()
	s.register(t, name)
	tk := s.login(t, name)
	e := s.do(t, "POST", "/v1/me/factors/totp", map[string]string{"label": "phone"}, bearer(tk.access))
	if e.status != 201 {
		t.Fatalf("enrol: %d %s", e.status, e.raw)
	}
	secret := e.body["secret"].(string)
	uri := e.body["otpauth_uri"].(string)
	if !strings.HasPrefix(uri, "otpauth://totp/gatehouse.test:"+name+"?secret="+secret+"&issuer=gatehouse.test&algorithm=SHA1&digits=6&period=30") {
		t.Fatalf("otpauth URI: %s", uri)
	}
	f := e.body["factor"].(map[string]any)
	if f["active"] != false || f["label"] != "phone" || f["last_used_at"] != nil {
		t.Fatalf("a new factor: %s", e.raw)
	}
	id := f["id"].(string)
	v := s.do(t, "POST", "/v1/me/factors/"+id+"/verify", map[string]string{"code": totpAt(t, secret, s.clock.Now())}, bearer(tk.access))
	if v.status != 200 || v.body["factor"].(map[string]any)["active"] != true {
		t.Fatalf("verify: %d %s", v.status, v.raw)
	}
	var codes []string
	for _, c := range v.body["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != 10 {
		t.Fatalf("first factor: %d recovery codes, want 10", len(codes))
	}
	return mfaUser{name: name, password: "pw-" + name + "-long", secret: secret, factor: id, codes: codes, tk: tk}
}

// startLogin signs in with the password and returns the mfa_token.
func (s *server) startLogin(t *testing.T, u mfaUser) string {
	t.Helper()
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": u.name, "password": u.password}, nil)
	if r.status != 403 || r.errCode() != "mfa_required" {
		t.Fatalf("login of an account with a factor: %d %s", r.status, r.raw)
	}
	if _, has := r.body["access_token"]; has || len(r.header.Values("Set-Cookie")) > 0 {
		t.Fatalf("a token or cookie before the second factor: %s", r.raw)
	}
	tok := r.body["mfa_token"].(string)
	if !strings.HasPrefix(tok, "ghm_") {
		t.Fatalf("mfa_token %q", tok)
	}
	return tok
}

func (s *server) mfa(t *testing.T, tok, code string) response {
	t.Helper()
	return s.do(t, "POST", "/v1/auth/mfa", map[string]string{"mfa_token": tok, "code": code}, nil)
}

func TestLoginWithTOTP(t *testing.T) {
	s := newServer(t, options{})
	ann := s.enrolTOTP(t, "ann")

	tok := s.startLogin(t, ann)
	// The ticket opens nothing else: not an access token, not a refresh
	// token, not a socket.
	if r := s.do(t, "GET", "/v1/me", nil, bearer(tok)); r.status != 401 {
		t.Fatalf("mfa_token as an access token: %d", r.status)
	}
	if r := s.refresh(t, tok); r.status != 401 {
		t.Fatalf("mfa_token as a refresh token: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/ws", nil, map[string]string{"Authorization": "Bearer " + tok, "Connection": "Upgrade",
		"Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}); r.status != 401 {
		t.Fatalf("mfa_token on the socket: %d", r.status)
	}
	// The enrolment's code was consumed: it, and its step, are refused.
	if r := s.mfa(t, tok, totpAt(t, ann.secret, s.clock.Now())); r.status != 401 || r.errCode() != "invalid_mfa_code" {
		t.Fatalf("the enrolment's code again: %d %s", r.status, r.raw)
	}
	s.clock.Advance(30 * time.Second)
	code := totpAt(t, ann.secret, s.clock.Now())
	r := s.mfa(t, tok, code)
	if r.status != 200 {
		t.Fatalf("mfa: %d %s", r.status, r.raw)
	}
	c := claimsOf(t, r.body["access_token"].(string))
	if c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[pwd otp mfa]" {
		t.Fatalf("claims after password and code: acr %v amr %v", c["acr"], c["amr"])
	}
	if u := r.body["user"].(map[string]any); u["mfa"] != true {
		t.Fatalf("user.mfa: %v", u["mfa"])
	}
	// The refresh carries the level forward.
	rr := s.refresh(t, r.body["refresh_token"].(string))
	if c := claimsOf(t, rr.body["access_token"].(string)); c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[pwd otp mfa]" {
		t.Fatalf("after a refresh: %v %v", c["acr"], c["amr"])
	}
	// The ticket is spent; the code is spent, for every ticket.
	if r := s.mfa(t, tok, code); r.status != 401 || r.errCode() != "invalid_token" {
		t.Fatalf("a spent mfa_token: %d %s", r.status, r.raw)
	}
	if r := s.mfa(t, s.startLogin(t, ann), code); r.errCode() != "invalid_mfa_code" {
		t.Fatalf("a used code with a new ticket: %d %s", r.status, r.raw)
	}
	// An earlier step's code is refused too, though still within the skew.
	s.clock.Advance(30 * time.Second)
	if r := s.mfa(t, s.startLogin(t, ann), totpAt(t, ann.secret, s.clock.Now().Add(-60*time.Second))); r.errCode() != "invalid_mfa_code" {
		t.Fatalf("an earlier step's code: %d %s", r.status, r.raw)
	}
	// One step of skew either way is accepted.
	s.clock.Advance(30 * time.Second)
	if r := s.mfa(t, s.startLogin(t, ann), totpAt(t, ann.secret, s.clock.Now().Add(30*time.Second))); r.status != 200 {
		t.Fatalf("the next step's code: %d %s", r.status, r.raw)
	}
	// Malformed bodies change nothing and are 400.
	for _, body := range []string{`{"mfa_token":1}`, `{"code":"123456"}`, `{"mfa_token":"ghm_x","code":"1","extra":1}`} {
		if r := s.do(t, "POST", "/v1/auth/mfa", body, nil); r.status != 400 {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
	if r := s.mfa(t, "ghm_forged", "123456"); r.errCode() != "invalid_token" {
		t.Fatalf("a forged ticket: %d %s", r.status, r.raw)
	}
}

func TestMFATicketLimits(t *testing.T) {
	s := newServer(t, options{})
	ann := s.enrolTOTP(t, "ann")
	s.clock.Advance(30 * time.Second)
	tok := s.startLogin(t, ann)
	for i := range 5 {
		if r := s.mfa(t, tok, "000000"); r.errCode() != "invalid_mfa_code" {
			t.Fatalf("wrong code %d: %d %s", i, r.status, r.raw)
		}
	}
	// Dead after five: even the right code is refused.
	if r := s.mfa(t, tok, totpAt(t, ann.secret, s.clock.Now())); r.errCode() != "invalid_token" {
		t.Fatalf("right code on a dead ticket: %d %s", r.status, r.raw)
	}
	// The wrong codes counted toward the login throttle (five free
	// failures per account and address): the next attempt waits.
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": ann.name, "password": ann.password}, nil); r.status != 429 {
		t.Fatalf("login after five wrong codes: %d %s; want 429", r.status, r.raw)
	}
	s.clock.Advance(time.Minute)
	// Expired after five minutes.
	tok = s.startLogin(t, ann)
	s.clock.Advance(5*time.Minute + time.Second)
	if r := s.mfa(t, tok, totpAt(t, ann.secret, s.clock.Now())); r.errCode() != "invalid_token" {
		t.Fatalf("an expired ticket: %d %s", r.status, r.raw)
	}
	// Bound to the account: bob's ticket does not open ann's account, and a
	// password change kills ann's outstanding tickets.
	tok = s.startLogin(t, ann)
	access := s.refresh(t, ann.tk.refresh).body["access_token"].(string)
	if r := s.do(t, "POST", "/v1/me/password", map[string]string{"current_password": ann.password, "new_password": "pw-ann-changed"}, bearer(access)); r.status != 204 {
		t.Fatalf("password change: %d %s", r.status, r.raw)
	}
	s.clock.Advance(30 * time.Second)
	if r := s.mfa(t, tok, totpAt(t, ann.secret, s.clock.Now())); r.errCode() != "invalid_token" {
		t.Fatalf("a ticket of the old password: %d %s", r.status, r.raw)
	}
	var failed int
	for _, e := range s.events(t, ann.name) {
		if e == "mfa_failed" {
			failed++
		}
	}
	if failed < 5 {
		t.Fatalf("%d mfa_failed events for 6 wrong codes", failed)
	}
}

// events lists the types of the user's security events, newest first.
func (s *server) events(t *testing.T, name string) []string {
	t.Helper()
	u, err := s.svc.FindUser(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := s.svc.Events(t.Context(), auth.EventQuery{UserID: u.ID, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Type)
	}
	return out
}

// Racing uses of one code or one ticket: exactly one wins.
func TestMFARaces(t *testing.T) {
	// Room for the wrong answers the losers make: the throttle is not
	// what this test is about.
	s := newServer(t, options{realClock: true, throttle: throttle.Config{FreeFailures: 100, AccountFailures: 100}})
	ann := s.enrolTOTP(t, "ann")
	// Wait for the next step, so a fresh code is unused.
	time.Sleep(time.Until(time.Unix(time.Now().Unix()/30*30+30, 0)) + 50*time.Millisecond)
	code := totpAt(t, ann.secret, time.Now())
	const n = 8
	tickets := make([]string, n)
	for i := range tickets {
		tickets[i] = s.startLogin(t, ann)
	}
	race := func(f func(i int) response) (ok int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range n {
			wg.Go(func() {
				if r := f(i); r.status == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return ok
	}
	if ok := race(func(i int) response { return s.mfa(t, tickets[i], code) }); ok != 1 {
		t.Fatalf("one TOTP code on %d tickets at once: %d accepted, want 1", n, ok)
	}
	if ok := race(func(i int) response { return s.mfa(t, tickets[(i+1)%n], ann.codes[0]) }); ok != 1 {
		t.Fatalf("one recovery code on %d tickets at once: %d accepted, want 1", n, ok)
	}
	one := s.startLogin(t, ann)
	if ok := race(func(i int) response { return s.mfa(t, one, ann.codes[1+i]) }); ok != 1 {
		t.Fatalf("%d recovery codes on one ticket at once: %d accepted, want 1", n, ok)
	}
}

func TestRecoveryCodes(t *testing.T) {
	s := newServer(t, options{})
	ann := s.enrolTOTP(t, "ann")
	// Typed loosely: upper case, without dashes.
	loose := strings.ToUpper(strings.ReplaceAll(ann.codes[3], "-", ""))
	r := s.mfa(t, s.startLogin(t, ann), loose)
	if r.status != 200 {
		t.Fatalf("a recovery code: %d %s", r.status, r.raw)
	}
	if c := claimsOf(t, r.body["access_token"].(string)); c["acr"] != "aal2" {
		t.Fatalf("recovery code: acr %v", c["acr"])
	}
	if r := s.mfa(t, s.startLogin(t, ann), ann.codes[3]); r.errCode() != "invalid_mfa_code" {
		t.Fatalf("a used recovery code: %d %s", r.status, r.raw)
	}
	access := r.body["access_token"].(string)
	f := s.do(t, "GET", "/v1/me/factors", nil, bearer(access))
	if f.body["recovery_codes_left"] != float64(9) || len(f.body["factors"].([]any)) != 1 {
		t.Fatalf("factors: %s", f.raw)
	}
	if strings.Contains(f.raw, ann.secret) || strings.Contains(f.raw, "secret") {
		t.Fatalf("a factor listing shows a secret: %s", f.raw)
	}
	if evs := s.events(t, "ann"); !slices.Contains(evs, "recovery_code_used") || !slices.Contains(evs, "mfa_enrolled") {
		t.Fatalf("events: %v", evs)
	}
	// Regenerated: the old ones stop working, ten new ones do.
	g := s.do(t, "POST", "/v1/me/recovery-codes", nil, bearer(access))
	if g.status != 200 || len(g.body["recovery_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %s", g.status, g.raw)
	}
	if r := s.mfa(t, s.startLogin(t, ann), ann.codes[4]); r.errCode() != "invalid_mfa_code" {
		t.Fatalf("an old code after regeneration: %d %s", r.status, r.raw)
	}
	if r := s.mfa(t, s.startLogin(t, ann), g.body["recovery_codes"].([]any)[0].(string)); r.status != 200 {
		t.Fatalf("a new code: %d %s", r.status, r.raw)
	}
	// Codes are stored hashed: no code appears in the database file.
	raw := readFile(t, s.db)
	for _, c := range append(ann.codes, ann.secret) {
		if strings.Contains(raw, c) || strings.Contains(raw, strings.ReplaceAll(c, "-", "")) {
			t.Fatalf("%q is stored in clear", c)
		}
	}
}

// Step-up for an account with a factor needs aal2 and a recent proof; a
// password alone yields aal1 and cannot remove the factor.
func TestStepUpToSecondFactor(t *testing.T) {
	s := newServer(t, options{})
	ann := s.enrolTOTP(t, "ann") // ann.tk is a password-only session from before the factor
	gated := func(access string) response {
		return s.do(t, "DELETE", "/v1/me/factors/"+ann.factor, nil, bearer(access))
	}
	r := gated(ann.tk.access)
	if r.status != 401 || r.errCode() != "insufficient_user_authentication" ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `acr_values="aal2"`) {
		t.Fatalf("aal1 session on a gated route: %d %s %q", r.status, r.raw, r.header.Get("WWW-Authenticate"))
	}
	reauth := func(body map[string]string) response {
		return s.do(t, "POST", "/v1/auth/reauthenticate", body, bearer(ann.tk.access))
	}
	// The password again: still aal1.
	p := reauth(map[string]string{"password": ann.password})
	if c := claimsOf(t, p.body["access_token"].(string)); p.status != 200 || c["acr"] != "aal1" || fmt.Sprint(c["amr"]) != "[pwd]" {
		t.Fatalf("password-only re-authentication: %d %v %v", p.status, c["acr"], c["amr"])
	}
	if r := gated(p.body["access_token"].(string)); r.status != 401 {
		t.Fatalf("password-only proof removed the factor: %d", r.status)
	}
	// A code alone does not lift an aal1 session either.
	s.clock.Advance(30 * time.Second)
	c := reauth(map[string]string{"code": totpAt(t, ann.secret, s.clock.Now())})
	if cl := claimsOf(t, c.body["access_token"].(string)); c.status != 200 || cl["acr"] != "aal1" {
		t.Fatalf("code-only re-authentication of an aal1 session: %d %v", c.status, cl["acr"])
	}
	// Wrong answers.
	if r := reauth(map[string]string{"password": ann.password, "code": "000000"}); r.errCode() != "invalid_mfa_code" {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	if r := reauth(map[string]string{"password": "wrong-password", "code": "000000"}); r.errCode() != "invalid_credentials" {
		t.Fatalf("wrong password: %d %s", r.status, r.raw)
	}
	if r := reauth(map[string]string{}); r.status != 400 {
		t.Fatalf("nothing proven: %d %s", r.status, r.raw)
	}
	// Password and code: aal2, and the gated route passes.
	s.clock.Advance(30 * time.Second)
	both := reauth(map[string]string{"password": ann.password, "code": totpAt(t, ann.secret, s.clock.Now())})
	cl := claimsOf(t, both.body["access_token"].(string))
	if both.status != 200 || cl["acr"] != "aal2" || fmt.Sprint(cl["amr"]) != "[pwd otp mfa]" {
		t.Fatalf("password and code: %d %v %v", both.status, cl["acr"], cl["amr"])
	}
	// Past --reauth-max-age an aal2 session needs a new proof; a code
	// alone renews an aal2 session.
	tk := tokens{both.body["access_token"].(string), both.body["refresh_token"].(string), ann.tk.session}
	s.ageTokens(t, &tk)
	if r := gated(tk.access); r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `acr_values="aal2"`) {
		t.Fatalf("an old aal2 proof: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	code := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"code": totpAt(t, ann.secret, s.clock.Now())}, bearer(tk.access))
	if cl := claimsOf(t, code.body["access_token"].(string)); code.status != 200 || cl["acr"] != "aal2" || fmt.Sprint(cl["amr"]) != "[otp]" {
		t.Fatalf("code-only re-authentication of an aal2 session: %d %v %v", code.status, cl["acr"], cl["amr"])
	}
	// Removing the factor: every other session revoked, codes gone.
	other := s.mfa(t, s.startLogin(t, ann), ann.codes[0])
	if r := gated(code.body["access_token"].(string)); r.status != 204 {
		t.Fatalf("remove the factor: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(other.body["access_token"].(string))); r.status != 401 {
		t.Fatalf("another session after the factor's removal: %d", r.status)
	}
	me := s.do(t, "GET", "/v1/me/factors", nil, bearer(code.body["access_token"].(string)))
	if me.body["recovery_codes_left"] != float64(0) || len(me.body["factors"].([]any)) != 0 {
		t.Fatalf("after removing the last factor: %s", me.raw)
	}
	// The password alone signs in again.
	if r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": ann.password}, nil); r.status != 200 {
		t.Fatalf("login without a factor: %d %s", r.status, r.raw)
	}
}

// A one-time elevation is good for exactly one gated request of its
// session, within 60 s, and does not renew the session's auth_time.
func TestOneTimeElevation(t *testing.T) {
	s := newServer(t, options{})
	ann := s.enrolTOTP(t, "ann")
	s.clock.Advance(30 * time.Second)
	r := s.mfa(t, s.startLogin(t, ann), totpAt(t, ann.secret, s.clock.Now()))
	tk := tokens{r.body["access_token"].(string), r.body["refresh_token"].(string), r.body["session_id"].(string)}
	s.ageTokens(t, &tk)
	before := claimsOf(t, tk.access)["auth_time"]
	elevate := func() string {
		t.Helper()
		s.clock.Advance(30 * time.Second)
		e := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": ann.password, "code": totpAt(t, ann.secret, s.clock.Now())},
			map[string]string{"Authorization": "Bearer " + tk.access, "Gatehouse-Elevation": "one-time"})
		if e.status != 200 {
			t.Fatalf("one-time re-authentication: %d %s", e.status, e.raw)
		}
		if got := claimsOf(t, e.body["access_token"].(string))["auth_time"]; got != before {
			t.Fatalf("a one-time elevation renewed auth_time: %v -> %v", before, got)
		}
		return e.body["elevation_token"].(string)
	}
	gated := func(access, elevation string) int {
		return s.do(t, "DELETE", "/v1/sessions?scope=others", nil, map[string]string{"Authorization": "Bearer " + access, "Gatehouse-Elevation": elevation}).status
	}
	el := elevate()
	if !strings.HasPrefix(el, "ghe_") {
		t.Fatalf("elevation token %q", el)
	}
	if got := gated(tk.access, ""); got != 401 {
		t.Fatalf("without the elevation: %d", got)
	}
	if got := gated(tk.access, el); got != 204 {
		t.Fatalf("with the elevation: %d", got)
	}
	if got := gated(tk.access, el); got != 401 {
		t.Fatalf("the elevation twice: %d", got)
	}
	// Another session's token cannot use it, and the try spends it.
	bob := s.enrolTOTP(t, "bob")
	el = elevate()
	if got := s.do(t, "DELETE", "/v1/sessions?scope=others", nil, map[string]string{"Authorization": "Bearer " + bob.tk.access, "Gatehouse-Elevation": el}).status; got != 401 {
		t.Fatalf("another account's session used the elevation: %d", got)
	}
	if got := gated(tk.access, el); got != 401 {
		t.Fatalf("an elevation tried by another session still works: %d", got)
	}
	// 60 seconds.
	el = elevate()
	s.clock.Advance(61 * time.Second)
	if got := gated(tk.access, el); got != 401 {
		t.Fatalf("an expired elevation: %d", got)
	}
	if r := s.do(t, "POST", "/v1/auth/reauthenticate", map[string]string{"password": ann.password},
		map[string]string{"Authorization": "Bearer " + tk.access, "Gatehouse-Elevation": "please"}); r.status != 400 {
		t.Fatalf("a bad Gatehouse-Elevation: %d", r.status)
	}
}

func TestRequireMFAForRole(t *testing.T) {
	s := newServer(t, options{requireMFA: []string{"admin"}})
	if _, err := s.svc.CreateUser(t.Context(), "root", "pw-root-long", "admin"); err != nil {
		t.Fatal(err)
	}
	tk := s.login(t, "root")
	if c := claimsOf(t, tk.access); c["acr"] != "aal1" {
		t.Fatalf("acr %v", c["acr"])
	}
	for _, path := range []string{"/v1/admin/users", "/v1/sessions"} {
		if r := s.do(t, "GET", path, nil, bearer(tk.access)); r.status != 403 || r.errCode() != "mfa_enrollment_required" {
			t.Fatalf("GET %s before enrolment: %d %s", path, r.status, r.raw)
		}
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(tk.access)); r.status != 200 {
		t.Fatalf("/v1/me before enrolment: %d", r.status)
	}
	// Users of other roles are not concerned.
	s.register(t, "ann")
	if r := s.do(t, "GET", "/v1/sessions", nil, bearer(s.login(t, "ann").access)); r.status != 200 {
		t.Fatalf("a user: %d %s", r.status, r.raw)
	}
	e := s.do(t, "POST", "/v1/me/factors/totp", nil, bearer(tk.access))
	id := e.body["factor"].(map[string]any)["id"].(string)
	if r := s.do(t, "POST", "/v1/me/factors/"+id+"/verify", map[string]string{"code": totpAt(t, e.body["secret"].(string), s.clock.Now())}, bearer(tk.access)); r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/admin/users", nil, bearer(tk.access)); r.status != 200 {
		t.Fatalf("after enrolment: %d %s", r.status, r.raw)
	}
}

func TestAdminResetsMFA(t *testing.T) {
	s := newServer(t, options{})
	s.svc.CreateUser(t.Context(), "root", "pw-root-long", "admin")
	root := s.login(t, "root")
	ann := s.enrolTOTP(t, "ann")
	annID := s.do(t, "GET", "/v1/me", nil, bearer(ann.tk.access)).body["user"].(map[string]any)["id"].(string)
	if r := s.do(t, "DELETE", "/v1/admin/users/"+annID+"/factors", nil, bearer(ann.tk.access)); r.status != 403 {
		t.Fatalf("a user resetting: %d", r.status)
	}
	if r := s.do(t, "DELETE", "/v1/admin/users/"+annID+"/factors", nil, bearer(root.access)); r.status != 204 {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/v1/me", nil, bearer(ann.tk.access)); r.status != 401 {
		t.Fatalf("ann's session after the reset: %d", r.status)
	}
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": ann.password}, nil)
	if r.status != 200 || r.body["user"].(map[string]any)["mfa"] != false {
		t.Fatalf("login after the reset: %d %s", r.status, r.raw)
	}
	if !slices.Contains(s.events(t, "ann"), "mfa_reset") {
		t.Fatal("no mfa_reset event")
	}
	for _, id := range []string{"nobody", "%00", "a%27%3B--"} {
		if r := s.do(t, "DELETE", "/v1/admin/users/"+id+"/factors", nil, bearer(root.access)); r.status != 404 {
			t.Fatalf("reset of %q: %d %s", id, r.status, r.raw)
		}
	}
}

// Passkeys, driven by a software authenticator over HTTP (Chromium's
// virtual authenticator drives the browser path in e2e).
func TestPasskeys(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	key := &factortest.Authenticator{Origin: "http://gatehouse.test", UV: true}
	opts := s.do(t, "POST", "/v1/me/factors/webauthn/options", map[string]string{"label": "laptop"}, bearer(tk.access))
	if opts.status != 200 || opts.body["challenge"] == nil || opts.body["rp"].(map[string]any)["id"] != "gatehouse.test" {
		t.Fatalf("creation options: %d %s", opts.status, opts.raw)
	}
	att, err := key.Register([]byte(opts.raw))
	if err != nil {
		t.Fatal(err)
	}
	reg := s.do(t, "POST", "/v1/me/factors/webauthn", att, bearer(tk.access))
	if reg.status != 201 || reg.body["factor"].(map[string]any)["type"] != "webauthn" || len(reg.body["recovery_codes"].([]any)) != 10 {
		t.Fatalf("register: %d %s", reg.status, reg.raw)
	}
	// The challenge was single use.
	if r := s.do(t, "POST", "/v1/me/factors/webauthn", att, bearer(tk.access)); r.status != 401 || r.errCode() != "invalid_mfa_code" {
		t.Fatalf("the attestation again: %d %s", r.status, r.raw)
	}

	// Password, then the passkey.
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil)
	mt := r.body["mfa_token"].(string)
	if f := r.body["factors"].([]any); len(f) != 1 || f[0].(map[string]any)["type"] != "webauthn" {
		t.Fatalf("factors offered: %s", r.raw)
	}
	ro := s.do(t, "POST", "/v1/auth/mfa/webauthn/options", map[string]string{"mfa_token": mt}, nil)
	as, err := key.Assert([]byte(ro.raw))
	if err != nil {
		t.Fatal(err)
	}
	done := s.do(t, "POST", "/v1/auth/mfa", fmt.Sprintf(`{"mfa_token":%q,"webauthn":%s}`, mt, as), nil)
	if c := claimsOf(t, done.body["access_token"].(string)); done.status != 200 || c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[pwd hwk user mfa]" {
		t.Fatalf("password and passkey: %d %s", done.status, done.raw)
	}

	// Without a password: discoverable, user verified.
	passkey := func(a *factortest.Authenticator) response {
		o := s.do(t, "POST", "/v1/auth/passkey/options", nil, nil)
		if o.status != 200 || o.body["userVerification"] != "required" {
			t.Fatalf("passkey options: %d %s", o.status, o.raw)
		}
		as, err := a.Assert([]byte(o.raw))
		if err != nil {
			t.Fatal(err)
		}
		return s.do(t, "POST", "/v1/auth/passkey", fmt.Sprintf(`{"assertion":%s}`, as), nil)
	}
	pk := passkey(key)
	if c := claimsOf(t, pk.body["access_token"].(string)); pk.status != 200 || c["acr"] != "aal2" || fmt.Sprint(c["amr"]) != "[hwk user mfa]" {
		t.Fatalf("passkey sign-in: %d %s", pk.status, pk.raw)
	}
	// Without user verification it is not a sign-in.
	key.UV = false
	if r := passkey(key); r.status != 401 || r.errCode() != "invalid_credentials" {
		t.Fatalf("passkey sign-in without user verification: %d %s", r.status, r.raw)
	}
	key.UV = true
	// A re-authentication with the passkey.
	pkAccess := pk.body["access_token"].(string)
	o := s.do(t, "POST", "/v1/auth/reauthenticate/webauthn/options", nil, bearer(pkAccess))
	as, _ = key.Assert([]byte(o.raw))
	re := s.do(t, "POST", "/v1/auth/reauthenticate", fmt.Sprintf(`{"webauthn":%s}`, as), bearer(pkAccess))
	if c := claimsOf(t, re.body["access_token"].(string)); re.status != 200 || c["acr"] != "aal2" {
		t.Fatalf("passkey re-authentication: %d %s", re.status, re.raw)
	}
	// An assertion answering another ceremony's challenge is refused.
	o = s.do(t, "POST", "/v1/auth/reauthenticate/webauthn/options", nil, bearer(pkAccess))
	as, _ = key.Assert([]byte(o.raw))
	if r := s.do(t, "POST", "/v1/auth/passkey", fmt.Sprintf(`{"assertion":%s}`, as), nil); r.status != 401 {
		t.Fatalf("a re-authentication's assertion used to sign in: %d %s", r.status, r.raw)
	}

	// A clone: the counter goes backwards.
	key.Counter -= 2
	if r := passkey(key); r.status != 401 {
		t.Fatalf("a cloned authenticator signed in: %d %s", r.status, r.raw)
	}
	if !slices.Contains(s.events(t, "ann"), "webauthn_clone_suspected") {
		t.Fatal("no webauthn_clone_suspected event")
	}
	// Malformed WebAuthn JSON is 400 and changes nothing.
	for _, body := range []string{`{"assertion":{}}`, `{"assertion":{"id":"x","response":{}}}`, `{"assertion":"no"}`} {
		if r := s.do(t, "POST", "/v1/auth/passkey", body, nil); r.status != 400 {
			t.Errorf("%s: %d %s", body, r.status, r.raw)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(path + "-wal")
	return string(b) + string(wal)
}
