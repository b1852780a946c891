package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/dpop"
	"github.com/gatehouse-auth/gatehouse/internal/httpapi"
	"github.com/gatehouse-auth/gatehouse/internal/redact"
	"github.com/gatehouse-auth/gatehouse/internal/secret"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/postgres"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// storeConfig locates the database and the master secret; shared by every
// command that opens the database.
type storeConfig struct {
	DB                string
	SecretFile        string
	SQLiteSynchronous string
	DBPooler          bool
	DBListenURL       string
	// DBGroupCommit is serve's alone (the other commands do not refresh).
	DBGroupCommit bool
}

// secrets are the database passwords the logs must never show.
func (c storeConfig) secrets() []string {
	return append(redact.Secrets(c.DB), redact.Secrets(c.DBListenURL)...)
}

func (c *storeConfig) bind(fs *flag.FlagSet) {
	c.bindAs(fs, "SQLite database file (created on first run), or a postgres:// URL for several instances")
}

// bindOperator binds the store flags of the commands that work on the
// server's existing database.
func (c *storeConfig) bindOperator(fs *flag.FlagSet) {
	c.bindAs(fs, "the server's database: its SQLite file, or its postgres:// URL")
}

func (c *storeConfig) bindAs(fs *flag.FlagSet, dbUsage string) {
	fs.StringVar(&c.DB, "db", "gatehouse.db", dbUsage)
	fs.StringVar(&c.SecretFile, "secret-file", "", "master secret file, created 0600 if missing (default: gatehouse.secret beside the database); GATEHOUSE_SECRET overrides it")
	fs.StringVar(&c.SQLiteSynchronous, "sqlite-synchronous", "NORMAL", "SQLite synchronous mode: NORMAL (commits survive a crash of the process) or FULL (also a power loss)")
	fs.BoolVar(&c.DBPooler, "db-pooler", false, "the postgres:// --db is a transaction-mode pooler (PgBouncer): no session state is kept on its connections")
	fs.StringVar(&c.DBListenURL, "db-listen-url", "", "with --db-pooler, a direct postgres:// URL to LISTEN for revocations on (without it the revocation log is polled every 500ms)")
}

// serveConfig is everything `gatehouse serve` takes.
type serveConfig struct {
	storeConfig
	Addr               string
	Issuer             string
	AccessTTL          time.Duration
	RefreshIdleTTL     time.Duration
	SessionMaxAge      time.Duration
	ReuseGrace         time.Duration
	ReauthMaxAge       time.Duration
	Registration       string
	AllowedOrigins     string
	InsecureDevCookies bool
	HashConcurrency    int
	MaxSessionsPerUser int
	IPPolicy           string
	TrustedProxies     string
	EventRetention     time.Duration
	RefusedWindow      time.Duration
	LoginRatePerIP     int
	LoginFreeFailures  int
	LoginAccountFails  int
	LoginAccountRefill time.Duration
	MetricsAddr        string
	ResourceKeys       string
	AllowQueryToken    bool
	UI                 bool
	LogLevel           string
	LogFormat          string
	RequireMFA         string
	TOTPIssuer         string
	WebAuthnRPID       string
	DPoPNonce          bool
	Audience           string
	SigningAlg         string

	trustedProxies []netip.Prefix
}

