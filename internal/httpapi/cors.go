package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS (API.md "CORS"): browser apps on the origins listed in
// --allowed-origin may call the API with credentials. Only an exact, listed
// origin is ever echoed: never "*", never "null" (sandboxed iframes and
// file: pages send it), never a prefix or suffix match. Every response
// varies on Origin so a shared cache cannot hand one origin's answer to
// another.

const (
	corsAllowHeaders  = "Authorization, Content-Type, Gatehouse-Transport"
	corsExposeHeaders = "Retry-After, WWW-Authenticate"
	corsMaxAge        = "600"
)

// routeMethods are the methods a preflight may ask for.
var routeMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// normalizeOrigin checks that o is exactly scheme://host[:port] and returns
// it the way a browser serialises an Origin header (lower case, no slash).
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimRight(o, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port], e.g. https://app.example.com)", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// corsOrigin returns the request's Origin if it is one of the allowed
// origins, else "".
func (h *handler) corsOrigin(r *http.Request) string {
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	if _, ok := h.origins[o]; ok {
		return o
	}
	return ""
}

// allowedMethods lists the methods the mux serves on r's path (nil for an
// unknown path), by asking the mux itself so the answer cannot drift from
// the routes.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range routeMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// cors adds the CORS response headers for an allowed origin and answers
// preflights. It reports whether the request has been answered.
func (h *handler) cors(w http.ResponseWriter, r *http.Request) bool {
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	origin := h.corsOrigin(r)
	if origin != "" {
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}
	if r.Method != http.MethodOptions {
		if origin != "" {
			expose := corsExposeHeaders
			if r.Header.Get(dpopHeader) != "" {
				expose += ", " + dpopNonceHeader // a DPoP client reads the nonce to use next
			}
			hdr.Set("Access-Control-Expose-Headers", expose)
		}
		return false
	}
	methods := allowedMethods(h.mux, r)
	if len(methods) == 0 {
		h.writeError(w, r, errNotFound)
		return true
	}
	if r.Header.Get("Access-Control-Request-Method") == "" {
		// A plain OPTIONS, not a preflight: say what the path serves.
		hdr.Set("Allow", strings.Join(append(methods, http.MethodOptions), ", "))
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	hdr.Add("Vary", "Access-Control-Request-Method")
	hdr.Add("Vary", "Access-Control-Request-Headers")
	if origin == "" {
		// Unlisted origin, "null", or none: no CORS headers at all, and a
		// clear refusal for whoever reads the response.
		h.writeError(w, r, errCORS)
		return true
	}
	hdr.Set("Access-Control-Allow-Methods", strings.Join(methods, ", "))
	allow := corsAllowHeaders
	// The contract's list, and Gatehouse-Elevation and DPoP only to a
	// preflight that asks for them (a one-time elevation, a DPoP proof).
	asked := strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",")
	for _, extra := range []string{elevationHeader, dpopHeader} {
		if slices.ContainsFunc(asked, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), extra) }) {
			allow += ", " + extra
		}
	}
	hdr.Set("Access-Control-Allow-Headers", allow)
	hdr.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
