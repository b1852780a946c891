package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Attacks on the surfaces of API.md, each through the real server: what an
// attacker tries, and what must hold.

// slowHash is argon2id at a cost that makes a login take a while, so that
// logins can be caught in flight.
var slowHash = password.Params{Memory: 8 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// secondProcess opens the server's database as another process would (the
// CLI, another instance): its own service, its own hashing limiter.
func (s *server) secondProcess(t *testing.T) *auth.Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), s.db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return auth.New(auth.Config{Issuer: "http://gatehouse.test", HashParams: slowHash,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		st, token.NewKeySet(token.GenerateKey()), make([]byte, 32))
}

// Logins with the old password still hashing when the password is reset
// (or the account disabled) must not open sessions that outlive it
// (API.md: an admin reset or a ban revokes every session; a change every
// other one).
func TestAttackLoginsInFlightSurvivePasswordReset(t *testing.T) {
	for _, how := range []string{"admin reset", "password change", "disable"} {
		t.Run(how, func(t *testing.T) {
			// Eight at once from one address: more than its free failures, which
			// in-flight attempts are counted against until proven right.
			s := newServer(t, options{realClock: true, hashParams: slowHash, hashConcurrency: 1, throttle: throttle.Config{FreeFailures: 20}})
			s.register(t, "ann")
			owner := s.login(t, "ann") // the owner's own session (for the change)
			cli := s.secondProcess(t)
			ann, err := cli.FindUser(context.Background(), "ann")
			if err != nil {
				t.Fatal(err)
			}
			const n = 8
			results := make(chan response, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results <- s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, nil)
				}()
			}
			// Once the first has its answer, the others have read the
			// old hash and queue for the one hashing slot: reset now.
			first := <-results
			switch how {
			case "admin reset":
				pw := "a new password entirely"
				if _, err := cli.ChangeUser(context.Background(), ann.ID, auth.UserChange{Password: &pw}, auth.Meta{}); err != nil {
					t.Fatal(err)
				}
			case "password change":
				p := auth.Principal{UserID: ann.ID, SessionID: owner.session}
				if err := cli.ChangePassword(context.Background(), p, "pw-ann-long", "a new password entirely", auth.Meta{}); err != nil {
					t.Fatal(err)
				}
			case "disable":
				yes := true
				if _, err := cli.ChangeUser(context.Background(), ann.ID, auth.UserChange{Disabled: &yes}, auth.Meta{}); err != nil {
					t.Fatal(err)
				}
			}
			wg.Wait()
			close(results)
			s.svc.SyncRevocations(context.Background()) // the other process's revocations
			all := []response{first}
			for r := range results {
				all = append(all, r)
			}
			survivors := 0
			for i, r := range all {
				if r.status != 200 {
					if !(r.status == 401 && r.errCode() == "invalid_credentials" || how == "disable" && r.status == 403 && r.errCode() == "account_disabled") {
						t.Errorf("login %d: %d %s; want 200, 401 invalid_credentials or (disabled) 403 account_disabled", i, r.status, r.raw)
					}
					continue
				}
				if me := s.do(t, "GET", "/v1/me", nil, bearer(r.body["access_token"].(string))); me.status == 200 {
					survivors++
				}
				if rr := s.refresh(t, r.body["refresh_token"].(string)); rr.status == 200 {
					survivors++
				}
			}
			if survivors > 0 {
				t.Fatalf("%d tokens of logins proven with the old password still work after the %s", survivors, how)
			}
		})
	}
}

