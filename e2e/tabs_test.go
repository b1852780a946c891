package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// openTabs signs ann in on the first tab and opens n-1 more, each resuming
// the session with restore().
func (s *spa) openTabs(t *testing.T, n int, user, pass string) []*tab {
	t.Helper()
	tabs := []*tab{s.b.open("tab1", s.app)}
	tabs[0].eval(fmt.Sprintf(`await gh.register(%q, %q); return await gh.login(%[1]q, %[2]q)`, user, pass), nil)
	for i := 2; i <= n; i++ {
		tb := s.b.open(fmt.Sprintf("tab%d", i), s.app)
		var u map[string]any
		tb.eval(`return await gh.restore()`, &u)
		if u["username"] != user {
			t.Fatalf("%s restore: %v", tb.name, u)
		}
		tabs = append(tabs, tb)
	}
	return tabs
}

// callAPIFromTabs has every tab call the API's /api/orders calls times at
// once, gap (plus up to 50) ms apart, and returns each tab's answers as
// "status:user" (or "error:code").
func callAPIFromTabs(tabs []*tab, api string, calls int, gap int64) [][]string {
	var wg sync.WaitGroup
	results := make([][]string, len(tabs))
	for i, tb := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb.eval(fmt.Sprintf(`
				const out = [];
				for (let i = 0; i < %d; i++) {
					try {
						const r = await gh.fetch("%s/api/orders");
						out.push(r.status + ":" + (await r.json()).user);
					} catch (e) { out.push("error:" + e.code); }
					await new Promise((r) => setTimeout(r, %d + Math.random() * 50));
				}
				return out;`, calls, api, gap), &results[i])
		}()
	}
	wg.Wait()
	return results
}

// Four tabs of one origin call an API across many access-token expiries:
// nobody is signed out, no reuse is ever detected, and the tabs share their
// refreshes instead of multiplying them.
func TestBrowserTabsShareRefreshes(t *testing.T) {
	for _, n := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d tabs", n), func(t *testing.T) { testTabsShareRefreshes(t, n) })
	}
}

func testTabsShareRefreshes(t *testing.T, tabsN int) {
	const calls = 50
	s := startSPA(t, accessTTL)
	start := time.Now()
	before := s.gh.refreshes.Load()
	tabs := s.openTabs(t, tabsN, "ann", "correct horse battery")
	// 50 calls, 11 lifetimes: every tab runs into every expiry.
	gap := (11 * accessTTL / calls).Milliseconds()
	uid := s.gh.user(t, "ann")

	results := callAPIFromTabs(tabs, s.api, calls, gap)
	elapsed := time.Since(start)
	for i, res := range results {
		if len(res) != calls {
			t.Fatalf("tab%d made %d calls", i+1, len(res))
		}
		for _, v := range res {
			if v != "200:"+uid {
				t.Fatalf("tab%d: %v", i+1, res)
			}
		}
	}
	for _, tb := range tabs {
		var out []string
		tb.eval(`return window.log.signedout`, &out)
		if len(out) != 0 {
			t.Fatalf("%s signed out: %v", tb.name, out)
		}
	}
	if n := s.gh.events(t, auth.EventRefreshTokenReused); n != 0 {
		t.Fatalf("%d refresh_token_reused events", n)
	}
	refreshes := s.gh.refreshes.Load() - before
	expiries := int64(elapsed/accessTTL) + 1
	// The client refreshes a tenth of a lifetime early, so one token serves
	// 0.9 of a lifetime: the ideal is one refresh per 0.9 lifetime, whatever
	// the number of tabs.
	tokenLife := 9 * accessTTL / 10
	perToken := float64(refreshes) / (float64(elapsed) / float64(tokenLife))
	t.Logf("%d tabs x %d calls over %v (%d access-token lifetimes): %d refreshes, %.2f per token lifetime",
		tabsN, calls, elapsed.Round(time.Millisecond), expiries, refreshes, perToken)
	if expiries < 10 {
		t.Fatalf("only %d expiries: the test must span at least 10", expiries)
	}
	if tokens := int64(elapsed/tokenLife) + 1; refreshes > tokens+1 {
		t.Fatalf("%d refreshes where %d tokens were needed: tabs are not sharing", refreshes, tokens)
	}
	if refreshes > expiries+int64(tabsN) && tabsN > 1 {
		t.Fatalf("%d refreshes for %d expiries and %d tabs: tabs are not sharing", refreshes, expiries, tabsN)
	}
}

