package ui

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newUI(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	if err := Register(mux, cfg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

var inlineAttr = regexp.MustCompile(`\s(on[a-z]+|style)=`)

func TestReturnTo(t *testing.T) {
	h := &handler{cfg: Config{AllowedOrigins: []string{"https://app.example.com"}}, self: "https://auth.example.com"}
	for in, want := range map[string]string{
		"/account":                                 "/account",
		"/account/activity?x=1#top":                "/account/activity?x=1#top",
		"https://auth.example.com/admin":           "https://auth.example.com/admin",
		"https://app.example.com/after-login":      "https://app.example.com/after-login",
		"https://APP.example.com/x":                "https://APP.example.com/x",
		"":                                         "",
		"//evil.example/":                          "",
		"///evil.example/":                         "",
		"/\\evil.example":                          "",
		"\\\\evil.example":                         "",
		"https://evil.example/":                    "",
		"https://app.example.com.evil.example/":    "",
		"https://app.example.com@evil.example/":    "",
		"https://user:pw@app.example.com/":         "",
		"http://app.example.com/":                  "", // another scheme is another origin
		"https://app.example.com:8443/":            "",
		"javascript:alert(1)":                      "",
		"data:text/html,<script>alert(1)</script>": "",
		"account":                                  "", // relative paths are ambiguous
		"/acc\nount":                               "",
		"/acc ount":                                "",
		"\x00/":                                    "",
		"/" + strings.Repeat("a", 3000):            "",
	} {
		if got := h.ReturnTo(in); got != want {
			t.Errorf("ReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShell(t *testing.T) {
	srv := newUI(t, Config{Issuer: "http://auth.test", RegistrationOpen: true})
	for _, path := range []string{"/", "/login", "/register", "/account", "/account/activity", "/admin", "/admin/events", "/admin/users/abc"} {
		res, body := get(t, srv.URL+path)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for 'script'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP lacks %s: %s", path, want, csp)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %s", path, csp)
		}
		if res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, res.Header)
		}
		// Nothing inline: every script and style comes from a file.
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") || inlineAttr.MatchString(body) {
			t.Errorf("%s: inline script or style in the page", path)
		}
		if !strings.Contains(body, `<meta name="gatehouse-registration" content="open">`) {
			t.Errorf("%s: registration meta missing", path)
		}
	}
	// return_to is rendered validated and escaped.
	_, body := get(t, srv.URL+`/login?return_to=/a"><script>alert(1)</script>`)
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, `content="/a%22%3E%3Cscript%3Ealert%281%29%3C/script%3E"`) {
		t.Errorf("return_to rendered unsafely: %s", body)
	}
	_, body = get(t, srv.URL+`/login?return_to=https://evil.example/`)
	if !strings.Contains(body, `<meta name="gatehouse-return-to" content="">`) {
		t.Errorf("foreign return_to rendered: %s", body)
	}
	closed := newUI(t, Config{Issuer: "http://auth.test"})
	if _, body := get(t, closed.URL+"/register"); !strings.Contains(body, `content="closed"`) {
		t.Error("closed registration not rendered")
	}
}

func TestAssets(t *testing.T) {
	srv := newUI(t, Config{Issuer: "http://auth.test"})
	res, body := get(t, srv.URL+"/ui/app.js")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(body, `from "./shell.js"`) {
		t.Fatalf("app.js: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// Its modules are served too, and the client is the server's own.
	if res, body := get(t, srv.URL+"/ui/client.js"); res.StatusCode != 200 || !strings.Contains(body, `from "/gatehouse.js"`) {
		t.Fatalf("client.js: %d", res.StatusCode)
	}
	etag := res.Header.Get("ETag")
	if res, _ := get(t, srv.URL+"/ui/app.js", "If-None-Match", etag); res.StatusCode != 304 {
		t.Fatalf("revalidation: %d", res.StatusCode)
	}
	if res, _ := get(t, srv.URL+"/ui/app.css"); res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("app.css: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/ui/index.html", "/ui/nope.js", "/ui/..%2fui.go", "/ui/"} {
		if res, _ := get(t, srv.URL+p); res.StatusCode != 404 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	// The UI makes no request elsewhere: no absolute URL in its files.
	files, _ := static.ReadDir("static")
	for _, e := range files {
		f := e.Name()
		if strings.HasSuffix(f, ".svg") {
			continue // its xmlns is a name, not a request
		}
		b, _ := static.ReadFile("static/" + f)
		text := strings.ReplaceAll(string(b), `"http://www.w3.org/2000/svg"`, "") // a namespace name
		bad := []string{"http://", "https://", "//cdn", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("}
		if v, ok := vendored[f]; ok {
			// Upstream's comments name its home page and licence: the
			// file must be the release it claims, and still load nothing.
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != v {
				t.Errorf("%s is not the vendored release (sha256 %x)", f, sum)
			}
			bad = []string{"fetch(", "XMLHttpRequest", "import(", "WebSocket", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.", "window.", "eval(", "new Function"}
		}
		for _, bad := range bad {
			if strings.Contains(text, bad) {
				t.Errorf("%s contains %q", f, bad)
			}
		}
	}
}

// vendored lists third-party files in static/ with the sha256 of the
// release they are copied from, unmodified.
var vendored = map[string]string{
	// qrcode-generator 2.0.4 (npm), dist/qrcode.mjs; MIT, see ../../THIRD_PARTY.md.
	"qrcode-generator.js": "ea91d7118a5395289170da848b7c6758b996163bfbccf312591ab65a4911b7c0",
}