func (c *serveConfig) bind(fs *flag.FlagSet) {
	c.storeConfig.bind(fs)
	fs.BoolVar(&c.DBGroupCommit, "db-group-commit", true, "on PostgreSQL, send refresh rotations that arrive together as one statement and one commit (each still its own compare-and-swap); false: one statement each")
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&c.Issuer, "issuer", "", "token issuer (iss), the server's public base URL (default http://ADDR)")
	fs.StringVar(&c.SigningAlg, "signing-alg", "EdDSA", "access-token signature algorithm: EdDSA, ES256 or RS256 (for consumers without EdDSA); changing it rotates the signing key, the old one verifying until its tokens expire")
	fs.StringVar(&c.Audience, "audience", "", "comma-separated aud of access tokens: the APIs that accept them (default the issuer); each is also an audience a client may narrow a token to")
	fs.DurationVar(&c.AccessTTL, "access-ttl", auth.DefaultAccessTTL, "access-token lifetime")
	fs.DurationVar(&c.RefreshIdleTTL, "refresh-idle-ttl", auth.DefaultRefreshIdleTTL, "a session not refreshed for this long expires")
	fs.DurationVar(&c.SessionMaxAge, "session-max-age", auth.DefaultSessionMaxAge, "absolute session lifetime")
	fs.DurationVar(&c.ReuseGrace, "reuse-grace", auth.DefaultReuseGrace, "how long the previous refresh token still returns the current one (racing tabs, lost responses)")
	fs.DurationVar(&c.ReauthMaxAge, "reauth-max-age", auth.DefaultReauthMaxAge, "sensitive operations (admin changes, log out everywhere, account deletion) need a password proof this recent (RFC 9470 step-up)")
	fs.StringVar(&c.Registration, "registration", "open", "public registration: open or closed")
	fs.StringVar(&c.AllowedOrigins, "allowed-origin", "", "comma-separated origins (https://app.example.com) of browser apps: CORS answers them, their cookie-authenticated requests pass the CSRF check, their WebSocket upgrades are accepted, and passkeys may be used there")
	fs.BoolVar(&c.InsecureDevCookies, "insecure-dev-cookies", false, "drop Secure and the __Host-/__Secure- prefixes from cookies (plain-HTTP development only)")
	fs.IntVar(&c.HashConcurrency, "hash-concurrency", runtime.GOMAXPROCS(0), "argon2id hashes running at once (each takes 19 MiB)")
	fs.IntVar(&c.MaxSessionsPerUser, "max-sessions-per-user", auth.DefaultMaxSessionsPerUser, "a login beyond this many sessions evicts the least recently used one (-1: no limit)")
	fs.StringVar(&c.IPPolicy, "ip-policy", auth.IPPolicyWarn, "a refresh from a new IP: warn (record ip_changed) or revoke (also revoke the session)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxy", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed (default: none, the socket address is the client)")
	fs.DurationVar(&c.EventRetention, "event-retention", auth.DefaultEventRetention, "security events older than this are deleted")
	fs.DurationVar(&c.RefusedWindow, "refused-event-window", auth.DefaultRefusedWindow, "refused requests (rate_limited, csrf_failed) of one kind, address and account are recorded as one event and one summary per this interval")
	fs.IntVar(&c.LoginRatePerIP, "login-rate-per-ip", 30, "login attempts per minute from one client IP (per instance)")
	fs.IntVar(&c.LoginFreeFailures, "login-free-failures", 5, "failed logins on one account from one IP before each further attempt waits (1s, doubling, up to 15m); kept in the database")
	fs.IntVar(&c.LoginAccountFails, "login-account-failures", 50, "failed logins on one account from all IPs before attempts wait for a refill; kept in the database, shared by every instance")
	fs.DurationVar(&c.LoginAccountRefill, "login-account-refill", 30*time.Second, "one failure of --login-account-failures is forgiven per this interval")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve GET /metrics on this address (e.g. 127.0.0.1:9090) instead of the public listener")
	fs.StringVar(&c.ResourceKeys, "resource-key", "", "comma-separated resource-server keys (at least 32 characters each) for the revocation feed and the OAuth endpoints; prefer GATEHOUSE_RESOURCE_KEY or stored keys (gatehouse keys resource add)")
	fs.BoolVar(&c.UI, "ui", true, "serve the web UI (sign-in, account pages, admin console) at /; --ui=false leaves the API and /gatehouse.js")
	fs.BoolVar(&c.AllowQueryToken, "allow-query-token", false, "deprecated: accept ?access_token= on the WebSocket endpoint (never logged)")
	fs.BoolVar(&c.DPoPNonce, "dpop-nonce", false, "demand server-issued nonces in DPoP proofs (RFC 9449 §8): a captured proof is replayable for at most 5 minutes on another instance")
	fs.StringVar(&c.RequireMFA, "require-mfa", "", "comma-separated roles (e.g. admin) whose accounts must enrol a second factor before anything else")
	fs.StringVar(&c.TOTPIssuer, "totp-issuer", "", "the name authenticator apps show for TOTP codes (default the issuer's host)")
	fs.StringVar(&c.WebAuthnRPID, "webauthn-rp-id", "", "the passkeys' relying party id, a domain (default the issuer's host); the issuer and each --allowed-origin at or under it may use passkeys")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
}