// A logout in one tab signs out every tab within a second; an admin
// disabling the user closes every tab's socket with 4003 and every tab
// reports signedout "revoked".
func TestBrowserSignOutReachesEveryTab(t *testing.T) {
	// A longer lifetime than the other browser tests: the sockets must
	// re-authenticate before it ends, and the client refreshes a tenth of
	// it ahead (200 ms of a 2 s token was too little on a loaded CI
	// machine; the server then rightly closed the socket 4001).
	const ttl = 3 * accessTTL
	s := startSPA(t, ttl)
	tabs := s.openTabs(t, 3, "ann", "correct horse battery")

	start := time.Now()
	tabs[0].eval(`await gh.logout(); return null`, nil)
	for _, tb := range tabs[1:] {
		tb.waitFor(`window.log.signedout.length > 0 && gh.user === null`, time.Second)
		var reasons []string
		tb.eval(`return window.log.signedout`, &reasons)
		if strings.Join(reasons, ",") != "logout" {
			t.Fatalf("%s: signedout %v", tb.name, reasons)
		}
	}
	t.Logf("logout reached the other tabs in %v", time.Since(start))

	// Sign in again; every tab opens a socket authenticated in-band.
	tabs[0].eval(`await gh.login("ann", "correct horse battery"); return null`, nil)
	for _, tb := range tabs {
		tb.waitFor(`gh.user !== null`, 2*time.Second)
		tb.eval(`
			window.log.signedout = [];
			const W = window.WebSocket;
			window.WebSocket = function (u) { const w = new W(u); const t0 = Date.now();
				const send = w.send.bind(w); w.send = (d) => { window.log.socket.push("send:" + JSON.parse(d).type + "@" + (Date.now() - t0)); send(d); };
				w.addEventListener("close", (e) => window.log.socket.push("raw-close:" + e.code + "@" + (Date.now() - t0) + ":" + e.reason));
				return w; };
			const ws = gh.socket("/v1/ws");
			window.ws = ws;
			ws.addEventListener("message", (e) => window.log.socket.push(JSON.parse(e.data).type));
			ws.addEventListener("close", (e) => window.log.socket.push("close:" + e.code));
			return null`, nil)
		tb.waitFor(`window.log.socket.includes("hello")`, 5*time.Second)
	}
	// The sockets outlive their first token: they re-authenticate in-band
	// after each refresh, on the same connection (one hello, no close).
	time.Sleep(ttl + ttl/2)
	for _, tb := range tabs {
		var log []string
		tb.eval(`return window.log.socket`, &log)
		joined := strings.Join(log, ",")
		if strings.Contains(joined, "close") || strings.Count(joined, "hello") != 1 || !strings.Contains(joined, "reauth_ok") {
			t.Fatalf("%s: socket across a refresh: %v", tb.name, log)
		}
	}

	disabled := true
	start = time.Now()
	if _, err := s.gh.svc.UpdateUser(context.Background(), s.gh.user(t, "ann"), nil, &disabled, auth.Meta{}); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tabs {
		tb.waitFor(`window.log.socket.includes("close:4003") && window.log.signedout.length > 0`, 2*time.Second)
		var reasons []string
		tb.eval(`return window.log.signedout`, &reasons)
		if strings.Join(reasons, ",") != "revoked" {
			t.Fatalf("%s: signedout %v", tb.name, reasons)
		}
		var user any
		tb.eval(`return gh.user`, &user)
		if user != nil {
			t.Fatalf("%s: user still %v", tb.name, user)
		}
		tb.assertNoTokenReadable()
	}
	t.Logf("disable closed every socket and signed out every tab in %v", time.Since(start))
}

