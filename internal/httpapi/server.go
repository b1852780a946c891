// Package httpapi serves the Gatehouse HTTP contract (docs/API.md): routes,
// bodies, cookies, CSRF, error mapping. The domain work is in internal/auth;
// this package turns requests into calls and results into responses, and is
// the one place where errors become status codes (errors.go).
package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-auth/gatehouse/docs"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/ui"
)

// Config configures the HTTP layer.
type Config struct {
	// AllowedOrigins are origins (scheme://host[:port]) trusted to make
	// cookie-authenticated unsafe requests besides the server's own, and
	// the only origins that get CORS headers.
	AllowedOrigins []string
	// InsecureDevCookies drops Secure and the cookie-name prefixes.
	InsecureDevCookies bool
	// TrustedProxies are the networks whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// AllowQueryToken accepts ?access_token= on the WebSocket endpoint only
	// (deprecated: URLs leak into histories and proxies' logs).
	AllowQueryToken bool
	Logger          *slog.Logger
	// Registry receives the metrics; nil makes a fresh one.
	Registry *prometheus.Registry
	// MetricsElsewhere stops serving GET /metrics here: it is on its own
	// listener (serve --metrics-addr), out of the public's reach.
	MetricsElsewhere bool
	// MaxPendingSockets caps WebSockets accepted without a credential and
	// still waiting for their first (auth) message; 0 means 1024.
	MaxPendingSockets int
	// MaxPendingSocketsPerAddress is one client address's share of those
	// (IPv6 counted per /64); 0 means 16. One host cannot hold every
	// waiting slot and lock browsers out of first-message auth.
	MaxPendingSocketsPerAddress int
	// MaxSocketsPerUser caps one account's authenticated sockets on this
	// instance; 0 means 32.
	MaxSocketsPerUser int
	// UI serves the embedded web UI at / (serve --ui, on by default).
	UI bool
	// DPoP verifies DPoP proofs (its replay cache is this instance's);
	// nil makes one without nonces (serve --dpop-nonce turns them on).
	DPoP *dpop.Verifier
}

type handler struct {
	svc      *auth.Service
	cfg      Config
	log      *slog.Logger
	cop      *http.CrossOriginProtection
	metrics  *metrics
	keyFails keyFailures
	mux      *http.ServeMux
	origins  map[string]struct{} // normalised AllowedOrigins
	sockets  *socketLimits
	hsts     bool // the issuer is https://
	dpop     *dpop.Verifier
	// hostWarned: page origins already warned about (warnHostMismatch).
	hostWarned sync.Map
	// openapiDoc is /openapi.json with this server as its server, made once.
	openapiDoc func() ([]byte, error)
}

// New returns the HTTP handler for svc.
func New(svc *auth.Service, cfg Config) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxPendingSockets <= 0 {
		cfg.MaxPendingSockets = 1024
	}
	if cfg.MaxPendingSocketsPerAddress <= 0 {
		cfg.MaxPendingSocketsPerAddress = 16
	}
	if cfg.MaxSocketsPerUser <= 0 {
		cfg.MaxSocketsPerUser = 32
	}
	if cfg.DPoP == nil {
		cfg.DPoP = dpop.NewVerifier(0, nil, svc.Now)
	}
	cop := http.NewCrossOriginProtection()
	origins := map[string]struct{}{}
	var normalised []string // the same origins, for the UI's return_to
	for _, o := range cfg.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		if err := cop.AddTrustedOrigin(norm); err != nil {
			return nil, fmt.Errorf("%q: %w", o, err)
		}
		origins[norm] = struct{}{}
		normalised = append(normalised, norm)
	}
	mux := http.NewServeMux()
	h := &handler{svc: svc, cfg: cfg, log: cfg.Logger, cop: cop,
		mux: mux, origins: origins, sockets: newSocketLimits(cfg),
		hsts: strings.HasPrefix(svc.Config().Issuer, "https://"), dpop: cfg.DPoP}
	h.openapiDoc = sync.OnceValues(func() ([]byte, error) {
		doc, err := docs.OpenAPIJSON()
		if err != nil {
			return nil, err
		}
		return withServer(doc, svc.Config().Issuer)
	})
	h.metrics = newMetrics(cfg.Registry, svc, h.sockets.waiting, cfg.DPoP.Remembered)

	for _, rt := range h.routes() {
		mux.HandleFunc(rt.pattern, rt.serve)
	}
	if cfg.UI {
		if err := ui.Register(mux, ui.Config{Issuer: svc.Config().Issuer, AllowedOrigins: normalised,
			RegistrationOpen: svc.Config().RegistrationOpen}); err != nil {
			return nil, fmt.Errorf("web UI: %w", err)
		}
	}
	mux.HandleFunc("/", h.fallback)

	return h.middleware(mux), nil
}