// Racing changes of one account are decided on the row the store locks:
// role_changed events chain (each names the role it really replaced) and
// the last one names the role the account has.
func TestAttackConcurrentRoleChangesChain(t *testing.T) {
	s := newServer(t, options{})
	s.register(t, "ann")
	if _, err := s.svc.CreateUser(context.Background(), "root", "root-password", "admin"); err != nil {
		t.Fatal(err) // so that demoting ann is never the last admin's demotion
	}
	u, err := s.svc.FindUser(context.Background(), "ann")
	if err != nil {
		t.Fatal(err)
	}
	admin := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "root", "password": "root-password"}, nil)
	hdr := bearer(admin.body["access_token"].(string))
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			role := []string{"admin", "user"}[i%2]
			if r := s.do(t, "PATCH", "/v1/admin/users/"+u.ID, map[string]any{"role": role}, hdr); r.status != 200 {
				t.Errorf("PATCH role %s: %d %s", role, r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	events, _, err := s.svc.Events(context.Background(), auth.EventQuery{UserID: u.ID, Type: auth.EventRoleChanged, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Events are written after their change commits, so their order may
	// differ from the commits' (the events outbox is another issue); but
	// every event must be a real transition: from "user", promotions and
	// demotions alternate, so their counts differ by at most one, and
	// their balance is the final role.
	up, down := 0, 0
	for _, e := range events {
		switch e.Detail {
		case "user -> admin":
			up++
		case "admin -> user":
			down++
		default:
			t.Fatalf("role_changed says %q", e.Detail)
		}
	}
	want := map[int]string{0: "user", 1: "admin"}[up-down]
	final, _ := s.svc.GetUser(context.Background(), u.ID)
	if want == "" || final.Role != want {
		t.Fatalf("%d promotions and %d demotions recorded, role %q: an update decided from a stale row", up, down, final.Role)
	}
}

func other(role string) string {
	if role == "admin" {
		return "user"
	}
	return "admin"
}

// A script on an allowed origin holds no refresh token, only the browser's
// HttpOnly cookie; asking for the body transport must not hand it one, at
// refresh or at re-authentication, and nothing rotates.
func TestAttackRefreshCookieIntoBody(t *testing.T) {
	const app = "https://app.example.com"
	s := newServer(t, options{origins: []string{app}})
	s.register(t, "ann")
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"Gatehouse-Transport": "refresh-cookie", "Origin": app})
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	var cookie string
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "__Secure-gatehouse_refresh" {
			cookie = c.Name + "=" + c.Value
		}
	}
	at, _ := r.body["access_token"].(string)
	if cookie == "" || at == "" {
		t.Fatalf("login set no refresh cookie or gave no access token: %v %s", r.header, r.raw)
	}
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		body       any
	}{
		{"refresh", "/v1/auth/refresh", map[string]string{}, nil},
		{"refresh with an empty body", "/v1/auth/refresh", map[string]string{}, map[string]string{}},
		{"reauthenticate", "/v1/auth/reauthenticate", map[string]string{"Authorization": "Bearer " + at}, map[string]string{"password": "pw-ann-long"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hdr["Cookie"], tc.hdr["Origin"], tc.hdr["Sec-Fetch-Site"] = cookie, app, "cross-site"
			tc.hdr["Gatehouse-Transport"] = "body"
			r := s.do(t, "POST", tc.path, tc.body, tc.hdr)
			if r.status != 400 || r.errCode() != "invalid_request" || strings.Contains(r.raw, "ghr_") {
				t.Fatalf("%s with the cookie and Gatehouse-Transport: body: %d %s; want 400 invalid_request, no token", tc.name, r.status, r.raw)
			}
			if strings.Contains(strings.Join(r.header.Values("Set-Cookie"), ";"), "gatehouse_refresh=ghr_") {
				t.Fatal("a refused request set a new refresh cookie")
			}
			// Without the header, the answer comes in cookies as the token
			// came: never a refresh token in the body.
			delete(tc.hdr, "Gatehouse-Transport")
			if tc.path == "/v1/auth/reauthenticate" {
				if r := s.do(t, "POST", tc.path, tc.body, tc.hdr); r.status != 200 || strings.Contains(r.raw, "ghr_") {
					t.Fatalf("reauthenticate with the cookie, no header: %d %s; want 200 without a refresh token", r.status, r.raw)
				}
			}
		})
	}
	// Nothing rotated: past the grace window the original cookie is still
	// the current token (a rotated-away one would now be reuse).
	s.clock.Advance(auth.DefaultReuseGrace + time.Second)
	r = s.do(t, "POST", "/v1/auth/refresh", nil, map[string]string{"Cookie": cookie, "Origin": app, "Gatehouse-Transport": "refresh-cookie"})
	if r.status != 200 || strings.Contains(r.raw, "ghr_") {
		t.Fatalf("refresh with the untouched cookie: %d %s", r.status, r.raw)
	}
}