func (c *serveConfig) validate() error {
	if (c.DBPooler || c.DBListenURL != "") && !postgres.IsURL(c.DB) {
		return fmt.Errorf("--db-pooler and --db-listen-url need a postgres:// --db")
	}
	if c.DBListenURL != "" && (!c.DBPooler || !postgres.IsURL(c.DBListenURL)) {
		return fmt.Errorf("--db-listen-url must be a postgres:// URL, with --db-pooler (without a pooler, --db itself is listened on)")
	}
	if c.Registration != "open" && c.Registration != "closed" {
		return fmt.Errorf("--registration must be open or closed, not %q", c.Registration)
	}
	if c.AccessTTL < time.Second || c.AccessTTL > 24*time.Hour {
		return fmt.Errorf("--access-ttl must be between 1s and 24h, not %v", c.AccessTTL)
	}
	if c.RefreshIdleTTL < time.Minute {
		return fmt.Errorf("--refresh-idle-ttl must be at least 1m, not %v", c.RefreshIdleTTL)
	}
	if c.SessionMaxAge < c.RefreshIdleTTL {
		return fmt.Errorf("--session-max-age (%v) must not be shorter than --refresh-idle-ttl (%v)", c.SessionMaxAge, c.RefreshIdleTTL)
	}
	if c.ReuseGrace < 0 || c.ReuseGrace > 5*time.Minute {
		return fmt.Errorf("--reuse-grace must be between 0 and 5m, not %v", c.ReuseGrace)
	}
	if c.ReauthMaxAge < 10*time.Second || c.ReauthMaxAge > 24*time.Hour {
		return fmt.Errorf("--reauth-max-age must be between 10s and 24h, not %v", c.ReauthMaxAge)
	}
	for _, r := range splitList(c.RequireMFA) {
		if !auth.ValidRole(r) {
			return fmt.Errorf("--require-mfa: unknown role %q", r)
		}
	}
	if len(c.TOTPIssuer) > 64 || strings.ContainsAny(c.TOTPIssuer, ":\r\n") {
		return fmt.Errorf("--totp-issuer must be at most 64 bytes without a colon or line break")
	}
	if c.IPPolicy != auth.IPPolicyWarn && c.IPPolicy != auth.IPPolicyRevoke {
		return fmt.Errorf("--ip-policy must be warn or revoke, not %q", c.IPPolicy)
	}
	if c.MaxSessionsPerUser == 0 || c.MaxSessionsPerUser < -1 {
		return fmt.Errorf("--max-sessions-per-user must be positive or -1 (no limit), not %d", c.MaxSessionsPerUser)
	}
	if c.RefusedWindow < time.Second || c.RefusedWindow > time.Hour {
		return fmt.Errorf("--refused-event-window must be between 1s and 1h, not %v", c.RefusedWindow)
	}
	if c.EventRetention < time.Hour {
		return fmt.Errorf("--event-retention must be at least 1h, not %v", c.EventRetention)
	}
	if c.LoginRatePerIP < 1 {
		return fmt.Errorf("--login-rate-per-ip must be at least 1, not %d", c.LoginRatePerIP)
	}
	if c.LoginFreeFailures < 1 || c.LoginFreeFailures > 1000 {
		return fmt.Errorf("--login-free-failures must be between 1 and 1000, not %d", c.LoginFreeFailures)
	}
	if c.LoginAccountFails < 1 || c.LoginAccountFails > 100000 {
		return fmt.Errorf("--login-account-failures must be between 1 and 100000, not %d", c.LoginAccountFails)
	}
	if c.LoginAccountRefill < time.Second || c.LoginAccountRefill > 24*time.Hour {
		return fmt.Errorf("--login-account-refill must be between 1s and 24h, not %v", c.LoginAccountRefill)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q: %v", c.MetricsAddr, err)
		}
		if c.MetricsAddr == c.Addr {
			return fmt.Errorf("--metrics-addr must differ from --addr (%s): the point is to keep /metrics off the public listener", c.Addr)
		}
	}
	for p := range strings.SplitSeq(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return fmt.Errorf("--trusted-proxy %q: not a CIDR or an IP address", p)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		c.trustedProxies = append(c.trustedProxies, prefix.Masked())
	}
	for k := range strings.SplitSeq(c.ResourceKeys, ",") {
		if k = strings.TrimSpace(k); k != "" && len(k) < 32 {
			return fmt.Errorf("--resource-key: keys must be at least 32 characters (use `gatehouse keys resource add`)")
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q: %v", c.Addr, err)
	}
	if c.Issuer == "" {
		c.Issuer = "http://" + c.Addr
	}
	if len(c.Issuer) > auth.MaxIssuerLength {
		return fmt.Errorf("--issuer: at most %d bytes (every access token carries it)", auth.MaxIssuerLength)
	}
	if c.SigningAlg != "EdDSA" && c.SigningAlg != "ES256" && c.SigningAlg != "RS256" {
		return fmt.Errorf("--signing-alg %q: use EdDSA, ES256 or RS256", c.SigningAlg)
	}
	if err := auth.CheckAudiences(splitList(c.Audience)); err != nil {
		return fmt.Errorf("--audience: %w", err)
	}
	if c.WebAuthnRPID != "" {
		// Asked for explicitly, so it must work; the default (the
		// issuer's host) is always consistent.
		if err := auth.CheckWebAuthn(auth.Config{Issuer: c.Issuer, WebAuthnRPID: c.WebAuthnRPID,
			WebAuthnOrigins: splitList(c.AllowedOrigins)}); err != nil {
			return fmt.Errorf("--webauthn-rp-id: %w", err)
		}
	}
	return nil
}

