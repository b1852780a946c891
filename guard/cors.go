package guard

import (
	"net/http"
	"slices"
	"strings"
)

// CORS lets browser apps on the listed origins (exact scheme://host[:port])
// call next across origins. A preflight (OPTIONS with
// Access-Control-Request-Method) carries no token by design, so it is
// answered here, before Middleware would refuse it: 204 with the allowed
// methods and the headers Gatehouse clients send (Authorization,
// Content-Type, DPoP). Actual responses to a listed origin expose
// WWW-Authenticate and DPoP-Nonce, which gatehouse.js reads to refresh and
// to retry with a nonce. Other origins get no CORS header at all. Wrap it
// outside Middleware:
//
//	http.Handle("/api/", guard.CORS([]string{"https://app.example.com"}, g.Middleware(api)))
func CORS(origins []string, next http.Handler) http.Handler {
	allowed := slices.Clone(origins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		ok := origin != "" && slices.Contains(allowed, origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", strings.Join([]string{"WWW-Authenticate", "DPoP-Nonce"}, ", "))
		}
		next.ServeHTTP(w, r)
	})
}