type route struct {
	pattern string
	serve   http.HandlerFunc
}

// routes is every route the API serves, as ServeMux patterns; the OpenAPI
// test checks this list against docs/openapi.yaml.
func (h *handler) routes() []route {
	rs := []route{
		{"POST /v1/auth/register", h.register},
		{"POST /v1/auth/login", h.login},
		{"POST /v1/auth/refresh", h.refresh},
		{"POST /v1/auth/logout", h.logout},
		{"GET /v1/me", h.authed(h.me)},
		{"GET /v1/sessions", h.authed(h.listSessions)},
		{"DELETE /v1/sessions/{id}", h.authed(h.deleteSession)},
		{"DELETE /v1/sessions", h.authed(h.stepUp(h.deleteSessions))},
		{"POST /v1/me/password", h.authed(h.changePassword)},
		{"DELETE /v1/me", h.authed(h.stepUp(h.deleteMe))},
		{"GET /v1/me/events", h.authed(h.myEvents)},
		{"POST /v1/auth/reauthenticate", h.authed(h.reauthenticate)},
		{"POST /v1/auth/reauthenticate/webauthn/options", h.authed(h.reauthWebAuthnOptions)},
		{"POST /v1/auth/mfa", h.completeMFA},
		{"POST /v1/auth/mfa/webauthn/options", h.mfaWebAuthnOptions},
		{"POST /v1/auth/passkey/options", h.passkeyOptions},
		{"POST /v1/auth/passkey", h.passkeyLogin},
		// Second factors: enrolling, removing and regenerating codes are
		// step-up gated; a pending factor's first code and a passkey's
		// attestation answer a challenge issued under that gate.
		{"GET /v1/me/factors", h.authed(h.listFactors)},
		{"POST /v1/me/factors/totp", h.authed(h.stepUp(h.enrollTOTP))},
		{"POST /v1/me/factors/{id}/verify", h.authed(h.verifyFactor)},
		{"POST /v1/me/factors/webauthn/options", h.authed(h.stepUp(h.webauthnRegisterOptions))},
		{"POST /v1/me/factors/webauthn", h.authed(h.enrollWebAuthn)},
		{"DELETE /v1/me/factors/{id}", h.authed(h.stepUp(h.removeFactor))},
		{"POST /v1/me/recovery-codes", h.authed(h.stepUp(h.regenerateCodes))},
		// Every admin route that changes something needs a recent step-up.
		{"GET /v1/admin/users", h.admin(h.adminListUsers)},
		{"POST /v1/admin/users", h.adminStepUp(h.adminCreateUser)},
		{"GET /v1/admin/users/{id}", h.admin(h.adminGetUser)},
		{"PATCH /v1/admin/users/{id}", h.adminStepUp(h.adminUpdateUser)},
		{"DELETE /v1/admin/users/{id}", h.adminStepUp(h.adminDeleteUser)},
		{"GET /v1/admin/users/{id}/sessions", h.admin(h.adminUserSessions)},
		{"DELETE /v1/admin/users/{id}/sessions", h.adminStepUp(h.adminRevokeUserSessions)},
		{"DELETE /v1/admin/sessions/{id}", h.adminStepUp(h.adminRevokeSession)},
		{"DELETE /v1/admin/users/{id}/factors", h.adminStepUp(h.adminResetMFA)},
		{"POST /v1/admin/revoke-all", h.adminStepUp(h.adminRevokeAll)},
		{"GET /v1/admin/events", h.admin(h.adminEvents)},
		{"GET /v1/revocations", h.resource(h.revocations)},
		{"POST /v1/oauth/introspect", h.resource(h.introspect)},
		{"POST /v1/oauth/revoke", h.resource(h.revokeToken)},
		{"POST /v1/oauth/token", h.token},
		{"GET /v1/auth/verify", h.verify},
		{"GET /.well-known/oauth-authorization-server", h.metadata},
		{"GET /.well-known/openid-configuration", h.metadata},
		{"GET /v1/ws", h.websocket},
		{"GET /.well-known/jwks.json", h.jwks},
		{"GET /gatehouse.js", h.clientScript},
		{"GET /openapi.json", h.openAPI},
		{"GET /healthz", h.healthz},
		{"GET /readyz", h.readyz},
	}
	if !h.cfg.MetricsElsewhere {
		rs = append(rs, route{"GET /metrics", MetricsHandler(h.cfg.Registry).ServeHTTP})
	}
	return rs
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// middleware wraps every request: panic recovery, security headers, CORS,
// the query-token refusal, CSRF, metrics and the request log.
// Header values every response carries, shared instead of allocated per
// request as Header.Set would (a one-element slice each time). Assigned
// whole under their canonical keys; nothing modifies a value in place, and
// Add on one appends to a full slice, which copies.
var (
	valNosniff    = []string{"nosniff"}
	valNoStore    = []string{"no-store"}
	valNoReferrer = []string{"no-referrer"}
	valHSTS       = []string{"max-age=63072000"}
	valJSON       = []string{"application/json"}
	valNoCache    = []string{"no-cache"}
)

func (h *handler) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.log.Error("panic serving request", slog.String("method", r.Method),
					slog.String("path", r.URL.Path), slog.Any("panic", v))
				if !sw.wrote {
					h.writeError(sw, r, errUnavailable)
				}
			}
			d := time.Since(start)
			h.metrics.observe(r, sw.status, d)
			// The path only: query strings may carry tokens and are never
			// logged. Paths never contain secrets in this API.
			if h.log.Enabled(r.Context(), slog.LevelInfo) {
				h.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
					slog.String("method", r.Method), slog.String("path", r.URL.Path),
					slog.Int("status", sw.status), slog.Duration("duration", d),
					slog.String("ip", h.clientIP(r)))
			}
		}()
		hdr := sw.Header()
		hdr["X-Content-Type-Options"] = valNosniff
		hdr["Cache-Control"] = valNoStore
		hdr["Referrer-Policy"] = valNoReferrer
		if h.cors(sw, r) {
			return
		}
		if hasQueryToken(r) && !(h.cfg.AllowQueryToken && r.URL.Path == "/v1/ws") {
			h.writeError(sw, r, errQueryToken)
			return
		}
		if h.hsts {
			hdr["Strict-Transport-Security"] = valHSTS
		}
		if !isSafe(r.Method) && !csrfExempt(r) {
			if err := h.cop.Check(r); err != nil {
				h.svc.Event(r.Context(), auth.EventCSRFFailed, h.meta(r), "", "",
					r.Method+" "+r.URL.Path)
				h.writeError(sw, r, errCSRF)
				return
			}
		}
		r, err := h.checkDPoP(sw, r)
		if err != nil {
			h.writeError(sw, r, err)
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// fallback answers what no route matched: a known path with another method
// is 405 with Allow (so an unknown method never reaches a handler), anything
// else 404.
func (h *handler) fallback(w http.ResponseWriter, r *http.Request) {
	if methods := allowedMethods(h.mux, r); len(methods) > 0 {
		allow := methods
		if slices.Contains(methods, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		w.Header().Set("Allow", strings.Join(append(allow, http.MethodOptions), ", "))
		h.writeError(w, r, errMethodNotAllowed)
		return
	}
	h.writeError(w, r, errNotFound)
}

func isSafe(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
