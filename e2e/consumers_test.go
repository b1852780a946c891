package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Third-party consumers as an adopting team wires them, against a real
// Gatehouse: go-oidc discovers the issuer and verifies an access token with
// its audience; jwx fetches the JWKS and validates issuer, audience and
// times. (jose and oauth4webapi from npm: TestNodeConsumers.)
func TestGoConsumers(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) { testGoConsumers(t, alg) })
	}
}

// consumerFixture is what the consumers meet: a Gatehouse signing with
// alg, a resource client for https://orders.example, and ann's tokens,
// one of them narrowed to that API.
type consumerFixture struct {
	gh            *gatehouse
	res           store.ResourceKey
	resSecret     string
	tk, forOrders auth.Tokens
}

func newConsumerFixture(t *testing.T, alg string) consumerFixture {
	t.Helper()
	f := consumerFixture{gh: startGatehouse(t, reserve(t), ghOptions{accessTTL: time.Minute, signing: alg})}
	ctx := context.Background()
	var err error
	if f.resSecret, f.res, err = f.gh.svc.AddClient(ctx, auth.ClientSpec{Name: "orders", Kind: "resource", Audience: "https://orders.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.gh.svc.CreateUser(ctx, "ann", "pw-ann-long", "user"); err != nil {
		t.Fatal(err)
	}
	if f.tk, err = f.gh.svc.Login(ctx, "ann", "pw-ann-long", auth.Meta{IP: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if f.forOrders, err = f.gh.svc.Narrow(ctx, f.tk, "https://orders.example"); err != nil {
		t.Fatal(err)
	}
	return f
}

func testGoConsumers(t *testing.T, alg string) {
	f := newConsumerFixture(t, alg)
	gh, tk, forOrders, ctx := f.gh, f.tk, f.forOrders, context.Background()

	// go-oidc: discovery, then verification with aud.
	provider, err := oidc.NewProvider(ctx, gh.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	var meta struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil || meta.TokenEndpoint != gh.URL+"/v1/oauth/token" {
		t.Fatalf("go-oidc metadata: %+v %v", meta, err)
	}
	verifier := provider.VerifierContext(ctx, &oidc.Config{ClientID: "https://orders.example", SupportedSigningAlgs: []string{alg}})
	tok, err := verifier.Verify(ctx, forOrders.AccessToken)
	if err != nil || tok.Subject != tk.User.ID {
		t.Fatalf("go-oidc verification of a token for orders: %v", err)
	}
	if _, err := verifier.Verify(ctx, tk.AccessToken); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("go-oidc accepted a token for another audience: %v", err)
	}

	// jwx: the JWKS, issuer, audience and times.
	set, err := jwk.Fetch(ctx, gh.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("jwx JWKS: %v", err)
	}
	parsed, err := jwt.Parse([]byte(forOrders.AccessToken), jwt.WithKeySet(set), jwt.WithIssuer(gh.URL),
		jwt.WithAudience("https://orders.example"), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("jwx verification: %v", err)
	}
	if sub, _ := parsed.Subject(); sub != tk.User.ID {
		t.Fatalf("jwx subject %q", sub)
	}
	if _, err := jwt.Parse([]byte(tk.AccessToken), jwt.WithKeySet(set), jwt.WithIssuer(gh.URL),
		jwt.WithAudience("https://orders.example"), jwt.WithValidate(true)); err == nil {
		t.Fatal("jwx accepted a token for another audience")
	}
	// guard verifies every algorithm, each key only in its own.
	gd, err := guard.New(ctx, guard.Config{Issuer: gh.URL, ResourceKey: resourceKey, Audience: "https://orders.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer gd.Close()
	if c, err := gd.Verify(forOrders.AccessToken); err != nil || c.Subject != tk.User.ID {
		t.Fatalf("guard, %s: %v", alg, err)
	}
	// And the metadata names the endpoints a generic client calls.
	res, err := http.Get(gh.URL + "/.well-known/oauth-authorization-server")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("metadata: %v", err)
	}
	res.Body.Close()
}

// TestNodeConsumers runs e2e/node/consumers.test.mjs (node --test) against
// a real Gatehouse: jose and oauth4webapi from npm, pinned in
// e2e/package-lock.json.
func TestNodeConsumers(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("node_modules", "oauth4webapi"))
	}
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_BROWSER") != "" {
			t.Fatalf("node and e2e/node_modules are required (cd e2e && npm ci): %v", err)
		}
		t.Skip("node or e2e/node_modules missing (cd e2e && npm ci): skipped")
	}
	f := newConsumerFixture(t, "EdDSA")
	gh, tk, forOrders, res, resSecret := f.gh, f.tk, f.forOrders, f.res, f.resSecret
	svcSecret, svc, err := gh.svc.AddClient(context.Background(), auth.ClientSpec{Name: "nightly", Kind: "service", Permissions: []string{"reports:read"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--test", filepath.Join("node", "consumers.test.mjs"))
	cmd.Env = append(os.Environ(), "GH_ISSUER="+gh.URL, "GH_TOKEN="+tk.AccessToken, "GH_ORDERS_TOKEN="+forOrders.AccessToken,
		"GH_USER_ID="+tk.User.ID, "GH_REFRESH="+tk.RefreshToken, "GH_SERVICE_ID="+svc.ID, "GH_SERVICE_SECRET="+svcSecret,
		"GH_RESOURCE_ID="+res.ID, "GH_RESOURCE_SECRET="+resSecret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test consumers.test.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", lastLines(string(out), 8))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
