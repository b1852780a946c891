package httpapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SetAuthDeadline shortens the in-band WebSocket authentication deadline
// for tests and returns the previous value.
func SetAuthDeadline(d time.Duration) time.Duration {
	old := authDeadline
	authDeadline = d
	return old
}

// RoutePatterns is every ServeMux pattern New registers (metrics served on
// the public listener).
func RoutePatterns() []string {
	h := &handler{cfg: Config{Registry: prometheus.NewRegistry()}}
	var out []string
	for _, rt := range h.routes() {
		out = append(out, rt.pattern)
	}
	return out
}
