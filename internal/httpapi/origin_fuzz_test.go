package httpapi

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzNormalizeOrigin: an accepted --allowed-origin is a bare http(s)
// origin in the form browsers send, and normalising it again changes
// nothing (so the CORS set and the Origin header compare exactly).
func FuzzNormalizeOrigin(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		out, err := normalizeOrigin(in)
		if err != nil {
			if out != "" {
				t.Fatal("origin returned with an error")
			}
			return
		}
		if again, err := normalizeOrigin(out); err != nil || again != out {
			t.Fatalf("%q normalised to %q, then to %q (%v)", in, out, again, err)
		}
		u, err := url.Parse(out)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil || out != strings.ToLower(out) {
			t.Fatalf("%q accepted as origin %q", in, out)
		}
	})
}

// FuzzOriginChecks drives the two places a request's Origin decides
// something, CORS and the WebSocket handshake, with hostile headers: CORS
// echoes only a listed origin (never "*", "null" or a look-alike), and a
// socket is opened only for a same-host or listed origin and never for a
// request the browser marked cross-site.
func FuzzOriginChecks(f *testing.F) {
	const host = "auth.example.com"
	allowed := "https://app.example.com"
	h := &handler{origins: map[string]struct{}{allowed: {}}}
	f.Fuzz(func(t *testing.T, method, origin, fetchSite string) {
		r := httptest.NewRequest("GET", "http://"+host+"/v1/ws", nil)
		r.Method = method
		r.Header.Set("Origin", origin)
		r.Header.Set("Sec-Fetch-Site", fetchSite)

		if got := h.corsOrigin(r); got != "" && got != allowed {
			t.Fatalf("CORS allowed %q", got)
		}
		if !h.sameOrigin(r) {
			return
		}
		if fetchSite == "cross-site" {
			t.Fatal("socket allowed on a cross-site request")
		}
		if origin == "" || origin == allowed {
			return
		}
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, host) {
			t.Fatalf("socket allowed for origin %q", origin)
		}
	})
}
