// Package guard lets a resource server trust Gatehouse access tokens without
// calling Gatehouse on every request, and still honour a revocation within
// about a second.
//
// A Guard fetches the issuer's JWKS (and refetches it, rate-limited, when a
// token names a key it does not know), verifies tokens locally (the
// signature in the algorithm of the key that made it, EdDSA, ES256 or
// RS256; typ at+jwt, issuer, expiry, and the audience when
// Config.Audience is set), and follows Gatehouse's revocation
// feed in the background with a long poll: revoked sessions, per-user
// cutoffs (ban, role change) and the global cutoff (revoke-all).
//
// It fails closed. If the feed has not been heard from for longer than
// Config.MaxStaleness, Verify refuses every token with ErrStale (the
// middleware answers 503 unavailable) until the feed is back: a guard that
// cannot know about revocations does not pretend to. It deliberately does
// not fall back to per-request introspection, which would turn a Gatehouse
// outage into a load spike on Gatehouse the moment it recovers.
//
// Browser apps served behind one origin with Gatehouse may authenticate with
// the access cookie instead of a header (Config.AccessCookie); unsafe
// requests authenticated that way get the same cross-origin protection as
// Gatehouse's own (403 csrf_failed). See docs/API.md in the repository for
// the contract the guard follows.
//
// DPoP-bound tokens (RFC 9449: tokens with cnf.jkt, sent as
// "Authorization: DPoP" with a proof) are accepted when Config.DPoP is set,
// with a proof by the bound key for this request; without it they are
// refused, never taken as bearer tokens.
//
// The package depends on nothing else in Gatehouse but two of its internal
// packages: the access-token verifier and the DPoP proof verifier the server
// uses itself (one implementation, standard library only).
package guard

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/accesstoken"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
)

// Errors returned by Verify.
var (
	ErrInvalidToken = errors.New("guard: invalid token")
	ErrExpired      = errors.New("guard: token expired")
	ErrRevoked      = errors.New("guard: token revoked")
	// ErrStale means the revocation feed has been unreachable for longer
	// than MaxStaleness: no token is accepted until it is back.
	ErrStale = errors.New("guard: revocation status unknown (feed unreachable)")
	// ErrDPoP refuses a request whose DPoP binding does not hold: a bound
	// token without a valid proof by its key, sent as Bearer, or with
	// DPoP not configured; a bearer token sent as DPoP (or at all, with
	// DPoPConfig.Required).
	ErrDPoP = errors.New("guard: DPoP proof missing or invalid")
	// ErrUseNonce asks the client to retry with the nonce in DPoP-Nonce.
	ErrUseNonce = errors.New("guard: DPoP nonce required")
)

// Cookie names Gatehouse sets in its cookie transport, for
// Config.AccessCookie: AccessCookie normally, DevAccessCookie when the
// server runs with --insecure-dev-cookies.
const (
	AccessCookie    = "__Host-gatehouse_access"
	DevAccessCookie = "gatehouse_access"
)

// Config configures a Guard. Issuer and ResourceKey are required.
type Config struct {
	// Issuer is the tokens' iss: Gatehouse's public base URL, e.g.
	// "https://auth.example.com".
	Issuer string
	// BaseURL is where the guard fetches the JWKS and follows the
	// revocation feed, when that is not Issuer: an internal address
	// ("http://gatehouse.internal:8080") or a sidecar. Default: Issuer.
	BaseURL string
	// ResourceKey authenticates this resource server to the feed
	// (`gatehouse keys resource add`).
	ResourceKey string
	// HTTPClient fetches the JWKS and the feed: set it for a private CA,
	// a proxy or mTLS. Default: a client with a 40s timeout.
	HTTPClient *http.Client
	// AccessCookie, when set, is the name of a cookie the middleware reads
	// the access token from when the request has no Authorization header
	// (apps served with Gatehouse behind one origin; see AccessCookie).
	// Unsafe methods authenticated by the cookie must then pass the
	// cross-origin check (Sec-Fetch-Site / Origin), else 403 csrf_failed.
	AccessCookie string
	// TrustedOrigins are other origins (scheme://host[:port]) allowed to
	// make cookie-authenticated unsafe requests.
	TrustedOrigins []string
	// MaxStaleness is how long the feed may be unreachable before tokens
	// are refused (default 30s). The feed's long poll answers at least every
	// MaxStaleness/3, so a healthy feed never comes close.
	MaxStaleness time.Duration
	// JWKSMinInterval rate-limits JWKS refetches triggered by unknown key
	// ids (default 10s): random kids cannot make the guard hammer Gatehouse.
	JWKSMinInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock (tests); defaults to time.Now.
	Now func() time.Time
	// DPoP accepts DPoP-bound tokens in the middleware; nil refuses them.
	DPoP *DPoPConfig
	// Audience, when set, is this API's identifier: tokens whose aud
	// does not name it are refused (ErrInvalidToken), so a token meant for
	// another API cannot be replayed here. Set it to one of Gatehouse's
	// --audience values or a resource client's audience.
	Audience string
}

