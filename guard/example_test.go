package guard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/guard"
	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// A resource server protects its handlers with the guard's middleware.
// Tokens are verified locally; a logout at Gatehouse reaches the guard
// through the revocation feed within a second.
func ExampleGuard_Middleware() {
	gh := startGatehouse(&testing.T{}) // a real Gatehouse on a random port
	defer gh.stop()

	g, err := guard.New(context.Background(), guard.Config{
		Issuer:      gh.URL,      // Gatehouse's base URL, the tokens' iss
		ResourceKey: resourceKey, // from `gatehouse keys resource add`
	})
	if err != nil {
		panic(err)
	}
	defer g.Close()

	api := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := guard.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "hello, user with role %s", claims.Role)
	}))
	srv := httptest.NewServer(api)
	defer srv.Close()

	tokens := gh.login(&testing.T{}, "ann")
	call := func() {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
		res, _ := http.DefaultClient.Do(req)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(res.StatusCode, string(body))
	}
	call()

	gh.svc.Logout(context.Background(), tokens.RefreshToken, "", auth.Meta{})
	for _, err := g.Verify(tokens.AccessToken); err == nil; _, err = g.Verify(tokens.AccessToken) {
	}
	call()
	// Output:
	// 200 hello, user with role user
	// 401 {"error":"token_revoked","error_description":"The access token has been revoked."}
}

// An app served behind one origin with Gatehouse authenticates by the
// access cookie. Unsafe requests riding on the cookie must come from the
// app's own origin: a cross-site form POST is refused before the handler.
func ExampleConfig_accessCookie() {
	gh := startGatehouse(&testing.T{})
	defer gh.stop()

	g, err := guard.New(context.Background(), guard.Config{
		Issuer:       gh.URL,
		ResourceKey:  resourceKey,
		AccessCookie: guard.AccessCookie, // read after the Authorization header
	})
	if err != nil {
		panic(err)
	}
	defer g.Close()
	api := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "order placed")
	}))

	tokens := gh.login(&testing.T{}, "ann")
	post := func(site string) {
		req := httptest.NewRequest("POST", "https://shop.example.com/orders", nil)
		req.AddCookie(&http.Cookie{Name: guard.AccessCookie, Value: tokens.AccessToken})
		req.Header.Set("Sec-Fetch-Site", site) // what the browser says about the caller
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	}
	post("same-origin")
	post("cross-site")
	// Output:
	// 200 order placed
	// 403 {"error":"csrf_failed","error_description":"Cross-site request refused."}
}
