// Command floor measures what a refresh's parts cost on their own, with
// nothing of Gatehouse around them, for scripts/cpu-floor.sh: the floor
// under Gatehouse's CPU per refresh on this machine (docs/PERFORMANCE.md).
//
//	floor serve --addr A [--sign] [--pg URL]
//	floor load --url U --concurrency N --duration D
//
// serve is a bare net/http server, configured as Gatehouse's is (HTTP/1.1
// keep-alive, default GOMAXPROCS), with one route, POST /, that does
// only what every refresh must: read a JSON body of a refresh request's
// size, and answer one of a refresh answer's size. --sign adds an Ed25519
// signature over an access token's worth of claims; --pg adds one
// conditional single-row UPDATE with RETURNING, committed on its own
// through pgx, like a rotation that found no batch to join. load drives it
// the way `gatehouse bench` drives a refresh: one kept-alive connection per
// virtual user (loadgen.Conn), back to back, the same table.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-auth/gatehouse/internal/loadgen"
)

// rows is how many rows --pg spreads its updates over: one per virtual
// user up to this many, as sessions are.
const rows = 1024

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: floor serve|load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (serve or load)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18097", "listen address")
	sign := fs.Bool("sign", false, "sign an access token's worth of claims with Ed25519 per request")
	pgURL := fs.String("pg", "", "PostgreSQL URL: one single-row UPDATE … RETURNING per request")
	raw := fs.Bool("raw", false, "serve from a plain accept loop (http.ReadRequest, one write per answer) instead of net/http's server")
	fs.Parse(args)

	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	var pool *pgxpool.Pool
	if *pgURL != "" {
		if pool, err = pgxpool.New(context.Background(), *pgURL); err != nil {
			return err
		}
		defer pool.Close()
		if _, err := pool.Exec(context.Background(), `DROP TABLE IF EXISTS floor_rows;
			CREATE TABLE floor_rows (id int PRIMARY KEY, generation bigint NOT NULL, last_used_at bigint NOT NULL);
			INSERT INTO floor_rows SELECT g, 0, 0 FROM generate_series(0, `+strconv.Itoa(rows-1)+`) g`); err != nil {
			return err
		}
	}
	// A refresh's access token: a header, some 300 bytes of claims, and
	// the signature; the answer carries it, a refresh token and a user.
	claims := []byte(`{"iss":"http://127.0.0.1:18097","sub":"usr_` + strings.Repeat("x", 26) + `","aud":["gatehouse"],"exp":0,"iat":0,"jti":"` +
		strings.Repeat("j", 22) + `","sid":"ses_` + strings.Repeat("s", 26) + `","roles":["user"],"perms":[],"amr":["pwd"],"auth_time":0}`)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k1","typ":"at+jwt"}`))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RefreshToken string `json:"refresh_token"`
			User         int    `json:"user"`
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil || json.Unmarshal(body, &req) != nil || req.User < 0 {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		gen := int64(0)
		if pool != nil {
			now := time.Now().UnixNano()
			if err := pool.QueryRow(r.Context(), `UPDATE floor_rows SET generation = generation + 1, last_used_at = $1
				WHERE id = $2 AND last_used_at < $1 RETURNING generation`, now, req.User%rows).Scan(&gen); err != nil {
				http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
				return
			}
		}
		payload := base64.RawURLEncoding.EncodeToString(claims)
		token := header + "." + payload
		sig := strings.Repeat("A", 86)
		if *sign {
			sig = base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(token)))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": token + "." + sig, "token_type": "Bearer", "expires_in": 900,
			"refresh_token": "rt_" + strconv.FormatInt(gen, 10) + strings.Repeat("r", 60),
			"user":          map[string]any{"id": "usr_" + strings.Repeat("x", 26), "email": "user@example.com", "roles": []string{"user"}},
		})
	})
	if *raw {
		return serveRaw(*addr, h)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// serveRaw serves h without net/http's server: per connection, one
// goroutine reads a request (http.ReadRequest), runs h and writes the whole
// answer in one write. No background read, no per-request context or
// timeouts, no chunking: what a hand-written loop would save, measured,
// not a server to deploy (it trusts its clients).
func serveRaw(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			w := &rawWriter{h: http.Header{}}
			for {
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				w.status = http.StatusOK
				w.body.Reset()
				clear(w.h)
				h.ServeHTTP(w, r)
				io.Copy(io.Discard, r.Body)
				out := fmt.Appendf(w.out[:0], "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n", w.status, http.StatusText(w.status), w.body.Len())
				for k, v := range w.h {
					out = fmt.Appendf(out, "%s: %s\r\n", k, v[0])
				}
				out = append(append(out, "\r\n"...), w.body.Bytes()...)
				w.out = out
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

type rawWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
	out    []byte
}

func (w *rawWriter) Header() http.Header         { return w.h }
func (w *rawWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *rawWriter) WriteHeader(status int)      { w.status = status }

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "http://127.0.0.1:18097", "floor server's base URL")
	conc := fs.Int("concurrency", 8, "virtual users")
	dur := fs.Duration("duration", 5*time.Second, "how long to run")
	fs.Parse(args)
	type user struct {
		c    *loadgen.Conn
		body []byte
	}
	users := make([]*user, *conc)
	for i := range users {
		c, err := loadgen.NewConn(*url)
		if err != nil {
			return err
		}
		defer c.Close()
		users[i] = &user{c: c, body: []byte(`{"refresh_token":"rt_` + strings.Repeat("r", 60) + `","user":` + strconv.Itoa(i) + `}`)}
	}
	res := loadgen.Run(context.Background(), users, func(u *user) error {
		status, err := u.c.Do("POST", "/", "", u.body)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("status %d: %s", status, u.c.Body.Bytes())
		}
		return nil
	}, *dur)
	fmt.Println(loadgen.Header)
	fmt.Println(res.Row("floor", *conc))
	if res.FirstErr != nil {
		return fmt.Errorf("%d errors, the first: %w", res.Errors, res.FirstErr)
	}
	return nil
}