// DPoPConfig configures DPoP (RFC 9449) for the middleware.
type DPoPConfig struct {
	// URL is this resource server's public base URL, as clients address
	// it ("https://api.example.com"): a proof's htu must be URL followed
	// by the request's path. Behind a proxy the URL the server sees is
	// another, so it is configured rather than guessed. Required.
	URL string
	// NonceKey, when set (32 bytes or more), makes the middleware demand
	// nonces it issues (DPoP-Nonce, use_dpop_nonce): a captured proof
	// then replays for at most five minutes on another instance. Nonces
	// are stateless: every instance with the same key accepts them.
	NonceKey []byte
	// Required refuses bearer tokens: every token must be DPoP-bound.
	Required bool
	// MaxProofs bounds the replay cache (proofs seen within the iat
	// window); 0 means about two million. A full cache refuses proofs
	// rather than forget one that could be replayed.
	MaxProofs int
}

// Claims are a verified access token's claims.
type Claims struct {
	Issuer  string
	Subject string // user id, or a service client's id
	// Audience is the token's aud; ClientID the client that obtained it
	// ("gatehouse" for sign-ins, a service client's id for its own tokens).
	Audience  []string
	ClientID  string
	SessionID string
	ID        string
	Role      string
	// Permissions are the user's permission strings (nil when none).
	Permissions []string
	IssuedAt    time.Time
	ExpiresAt   time.Time
	// AuthTime is when the person last proved who they are in this
	// session (login or step-up); zero if the token does not say.
	AuthTime time.Time
	// ACR is that proof's assurance level: "aal1", or "aal2" for two
	// factors (a token that does not say is aal1). AMR lists its methods
	// (RFC 8176: pwd, otp, hwk, user, mfa).
	ACR string
	AMR []string
	// Confirmation is the key the token is bound to (cnf), nil for a
	// bearer token. The middleware has checked the request's proof.
	Confirmation *Confirmation
}

// Confirmation is a DPoP-bound token's cnf claim.
type Confirmation struct {
	// JKT is the RFC 7638 thumbprint of the bound key.
	JKT string
}

// HasPermission reports whether the claims carry permission p.
func (c *Claims) HasPermission(p string) bool {
	for _, have := range c.Permissions {
		if have == p {
			return true
		}
	}
	return false
}

// Guard verifies Gatehouse access tokens. Create it with New; it is safe for
// concurrent use.
type Guard struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	base   string
	cop    *http.CrossOriginProtection
	warned sync.Map // configuration-mismatch reasons already logged

	keys        atomic.Pointer[map[string]crypto.PublicKey] // encoded JOSE header -> key
	jwksMu      sync.Mutex
	lastJWKS    time.Time
	lastContact atomic.Int64 // Unix ns of the last successful feed answer

	mu       sync.RWMutex
	sessions map[string]int64 // sid -> Unix ns the entry can be dropped
	users    map[string]int64 // user id -> not-before, Unix ns
	global   atomic.Int64
	cursor   string

	dpop *dpop.Verifier // nil: DPoP-bound tokens are refused
	// verified remembers tokens already verified (accesstoken.Cache);
	// cleared when the JWKS is fetched again.
	verified *accesstoken.Cache

	cancel context.CancelFunc
	done   chan struct{}
}

