package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
)

// accessTTL is short so tests cross many expiries.
const accessTTL = 2 * time.Second

// spa is the recommended browser deployment: the app on one origin, Gatehouse
// on a second (listed in --allowed-origin), an API on a third protected by
// guard, and a page on an origin that is not allowed.
type spa struct {
	gh       *gatehouse
	app, api string
	evil     string
	apiCalls interface{ Load() int64 }
	b        *browser
}

func startSPA(t *testing.T, ttl time.Duration) *spa {
	t.Helper()
	b := startBrowser(t)
	ghLn, appLn := reserve(t), reserve(t)
	appOrigin := "http://" + appLn.Addr().String()
	gh := startGatehouse(t, ghLn, ghOptions{origins: []string{appOrigin}, accessTTL: ttl})
	serveOn(t, appLn, page(appPage(gh.URL)))
	api, calls := startAPI(t, gh, guard.Config{}, appOrigin)
	evil := listen(t, page(appPage(gh.URL)))
	return &spa{gh: gh, app: appOrigin, api: api, evil: evil, apiCalls: calls, b: b}
}

func TestBrowserSPAOnAnotherOrigin(t *testing.T) {
	s := startSPA(t, accessTTL)
	tab := s.b.open("app", s.app)

	var user map[string]any
	tab.eval(`return await gh.register("ann", "correct horse battery")`, &user)
	if user["username"] != "ann" {
		t.Fatalf("register: %v", user)
	}
	tab.eval(`return await gh.login("ann", "correct horse battery")`, &user)
	if user["username"] != "ann" {
		t.Fatalf("login: %v", user)
	}
	tab.assertNoTokenReadable()

	// The API on a third origin, across several access-token expiries.
	var seen []string
	tab.eval(fmt.Sprintf(`
		const out = [];
		const end = Date.now() + %d;
		while (Date.now() < end) {
			const r = await gh.fetch("%s/api/orders");
			out.push(r.status + ":" + (await r.json()).user);
			await new Promise((r) => setTimeout(r, 250));
		}
		return out;`, (4*accessTTL+accessTTL/2).Milliseconds(), s.api), &seen)
	uid := s.gh.user(t, "ann")
	for _, v := range seen {
		if v != "200:"+uid {
			t.Fatalf("API answers: %v", seen)
		}
	}
	if n := s.gh.refreshes.Load(); n < 3 || n > 6 {
		t.Fatalf("%d refreshes over 4.5 access-token lifetimes", n)
	}
	t.Logf("%d API calls, %d refreshes over %v", len(seen), s.gh.refreshes.Load(), 4*accessTTL+accessTTL/2)

	// A new page load resumes the session from the refresh cookie.
	tab.run(reload())
	tab.waitFor("window.ready === true", 10*time.Second)
	tab.eval(`return await gh.restore()`, &user)
	if user == nil || user["username"] != "ann" {
		t.Fatalf("restore: %v", user)
	}
	tab.assertNoTokenReadable()

	// A page on an origin that is not allowed gets nothing and changes
	// nothing: it cannot import the client, read a response, log in, or
	// spend the refresh cookie (which is same-site here, so it is sent).
	before := s.gh.refreshes.Load()
	evil := s.b.openRaw("evil", s.evil)
	var results map[string]string
	evil.eval(fmt.Sprintf(`
		const gh = "%s";
		const res = {};
		const attempt = async (name, f) => { try { const r = await f(); res[name] = "status " + r.status; } catch (e) { res[name] = "blocked"; } };
		await attempt("import", () => import(gh + "/gatehouse.js"));
		await attempt("login", () => fetch(gh + "/v1/auth/login", { method: "POST", credentials: "include",
			headers: { "Content-Type": "application/json", "Gatehouse-Transport": "refresh-cookie" },
			body: JSON.stringify({ username: "ann", password: "correct horse battery" }) }));
		await attempt("refresh", () => fetch(gh + "/v1/auth/refresh", { method: "POST", credentials: "include" }));
		await attempt("me", () => fetch(gh + "/v1/me", { credentials: "include" }));
		return res;`, s.gh.URL), &results)
	for k, v := range results {
		if v != "blocked" {
			t.Errorf("page on a foreign origin: %s: %s", k, v)
		}
	}
	// The simple-request refresh reached the server (a browser sends it)
	// and was refused as cross-site: the session did not rotate, so the
	// app's next refresh is not a reuse.
	if s.gh.refreshes.Load() != before+1 {
		t.Errorf("refresh attempts from the foreign page: %d", s.gh.refreshes.Load()-before)
	}
	if !strings.Contains(s.gh.logs.String(), `"status":403`) {
		t.Error("the foreign page's refresh was not refused with 403")
	}
	tab.eval(`await gh._refresh(gh._token); return null`, nil)
	if n := s.gh.events(t, "refresh_token_reused"); n != 0 {
		t.Fatalf("%d reuse events", n)
	}

	// Logout: the session ends on the server, the client forgets the user.
	tab.eval(`await gh.logout(); return null`, nil)
	var after map[string]any
	tab.eval(`return { user: gh.user, signedout: window.log.signedout }`, &after)
	if after["user"] != nil || fmt.Sprint(after["signedout"]) != "[logout]" {
		t.Fatalf("after logout: %v", after)
	}
	var restored any
	tab.eval(`return await gh.restore()`, &restored)
	if restored != nil {
		t.Fatalf("restore after logout: %v", restored)
	}
	if err := tab.try(fmt.Sprintf(`return (await gh.fetch("%s/api/orders")).status`, s.api), nil); err == nil ||
		!strings.Contains(err.Error(), "invalid_refresh_token") {
		t.Fatalf("fetch after logout: %v", err)
	}
	tab.assertNoTokenReadable()
	if logs := s.gh.logs.String(); strings.Contains(logs, "ghr_") || strings.Contains(logs, "eyJ") {
		t.Fatal("a token reached the server log")
	}
}

