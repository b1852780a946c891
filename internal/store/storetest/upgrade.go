package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Upgrade is a backend's part of RunUpgrade.
type Upgrade struct {
	Flavor sqlstore.Flavor
	// Empty returns a new, empty database: exec runs SQL on it directly,
	// open opens it as the store (which migrates).
	Empty func(t *testing.T) (exec func(query string, args ...any) error, open func() (store.Store, error))
	// RecordVersion is the SQL with which releases before the shared
	// migration list recorded schema version v.
	RecordVersion func(v int) string
}

// RunUpgrade is the upgrade test every backend runs: a database of an
// earlier release (schema v3: no permissions, no auth_time; v4: no shared
// login throttle; v5: no known addresses; v6: no second factors, sessions
// without amr and acr; v7, the previous release: sessions not bound to a
// DPoP key), with the
// version recorded as that release did, is upgraded in place, and its
// account, session and throttle state keep working.
func RunUpgrade(t *testing.T, u Upgrade) {
	for _, previous := range []int{3, 4, 5, 6, 7, 8} {
		t.Run(fmt.Sprintf("v%d", previous), func(t *testing.T) {
			exec, open := u.Empty(t)
			for i := range previous {
				if err := exec(u.Flavor.Migration(i)); err != nil {
					t.Fatalf("v%d: %v", i+1, err)
				}
			}
			if err := exec(u.RecordVersion(previous)); err != nil {
				t.Fatal(err)
			}
			old := PreviousReleaseRows(time.Now())
			for _, q := range old.SQL(u.Flavor, previous) {
				if err := exec(q.Query, q.Args...); err != nil {
					t.Fatalf("%s: %v", q.Query, err)
				}
			}
			s, err := open()
			if err != nil {
				t.Fatalf("open the previous release's database: %v", err)
			}
			defer s.Close()
			old.Check(t, s)
			// Opening again finds nothing to do.
			again, err := open()
			if err != nil {
				t.Fatalf("open the upgraded database again: %v", err)
			}
			again.Close()
		})
	}
}

// OldRows are a user and a session as earlier releases wrote them, for
// RunUpgrade: write them with an old schema, open the store (which
// migrates), then Check.
type OldRows struct {
	UserID, SessionID string
	Nonce             []byte
	Created           time.Time
	Hash              string
	version           int // the schema SQL wrote them in
}

// PreviousReleaseRows makes the rows, created at now.
func PreviousReleaseRows(now time.Time) OldRows {
	return OldRows{UserID: id(), SessionID: id(), Nonce: []byte("0123456789abcdef0123456789abcdef"),
		Created: now.Add(-time.Minute).UTC(),
		Hash:    password.Hash("old-password", password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})}
}

// Query is one statement with its arguments.
type Query struct {
	Query string
	Args  []any
}

// SQL returns the inserts in schema version (3, 4 or 5), in flavor, and
// remembers the version for Check.
func (o *OldRows) SQL(flavor sqlstore.Flavor, version int) []Query {
	o.version = version
	bind := flavor.Rewrite
	ns := o.Created.UnixNano()
	var throttle []Query
	switch {
	case version >= 6:
		throttle = []Query{{bind(`INSERT INTO login_ip_failures (account, ip, failures, last_at, known_at) VALUES ('olde', '192.0.2.7', 2, ?, 0)`), []any{ns}}}
	case version >= 5:
		throttle = []Query{{bind(`INSERT INTO login_ip_failures (account, ip, failures, last_at) VALUES ('olde', '192.0.2.7', 2, ?)`), []any{ns}}}
	}
	if version >= 4 {
		return append(throttle, []Query{
			{bind(`INSERT INTO users (id, username, username_norm, password_hash, role, disabled, created_at, permissions)
				VALUES (?, 'Olde', 'olde', ?, 'user', false, ?, '')`), []any{o.UserID, o.Hash, ns}},
			{bind(`INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
				idle_expires_at, expires_at, access_exp, ip, user_agent, auth_time)
				VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, '192.0.2.1', 'old-agent', ?)`),
				[]any{o.SessionID, o.UserID, o.Nonce, ns, ns, ns, ns + int64(time.Hour), ns + int64(24*time.Hour), ns + int64(5*time.Minute), ns}},
		}...)
	}
	return []Query{
		{bind(`INSERT INTO users (id, username, username_norm, password_hash, role, disabled, created_at)
			VALUES (?, 'Olde', 'olde', ?, 'user', false, ?)`), []any{o.UserID, o.Hash, ns}},
		{bind(`INSERT INTO sessions (id, user_id, nonce, generation, rotated_at, created_at, last_used_at,
			idle_expires_at, expires_at, access_exp, ip, user_agent)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, '192.0.2.1', 'old-agent')`),
			[]any{o.SessionID, o.UserID, o.Nonce, ns, ns, ns, ns + int64(time.Hour), ns + int64(24*time.Hour), ns + int64(5*time.Minute)}},
	}
}

