// Command resource-server is a service protected by Gatehouse tokens,
// verified locally by the guard package. Revocations (logout, bans,
// revoke-all) reach it through Gatehouse's revocation feed within a second.
//
//	gatehouse keys resource add --name example     # prints a key
//	GATEHOUSE_URL=http://127.0.0.1:8080 GATEHOUSE_RESOURCE_KEY=ghk_… go run ./examples/resource-server
//	curl -H "Authorization: Bearer $ACCESS_TOKEN" localhost:9090/hello
//
// GATEHOUSE_FEED_URL fetches the JWKS and the feed from another address than
// the issuer (an internal one); GATEHOUSE_ACCESS_COOKIE=1 also accepts the
// access cookie, for an app served with Gatehouse behind one origin.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cfg := guard.Config{
		Issuer:       getenv("GATEHOUSE_URL", "http://127.0.0.1:8080"),
		BaseURL:      os.Getenv("GATEHOUSE_FEED_URL"), // empty: the issuer
		ResourceKey:  os.Getenv("GATEHOUSE_RESOURCE_KEY"),
		MaxStaleness: 30 * time.Second, // refuse tokens if the feed is lost longer
	}
	if os.Getenv("GATEHOUSE_ACCESS_COOKIE") == "1" {
		cfg.AccessCookie = guard.AccessCookie
	}
	g, err := guard.New(ctx, cfg)
	if err != nil {
		log.Fatalf("guard: %v", err)
	}
	defer g.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /hello", g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"user_id": c.Subject, "session_id": c.SessionID, "role": c.Role})
	})))

	// Permissions and step-up: deleting an order needs the orders:write
	// permission and a password proof from the last 5 minutes (the client
	// answers 401 insufficient_user_authentication with
	// POST /v1/auth/reauthenticate, then retries).
	mux.Handle("DELETE /orders/{id}", g.Middleware(guard.RequirePermission("orders:write",
		g.RequireRecentAuth(5*time.Minute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})))))

	srv := &http.Server{Addr: getenv("ADDR", "127.0.0.1:9090"), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Shutdown(context.Background()) }()
	log.Printf("resource server on %s, trusting %s", srv.Addr, getenv("GATEHOUSE_URL", "http://127.0.0.1:8080"))
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