// A cookie app served behind one origin with Gatehouse (the other
// recommended deployment): guard's cookie mode serves its pages' calls, and
// a cross-site form POST riding on the cookie is refused before the handler.
func TestBrowserCookieAppBehindOneOrigin(t *testing.T) {
	b := startBrowser(t)
	ghLn := reserve(t)
	gh := startGatehouse(t, ghLn, ghOptions{accessTTL: time.Minute})
	api, calls := startAPI(t, gh, guard.Config{AccessCookie: guard.AccessCookie})
	// One origin: the app's page, Gatehouse under /v1/, the API under /api/.
	front := listen(t, proxyTo(map[string]string{"/v1/": gh.URL, "/gatehouse.js": gh.URL, "/api/": api}, page(cookieAppPage)))
	// A page on another origin (same site: it gets the SameSite=Lax cookie,
	// so only the guard's own check stands in the way).
	evil := listen(t, page(fmt.Sprintf(`<!doctype html><title>evil</title>
<form id="f" method="POST" action="%s/api/orders"><input name="qty" value="1000"></form>
<script>window.ready = true;</script>`, front)))

	app := b.open("app", front)
	var status []int
	app.eval(`
		const post = (path, body, transport) => fetch(path, { method: "POST", headers: { "Content-Type": "application/json", ...(transport ? { "Gatehouse-Transport": transport } : {}) }, body: JSON.stringify(body) });
		const reg = await post("/v1/auth/register", { username: "cara", password: "correct horse battery" });
		const login = await post("/v1/auth/login", { username: "cara", password: "correct horse battery" }, "cookie");
		const get = await fetch("/api/orders");
		const order = await fetch("/api/orders", { method: "POST" });
		return [reg.status, login.status, get.status, order.status];`, &status)
	if fmt.Sprint(status) != "[201 200 200 200]" {
		t.Fatalf("cookie app: %v", status)
	}
	app.assertNoTokenReadable()
	before := calls.Load()

	ev := b.open("evil", evil)
	ev.run(submitForm("#f"))
	time.Sleep(500 * time.Millisecond)
	var body string
	ev.eval(`return document.body.innerText`, &body)
	if !strings.Contains(body, "csrf_failed") {
		t.Fatalf("cross-site form POST answered: %q", body)
	}
	if calls.Load() != before {
		t.Fatal("the guarded handler ran for a cross-site form POST")
	}
}

const cookieAppPage = `<!doctype html><meta charset="utf-8"><title>cookie app</title><script>window.ready = true;</script>`

// A refresh request that never answers must not freeze the origin: each
// request is time-boxed, so the tab holding the cross-tab lock gives up and
// releases it, the other tabs' callers settle too, and a tab that holds the
// lock and never lets go is waited for only so long.
func TestBrowserStalledRefreshFreezesNoTab(t *testing.T) {
	b := startBrowser(t)
	ghLn, appLn := reserve(t), reserve(t)
	appOrigin := "http://" + appLn.Addr().String()
	gh := startGatehouse(t, ghLn, ghOptions{origins: []string{appOrigin}, accessTTL: 2 * time.Second})
	serveOn(t, appLn, page(appPageWith(gh.URL, "requestTimeout: 1000, lockTimeout: 2000")))
	api, _ := startAPI(t, gh, guard.Config{}, appOrigin)
	s := &spa{gh: gh, app: appOrigin, api: api, b: b}
	tabs := s.openTabs(t, 2, "ann", "correct horse battery")

	gh.refreshStall.Store(true)
	start := time.Now()
	var wg sync.WaitGroup
	codes := make([]string, len(tabs))
	for i, tb := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Past the token's expiry every call needs a refresh, which hangs.
			tb.eval(fmt.Sprintf(`
				await new Promise((r) => setTimeout(r, 2200));
				try { const r = await gh.fetch("%s/api/orders"); return "status " + r.status; }
				catch (e) { return e.code; }`, api), &codes[i])
		}()
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("with refreshes hanging, the tabs' calls settled in %v: %v", took.Round(time.Millisecond), codes)
	for i, c := range codes {
		if c != "network_error" {
			t.Fatalf("tab%d: %q; want network_error (the request abandoned)", i+1, c)
		}
	}
	if took > 10*time.Second {
		t.Fatalf("calls took %v to settle with a 1 s request timeout", took)
	}
	var user string
	tabs[0].eval(`return gh.user && gh.user.username`, &user)
	if user != "ann" {
		t.Fatalf("a hanging refresh signed the tab out: user %q", user)
	}

	// The server answers again, but the other tab holds the refresh lock
	// and never lets go (frozen): this tab still refreshes, after the wait.
	gh.refreshStall.Store(false)
	tabs[1].eval(fmt.Sprintf(`navigator.locks.request("gatehouse-refresh %s", () => new Promise(() => {})); return null`, gh.URL), nil)
	var status int
	tabs[0].eval(fmt.Sprintf(`
		const end = Date.now() + 15000;
		while (Date.now() < end) {
			try { const r = await gh.fetch("%s/api/orders"); if (r.status == 200) return 200; } catch (e) {}
			await new Promise((r) => setTimeout(r, 200));
		}
		return 0;`, api), &status)
	if status != 200 {
		t.Fatal("a tab holding the refresh lock forever stopped refreshes in the others")
	}
}
