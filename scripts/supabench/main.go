// Command supabench drives Supabase Auth (GoTrue) the way `gatehouse bench`
// drives Gatehouse, for scripts/compare-supabase.sh: each virtual user signs
// up once, then either chains refresh tokens (POST /token?grant_type=
// refresh_token) or reads its account (GET /user), for a fixed time, with
// the same load loop and table as `gatehouse bench` (internal/loadgen).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
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
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc}, Timeout: 30 * time.Second}
	run := fmt.Sprint(time.Now().UnixNano())

	users := make([]*user, *conc)
	for i := range users {
		body := fmt.Sprintf(`{"email":"u%d-%s@example.com","password":"password-%d-long-enough"}`, i, run, i)
		var out struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := call(client, "POST", *url+"/signup", "", body, &out); err != nil || out.RefreshToken == "" {
			fmt.Fprintf(os.Stderr, "signup: %v\n", err)
			os.Exit(1)
		}
		users[i] = &user{out.AccessToken, out.RefreshToken}
	}

	op := func(u *user) error {
		if *scenario == "user" {
			return call(client, "GET", *url+"/user", u.access, "", nil)
		}
		var out struct {
			RefreshToken string `json:"refresh_token"`
		}
		err := call(client, "POST", *url+"/token?grant_type=refresh_token", "", `{"refresh_token":"`+u.refresh+`"}`, &out)
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

type user struct{ access, refresh string }

// call sends one request and decodes a 200 answer into out (if not nil).
func call(c *http.Client, method, url, bearer, body string, out any) error {
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %.200s", method, url, res.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