// A refresh that fails for an outage backs off instead of looping, keeps
// the user signed in, and recovers once Gatehouse is back.
func TestBrowserRefreshBacksOff(t *testing.T) {
	s := startSPA(t, accessTTL)
	tab := s.b.open("app", s.app)
	tab.eval(`await gh.register("ann", "correct horse battery"); await gh.login("ann", "correct horse battery"); return null`, nil)

	s.gh.refreshDown.Store(true)
	before := s.gh.refreshes.Load()
	// Hammer the API for 4 s across the token's expiry, as a busy page would.
	var codes map[string]int
	tab.eval(fmt.Sprintf(`
		const codes = {};
		const end = Date.now() + 4000;
		while (Date.now() < end) {
			try { const r = await gh.fetch("%s/api/orders"); codes[r.status] = (codes[r.status] || 0) + 1; }
			catch (e) { codes[e.code] = (codes[e.code] || 0) + 1; }
			await new Promise((r) => setTimeout(r, 20));
		}
		return codes;`, s.api), &codes)
	attempts := s.gh.refreshes.Load() - before
	t.Logf("during a 4 s outage: %v, %d refresh attempts", codes, attempts)
	if codes["http_502"] == 0 && codes["network_error"] == 0 {
		t.Fatalf("calls during the outage: %v", codes)
	}
	// Proactive refresh, then back-off of 0.5–1 s, 1–2 s, 2–4 s: a handful,
	// where a loop would have made hundreds.
	if attempts < 1 || attempts > 5 {
		t.Fatalf("%d refresh attempts in 4 s of outage", attempts)
	}
	var state map[string]any
	tab.eval(`return { user: gh.user && gh.user.username, signedout: window.log.signedout }`, &state)
	if state["user"] != "ann" || fmt.Sprint(state["signedout"]) != "[]" {
		t.Fatalf("an outage signed the user out: %v", state)
	}

	// Gatehouse is back: once the back-off has passed, calls succeed again.
	s.gh.refreshDown.Store(false)
	var status int
	tab.eval(fmt.Sprintf(`
		for (let i = 0; i < 100; i++) {
			try { const r = await gh.fetch("%s/api/orders"); if (r.status == 200) return 200; } catch (e) {}
			await new Promise((r) => setTimeout(r, 100));
		}
		return 0;`, s.api), &status)
	if status != 200 {
		t.Fatal("the client did not recover after the outage")
	}
}
