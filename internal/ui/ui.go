// Package ui serves the embedded web UI: the sign-in page, the account
// pages and the admin console. It is static files built on /gatehouse.js
// and the public API, with no endpoints of its own; the server renders only
// two facts into the page (is registration open, where to go after sign-in)
// so the browser never decides what a safe return_to is.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Config is what the UI needs from the server's configuration.
type Config struct {
	// Issuer is the server's public base URL; its origin is "this host"
	// for return_to.
	Issuer string
	// AllowedOrigins (normalised scheme://host[:port]) may be return_to
	// targets too: the apps that send people here to sign in.
	AllowedOrigins   []string
	RegistrationOpen bool
}

// CSP allows the UI's own files and nothing else: no inline script or
// style, no other origin, no framing, and Trusted Types so that no string
// can reach an HTML sink (the UI builds every element with DOM calls).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

type handler struct {
	cfg     Config
	self    string // the issuer's origin
	page    *template.Template
	version string // of the assets, for cache busting
	etags   map[string]string
}

// Register adds the UI's pages and assets to mux.
func Register(mux *http.ServeMux, cfg Config) error {
	h := &handler{cfg: cfg, etags: map[string]string{}}
	if u, err := url.Parse(cfg.Issuer); err == nil && u.Scheme != "" && u.Host != "" {
		h.self = u.Scheme + "://" + u.Host
	}
	var err error
	if h.page, err = template.ParseFS(static, "static/index.html"); err != nil {
		return err
	}
	all := sha256.New()
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.etags[strings.TrimPrefix(p, "static/")] = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		all.Write(sum[:])
		return nil
	})
	if err != nil {
		return err
	}
	h.version = base64.RawURLEncoding.EncodeToString(all.Sum(nil)[:8])
	for _, p := range []string{"GET /{$}", "GET /login", "GET /register", "GET /account", "GET /account/{page}",
		"GET /admin", "GET /admin/{page}", "GET /admin/users/{id}"} {
		mux.HandleFunc(p, h.shell)
	}
	mux.HandleFunc("GET /ui/{file}", h.asset)
	return nil
}

// security sets the headers every UI response carries.
func security(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// shell serves the one HTML page every UI path shares; the script routes.
func (h *handler) shell(w http.ResponseWriter, r *http.Request) {
	security(w)
	var buf bytes.Buffer
	reg := "closed"
	if h.cfg.RegistrationOpen {
		reg = "open"
	}
	err := h.page.Execute(&buf, map[string]string{
		"Registration": reg,
		"ReturnTo":     h.ReturnTo(r.URL.Query().Get("return_to")),
		"Issuer":       h.cfg.Issuer,
		"Version":      h.version,
	})
	if err != nil {
		http.Error(w, "page unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	etag, ok := h.etags[name]
	if !ok || name == "index.html" { // the shell is served only as a page
		http.NotFound(w, r)
		return
	}
	b, err := static.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	security(w)
	ctype := mime.TypeByExtension(path.Ext(name))
	if strings.HasSuffix(name, ".js") {
		ctype = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	// Revalidated each time (the ETag makes that a 304): an upgraded
	// server's UI is picked up at once.
	w.Header().Set("Cache-Control", "public, no-cache")
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// ReturnTo is where to send someone after sign-in: the return_to value
// when it is a path on this host or a URL on this host or an allowed
// origin, and "" (the UI's home) for anything else. Never an open redirect:
// protocol-relative URLs, backslashes, user info, control characters and
// other schemes are all refused.
func (h *handler) ReturnTo(raw string) string {
	if raw == "" || len(raw) > 2048 || strings.ContainsAny(raw, "\\\x00") {
		return ""
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f || c == ' ' {
			return ""
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return ""
	}
	if u.Scheme == "" && u.Host == "" {
		// A path on this host: "/account", never "//evil.example".
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
			return ""
		}
		return u.String()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	origin := u.Scheme + "://" + strings.ToLower(u.Host)
	if origin == h.self {
		return u.String()
	}
	for _, o := range h.cfg.AllowedOrigins {
		if origin == o {
			return u.String()
		}
	}
	return ""
}
