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
	b := &bencher{base: strings.TrimRight(base, "/")}
	users, err := b.setup(ctx, slices.Max(cs))
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse bench: setup: %v\n", err)
		return exitFailure
	}
	defer func() {
		for _, u := range users {
			u.conn.Close()
		}
	}()
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
	base string
}

// vu is one virtual user: its account, its session's tokens and its own
// connection (loadgen.Conn, which costs the machine far less CPU per
// request than http.Client).
type vu struct {
	username, password string
	access, refresh    string
	conn               *loadgen.Conn
	buf                []byte // request body, reused
}

// post sends body as JSON and decodes a 2xx answer into out (if not nil).
func (u *vu) post(path string, body any, out any) error {
	j, err := json.Marshal(body)
	if err != nil {
		return err
	}
	status, err := u.conn.Do("POST", path, "", j)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return fmt.Errorf("POST %s: %d %.512s", path, status, u.conn.Body.Bytes())
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(u.conn.Body.Bytes(), out)
}

type benchTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func (b *bencher) setup(ctx context.Context, n int) (users []*vu, err error) {
	run := make([]byte, 4)
	rand.Read(run)
	defer func() {
		if err != nil { // a half-made set of users keeps no connection open
			for _, u := range users {
				u.conn.Close()
			}
			users = nil
		}
	}()
	for i := range n {
		if err := ctx.Err(); err != nil {
			return users, err
		}
		conn, err := loadgen.NewConn(b.base)
		if err != nil {
			return users, err
		}
		u := &vu{username: fmt.Sprintf("bench-%s-%d", hex.EncodeToString(run), i), password: "bench-password-" + hex.EncodeToString(run), conn: conn}
		users = append(users, u)
		if err := u.post("/v1/auth/register", map[string]string{"username": u.username, "password": u.password}, nil); err != nil {
			return users, err
		}
		if err := b.login(u); err != nil {
			return users, err
		}
	}
	return users, nil
}

func (b *bencher) login(u *vu) error {
	var t benchTokens
	if err := u.post("/v1/auth/login", map[string]string{"username": u.username, "password": u.password}, &t); err != nil {
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
	status, err := u.conn.Do("POST", "/v1/auth/refresh", "", u.buf)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("POST /v1/auth/refresh: %d %.512s", status, u.conn.Body.Bytes())
	}
	body := u.conn.Body.Bytes()
	access, refresh := field(body, `"access_token":"`), field(body, `"refresh_token":"`)
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
	status, err := u.conn.Do("GET", "/v1/me", u.access, nil)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("GET /v1/me: %d", status)
	}
	return nil
}