// Check verifies the migrated store: the old user has no permissions, the
// old session's auth_time is its login, and the domain can refresh it and
// log the user in.
func (o OldRows) Check(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	u, err := s.GetUserByUsername(ctx, "olde")
	if err != nil || u.ID != o.UserID || u.Permissions == nil || len(u.Permissions) != 0 {
		t.Fatalf("old user after the upgrade: %+v, %v", u, err)
	}
	x, err := s.GetSession(ctx, o.SessionID)
	if err != nil || !x.AuthTime.Equal(o.Created) || x.Generation != 1 {
		t.Fatalf("old session after the upgrade: %+v, %v (auth_time must be its login, %v)", x, err, o.Created)
	}
	// Sessions of releases before second factors proved a password; their
	// accounts have no factor.
	if len(x.AMR) != 1 || x.AMR[0] != "pwd" || x.ACR != "aal1" || u.MFA || x.DPoPJKT != "" {
		t.Fatalf("old session's proof after the upgrade: amr %q acr %q, user mfa %v, dpop %q", x.AMR, x.ACR, u.MFA, x.DPoPJKT)
	}
	if m, err := s.GetMFA(ctx, u.ID); err != nil || len(m.Factors) != 0 || len(m.RecoveryCodes) != 0 {
		t.Fatalf("factors of an old account: %+v, %v", m, err)
	}
	key := []byte("refresh-key-for-the-upgrade-test-32b")
	keys := token.NewKeySet(token.GenerateKey())
	svc := auth.New(auth.Config{Issuer: "https://gh.test",
		HashParams: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}, s, keys, key)
	rt, err := token.NewRefreshCodec(key).Make(o.SessionID, 1, o.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := svc.Refresh(ctx, rt, auth.Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("refresh an old session after the upgrade: %v", err)
	}
	p, err := svc.Authenticate(tk.AccessToken)
	if err != nil || !p.AuthTime.Equal(o.Created.Truncate(time.Second)) || p.UserID != o.UserID || p.ACR != "aal1" {
		t.Fatalf("token of the upgraded session: %+v, %v", p, err)
	}
	if _, err := svc.Login(ctx, "OLDE", "old-password", auth.Meta{IP: "192.0.2.1"}); err != nil {
		t.Fatalf("login of an old account after the upgrade: %v", err)
	}
	// The login throttle's tables exist: a failure is recorded and read.
	if _, err := svc.Login(ctx, "olde", "wrong-password", auth.Meta{IP: "192.0.2.9"}); err == nil {
		t.Fatal("wrong password accepted after the upgrade")
	}
	if lf := readLoginFailures(t, s, "olde", "192.0.2.9"); lf.Failures != 1 || lf.Debt.IsZero() {
		t.Fatalf("login failures after the upgrade: %+v", lf)
	}
	// A v5 database's throttle rows survive, with no address known yet.
	if o.version >= 5 {
		if lf := readLoginFailures(t, s, "olde", "192.0.2.7"); lf.Failures != 2 || !lf.KnownAt.IsZero() {
			t.Fatalf("v5 login failures after the upgrade: %+v", lf)
		}
	}
	// The same token again, inside the grace window: the current one.
	again, err := svc.Refresh(ctx, rt, auth.Meta{IP: "192.0.2.1"})
	if err != nil || again.RefreshToken != tk.RefreshToken {
		t.Fatalf("grace refresh after the upgrade: %v", err)
	}
}

func readLoginFailures(t *testing.T, s store.Store, account, addr string) store.LoginFailures {
	t.Helper()
	var lf store.LoginFailures
	errRead := errors.New("read only")
	if err := s.UpdateLoginFailures(context.Background(), account, addr, func(old store.LoginFailures) (store.LoginFailures, error) {
		lf = old
		return old, errRead
	}); !errors.Is(err, errRead) {
		t.Fatal(err)
	}
	return lf
}