// loginFrom tries a login as if from addr (through a trusted proxy).
func (s *server) loginFrom(t *testing.T, user, pw, addr string) response {
	t.Helper()
	return s.do(t, "POST", "/v1/auth/login", map[string]string{"username": user, "password": pw},
		map[string]string{"X-Forwarded-For": addr})
}

var loopbackProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Wrong passwords sent all at once are each reserved against the budgets
// before any is hashed: from one address only its free failures are
// evaluated, from eight only the account's budget.
func TestAttackConcurrentGuessesHoldTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    throttle.Config
		addrs  int
		budget int
	}{
		{"one address", throttle.Config{PerIP: 1000}, 1, 5},
		{"eight addresses", throttle.Config{PerIP: 1000, FreeFailures: 100, AccountFailures: 10}, 8, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, options{realClock: true, hashParams: slowHash, throttle: tc.cfg, trusted: loopbackProxy})
			s.register(t, "ann")
			var wg sync.WaitGroup
			var mu sync.Mutex
			evaluated := 0
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := s.loginFrom(t, "ann", "wrong password", fmt.Sprintf("198.51.100.%d", i%tc.addrs))
					switch {
					case r.status == 401:
						mu.Lock()
						evaluated++
						mu.Unlock()
					case r.status != 429 || r.header.Get("Retry-After") == "":
						t.Errorf("guess: %d %s", r.status, r.raw)
					}
				}()
			}
			wg.Wait()
			if evaluated > tc.budget {
				t.Fatalf("%d of 40 simultaneous guesses were evaluated; the budget is %d", evaluated, tc.budget)
			}
		})
	}
}

// An attacker spending the account's failure budget from many addresses
// cannot keep the owner out of an address they have signed in from before.
func TestAttackLockoutSparesKnownAddress(t *testing.T) {
	s := newServer(t, options{trusted: loopbackProxy, throttle: throttle.Config{AccountFailures: 10}})
	s.register(t, "ann")
	if r := s.loginFrom(t, "ann", "pw-ann-long", "192.0.2.10"); r.status != 200 {
		t.Fatalf("owner's first sign-in: %d %s", r.status, r.raw)
	}
	s.clock.Advance(time.Hour)
	for i := range 60 {
		s.loginFrom(t, "ann", "guess", fmt.Sprintf("203.0.113.%d", i))
	}
	if r := s.loginFrom(t, "ann", "pw-ann-long", "198.51.100.1"); r.status != 429 {
		t.Fatalf("a new address while the budget is spent: %d %s; want 429", r.status, r.raw)
	}
	for range 3 {
		if r := s.loginFrom(t, "ann", "pw-ann-long", "192.0.2.10"); r.status != 200 {
			t.Fatalf("the owner from their known address during the attack: %d %s", r.status, r.raw)
		}
		s.clock.Advance(time.Minute)
	}
}