// New fetches the JWKS and a revocation snapshot, then follows the feed in
// the background until Close. It fails if either first fetch fails.
func New(ctx context.Context, cfg Config) (*Guard, error) {
	if cfg.Issuer == "" || cfg.ResourceKey == "" {
		return nil, errors.New("guard: Issuer and ResourceKey are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 40 * time.Second}
	}
	if cfg.MaxStaleness <= 0 {
		cfg.MaxStaleness = 30 * time.Second
	}
	if cfg.JWKSMinInterval <= 0 {
		cfg.JWKSMinInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base := cfg.BaseURL
	if base == "" {
		base = cfg.Issuer
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("guard: BaseURL (or Issuer) %q is not an http(s) URL", base)
	}
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("guard: TrustedOrigins: %w", err)
		}
	}
	g := &Guard{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, base: strings.TrimRight(base, "/"), cop: cop,
		sessions: map[string]int64{}, users: map[string]int64{}, done: make(chan struct{}), verified: accesstoken.NewCache(0)}
	if d := cfg.DPoP; d != nil {
		if u, err := url.Parse(d.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("guard: DPoP.URL %q is not an http(s) URL", d.URL)
		}
		var nonces *dpop.Nonces
		if d.NonceKey != nil {
			if len(d.NonceKey) < 32 {
				return nil, errors.New("guard: DPoP.NonceKey must be at least 32 bytes")
			}
			nonces = dpop.NewNonces(d.NonceKey)
		}
		g.dpop = dpop.NewVerifier(d.MaxProofs, nonces, cfg.Now)
	}
	if err := g.fetchJWKS(ctx); err != nil {
		return nil, err
	}
	if err := g.poll(ctx, 0); err != nil {
		return nil, fmt.Errorf("guard: first revocation snapshot: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go g.follow(bg)
	return g, nil
}

// Close stops following the feed.
func (g *Guard) Close() {
	g.cancel()
	<-g.done
}

// Verify checks a token and returns its claims.
func (g *Guard) Verify(token string) (*Claims, error) {
	now := g.cfg.Now()
	if now.UnixNano()-g.lastContact.Load() > int64(g.cfg.MaxStaleness) {
		return nil, ErrStale
	}
	c, err := g.verifySignature(token, now)
	if err != nil {
		return nil, err
	}
	if g.revoked(c.SessionID, c.Subject, c.IssuedAt.UnixNano()) {
		return nil, ErrRevoked
	}
	return c, nil
}

// verifySignature checks header, signature, claims, issuer and expiry with
// the verifier the server uses (internal/accesstoken: one rule, written
// once). The header must be byte for byte one Gatehouse produces for a key
// in the JWKS, so alg:none, other algorithms, embedded keys and unknown
// kids all fail without parsing attacker-controlled JOSE.
func (g *Guard) verifySignature(tok string, now time.Time) (*Claims, error) {
	if c, ok := g.verified.Get(tok, now); ok {
		return g.claims(c)
	}
	c, err := accesstoken.Verify(tok, g.key, g.cfg.Issuer, now)
	if errors.Is(err, accesstoken.ErrUnknownKey) {
		kid, wellFormed := g.maybeRefetch(strings.SplitN(tok, ".", 2)[0])
		if c, err = accesstoken.Verify(tok, g.key, g.cfg.Issuer, now); errors.Is(err, accesstoken.ErrUnknownKey) && wellFormed {
			g.warnOnce("unknown-key", "guard: refusing tokens signed with a key the JWKS does not have; "+
				"is BaseURL the Gatehouse that issues them?", slog.String("kid", kid), slog.String("jwks", g.base+"/.well-known/jwks.json"))
		}
	}
	switch {
	case errors.Is(err, accesstoken.ErrIssuer):
		// Signed by a key we trust, so this is not an attacker's token:
		// the server's --issuer and Config.Issuer disagree.
		g.warnOnce("issuer", "guard: refusing tokens whose issuer is not Config.Issuer; set it to the server's --issuer",
			slog.String("token_iss", c.Issuer), slog.String("config_issuer", g.cfg.Issuer))
		return nil, ErrInvalidToken
	case errors.Is(err, accesstoken.ErrExpired):
		return nil, ErrExpired
	case err != nil:
		return nil, ErrInvalidToken
	}
	g.verified.Put(tok, c)
	return g.claims(c)
}

// claims is a verified token's claims as guard returns them, after the
// audience check.
func (g *Guard) claims(c accesstoken.Claims) (*Claims, error) {
	if g.cfg.Audience != "" && !c.Audience.Contains(g.cfg.Audience) {
		return nil, ErrInvalidToken
	}
	out := &Claims{Issuer: c.Issuer, Subject: c.Subject, SessionID: c.SessionID, ID: c.ID, Role: c.Role,
		Permissions: c.Permissions, IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time, ACR: c.ACR, AMR: c.AMR,
		Audience: c.Audience, ClientID: c.ClientID}
	if c.Confirmation != nil {
		out.Confirmation = &Confirmation{JKT: c.Confirmation.JKT}
	}
	if out.ACR == "" {
		out.ACR = "aal1"
	}
	if c.AuthTime > 0 {
		out.AuthTime = time.Unix(c.AuthTime, 0)
	}
	return out, nil
}

// key is the JWKS's key for an encoded header.
func (g *Guard) key(header string) (crypto.PublicKey, bool) {
	k, ok := (*g.keys.Load())[header]
	return k, ok
}

// revoked is the three-layer check; it allocates nothing.
func (g *Guard) revoked(sid, sub string, iat int64) bool {
	if iat < g.global.Load() {
		return true
	}
	g.mu.RLock()
	_, gone := g.sessions[sid]
	nb, ok := g.users[sub]
	g.mu.RUnlock()
	return gone || (ok && iat < nb)
}

// header is the exact JOSE header Gatehouse puts on tokens of key kid,
// which signs with alg.
func header(alg, kid string) string { return accesstoken.Header(alg, kid) }

func (g *Guard) fetchJWKS(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", g.base+"/.well-known/jwks.json", nil)
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	res, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("guard: fetch JWKS: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("guard: fetch JWKS: status %d", res.StatusCode)
	}
	keys, err := parseJWKS(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	g.keys.Store(&keys)
	if g.verified != nil {
		g.verified.Clear() // a key may have left the set
	}
	return nil
}

// parseJWKS reads a JWKS document and keeps only keys of the algorithms
// Gatehouse signs with (EdDSA with Ed25519, ES256 with P-256, RS256 with
// RSA of 2048 bits or more), each indexed by the exact JOSE header of its
// tokens: a key verifies only in the algorithm its JWK declares.
func parseJWKS(r io.Reader) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty, Crv, X, Y, N, E, Kid, Alg string
		} `json:"keys"`
	}
	if err := json.NewDecoder(r).Decode(&set); err != nil {
		return nil, fmt.Errorf("guard: decode JWKS: %w", err)
	}
	dec := base64.RawURLEncoding.Strict().DecodeString
	keys := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		var pub crypto.PublicKey
		switch {
		case k.Kty == "OKP" && k.Crv == "Ed25519" && k.Alg == accesstoken.EdDSA:
			if x, err := dec(k.X); err == nil && len(x) == ed25519.PublicKeySize {
				pub = ed25519.PublicKey(x)
			}
		case k.Kty == "EC" && k.Crv == "P-256" && k.Alg == accesstoken.ES256:
			x, errX := dec(k.X)
			y, errY := dec(k.Y)
			if errX == nil && errY == nil && len(x) == 32 && len(y) == 32 {
				if p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...)); err == nil {
					pub = p
				}
			}
		case k.Kty == "RSA" && k.Alg == accesstoken.RS256:
			n, errN := dec(k.N)
			e, errE := dec(k.E)
			if errN == nil && errE == nil && len(e) > 0 && len(e) <= 4 {
				ev := int(new(big.Int).SetBytes(e).Int64())
				p := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}
				if ev >= 3 && ev%2 == 1 && accesstoken.Algorithm(p) == accesstoken.RS256 && p.N.BitLen() <= 8192 {
					pub = p
				}
			}
		}
		if pub != nil && k.Kid != "" {
			keys[header(k.Alg, k.Kid)] = pub
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("guard: JWKS holds no EdDSA, ES256 or RS256 key")
	}
	return keys, nil
}

