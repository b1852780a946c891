// Command spa is a single-page app on one origin calling a Go API on
// another, both behind Gatehouse: the page signs in with gatehouse.js
// (access token in memory, refresh cookie, DPoP-bound to a key of the
// browser), and the API verifies tokens with guard, answering CORS for the
// page's origin (guard.CORS: a preflight carries no token).
//
// Start Gatehouse, then this (README.md has the two commands):
//
//	go run ./examples/spa
//
// and open http://127.0.0.1:3000.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"flag"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/gatehouse-auth/gatehouse/guard"
)

//go:embed web
var web embed.FS

func main() {
	gatehouse := flag.String("gatehouse", "http://127.0.0.1:8080", "Gatehouse's public URL (its --issuer)")
	app := flag.String("app", "127.0.0.1:3000", "address of the page")
	api := flag.String("api", "127.0.0.1:3001", "address of the API")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	appURL, apiURL := "http://"+*app, "http://"+*api
	g, err := guard.New(ctx, guard.Config{
		Issuer:      *gatehouse,
		ResourceKey: os.Getenv("GATEHOUSE_RESOURCE_KEY"),
		DPoP:        &guard.DPoPConfig{URL: apiURL}, // the page binds its tokens to its key
	})
	if err != nil {
		log.Fatalf("guard: %v (is Gatehouse running with the same resource key?)", err)
	}
	defer g.Close()

	// The API: its own origin, CORS for the page only.
	mux := http.NewServeMux()
	mux.Handle("GET /api/orders", g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := guard.ClaimsFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"user": c.Subject, "role": c.Role,
			"orders": []map[string]any{{"id": 1, "item": "tea"}, {"id": 2, "item": "scones"}}})
	})))
	go serve(ctx, *api, guard.CORS([]string{appURL}, mux))

	// The page: static files, told where Gatehouse and the API are.
	page := template.Must(template.ParseFS(web, "web/index.html"))
	static, _ := fs.Sub(web, "web")
	pages := http.NewServeMux()
	pages.Handle("GET /app.js", http.FileServerFS(static))
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' "+*gatehouse+"; connect-src "+*gatehouse+" "+apiURL)
		page.Execute(w, map[string]string{"Gatehouse": *gatehouse, "API": apiURL})
	})
	log.Printf("page at %s, API at %s, Gatehouse at %s", appURL, apiURL, *gatehouse)
	serve(ctx, *app, pages)
}

func serve(ctx context.Context, addr string, h http.Handler) {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
