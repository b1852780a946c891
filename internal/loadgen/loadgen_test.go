package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Run counts what succeeded and what failed, keeps the first failure, and
// orders its percentiles; Row lines up under Header.
func TestRun(t *testing.T) {
	type user struct {
		fail bool
		ops  atomic.Int64
	}
	users := []*user{{}, {}, {fail: true}}
	boom := errors.New("boom")
	r := Run(context.Background(), users, func(u *user) error {
		u.ops.Add(1)
		if u.fail {
			time.Sleep(time.Millisecond)
			return boom
		}
		time.Sleep(2 * time.Millisecond)
		return nil
	}, 200*time.Millisecond)
	ok := users[0].ops.Load() + users[1].ops.Load()
	if ok == 0 || r.Errors != int(users[2].ops.Load()) || !errors.Is(r.FirstErr, boom) {
		t.Fatalf("%+v after %d successes and %d failures", r, ok, users[2].ops.Load())
	}
	if r.RPS <= 0 || r.RPS > float64(ok)/0.2*1.01 || r.P50 < 2*time.Millisecond || r.P99 < r.P50 {
		t.Fatalf("%+v for %d successes of at least 2 ms in 200 ms", r, ok)
	}
	if row := r.Row("refresh", 3); len(row) != len(Header) || !strings.HasPrefix(row, "refresh ") {
		t.Fatalf("row %q does not line up under %q", row, Header)
	}
}

// Conn sends what it is given on one kept-alive connection, reads bodies
// whole (chunked too), dials again after the server closes, and refuses a
// body over its bound.
func TestConn(t *testing.T) {
	var conns atomic.Int64
	paths := make(chan string, 1) // paths of no known route
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "%s|%s|%s|%s", r.Method, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b)
		case "/chunked":
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusTeapot)
		case "/huge":
			w.Write(make([]byte, maxBody+1))
		default:
			paths <- r.URL.Path
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c, err := NewConn(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		status, err := c.Do("POST", "/echo", "tok", []byte(`{"a":1}`))
		if err != nil || status != 200 || c.Body.String() != `POST|Bearer tok|application/json|{"a":1}` {
			t.Fatalf("POST: %d %v %q", status, err, c.Body.String())
		}
	}
	if status, err := c.Do("GET", "/echo", "", nil); err != nil || status != 200 || c.Body.String() != "GET|||" {
		t.Fatalf("GET: %d %v %q", status, err, c.Body.String())
	}
	if status, err := c.Do("GET", "/chunked", "", nil); err != nil || c.Body.String() != "part0;part1;part2;" {
		t.Fatalf("chunked: %d %v %q", status, err, c.Body.String())
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for five requests, want one kept alive", n)
	}
	if status, err := c.Do("GET", "/close", "", nil); err != nil || status != http.StatusTeapot {
		t.Fatalf("close: %d %v", status, err)
	}
	if status, err := c.Do("GET", "/echo", "", nil); err != nil || status != 200 || conns.Load() != 2 {
		t.Fatalf("after Connection: close: %d %v, %d connections", status, err, conns.Load())
	}
	if _, err := c.Do("GET", "/huge", "", nil); err == nil || !strings.Contains(err.Error(), "over 1 MiB") {
		t.Fatalf("huge body: %v", err)
	}
	if status, err := c.Do("GET", "/echo", "", nil); err != nil || status != 200 || conns.Load() != 3 {
		t.Fatalf("after a failure: %d %v, %d connections", status, err, conns.Load())
	}
	srv.CloseClientConnections()
	// The server closed the kept connection: this request fails (it may have
	// been processed; a load generator counts it as an error) and the next
	// one dials again.
	if _, err := c.Do("GET", "/echo", "", nil); err == nil {
		t.Fatal("a request on a connection the server closed succeeded")
	}
	if status, err := c.Do("GET", "/echo", "", nil); err != nil || status != 200 {
		t.Fatalf("after the server closed: %d %v", status, err)
	}
	// Mounted under a path: every request goes below it.
	prefixed, err := NewConn(srv.URL + "/mount/")
	if err != nil {
		t.Fatal(err)
	}
	defer prefixed.Close()
	if status, err := prefixed.Do("GET", "/echo", "", nil); err != nil || status != 200 || prefixed.Body.String() != "" {
		t.Fatalf("GET /mount/echo: %d %v %q", status, err, prefixed.Body.String())
	}
	if got := <-paths; got != "/mount/echo" {
		t.Fatalf("the server saw %q, want /mount/echo", got)
	}
	if _, err := c.Do("GET", "/echo", "tok\r\nX-Injected: 1", nil); err == nil {
		t.Fatal("a bearer with a line break was sent")
	}
	for _, bad := range []string{"ftp://h", "http://", "http://h?q=1", "http://u:p@h", "::"} {
		if _, err := NewConn(bad); err == nil {
			t.Errorf("NewConn(%q) accepted", bad)
		}
	}
}
