package loadgen

import (
	"context"
	"errors"
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
