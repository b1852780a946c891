package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// Cookie names (API.md "Transport"). The __Host-/__Secure- prefixes make
// browsers refuse them over plain HTTP or from a subdomain;
// --insecure-dev-cookies drops them (and Secure) for plain-HTTP development.
const (
	accessCookie  = "__Host-gatehouse_access"
	refreshCookie = "__Secure-gatehouse_refresh"
	devAccess     = "gatehouse_access"
	devRefresh    = "gatehouse_refresh"
	refreshPath   = "/v1/auth"
)

// cookieNames returns the access and refresh cookie names in use.
func (h *handler) cookieNames() (access, refresh string) {
	if h.cfg.InsecureDevCookies {
		return devAccess, devRefresh
	}
	return accessCookie, refreshCookie
}

// bearerRequest reports whether the request carries an access token in its
// Authorization header (Bearer or DPoP).
func bearerRequest(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) && strings.TrimSpace(tok) != ""
}

// csrfExempt reports whether the credential the route acts on comes from the
// Authorization header: a browser never adds one on its own, so such a
// request cannot be forged cross-site. Login and register act on no
// credential and refresh on the refresh cookie or body, whatever header is
// sent; any other scheme (Basic …) exempts nothing.
func csrfExempt(r *http.Request) bool {
	switch r.URL.Path {
	case "/v1/auth/login", "/v1/auth/register", "/v1/auth/refresh":
		return false
	}
	return bearerRequest(r)
}

// accessToken returns the caller's access token: the Authorization header
// (Bearer or DPoP) first, then the access cookie. Another scheme is an
// error, not a reason to fall back to the cookie.
func (h *handler) accessToken(r *http.Request) (string, error) {
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, tok, ok := strings.Cut(v, " ")
		if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) || tok == "" {
			return "", auth.ErrInvalidToken
		}
		return strings.TrimSpace(tok), nil
	}
	name, _ := h.cookieNames()
	if c, err := r.Cookie(name); err == nil && c.Value != "" {
		return c.Value, nil
	}
	return "", errMissingToken
}

// refreshFromCookie returns the refresh cookie's value, if any.
func (h *handler) refreshFromCookie(r *http.Request) string {
	_, name := h.cookieNames()
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// transport is how login, refresh and re-authentication hand out tokens
// (API.md "Transport", header Gatehouse-Transport).
type transport int

const (
	// transportBody: both tokens in the JSON body, no cookies.
	transportBody transport = iota
	// transportCookie: both tokens only as HttpOnly cookies.
	transportCookie
	// transportRefreshCookie (single-page apps): the refresh token only in
	// the HttpOnly refresh cookie, the access token only in the body, to be
	// kept in memory and sent as a Bearer header.
	transportRefreshCookie
)

// requestedTransport reads the Gatehouse-Transport header; set reports
// whether the client chose one.
func requestedTransport(r *http.Request) (t transport, set bool, err error) {
	switch v := r.Header.Get("Gatehouse-Transport"); strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return transportBody, false, nil
	case "body":
		return transportBody, true, nil
	case "cookie":
		return transportCookie, true, nil
	case "refresh-cookie":
		return transportRefreshCookie, true, nil
	default:
		return transportBody, false, errInvalidRequest(`Gatehouse-Transport must be "body", "cookie" or "refresh-cookie".`)
	}
}

// answerTransport is the transport a refresh or re-authentication answers
// in, given whether the refresh cookie came with the request. A refresh
// token that travelled as the HttpOnly cookie is never put in a body
// (API.md "Transport"): with Gatehouse-Transport: body that is a 400, so a
// script on an allowed origin cannot turn the cookie into a readable token;
// without the header, the answer is in cookies, as it came.
func answerTransport(r *http.Request, cookie bool) (transport, error) {
	tr, chosen, err := requestedTransport(r)
	switch {
	case err != nil:
		return tr, err
	case cookie && chosen && tr == transportBody:
		return tr, errCookieToBody
	case cookie && !chosen:
		return transportCookie, nil
	}
	return tr, nil
}

func (h *handler) setAccessCookie(w http.ResponseWriter, t auth.Tokens, now time.Time) {
	access, _ := h.cookieNames()
	http.SetCookie(w, &http.Cookie{
		Name: access, Value: t.AccessToken, Path: "/",
		MaxAge:   secondsUntil(t.AccessExpiresAt, now),
		HttpOnly: true, Secure: !h.cfg.InsecureDevCookies, SameSite: http.SameSiteLaxMode,
	})
}

func (h *handler) setRefreshCookie(w http.ResponseWriter, t auth.Tokens, now time.Time) {
	_, refresh := h.cookieNames()
	http.SetCookie(w, &http.Cookie{
		Name: refresh, Value: t.RefreshToken, Path: refreshPath,
		MaxAge:   secondsUntil(t.RefreshExpiresAt, now),
		HttpOnly: true, Secure: !h.cfg.InsecureDevCookies, SameSite: http.SameSiteStrictMode,
	})
}

// clearCookies expires both cookies with the attributes they were set with,
// so the browser matches and drops them.
func (h *handler) clearCookies(w http.ResponseWriter) {
	access, refresh := h.cookieNames()
	http.SetCookie(w, &http.Cookie{Name: access, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: !h.cfg.InsecureDevCookies, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: refresh, Value: "", Path: refreshPath, MaxAge: -1,
		HttpOnly: true, Secure: !h.cfg.InsecureDevCookies, SameSite: http.SameSiteStrictMode})
}

// secondsUntil rounds up, so a token with 299.4 s left is reported as
// 300 s, never as already expired.
func secondsUntil(t, now time.Time) int {
	d := t.Sub(now)
	s := int(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return max(s, 1)
}

// meta is what the domain records about the caller.
func (h *handler) meta(r *http.Request) auth.Meta {
	m := auth.Meta{IP: h.clientIP(r), UserAgent: truncate(r.UserAgent(), 512), DPoP: proofKey(r.Context())}
	m.ClientID, _ = r.Context().Value(serviceKey{}).(string)
	return m
}

// clientIP is the socket's peer address, unless the peer is a trusted proxy
// (--trusted-proxy): then X-Forwarded-For is walked from the right, past
// trusted hops, to the first address a trusted proxy saw. Anything a client
// wrote further left is ignored, so it cannot pick its own IP.
func (h *handler) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		return host
	}
	ip := peer.Addr().Unmap()
	if !h.trusted(ip) {
		return ip.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return ip.String() // garbage: stop at the last hop we trust
			}
			ip = a.Unmap()
			if !h.trusted(ip) {
				return ip.String()
			}
		}
	}
	return ip.String()
}

// fromTrustedProxy reports whether the request's peer is a --trusted-proxy.
func (h *handler) fromTrustedProxy(r *http.Request) bool {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && h.trusted(peer.Addr().Unmap())
}

func (h *handler) trusted(ip netip.Addr) bool {
	for _, p := range h.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// hasQueryToken reports a token-looking query parameter.
func hasQueryToken(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return false
	}
	q := r.URL.Query()
	return q.Has("access_token") || q.Has("token") || q.Has("refresh_token")
}
