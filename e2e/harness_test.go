package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/httpapi"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-auth/gatehouse/internal/syncbuf"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

const resourceKey = "e2e-resource-key-0123456789abcdef0123456789"

// chromiumPath finds the system Chromium, or skips (fails when
// GATEHOUSE_REQUIRE_BROWSER is set, as in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
		t.Fatal("GATEHOUSE_REQUIRE_BROWSER is set but no chromium is on PATH")
	}
	t.Skip("chromium not installed: browser tests skipped (apt-get install chromium; CI requires them)")
	return ""
}

// listen serves h on a fresh loopback port and returns its origin.
func listen(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// reserve picks a loopback origin before its server exists (the origins
// reference each other: Gatehouse must know the app's origin up front).
func reserve(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func serveOn(t *testing.T, ln net.Listener, h http.Handler) string {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// gatehouse is a real Gatehouse in process: SQLite, the domain, the HTTP
// API, with a counter of refresh requests.
type gatehouse struct {
	URL       string
	svc       *auth.Service
	refreshes atomic.Int64
	// refreshDown makes refreshes fail with 502, as during an outage.
	refreshDown atomic.Bool
	// refreshStall makes refreshes hang (until the client gives up, or
	// 30 s), as behind a stuck proxy.
	refreshStall atomic.Bool
	logs         *syncbuf.Buffer
}

type ghOptions struct {
	origins   []string
	accessTTL time.Duration
	devCookie bool
	issuer    string // default http://ADDR
	trusted   []netip.Prefix
	ui        bool          // serve the web UI
	reauthAge time.Duration // --reauth-max-age (default 10m)
	signing   string        // --signing-alg (default EdDSA)
}

func startGatehouse(t *testing.T, ln net.Listener, o ghOptions) *gatehouse {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "gh.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatehouse{logs: &syncbuf.Buffer{}}
	log := slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	issuer := "http://" + ln.Addr().String()
	if o.issuer != "" {
		issuer = o.issuer
	}
	g.svc = auth.New(auth.Config{
		Issuer: issuer, RegistrationOpen: true, AccessTTL: o.accessTTL, ResourceKeys: []string{resourceKey}, WebAuthnOrigins: o.origins,
		Logger: log, SyncInterval: 50 * time.Millisecond, Throttle: throttle.Config{PerIP: 1000}, ReauthMaxAge: o.reauthAge,
		HashParams: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	}, st, token.NewKeySet(signingKey(t, o.signing)), make([]byte, 32))
	h, err := httpapi.New(g.svc, httpapi.Config{Logger: log, AllowedOrigins: o.origins, InsecureDevCookies: o.devCookie,
		TrustedProxies: o.trusted, UI: o.ui})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go g.svc.Run(ctx)
	t.Cleanup(func() { cancel(); st.Close() })
	g.URL = serveOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/v1/auth/refresh" {
			g.refreshes.Add(1)
			if g.refreshStall.Load() {
				select {
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
				return
			}
			if g.refreshDown.Load() {
				// An outage as a load balancer reports it.
				if o := r.Header.Get("Origin"); o != "" {
					w.Header().Set("Access-Control-Allow-Origin", o)
					w.Header().Set("Access-Control-Allow-Credentials", "true")
				}
				http.Error(w, "bad gateway", http.StatusBadGateway)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	return g
}

func signingKey(t *testing.T, alg string) *token.Key {
	if alg == "" {
		alg = "EdDSA"
	}
	k, err := token.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// events returns the number of events of typ.
func (g *gatehouse) events(t *testing.T, typ string) int {
	t.Helper()
	list, _, err := g.svc.Events(context.Background(), auth.EventQuery{Type: typ, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// user returns the id of a registered user.
func (g *gatehouse) user(t *testing.T, name string) string {
	t.Helper()
	u, err := g.svc.FindUser(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// api is a resource server protected by guard, answering CORS for the
// listed origins as any API serving a browser app on another origin must.
func startAPI(t *testing.T, gh *gatehouse, cfg guard.Config, corsOrigins ...string) (string, *atomic.Int64) {
	t.Helper()
	return startAPIOn(t, reserve(t), gh, cfg, corsOrigins...)
}

// startAPIOn is startAPI on a listener reserved beforehand (its URL is in cfg).
func startAPIOn(t *testing.T, ln net.Listener, gh *gatehouse, cfg guard.Config, corsOrigins ...string) (string, *atomic.Int64) {
	t.Helper()
	cfg.Issuer, cfg.ResourceKey = gh.URL, resourceKey
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	gd, err := guard.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gd.Close)
	var calls atomic.Int64
	protected := gd.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		c, _ := guard.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"user": c.Subject, "method": r.Method})
	}))
	mux := http.NewServeMux()
	mux.Handle("/api/", protected)
	return serveOn(t, ln, cors(mux, corsOrigins)), &calls
}

func cors(next http.Handler, origins []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		for _, o := range origins {
			if r.Header.Get("Origin") == o {
				w.Header().Set("Access-Control-Allow-Origin", o)
				w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
				if r.Method == "OPTIONS" {
					w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
					w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
					w.WriteHeader(204)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// page serves one HTML document at / (and 404 elsewhere).
func page(html string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, html)
	})
}

// appPage is a single-page app that imports the client from Gatehouse and
// records what happens to it in window.log.
func appPage(gatehouseURL string) string { return appPageWith(gatehouseURL, "") }

// appPageWith is appPage with more createClient options (a JS object
// literal's entries, e.g. "requestTimeout: 1000").
func appPageWith(gatehouseURL, options string) string {
	return fmt.Sprintf(`<!doctype html><meta charset="utf-8"><title>app</title>
<script>window.errors = []; addEventListener("error", (e) => errors.push(String(e.message || e.target?.src)), true);</script>
<script type="module">
import { createClient } from "%[1]s/gatehouse.js";
const gh = createClient({ baseUrl: "%[1]s", %[2]s });
window.gh = gh;
window.log = { signedout: [], refreshed: 0, socket: [] };
gh.on("signedout", (r) => window.log.signedout.push(r));
gh.on("refreshed", () => window.log.refreshed++);
window.ready = true;
</script>`, gatehouseURL, options)
}

// browser starts headless Chromium; tabs are opened with tab.
type browser struct {
	ctx context.Context
	t   *testing.T
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return &browser{ctx: ctx, t: t}
}

// tab is one browser tab.
type tab struct {
	ctx  context.Context
	t    *testing.T
	name string
}

// open opens url in a new tab (the first call uses the browser's first
// tab) and waits for window.ready.
func (b *browser) open(name, url string) *tab {
	b.t.Helper()
	tb := b.newTab(name)
	tb.run(chromedp.Navigate(url))
	tb.waitFor("window.ready === true", 10*time.Second)
	return tb
}

func (tb *tab) run(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

// eval runs an async JavaScript function body in the page and decodes its
// result into out (may be nil). A rejection fails the test.
func (tb *tab) eval(js string, out any) {
	tb.t.Helper()
	if err := tb.try(js, out); err != nil {
		tb.t.Fatalf("%s: %v\n%s", tb.name, err, js)
	}
}

// try is eval returning the error (a rejection, with its code).
func (tb *tab) try(js string, out any) error {
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	expr := "(async () => { try { return await (async () => {" + js + "})(); } catch (e) { throw new Error((e && e.code ? e.code + ': ' : '') + (e && e.message)); } })()"
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil || out == nil || len(raw) == 0 {
		return err
	}
	return json.Unmarshal(raw, out)
}

func (tb *tab) waitFor(cond string, limit time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, limit)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		var state any
		tb.try(`return [window.log, window.errors, location.href, document.body?.innerText.slice(0, 800)]`, &state)
		tb.t.Fatalf("%s: waiting for %s: %v (log %v)", tb.name, cond, err, state)
	}
}

// assertNoTokenReadable checks that nothing page JavaScript can read holds
// a token: cookies, Web Storage, IndexedDB.
func (tb *tab) assertNoTokenReadable() {
	tb.t.Helper()
	var got struct {
		Cookie  string `json:"cookie"`
		Local   int    `json:"local"`
		Session int    `json:"session"`
		IDB     int    `json:"idb"`
	}
	// IndexedDB may hold one thing: a DPoP client's non-extractable key
	// (TestBrowserDPoP shows it cannot be read out).
	tb.eval(`return { cookie: document.cookie, local: localStorage.length, session: sessionStorage.length,
		idb: (await indexedDB.databases()).filter((d) => d.name !== "gatehouse-dpop").length }`, &got)
	if got.Cookie != "" || got.Local != 0 || got.Session != 0 || got.IDB != 0 {
		tb.t.Fatalf("%s: page JavaScript can read state: %+v", tb.name, got)
	}
}

// openRaw opens url in a new tab without waiting for the app's ready flag.
func (b *browser) openRaw(name, url string) *tab {
	b.t.Helper()
	tb := b.newTab(name)
	tb.run(chromedp.Navigate(url))
	return tb
}

func reload() chromedp.Action[chromedp.Void] { return chromedp.Reload() }

// newTab opens a tab. Its first action runs without a timeout: the tab
// lives as long as the context of that first call.
func (b *browser) newTab(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	return &tab{ctx: ctx, t: b.t, name: name}
}

// proxyTo routes path prefixes to other servers, the way a reverse proxy
// puts Gatehouse, an API and the app behind one origin; fallback serves the
// rest.
func proxyTo(routes map[string]string, fallback http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for prefix, target := range routes {
			if strings.HasPrefix(r.URL.Path, prefix) {
				u, _ := url.Parse(target)
				httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
				return
			}
		}
		fallback.ServeHTTP(w, r)
	})
}

// submitForm submits a form the way a user's click would (a navigation).
func submitForm(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.Submit(sel), chromedp.Sleep(300*time.Millisecond))
}