// One IPv6 host owns a /64: hopping through it buys no fresh per-address
// budget, whatever the spelling.
func TestAttackIPv6HoppingSharesOneBudget(t *testing.T) {
	s := newServer(t, options{trusted: loopbackProxy, throttle: throttle.Config{PerIP: 5}})
	s.register(t, "ann")
	for i := range 5 {
		s.loginFrom(t, "ann", "guess", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	for _, addr := range []string{"2001:db8:1:2:ffff::1", "2001:0db8:0001:0002:0000:0000:0000:00aa"} {
		if r := s.loginFrom(t, "bob", "guess", addr); r.status != 429 {
			t.Fatalf("from %s after 5 attempts from its /64: %d %s; want 429", addr, r.status, r.raw)
		}
	}
	if r := s.loginFrom(t, "bob", "guess", "2001:db8:1:3::1"); r.status != 401 {
		t.Fatalf("another /64: %d %s; want its own budget", r.status, r.raw)
	}
}

// Refused requests cost the attacker a request, not the server a durable
// row each: storage grows with time, and the victim's own feed shows that
// someone tried, with a count, instead of filling with the attacker's rows.
func TestAttackRefusedRequestsAreAggregated(t *testing.T) {
	s := newServer(t, options{trusted: loopbackProxy})
	s.register(t, "ann")
	ann, _ := s.svc.FindUser(context.Background(), "ann")
	ua := strings.Repeat("A", 512)
	for range 400 {
		s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "x"},
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example", "User-Agent": ua, "X-Forwarded-For": "203.0.113.66"})
	}
	for range 100 {
		_, res, _ := s.dial(t, "/v1/ws", http.Header{"Origin": {"https://evil.example"}, "User-Agent": {ua}, "X-Forwarded-For": {"203.0.113.66"}})
		if res == nil || res.StatusCode != 403 {
			t.Fatalf("cross-site upgrade: %v", res)
		}
	}
	for range 200 {
		s.loginFrom(t, "ann", "guess", "198.51.100.9") // 30 a minute pass the per-IP limit, then 429
	}
	count := func(typ, user string) []store.Event {
		t.Helper()
		list, _, err := s.svc.Events(context.Background(), auth.EventQuery{Type: typ, UserID: user, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	if n := len(count(auth.EventCSRFFailed, "")); n != 1 {
		t.Fatalf("%d csrf_failed rows for 500 refused cross-site requests from one address; want 1 while the window counts", n)
	}
	if n := len(count(auth.EventRateLimited, ann.ID)); n != 1 {
		t.Fatalf("%d rate_limited rows in the victim's feed; want 1 while the window counts", n)
	}
	// The window closes: one summary each, with the count.
	s.clock.Advance(auth.DefaultRefusedWindow)
	s.svc.FlushRefusedEvents(context.Background())
	csrf := count(auth.EventCSRFFailed, "")
	if len(csrf) != 2 || !strings.Contains(csrf[0].Detail, "499 more") {
		t.Fatalf("csrf_failed after the window: %d rows, newest %q; want the first and a summary of 499 more", len(csrf), csrf[0].Detail)
	}
	limited := count(auth.EventRateLimited, ann.ID)
	if len(limited) != 2 || !strings.Contains(limited[0].Detail, " more ") {
		t.Fatalf("the victim's rate_limited after the window: %+v", limited)
	}
	mine, _, _ := s.svc.Events(context.Background(), auth.EventQuery{UserID: ann.ID, Limit: 500})
	if len(mine) > 40 {
		t.Fatalf("the victim's feed holds %d events after one address's attack", len(mine))
	}
	// A new window records at once again.
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "x"},
		map[string]string{"Sec-Fetch-Site": "cross-site", "X-Forwarded-For": "203.0.113.66"})
	if n := len(count(auth.EventCSRFFailed, "")); n != 3 {
		t.Fatalf("%d csrf_failed rows after a refusal in a new window; want 3", n)
	}
}

// Many addresses at once do not multiply the rows without bound either:
// past a few per account and window they fold into one entry.
func TestAttackRefusedFromManyAddressesFold(t *testing.T) {
	s := newServer(t, options{trusted: loopbackProxy})
	for i := range 300 {
		s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "x"},
			map[string]string{"Sec-Fetch-Site": "cross-site", "X-Forwarded-For": fmt.Sprintf("203.0.%d.%d", i/250, i%250)})
	}
	s.clock.Advance(auth.DefaultRefusedWindow)
	s.svc.FlushRefusedEvents(context.Background())
	list, _, _ := s.svc.Events(context.Background(), auth.EventQuery{Type: auth.EventCSRFFailed, Limit: 500})
	if len(list) > 10 {
		t.Fatalf("%d csrf_failed rows for 300 addresses; want a few and one folded summary", len(list))
	}
}

// One address cannot hold every socket waiting for its first message: past
// its share it gets 429, and browsers elsewhere still get in.
func TestAttackWaitingSocketsPerAddress(t *testing.T) {
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}, trusted: loopbackProxy, maxAddrPending: 3})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	from := func(addr string) http.Header {
		return http.Header{"Origin": {appOrigin}, "X-Forwarded-For": {addr}}
	}
	for i := range 3 {
		if _, _, err := s.dial(t, "/v1/ws", from(fmt.Sprintf("2001:db8:7::%x", i+1))); err != nil {
			t.Fatalf("waiting socket %d: %v", i, err)
		}
	}
	_, res, err := s.dial(t, "/v1/ws", from("2001:db8:7::ff")) // the same /64
	if err == nil || res == nil || res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("a fourth waiting socket from one /64: %v %v; want 429", res, err)
	}
	c, _, err := s.dial(t, "/v1/ws", from("192.0.2.77")) // a browser elsewhere
	if err != nil {
		t.Fatalf("a browser at another address is locked out: %v", err)
	}
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`"}`)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("hello: %+v %v", m, err)
	}
}

