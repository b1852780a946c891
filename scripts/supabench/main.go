// Command supabench drives Supabase Auth (GoTrue) the way `gatehouse bench`
// drives Gatehouse, for scripts/compare-supabase.sh: each virtual user signs
// up once, then either chains refresh tokens (POST /token?grant_type=
// refresh_token) or reads its account (GET /user), for a fixed time, with
// the same load loop and table as `gatehouse bench` (internal/loadgen).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/loadgen"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9999", "Supabase Auth's base URL")
	scenario := flag.String("scenario", "refresh", "refresh or user")
	conc := flag.Int("concurrency", 8, "virtual users")
	dur := flag.Duration("duration", 4*time.Second, "how long to run")
	flag.Parse()
	if *scenario != "refresh" && *scenario != "user" {
		fmt.Fprintf(os.Stderr, "supabench: unknown scenario %q (refresh or user)\n", *scenario)
		os.Exit(2)
	}
	run := fmt.Sprint(time.Now().UnixNano())

	users := make([]*user, *conc)
	for i := range users {
		body := fmt.Sprintf(`{"email":"u%d-%s@example.com","password":"password-%d-long-enough"}`, i, run, i)
		conn, err := loadgen.NewConn(*url)
		if err != nil {
			fmt.Fprintf(os.Stderr, "supabench: %v\n", err)
			os.Exit(2)
		}
		var out struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := call(conn, "POST", "/signup", "", body, &out); err != nil || out.RefreshToken == "" {
			fmt.Fprintf(os.Stderr, "signup: %v\n", err)
			os.Exit(1)
		}
		users[i] = &user{out.AccessToken, out.RefreshToken, conn}
	}

	op := func(u *user) error {
		if *scenario == "user" {
			return call(u.conn, "GET", "/user", u.access, "", nil)
		}
		var out struct {
			RefreshToken string `json:"refresh_token"`
		}
		err := call(u.conn, "POST", "/token?grant_type=refresh_token", "", `{"refresh_token":"`+u.refresh+`"}`, &out)
		if err == nil {
			u.refresh = out.RefreshToken
		}
		return err
	}
	r := loadgen.Run(context.Background(), users, op, *dur)
	if r.FirstErr != nil {
		fmt.Fprintf(os.Stderr, "supabench: first error: %v\n", r.FirstErr)
	}
	fmt.Println(loadgen.Header)
	fmt.Println(r.Row(*scenario, *conc))
}

// user is one virtual user: its tokens and its own connection
// (loadgen.Conn, the same lean client `gatehouse bench` uses).
type user struct {
	access, refresh string
	conn            *loadgen.Conn
}

// call sends one request and decodes a 200 answer into out (if not nil).
func call(c *loadgen.Conn, method, path, bearer, body string, out any) error {
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	status, err := c.Do(method, path, bearer, b)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("%s %s: %d %.200s", method, path, status, c.Body.Bytes())
	}
	if out != nil {
		return json.Unmarshal(c.Body.Bytes(), out)
	}
	return nil
}
