package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// runHealthcheck asks a running server's /readyz and exits 0 only on 200.
// It exists for container HEALTHCHECKs: the image has no shell, curl or
// wget, only this binary. It reads the same --addr (GATEHOUSE_ADDR) as
// serve, so one environment configures both.
func healthcheckCommand() command {
	var addr, target string
	var timeout time.Duration
	return command{
		name: "healthcheck", summary: "exit 0 when a running server is ready (for container HEALTHCHECKs)",
		about: "Exits 0 when the server answers 200 on /readyz (its database reachable), 1 otherwise.",
		usage: "[--addr HOST:PORT] [--url URL] [--timeout 3s]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "127.0.0.1:8080", "the address serve listens on")
			fs.StringVar(&target, "url", "", "check this URL instead (default http://ADDR/readyz, 0.0.0.0 and [::] read as loopback)")
			fs.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
		},
		run: func(ctx context.Context, in *invocation) int { return runHealthcheck(ctx, in, addr, target, timeout) },
	}
}

func runHealthcheck(ctx context.Context, in *invocation, addr, target string, timeout time.Duration) int {
	stdout, stderr := in.stdout, in.stderr
	u := target
	if u == "" {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			fmt.Fprintf(stderr, "gatehouse healthcheck: --addr %q: want HOST:PORT\n", addr)
			return exitUsage
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1" // listening on every address includes loopback
			if ip != nil && ip.To4() == nil {
				host = "::1"
			}
		}
		u = "http://" + net.JoinHostPort(host, port) + "/readyz"
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		fmt.Fprintf(stderr, "gatehouse healthcheck: --url %q: want an http(s) URL\n", u)
		return exitUsage
	}
	if timeout <= 0 {
		fmt.Fprintln(stderr, "gatehouse healthcheck: --timeout must be positive")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse healthcheck: %v\n", err)
		return exitUsage
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse healthcheck: %s: %v\n", u, err)
		return exitFailure
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "gatehouse healthcheck: %s: %s\n", u, res.Status)
		return exitFailure
	}
	fmt.Fprintf(stdout, "ok: %s\n", u)
	return exitOK
}
