package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
)

// startDPoPSPA is startSPA with createClient({dpop: true}) and an API whose
// guard accepts DPoP-bound tokens at its public URL.
func startDPoPSPA(t *testing.T, ttl time.Duration) *spa {
	t.Helper()
	b := startBrowser(t)
	ghLn, appLn, apiLn := reserve(t), reserve(t), reserve(t)
	appOrigin := "http://" + appLn.Addr().String()
	gh := startGatehouse(t, ghLn, ghOptions{origins: []string{appOrigin}, accessTTL: ttl})
	serveOn(t, appLn, page(appPageWith(gh.URL, "dpop: true")))
	apiURL := "http://" + apiLn.Addr().String()
	api, calls := startAPIOn(t, apiLn, gh, guard.Config{DPoP: &guard.DPoPConfig{URL: apiURL, Required: true}}, appOrigin)
	return &spa{gh: gh, app: appOrigin, api: api, apiCalls: calls, b: b}
}

// With dpop: true, four tabs work across many expiries sharing refreshes
// as without; the key is not exportable by page script; the refresh
// cookie and the access token, stolen out of the browser, are refused
// everywhere from another client, and the tab keeps working.
func TestBrowserDPoP(t *testing.T) {
	const tabsN, calls = 4, 40
	s := startDPoPSPA(t, accessTTL)
	start := time.Now()
	before := s.gh.refreshes.Load()
	tabs := s.openTabs(t, tabsN, "ann", "correct horse battery")
	uid := s.gh.user(t, "ann")
	gap := (6 * accessTTL / calls).Milliseconds() // six lifetimes
	results := callAPIFromTabs(tabs, s.api, calls, gap)
	elapsed := time.Since(start)
	for i, res := range results {
		for _, v := range res {
			if v != "200:"+uid {
				t.Fatalf("tab%d: %v", i+1, res)
			}
		}
	}
	refreshes := s.gh.refreshes.Load() - before
	tokenLife := 9 * accessTTL / 10
	if tokens := int64(elapsed/tokenLife) + 1; refreshes > tokens+1 {
		t.Fatalf("%d refreshes where %d tokens were needed: tabs are not sharing", refreshes, tokens)
	}
	t.Logf("%d DPoP tabs x %d calls over %v: %d refreshes", tabsN, calls, elapsed.Round(time.Millisecond), refreshes)
	if n := s.gh.events(t, auth.EventRefreshTokenReused) + s.gh.events(t, auth.EventDPoPMismatch); n != 0 {
		t.Fatalf("%d reuse or dpop_mismatch events from the app itself", n)
	}
	tb := tabs[0]
	tb.assertNoTokenReadable()

	// The key: in IndexedDB, as a CryptoKey page script cannot export,
	// and the session's tokens are bound to it.
	var key struct {
		Export, Stored string
		Extractable    bool
		Bound          bool
	}
	tb.eval(`
		const k = await gh._key();
		const tryExport = async (key) => { try { await crypto.subtle.exportKey("jwk", key); return "exported"; } catch (e) { return e.name; } };
		const stored = await new Promise((resolve) => {
			const open = indexedDB.open("gatehouse-dpop");
			open.onsuccess = () => { const r = open.result.transaction("keys").objectStore("keys").getAll(); r.onsuccess = () => resolve(r.result); };
		});
		const claims = JSON.parse(atob(gh._token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
		return { export: await tryExport(k.priv), stored: await tryExport(stored[0].priv), extractable: k.priv.extractable,
			bound: claims.cnf.jkt === k.jkt && stored.length === 1 };`, &key)
	if key.Export != "InvalidAccessError" || key.Stored != "InvalidAccessError" || key.Extractable || !key.Bound {
		t.Fatalf("the DPoP key from page script: %+v", key)
	}

	// The thief: the refresh cookie (read out through DevTools, as
	// malware on the machine would) and the access token (as XSS would
	// read it from memory), replayed from another client.
	var access string
	tb.eval(`return gh._token`, &access)
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.gh.URL + "/v1/auth/refresh"}})
	if err != nil {
		t.Fatal(err)
	}
	var refreshCookie *network.Cookie
	for _, c := range cookies.Cookies {
		if strings.HasSuffix(c.Name, "gatehouse_refresh") {
			refreshCookie = c
		}
	}
	if refreshCookie == nil {
		t.Fatalf("no refresh cookie among %d", len(cookies.Cookies))
	}
	thief, _ := dpop.NewSigner("ES256")
	steal := func(method, url string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, url, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e struct{ Error string }
		b, _ := io.ReadAll(res.Body)
		json.Unmarshal(b, &e)
		return res.StatusCode, e.Error
	}
	refreshURL := s.gh.URL + "/v1/auth/refresh"
	cookie := refreshCookie.Name + "=" + refreshCookie.Value
	for name, hdr := range map[string]map[string]string{
		"the cookie alone":        {"Cookie": cookie, "Gatehouse-Transport": "refresh-cookie"},
		"the cookie, thief's key": {"Cookie": cookie, "Gatehouse-Transport": "refresh-cookie", "DPoP": thief.Proof("POST", refreshURL, "", "", time.Now())},
	} {
		if code, e := steal("POST", refreshURL, hdr); code != 401 || e != "invalid_dpop_proof" {
			t.Errorf("stolen refresh cookie, %s: %d %s", name, code, e)
		}
	}
	orders := s.api + "/api/orders"
	for name, hdr := range map[string]map[string]string{
		"as Bearer":            {"Authorization": "Bearer " + access},
		"as DPoP, thief's key": {"Authorization": "DPoP " + access, "DPoP": thief.Proof("GET", orders, access, "", time.Now())},
		"at Gatehouse":         {"Authorization": "Bearer " + access},
	} {
		url := orders
		if name == "at Gatehouse" {
			url = s.gh.URL + "/v1/me"
		}
		if code, e := steal("GET", url, hdr); code != 401 || e != "invalid_dpop_proof" {
			t.Errorf("stolen access token %s: %d %s", name, code, e)
		}
	}
	if n := s.gh.events(t, auth.EventDPoPMismatch); n == 0 {
		t.Error("no dpop_mismatch event for the stolen cookie")
	}
	// The tab, untouched, keeps working: through a refresh and on its socket.
	var after []string
	tb.eval(fmt.Sprintf(`
		await new Promise((r) => setTimeout(r, %d));
		const r = await gh.fetch("%s/api/orders");
		const sock = gh.socket();
		const hello = await new Promise((resolve) => sock.addEventListener("message", (e) => resolve(JSON.parse(e.data).type), { once: true }));
		sock.close();
		return [r.status + "", hello];`, accessTTL.Milliseconds(), s.api), &after)
	if len(after) != 2 || after[0] != "200" || after[1] != "hello" {
		t.Fatalf("the victim's tab after the theft: %v", after)
	}
	// Sign-out deletes the key.
	var left int
	tb.eval(`await gh.logout();
		return await new Promise((resolve) => {
			const open = indexedDB.open("gatehouse-dpop");
			open.onsuccess = () => { const r = open.result.transaction("keys").objectStore("keys").count(); r.onsuccess = () => resolve(r.result); };
		});`, &left)
	if left != 0 {
		t.Fatalf("%d DPoP keys left after sign-out", left)
	}
}
