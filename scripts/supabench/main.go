// Command supabench drives Supabase Auth (GoTrue) the way `gatehouse bench`
// drives Gatehouse, for scripts/compare-supabase.sh: each virtual user signs
// up once, then either chains refresh tokens (POST /token?grant_type=
// refresh_token) or reads its account (GET /user), for a fixed time. It
// prints the same columns as `gatehouse bench`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9999", "Supabase Auth's base URL")
	scenario := flag.String("scenario", "refresh", "refresh or user")
	conc := flag.Int("concurrency", 8, "virtual users")
	dur := flag.Duration("duration", 4*time.Second, "how long to run")
	flag.Parse()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc}, Timeout: 30 * time.Second}
	run := fmt.Sprint(time.Now().UnixNano())

	type user struct{ access, refresh string }
	users := make([]user, *conc)
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
		users[i] = user{out.AccessToken, out.RefreshToken}
	}

	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := users[i]
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				start := time.Now()
				var err error
				if *scenario == "refresh" {
					var out struct {
						RefreshToken string `json:"refresh_token"`
					}
					err = call(client, "POST", *url+"/token?grant_type=refresh_token", "", `{"refresh_token":"`+u.refresh+`"}`, &out)
					if err == nil {
						u.refresh = out.RefreshToken
					}
				} else {
					err = call(client, "GET", *url+"/user", u.access, "", nil)
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("%-8s %5s %10s %10s %10s %8s\n", "scenario", "conc", "req/s", "p50", "p99", "errors")
	fmt.Printf("%-8s %5d %10.0f %10v %10v %8d\n", *scenario, *conc, float64(len(lat))/dur.Seconds(), pct(0.50), pct(0.99), errs)
}

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
