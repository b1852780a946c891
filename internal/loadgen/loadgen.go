// Package loadgen runs a closed-loop load for the load generators
// (`gatehouse bench`, scripts/supabench): each virtual user repeats its
// operation back to back until the time is up, and the run reports
// throughput and latency in one table format, so that runs against
// different servers compare line for line.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Result is one run: successful operations per second, the latency
// percentiles of the successful ones, and the failures.
type Result struct {
	RPS      float64
	P50, P99 time.Duration
	Errors   int
	FirstErr error
}

// Header is the table's header line; Result.Row gives its rows.
var Header = fmt.Sprintf("%-8s %5s %10s %10s %10s %8s", "scenario", "conc", "req/s", "p50", "p99", "errors")

// Row is r as a line of the table.
func (r Result) Row(scenario string, conc int) string {
	return fmt.Sprintf("%-8s %5d %10.0f %10s %10s %8d", scenario, conc, r.RPS,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors)
}

// Run runs op for every user concurrently, each in a loop, for d (or
// until ctx ends).
func Run[U any](ctx context.Context, users []U, op func(U) error, d time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			e := 0
			for ctx.Err() == nil {
				t := time.Now()
				err := op(u)
				if err != nil {
					e++
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	r := Result{RPS: float64(len(all)) / elapsed.Seconds(), Errors: errs, FirstErr: firstErr}
	if len(all) > 0 {
		r.P50 = all[len(all)*50/100]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}