// One account's authenticated sockets are capped on an instance: by header
// 429 before the upgrade, in-band a close with 4008.
func TestAttackSocketsPerUser(t *testing.T) {
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}, maxUserSockets: 2})
	s.register(t, "ann")
	s.register(t, "bob")
	ann, bob := s.login(t, "ann"), s.login(t, "bob")
	for range 2 {
		s.socket(t, ann.access)
	}
	if _, res, err := s.dial(t, "/v1/ws", bearerHeader(ann.access)); err == nil || res == nil || res.StatusCode != 429 {
		t.Fatalf("a third socket of one account: %v %v; want 429", res, err)
	}
	c, _, err := s.dialOrigin(t, appOrigin)
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, c, `{"type":"auth","access_token":"`+ann.access+`"}`)
	if _, err := read(t, c, 2*time.Second); websocket.CloseStatus(err) != 4008 {
		t.Fatalf("a third in-band socket of one account: %v; want close 4008", err)
	}
	if _, _, err := s.dial(t, "/v1/ws", bearerHeader(bob.access)); err != nil {
		t.Fatalf("another account is affected: %v", err)
	}
}

// A page on an --allowed-origin is on another site: its browser sends
// Sec-Fetch-Site: cross-site, and its socket must open as its POSTs do.
func TestAttackAllowedOriginCrossSiteSocket(t *testing.T) {
	s := newServer(t, options{realClock: true, origins: []string{appOrigin}})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	c, _, err := s.dial(t, "/v1/ws", http.Header{"Origin": {appOrigin}, "Sec-Fetch-Site": {"cross-site"}})
	if err != nil {
		t.Fatalf("upgrade from an allowed origin on another site: %v", err)
	}
	writeText(t, c, `{"type":"auth","access_token":"`+tk.access+`"}`)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("hello: %+v %v", m, err)
	}
	for _, h := range []http.Header{
		{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}},
		{"Origin": {appOrigin + ".evil.example"}, "Sec-Fetch-Site": {"cross-site"}},
		{"Sec-Fetch-Site": {"cross-site"}, "Authorization": {"Bearer " + tk.access}},
	} {
		if _, res, err := s.dial(t, "/v1/ws", h); err == nil || res == nil || res.StatusCode != 403 {
			t.Fatalf("cross-site upgrade %v: %v %v; want 403", h, res, err)
		}
	}
}

// A client that stops reading does not slow the server, and is told that
// it missed events (close 4009) instead of losing them silently.
func TestAttackSlowSocketIsToldToResync(t *testing.T) {
	// Small kernel buffers on both ends: a client that stops reading holds
	// the server's writer after a few kilobytes, however fast or slow the
	// machine commits the events.
	s := newServer(t, options{realClock: true, sendBuffer: 4096})
	s.register(t, "ann")
	tk := s.login(t, "ann")
	ann, _ := s.svc.FindUser(context.Background(), "ann")
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
	}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/ws",
		&websocket.DialOptions{HTTPClient: client, HTTPHeader: bearerHeader(tk.access)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	// The client stops reading while a burst outruns the socket's queue
	// (32 events) and the few the kernel buffers hold, then reads again,
	// well within the server's 5 s write timeout.
	detail := strings.Repeat("d", 500)
	const burst = 300
	for i := 0; i < burst; i++ {
		s.svc.Event(context.Background(), auth.EventSessionRevoked, auth.Meta{UserAgent: detail}, ann.ID, "", detail)
	}
	read := 0
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != 4009 {
				t.Fatalf("a socket that fell behind ended with %v after %d messages; want close 4009 (resync)", err, read)
			}
			break
		}
		read++
	}
	// hello, then what the kernels and the queue held: not the whole burst.
	if read >= burst {
		t.Fatalf("read %d messages of a burst of %d before the resync; want some dropped", read, burst)
	}
}