// maybeRefetch refreshes the JWKS for an unknown header that names a kid,
// at most once per JWKSMinInterval. It reports the kid and whether the
// header is one Gatehouse would write.
func (g *Guard) maybeRefetch(h string) (kid string, wellFormed bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(h)
	if err != nil || len(raw) > 512 {
		return "", false
	}
	var hdr struct {
		Alg, Kid, Typ string
	}
	if json.Unmarshal(raw, &hdr) != nil || (hdr.Alg != accesstoken.EdDSA && hdr.Alg != accesstoken.ES256 && hdr.Alg != accesstoken.RS256) ||
		hdr.Kid == "" || header(hdr.Alg, hdr.Kid) != h {
		return "", false // not a header Gatehouse would write: no refetch for garbage
	}
	g.jwksMu.Lock()
	defer g.jwksMu.Unlock()
	if time.Since(g.lastJWKS) < g.cfg.JWKSMinInterval {
		return hdr.Kid, true
	}
	g.lastJWKS = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.fetchJWKS(ctx); err != nil {
		g.log.Warn("guard: JWKS refetch failed", "err", err)
	}
	return hdr.Kid, true
}

// warnOnce logs a configuration mismatch the first time it refuses a
// token for that reason: the operator learns why every token fails, and
// a flood of such tokens cannot flood the log.
func (g *Guard) warnOnce(reason, msg string, attrs ...any) {
	if _, seen := g.warned.LoadOrStore(reason, true); !seen {
		g.log.Warn(msg, attrs...)
	}
}