// newLogger is the server's logger. Every attribute of every line passes
// through redact: secrets (the --db password) and anything shaped like a
// credential in a connection string are masked, whoever logs them.
func newLogger(w io.Writer, level, format string, secrets []string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redact.ReplaceAttr(secrets)}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be json or text, not %q", format)
}

// cliLogger is the commands' logger (warnings only), redacting as
// newLogger does.
func cliLogger(w io.Writer, sc storeConfig) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: redact.ReplaceAttr(sc.secrets())}))
}

// configWarnings names settings that run but cannot be right, so an
// operator hears of them at start rather than from refused tokens later.
func configWarnings(c serveConfig) []string {
	var out []string
	if c.InsecureDevCookies {
		out = append(out, "--insecure-dev-cookies: cookies lack Secure and the __Host-/__Secure- prefixes; for plain-HTTP development only")
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" {
		return append(out, fmt.Sprintf("--issuer %q has no host: resource servers cannot fetch the JWKS from it", c.Issuer))
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return append(out, fmt.Sprintf("--issuer %q names %s, which no client can reach: set it to the public base URL", c.Issuer, host))
	}
	listen, _, _ := net.SplitHostPort(c.Addr)
	listenIP, err := netip.ParseAddr(listen)
	public := listen == "" || (err == nil && !listenIP.IsLoopback())
	issuerLoopback := host == "localhost" || strings.HasSuffix(host, ".localhost")
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		issuerLoopback = true
	}
	if public && issuerLoopback {
		out = append(out, fmt.Sprintf("--issuer %q is a loopback address while listening on %s: tokens will name an issuer other machines cannot reach; set --issuer to the public base URL", c.Issuer, c.Addr))
	}
	return out
}

// newRegistry is the process's metrics registry: the Go runtime, the
// process, and gatehouse_build_info; the domain and the HTTP layer add
// theirs.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	version, commit, goVersion := buildInfo()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_build_info", Help: "Always 1; the labels say what is running.",
			ConstLabels: prometheus.Labels{"version": version, "commit": commit, "goversion": goVersion},
		}, func() float64 { return 1 }))
	return reg
}

// app is an opened database with its keys and domain service.
type app struct {
	svc   *auth.Service
	keys  *auth.Keyring
	close func() error
	// dpopNonceKey keys DPoP nonces: every instance with the master secret
	// accepts every other's.
	dpopNonceKey []byte
}

// keyGrace is how long a retired signing key keeps verifying: every token it
// signed has expired by then, including those signed by a server that had
// not yet reloaded the keys (it reloads every minute).
func keyGrace(accessTTL time.Duration) time.Duration {
	return max(accessTTL, auth.DefaultAccessTTL) + 2*time.Minute
}