// The largest token the server can issue (the most permissions it accepts,
// the longest issuer) works on every transport: Bearer, the access cookie
// a browser keeps (4096 bytes with its attributes), the WebSocket's first
// message. One byte more of permissions is refused when set.
func TestLargestTokenWorksEverywhere(t *testing.T) {
	issuer := "https://" + strings.Repeat("a", auth.MaxIssuerLength-len("https://.example")) + ".example"
	aud := strings.Repeat("b", 200)
	audiences := []string{"https://" + aud + ".example/1", "https://" + aud + ".example/2"} // the longest list allowed
	audiences = append(audiences, "https://"+strings.Repeat("c", auth.MaxAudienceBytes-len(audiences[0])-len(audiences[1])-len("https://.x"))+".x")
	s := newServer(t, options{realClock: true, issuer: issuer, origins: []string{appOrigin}, audiences: audiences})
	s.register(t, "ann")
	if _, err := s.svc.CreateUser(context.Background(), "root", "root-password", "admin"); err != nil {
		t.Fatal(err)
	}
	ann, _ := s.svc.FindUser(context.Background(), "ann")
	perms := make([]string, 64)
	for i := range perms { // 64 × 24 bytes: the bound, with the most JSON overhead
		perms[i] = fmt.Sprintf("%02d:%s", i, strings.Repeat("p", auth.MaxPermissionBytes/64-3))
	}
	admin := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "root", "password": "root-password"}, nil)
	over := append(slices.Clone(perms[:63]), perms[63]+"x")
	if r := s.do(t, "PATCH", "/v1/admin/users/"+ann.ID, map[string]any{"permissions": over}, bearer(admin.body["access_token"].(string))); r.status != 400 || r.errCode() != "invalid_request" {
		t.Fatalf("permissions of %d bytes: %d %s; want 400", auth.MaxPermissionBytes+1, r.status, r.raw)
	}
	if r := s.do(t, "PATCH", "/v1/admin/users/"+ann.ID, map[string]any{"permissions": perms}, bearer(admin.body["access_token"].(string))); r.status != 200 {
		t.Fatalf("permissions at the bound: %d %s", r.status, r.raw)
	}
	r := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, map[string]string{"Gatehouse-Transport": "cookie"})
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	var line, access string
	for _, v := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "__Host-gatehouse_access=") {
			line = v
			access = strings.SplitN(strings.TrimPrefix(v, "__Host-gatehouse_access="), ";", 2)[0]
		}
	}
	if len(line) > 4096 || access == "" {
		t.Fatalf("the access cookie is %d bytes with its attributes; browsers keep 4096", len(line))
	}
	t.Logf("largest token: %d bytes; cookie line %d bytes", len(access), len(line))
	if me := s.do(t, "GET", "/v1/me", nil, bearer(access)); me.status != 200 {
		t.Fatalf("the largest token as Bearer: %d %s", me.status, me.raw)
	}
	if me := s.do(t, "GET", "/v1/me", nil, map[string]string{"Cookie": "__Host-gatehouse_access=" + access}); me.status != 200 {
		t.Fatalf("the largest token as the cookie: %d %s", me.status, me.raw)
	}
	c, _, err := s.dialOrigin(t, appOrigin)
	if err != nil {
		t.Fatal(err)
	}
	writeText(t, c, `{"type":"auth","access_token":"`+access+`"}`)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("the largest token as the first message: %+v %v", m, err)
	}
	// Bound to a DPoP key (cnf too), with the proof beside it.
	k := newKey(t, "ES256")
	h := map[string]string{"DPoP": k.Proof("POST", issuer+"/v1/auth/login", "", "", time.Now())}
	r = s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"}, h)
	bound, _ := r.body["access_token"].(string)
	if r.status != 200 || len(bound) <= len(access) {
		t.Fatalf("bound login: %d %s", r.status, r.raw)
	}
	t.Logf("largest bound token: %d bytes", len(bound))
	h = map[string]string{"Authorization": "DPoP " + bound, "DPoP": k.Proof("GET", issuer+"/v1/me", bound, "", time.Now())}
	if me := s.do(t, "GET", "/v1/me", nil, h); me.status != 200 {
		t.Fatalf("the largest bound token: %d %s", me.status, me.raw)
	}
	c, _, _ = s.dialOrigin(t, appOrigin)
	wsURL := "wss" + strings.TrimPrefix(issuer, "https") + "/v1/ws"
	writeText(t, c, `{"type":"auth","access_token":"`+bound+`","dpop":"`+k.Proof("GET", wsURL, bound, "", time.Now())+`"}`)
	if m, err := read(t, c, 2*time.Second); err != nil || m.Type != "hello" {
		t.Fatalf("the largest bound token and its proof as the first message: %+v %v", m, err)
	}
}