// follow long-polls the feed until ctx ends, backing off on errors.
func (g *Guard) follow(ctx context.Context) {
	defer close(g.done)
	wait := g.cfg.MaxStaleness / 3
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := g.poll(ctx, wait); err != nil {
			if ctx.Err() != nil {
				return
			}
			g.log.Warn("guard: revocation feed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

type feedPage struct {
	Cursor          string  `json:"cursor"`
	GlobalNotBefore *string `json:"global_not_before"`
	Sessions        []struct {
		SID string `json:"sid"`
		Exp string `json:"exp"`
	} `json:"sessions"`
	Users []struct {
		UserID    string `json:"user_id"`
		NotBefore string `json:"not_before"`
	} `json:"users"`
}

// decodeFeed reads one revocation feed answer. Entries with malformed
// times are skipped by apply, not here: one bad entry must not stop the
// rest of a page from being applied.
func decodeFeed(r io.Reader) (feedPage, error) {
	var page feedPage
	if err := json.NewDecoder(r).Decode(&page); err != nil {
		return feedPage{}, fmt.Errorf("decode: %w", err)
	}
	return page, nil
}

// poll makes one feed request (a snapshot first, then incremental) and
// applies the answer.
func (g *Guard) poll(ctx context.Context, wait time.Duration) error {
	q := url.Values{}
	g.mu.RLock()
	if g.cursor != "" {
		q.Set("since", g.cursor)
	}
	g.mu.RUnlock()
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	req, err := http.NewRequestWithContext(ctx, "GET", g.base+"/v1/revocations?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.cfg.ResourceKey)
	res, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	page, err := decodeFeed(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	g.apply(page)
	g.lastContact.Store(g.cfg.Now().UnixNano())
	return nil
}

func (g *Guard) apply(p feedPage) {
	now := g.cfg.Now().UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range p.Sessions {
		if t, err := time.Parse(time.RFC3339Nano, s.Exp); err == nil {
			g.sessions[s.SID] = t.UnixNano()
		}
	}
	for _, u := range p.Users {
		if t, err := time.Parse(time.RFC3339Nano, u.NotBefore); err == nil && t.UnixNano() > g.users[u.UserID] {
			g.users[u.UserID] = t.UnixNano()
		}
	}
	if p.GlobalNotBefore != nil {
		if t, err := time.Parse(time.RFC3339Nano, *p.GlobalNotBefore); err == nil && t.UnixNano() > g.global.Load() {
			g.global.Store(t.UnixNano())
		}
	}
	for sid, until := range g.sessions { // expired entries cover no live token
		if until < now {
			delete(g.sessions, sid)
		}
	}
	g.cursor = p.Cursor
}

type ctxKey struct{}

// ClaimsFrom returns the claims the middleware stored in the request context.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}

// Middleware verifies the request's access token and puts the claims in
// the context for next. The token comes from the Authorization header
// (Bearer, or DPoP with a proof for a bound token), else from
// Config.AccessCookie when set (never a bound token: cookies carry no
// proof); never from the query string. A request with a header is judged on the header alone, even when
// it also carries the cookie. Failures are answered in Gatehouse's error
// format.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("access_token") || q.Has("token") {
			writeError(w, 400, "query_token_disabled", "Tokens are not accepted in the query string.")
			return
		}
		tok, fromCookie := g.requestToken(r)
		if tok == "" {
			w.Header().Set("WWW-Authenticate", g.challenge(""))
			writeError(w, 401, "invalid_token", "An access token is required.")
			return
		}
		if fromCookie && !safeMethod(r.Method) {
			// A browser attaches the cookie to cross-site requests too.
			if err := g.cop.Check(r); err != nil {
				writeError(w, 403, "csrf_failed", "Cross-site request refused.")
				return
			}
		}
		if g.dpop != nil && r.Header.Get("DPoP") != "" {
			if n := g.dpop.Nonce(); n != "" {
				w.Header().Set("DPoP-Nonce", n) // the nonce to use next
			}
		}
		c, err := g.Verify(tok)
		if err == nil {
			err = g.checkDPoP(r, tok, c)
		}
		switch {
		case errors.Is(err, ErrUseNonce):
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="`+dpop.AlgorithmList+`"`)
			writeError(w, 401, "use_dpop_nonce", "This resource server requires a nonce in DPoP proofs: use the one in the DPoP-Nonce header.")
			return
		case errors.Is(err, ErrDPoP):
			w.Header().Set("WWW-Authenticate", g.challenge(`error="invalid_token"`))
			writeError(w, 401, "invalid_dpop_proof", dpopDescription(err))
			return
		case errors.Is(err, ErrStale):
			w.Header().Set("Retry-After", "1")
			writeError(w, 503, "unavailable", "Token revocation status is unknown; retry shortly.")
			return
		case errors.Is(err, ErrExpired):
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, 401, "token_expired", "The access token has expired.")
			return
		case errors.Is(err, ErrRevoked):
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, 401, "token_revoked", "The access token has been revoked.")
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, 401, "invalid_token", "The access token is invalid.")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

// VerifyRequest checks the access token in r's Authorization header, as
// the middleware does: Bearer, or DPoP with a proof by the bound key for
// this request (ErrDPoP, ErrUseNonce). For servers that cannot use
// Middleware; it reads no cookie.
func (g *Guard) VerifyRequest(r *http.Request) (*Claims, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) || strings.TrimSpace(tok) == "" {
		return nil, ErrInvalidToken
	}
	tok = strings.TrimSpace(tok)
	c, err := g.Verify(tok)
	if err != nil {
		return nil, err
	}
	if err := g.checkDPoP(r, tok, c); err != nil {
		return nil, err
	}
	return c, nil
}

// challenge is the WWW-Authenticate value for a 401 with params (RFC 9449
// §7.1): a DPoP challenge when DPoP is configured (with the algorithms),
// besides Bearer unless only bound tokens are accepted.
func (g *Guard) challenge(params string) string {
	bearer := "Bearer"
	if params != "" {
		bearer += " " + params
	}
	if g.dpop == nil {
		return bearer
	}
	d := `DPoP algs="` + dpop.AlgorithmList + `"`
	if params != "" {
		d = "DPoP " + params + `, algs="` + dpop.AlgorithmList + `"`
	}
	if g.cfg.DPoP.Required {
		return d
	}
	return bearer + ", " + d
}

// checkDPoP enforces the token's binding for the request (see ErrDPoP).
// The proof is verified with the server's own verifier: htm and htu (the
// configured public URL and the request's path), ath (this token), iat
// within 60 s, jti not seen by this guard, the nonce when demanded.
func (g *Guard) checkDPoP(r *http.Request, tok string, c *Claims) error {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	asDPoP := strings.EqualFold(scheme, "DPoP")
	proofs := r.Header.Values("DPoP")
	switch {
	case c.Confirmation == nil && asDPoP:
		return fmt.Errorf("%w: the access token is not DPoP-bound: send it as Bearer", ErrDPoP)
	case c.Confirmation == nil && g.dpop != nil && g.cfg.DPoP.Required:
		return fmt.Errorf("%w: only DPoP-bound tokens are accepted here", ErrDPoP)
	case c.Confirmation == nil:
		return nil
	case g.dpop == nil:
		g.warnOnce("dpop", "guard: refusing DPoP-bound tokens: set Config.DPoP to accept them")
		return fmt.Errorf("%w: DPoP-bound tokens are not accepted here", ErrDPoP)
	case !asDPoP:
		return fmt.Errorf("%w: the access token is DPoP-bound: send it as Authorization: DPoP with a proof", ErrDPoP)
	case len(proofs) != 1:
		return fmt.Errorf("%w: send exactly one DPoP proof", ErrDPoP)
	}
	p, err := g.dpop.Verify(proofs[0], dpop.Request{Method: r.Method,
		URL: strings.TrimSuffix(g.cfg.DPoP.URL, "/") + r.URL.Path, AccessToken: tok})
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return ErrUseNonce
	case err != nil:
		return fmt.Errorf("%w: %w", ErrDPoP, err)
	case p.Thumbprint != c.Confirmation.JKT:
		return fmt.Errorf("%w: the proof was made with another key than the token is bound to", ErrDPoP)
	}
	return nil
}

// dpopDescription is a refusal's description: the reason, which never
// quotes the proof or the token.
func dpopDescription(err error) string {
	msg := strings.TrimPrefix(err.Error(), ErrDPoP.Error()+": ")
	msg = strings.TrimPrefix(msg, dpop.ErrInvalid.Error()+": ")
	if msg == "" || msg == err.Error() {
		return "The DPoP proof is missing or invalid."
	}
	return "Invalid DPoP proof: " + msg + "."
}

// requestToken returns the token to judge and whether it came from the
// cookie. A malformed Authorization header yields no token: it is never a
// reason to fall back to the cookie.
func (g *Guard) requestToken(r *http.Request) (tok string, fromCookie bool) {
	if v := r.Header.Get("Authorization"); v != "" {
		scheme, t, ok := strings.Cut(v, " ")
		if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) {
			return "", false
		}
		return strings.TrimSpace(t), false
	}
	if g.cfg.AccessCookie != "" {
		if c, err := r.Cookie(g.cfg.AccessCookie); err == nil && c.Value != "" {
			return c.Value, true
		}
	}
	return "", false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// RequireRecentAuth lets a request through only if its token's auth_time
// is within maxAge (RFC 9470 step-up): otherwise 401
// insufficient_user_authentication with the challenge
// `Bearer error="insufficient_user_authentication", max_age=N`, which tells
// the client to call POST /v1/auth/reauthenticate and retry. Use it inside
// Middleware.
func (g *Guard) RequireRecentAuth(maxAge time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			writeError(w, 401, "invalid_token", "An access token is required.")
			return
		}
		if c.AuthTime.IsZero() || g.cfg.Now().Sub(c.AuthTime) > maxAge {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(
				`Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age=%d`,
				int(maxAge.Seconds())))
			writeError(w, 401, "insufficient_user_authentication", "This needs a recent sign-in: re-authenticate, then retry.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// acrRank orders the assurance levels Gatehouse issues.
var acrRank = map[string]int{"aal1": 1, "aal2": 2}

// RequireACR lets a request through only if its token's proof is at least
// acr ("aal2": two factors); otherwise 401 insufficient_user_authentication
// with the RFC 9470 challenge `Bearer error="insufficient_user_authentication",
// acr_values="aal2"`, which tells the client to re-authenticate with its
// second factor and retry. Combine it with RequireRecentAuth for a recent
// second-factor proof. Use it inside Middleware.
func RequireACR(acr string, next http.Handler) http.Handler {
	need, known := acrRank[acr]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			writeError(w, 401, "invalid_token", "An access token is required.")
			return
		}
		if !known || acrRank[c.ACR] < need {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(
				`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values=%q`, acr))
			writeError(w, 401, "insufficient_user_authentication", "This needs a sign-in with a second factor: re-authenticate, then retry.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireRole lets a request through only if its token carries role; others
// get 403 forbidden. Use it inside Middleware.
func RequireRole(role string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok || c.Role != role {
			writeError(w, 403, "forbidden", fmt.Sprintf("This needs the %s role.", role))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequirePermission lets a request through only if its token carries
// permission; others get 403 forbidden. Use it inside Middleware.
func RequirePermission(permission string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok || !c.HasPermission(permission) {
			writeError(w, 403, "forbidden", fmt.Sprintf("This needs the %s permission.", permission))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