func openApp(ctx context.Context, sc storeConfig, cfg auth.Config, getenv func(string) string) (*app, error) {
	master, st, err := openStore(ctx, sc, cfg.Logger, getenv)
	if err != nil {
		return nil, err
	}
	keys, err := auth.OpenKeyring(ctx, st, master.NewSealer("signing-keys"), keyGrace(cfg.AccessTTL), time.Now(), cfg.SigningAlg)
	if err != nil {
		st.Close()
		return nil, err
	}
	cfg.ReloadKeys = func(ctx context.Context) error { return keys.Reload(ctx, time.Now()) }
	cfg.FactorKey = master.Derive("second-factors")
	svc := auth.New(cfg, st, keys.Set(), master.Derive("refresh-token-mac"))
	if err := svc.LoadRevocations(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return &app{svc: svc, keys: keys, close: st.Close, dpopNonceKey: master.Derive("dpop-nonces")}, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// openStore opens the database named by --db (a SQLite file, or a
// postgres:// URL) and the master secret.
func openStore(ctx context.Context, sc storeConfig, log *slog.Logger, getenv func(string) string) (*secret.Master, store.Store, error) {
	if postgres.IsURL(sc.DB) {
		if getenv("GATEHOUSE_SECRET") == "" && sc.SecretFile == "" {
			return nil, nil, errors.New("with PostgreSQL, set GATEHOUSE_SECRET (the same on every instance) or --secret-file")
		}
		master, _, err := secret.Load(getenv("GATEHOUSE_SECRET"), sc.SecretFile)
		if err != nil {
			return nil, nil, err
		}
		st, err := openDB(ctx, sc, log)
		return master, st, err
	}
	if dir := filepath.Dir(sc.DB); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	secretFile := sc.SecretFile
	if secretFile == "" {
		secretFile = filepath.Join(filepath.Dir(sc.DB), "gatehouse.secret")
	}
	master, created, err := secret.Load(getenv("GATEHOUSE_SECRET"), secretFile)
	if err != nil {
		return nil, nil, err
	}
	if created {
		log.Info("generated a new master secret", slog.String("file", secretFile))
	}
	st, err := openDB(ctx, sc, log)
	return master, st, err
}

// openDB opens (and migrates) the database named by --db.
func openDB(ctx context.Context, sc storeConfig, log *slog.Logger) (store.Store, error) {
	if postgres.IsURL(sc.DB) {
		opt := postgres.Options{Logger: log, Pooled: sc.DBPooler, ListenURL: sc.DBListenURL}
		if !sc.DBGroupCommit {
			opt.RotateBatches = -1
		}
		return postgres.Open(ctx, sc.DB, opt)
	}
	return sqlite.Open(ctx, sc.DB, sqlite.Options{Synchronous: sc.SQLiteSynchronous})
}

// migrateCommand applies pending migrations and exits (serve also does it).
func migrateCommand() command {
	var sc storeConfig
	return command{
		name: "migrate", summary: "apply database schema migrations",
		about: "Applies pending schema migrations (serve does so at start too; concurrent runs are safe).",
		usage: "[--db FILE|postgres://…]",
		flags: sc.bindOperator,
		run: func(ctx context.Context, in *invocation) int {
			st, err := openDB(ctx, sc, cliLogger(in.stderr, sc))
			if err != nil {
				fmt.Fprintf(in.stderr, "gatehouse migrate: %v\n", err)
				return exitFailure
			}
			st.Close()
			fmt.Fprintln(in.stdout, "database schema is up to date")
			return exitOK
		},
	}
}

// graceFlag maps --reuse-grace=0 ("no grace") to the domain's negative
// value; the domain reads 0 as "default".
func graceFlag(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// serveCommand runs the server.
func serveCommand() command {
	var c serveConfig
	return command{
		name: "serve", summary: "run the server",
		about: "Runs the server. With no flags: 127.0.0.1:8080, SQLite database ./gatehouse.db (created on first run).\n" +
			"GATEHOUSE_ADMIN_USERNAME and GATEHOUSE_ADMIN_PASSWORD create a first admin if that user does not exist.",
		usage: "[flags]",
		flags: c.bind,
		run: func(ctx context.Context, in *invocation) int {
			if err := c.validate(); err != nil {
				fmt.Fprintf(in.stderr, "gatehouse serve: %v\n", err)
				return exitUsage
			}
			log, err := newLogger(in.stderr, c.LogLevel, c.LogFormat, c.secrets())
			if err != nil {
				fmt.Fprintf(in.stderr, "gatehouse serve: %v\n", err)
				return exitUsage
			}
			if err := serve(ctx, c, log, in.getenv, nil); err != nil {
				log.Error("gatehouse stopped", slog.Any("err", err))
				return exitFailure
			}
			return exitOK
		},
	}
}

// serve runs the server until ctx ends. If ready is not nil it receives the
// bound address once the server accepts connections (tests).
func serve(ctx context.Context, c serveConfig, log *slog.Logger, getenv func(string) string, ready chan<- string) error {
	reg := newRegistry()
	a, err := openApp(ctx, c.storeConfig, auth.Config{
		Issuer:             c.Issuer,
		Audiences:          splitList(c.Audience),
		SigningAlg:         c.SigningAlg,
		AccessTTL:          c.AccessTTL,
		RefreshIdleTTL:     c.RefreshIdleTTL,
		SessionMaxAge:      c.SessionMaxAge,
		ReuseGrace:         graceFlag(c.ReuseGrace),
		ReauthMaxAge:       c.ReauthMaxAge,
		RequireMFARoles:    splitList(c.RequireMFA),
		TOTPIssuer:         c.TOTPIssuer,
		WebAuthnRPID:       c.WebAuthnRPID,
		WebAuthnOrigins:    splitList(c.AllowedOrigins),
		RegistrationOpen:   c.Registration == "open",
		MaxSessionsPerUser: c.MaxSessionsPerUser,
		IPPolicy:           c.IPPolicy,
		EventRetention:     c.EventRetention,
		RefusedEventWindow: c.RefusedWindow,
		ResourceKeys:       splitList(c.ResourceKeys),
		Throttle: throttle.Config{PerIP: c.LoginRatePerIP, FreeFailures: c.LoginFreeFailures,
			AccountFailures: c.LoginAccountFails, AccountRefill: c.LoginAccountRefill},
		Metrics:         reg,
		HashConcurrency: c.HashConcurrency,
		HashQueue:       64 * c.HashConcurrency,
		Logger:          log,
	}, getenv)
	if err != nil {
		return err
	}
	defer a.close()

	if user, pw := getenv("GATEHOUSE_ADMIN_USERNAME"), getenv("GATEHOUSE_ADMIN_PASSWORD"); user != "" || pw != "" {
		if user == "" || pw == "" {
			return errors.New("set both GATEHOUSE_ADMIN_USERNAME and GATEHOUSE_ADMIN_PASSWORD, or neither")
		}
		created, err := a.svc.EnsureUser(ctx, user, pw, "admin")
		if err != nil {
			return fmt.Errorf("bootstrap admin: %w", err)
		}
		if created {
			log.Info("created admin account from GATEHOUSE_ADMIN_USERNAME", slog.String("username", user))
		}
	}

	var nonces *dpop.Nonces
	if c.DPoPNonce {
		nonces = dpop.NewNonces(a.dpopNonceKey)
	}
	h, err := httpapi.New(a.svc, httpapi.Config{
		AllowedOrigins: splitList(c.AllowedOrigins), InsecureDevCookies: c.InsecureDevCookies, Logger: log,
		TrustedProxies: c.trustedProxies, AllowQueryToken: c.AllowQueryToken,
		Registry: reg, MetricsElsewhere: c.MetricsAddr != "", UI: c.UI,
		DPoP: dpop.NewVerifier(0, nonces, a.svc.Now),
	})
	if err != nil {
		return fmt.Errorf("--allowed-origin: %w", err)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	if c.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", c.MetricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Requests run under bg: cancelling it at shutdown ends long polls and
	// WebSockets at once instead of letting them hold Shutdown up.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv.BaseContext = func(net.Listener) context.Context { return bg }
	go a.svc.Run(bg)
	for _, w := range configWarnings(c) {
		log.Warn(w)
	}
	log.Info("gatehouse listening", slog.String("addr", ln.Addr().String()),
		slog.String("issuer", c.Issuer), slog.String("db", redact.String(c.DB)))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", httpapi.MetricsHandler(reg))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		defer msrv.Close()
		log.Info("metrics listening", slog.String("addr", metricsLn.Addr().String()))
		go func() { errc <- msrv.Serve(metricsLn) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cancel()
	log.Info("shutting down: draining requests (10 s at most); sockets are closed")
	shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	err = srv.Shutdown(shutdown)
	if err != nil {
		log.Warn("shutdown: requests still running were cut", slog.Any("err", err))
	} else {
		log.Info("stopped")
	}
	return err
}