// Paging the admin user list never loses or repeats an account, whatever
// the display names (fullwidth, decomposed, upper-case), and a search is
// prepared like a name.
func TestAdminUserPagingIsStable(t *testing.T) {
	s := newServer(t, options{})
	if _, err := s.svc.CreateUser(context.Background(), "root", "root-password", "admin"); err != nil {
		t.Fatal(err)
	}
	names := []string{"alice", "ｂｏｂ", "e\u0301mile", "Zoë", "carol", "dave", "ＥＶＥ", "frank"}
	for _, n := range names {
		if r := s.do(t, "POST", "/v1/auth/register", map[string]string{"username": n, "password": "long enough pw"}, nil); r.status != 201 {
			t.Fatalf("register %q: %d %s", n, r.status, r.raw)
		}
	}
	admin := s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "root", "password": "root-password"}, nil)
	hdr := bearer(admin.body["access_token"].(string))
	seen := map[string]int{}
	cursor := ""
	for page := 0; ; page++ {
		if page > 20 {
			t.Fatal("paging does not end")
		}
		r := s.do(t, "GET", "/v1/admin/users?limit=1&cursor="+url.QueryEscape(cursor), nil, hdr)
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", page, r.status, r.raw)
		}
		for _, u := range r.body["users"].([]any) {
			seen[u.(map[string]any)["username"].(string)]++
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	for _, n := range append(names, "root") {
		if seen[n] != 1 {
			t.Errorf("%q listed %d times over the pages; want once (seen %v)", n, seen[n], seen)
		}
	}
	for q, want := range map[string]string{"ｂｏ": "ｂｏｂ", "BOB": "ｂｏｂ", "eve": "ＥＶＥ", "ＺＯ": "Zoë"} {
		r := s.do(t, "GET", "/v1/admin/users?q="+url.QueryEscape(q), nil, hdr)
		users, _ := r.body["users"].([]any)
		if r.status != 200 || len(users) != 1 || users[0].(map[string]any)["username"] != want {
			t.Errorf("search %q: %d %s; want %q", q, r.status, r.raw, want)
		}
	}
}

// A login and a refresh racing the account's deletion answer what the
// contract says of a gone account (401 invalid_credentials, 401
// session_revoked or invalid_refresh_token), never 404 or 5xx; and what
// they hand out before the deletion dies with it.
func TestAttackRacingDeletion(t *testing.T) {
	s := newServer(t, options{realClock: true, throttle: throttle.Config{PerIP: 100000, FreeFailures: 1000}})
	for round := range 15 {
		name := fmt.Sprintf("gone%d", round)
		s.register(t, name)
		tk := s.login(t, name)
		var wg sync.WaitGroup
		results := make(chan response, 8)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					results <- s.do(t, "POST", "/v1/auth/login", map[string]string{"username": name, "password": "pw-" + name + "-long"}, nil)
				} else {
					results <- s.refresh(t, tk.refresh)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := s.do(t, "DELETE", "/v1/me", nil, bearer(tk.access)); r.status != 204 {
				t.Errorf("delete: %d %s", r.status, r.raw)
			}
		}()
		wg.Wait()
		close(results)
		for r := range results {
			switch {
			case r.status == 200:
				if me := s.do(t, "GET", "/v1/me", nil, bearer(r.body["access_token"].(string))); me.status != 401 {
					t.Fatalf("round %d: a token handed out while the account was deleted still works: %d", round, me.status)
				}
			case r.status == 401 && (r.errCode() == "invalid_credentials" || r.errCode() == "session_revoked" ||
				r.errCode() == "invalid_refresh_token" || r.errCode() == "refresh_token_reused"):
			default:
				t.Fatalf("round %d: %d %s racing the deletion", round, r.status, r.raw)
			}
		}
	}
}
