package guard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/httpapi"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/secret"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlite"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

const resourceKey = "test-resource-key-0123456789abcdef0123456789"

// gatehouse is a real Gatehouse (domain, SQLite, HTTP API) on a random
// loopback port, as a resource server would meet it.
type gatehouse struct {
	URL  string
	svc  *auth.Service
	keys *auth.Keyring
	down atomic.Bool // when set, every request gets 503 (a network partition)
	srv  *httptest.Server
	stop func()
}

func startGatehouse(tb testing.TB) *gatehouse {
	tb.Helper()
	dir := tb.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "gh.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	g := &gatehouse{}
	var h http.Handler
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	g.URL = g.srv.URL
	master, _ := secret.New([]byte("a master secret of at least 32 bytes!"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g.keys, err = auth.OpenKeyring(context.Background(), st, master.NewSealer("signing-keys"), auth.DefaultAccessTTL, timeNow())
	if err != nil {
		tb.Fatal(err)
	}
	g.svc = auth.New(auth.Config{
		Issuer: g.URL, RegistrationOpen: true, ResourceKeys: []string{resourceKey}, Logger: log,
		Throttle:           throttle.Config{PerIP: 1 << 30}, // benchmarks log in many times from one IP
		MaxSessionsPerUser: -1,
		HashParams:         password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	}, st, g.keys.Set(), master.Derive("refresh-token-mac"))
	h, err = httpapi.New(g.svc, httpapi.Config{Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go g.svc.Run(ctx)
	g.stop = func() { cancel(); g.srv.Close(); st.Close() }
	tb.Cleanup(g.stop)
	return g
}

// login registers (once) and logs in a user through the domain.
func (g *gatehouse) login(tb testing.TB, name string) auth.Tokens {
	tb.Helper()
	ctx := context.Background()
	if _, err := g.svc.FindUser(ctx, name); err != nil {
		if _, err := g.svc.CreateUser(ctx, name, "password-"+name, "user"); err != nil {
			tb.Fatal(err)
		}
	}
	tk, err := g.svc.Login(ctx, name, "password-"+name, auth.Meta{IP: "127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}
