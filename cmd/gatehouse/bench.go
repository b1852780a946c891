package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/loadgen"
)

// runBench is a small closed-loop load generator for a running server:
// each virtual user has its own account and session and, for refresh,
// chains its own tokens (every request presents the token the previous
// response returned), which is how real clients refresh.
func benchCommand() command {
	var base, levels, scenarios string
	var duration time.Duration
	return command{
		name: "bench", summary: "load-test a running server (login, refresh, /v1/me)",
		about: "Drives login, refresh and GET /v1/me against a running server (registration must be open)\n" +
			"and prints requests per second, p50 and p99 per scenario and concurrency.",
		usage: "[flags]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&base, "url", "http://127.0.0.1:8080", "server base URL (loopback only: this is a load test)")
			fs.DurationVar(&duration, "duration", 5*time.Second, "how long each scenario runs at each concurrency")
			fs.StringVar(&levels, "concurrency", "1,8,32", "comma-separated concurrency levels")
			fs.StringVar(&scenarios, "scenarios", "login,refresh,me", "comma-separated: login, refresh, me")
		},
		run: func(ctx context.Context, in *invocation) int {
			return runBench(ctx, in, base, levels, scenarios, duration)
		},
	}
}

func runBench(ctx context.Context, in *invocation, base, levels, scenarios string, duration time.Duration) int {
	stdout, stderr := in.stdout, in.stderr
	var cs []int
	for f := range strings.SplitSeq(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			fmt.Fprintf(stderr, "gatehouse bench: bad concurrency %q\n", f)
			return exitUsage
		}
		cs = append(cs, n)
	}
	maxC := slices.Max(cs)
	b := &bencher{base: strings.TrimRight(base, "/"), client: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 2 * maxC, MaxIdleConnsPerHost: 2 * maxC},
	}}
	users, err := b.setup(ctx, maxC)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse bench: setup: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, loadgen.Header)
	for sc := range strings.SplitSeq(scenarios, ",") {
		op, ok := map[string]func(*vu) error{"login": b.login, "refresh": b.refresh, "me": b.me}[strings.TrimSpace(sc)]
		if !ok {
			fmt.Fprintf(stderr, "gatehouse bench: unknown scenario %q\n", sc)
			return exitUsage
		}
		for _, c := range cs {
			r := loadgen.Run(ctx, users[:c], op, duration)
			if r.FirstErr != nil {
				fmt.Fprintf(stderr, "gatehouse bench: first error: %v\n", r.FirstErr)
			}
			fmt.Fprintln(stdout, r.Row(strings.TrimSpace(sc), c))
			if ctx.Err() != nil {
				return exitFailure
			}
		}
	}
	return exitOK
}

type bencher struct {
	base   string
	client *http.Client
}

type vu struct {
	username, password string
	access, refresh    string
	buf                []byte       // request body, reused
	resp               bytes.Buffer // response body, reused
}

func (b *bencher) post(path string, body any, out any) error {
	j, _ := json.Marshal(body)
	res, err := b.client.Post(b.base+path, "application/json", bytes.NewReader(j))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("POST %s: %d %s", path, res.StatusCode, msg)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}

type benchTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (b *bencher) setup(ctx context.Context, n int) ([]*vu, error) {
	run := make([]byte, 4)
	rand.Read(run)
	users := make([]*vu, n)
	for i := range users {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		u := &vu{username: fmt.Sprintf("bench-%s-%d", hex.EncodeToString(run), i), password: "bench-password-" + hex.EncodeToString(run)}
		if err := b.post("/v1/auth/register", map[string]string{"username": u.username, "password": u.password}, nil); err != nil {
			return nil, err
		}
		if err := b.login(u); err != nil {
			return nil, err
		}
		users[i] = u
	}
	return users, nil
}

func (b *bencher) login(u *vu) error {
	var t benchTokens
	if err := b.post("/v1/auth/login", map[string]string{"username": u.username, "password": u.password}, &t); err != nil {
		return err
	}
	u.access, u.refresh = t.AccessToken, t.RefreshToken
	return nil
}

// refresh is the hot loop of the refresh scenario. It is kept lean (no
// JSON encoder, one reused buffer, the two tokens cut out of the response)
// because the load generator shares the machine with the server and the
// database: every microsecond it spends is taken from what it measures.
func (b *bencher) refresh(u *vu) error {
	u.buf = append(append(append(u.buf[:0], `{"refresh_token":"`...), u.refresh...), `"}`...)
	req, _ := http.NewRequest("POST", b.base+"/v1/auth/refresh", bytes.NewReader(u.buf))
	req.Header.Set("Content-Type", "application/json")
	res, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	u.resp.Reset()
	if _, err := u.resp.ReadFrom(io.LimitReader(res.Body, 1<<16)); err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("POST /v1/auth/refresh: %d %s", res.StatusCode, u.resp.Bytes())
	}
	access, refresh := field(u.resp.Bytes(), `"access_token":"`), field(u.resp.Bytes(), `"refresh_token":"`)
	if access == "" || refresh == "" {
		return errors.New("refresh returned no token")
	}
	u.access, u.refresh = access, refresh
	return nil
}

// field cuts a JSON string value that needs no unescaping (tokens are
// base64url) out of body.
func field(body []byte, key string) string {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func (b *bencher) me(u *vu) error {
	req, _ := http.NewRequest("GET", b.base+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+u.access)
	res, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != 200 {
		return fmt.Errorf("GET /v1/me: %d", res.StatusCode)
	}
	return nil
}
