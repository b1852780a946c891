package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-auth/gatehouse/internal/auth"
)

// metrics are the HTTP layer's Prometheus metrics (README "Metrics"); the
// domain registers its own (auth.Config.Metrics). Route labels are mux
// patterns, never raw paths, so their values are a fixed set.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	csrf      prometheus.Counter
	stepUp    prometheus.Counter
	sockets   prometheus.Gauge
	longPolls prometheus.Gauge
	// dpopRefused counts requests whose DPoP proof was refused.
	dpopRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, svc *auth.Service, pending func() int, proofs func() int) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gatehouse_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"route"}),
		csrf: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_csrf_refusals_total", Help: "Requests refused as cross-site (CSRF, CORS preflight, WebSocket Origin).",
		}),
		stepUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_step_up_challenges_total", Help: "Requests answered 401 insufficient_user_authentication.",
		}),
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_websockets_open", Help: "Authenticated WebSocket connections open now.",
		}),
		longPolls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_feed_long_polls", Help: "Revocation-feed long-polls waiting now.",
		}),
		dpopRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_dpop_proofs_refused_total", Help: "Requests whose DPoP proof was refused (invalid, replayed, or without the nonce).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.csrf, m.stepUp, m.sockets, m.longPolls, m.dpopRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_dpop_replay_entries", Help: "DPoP proofs remembered by this instance's replay cache.",
		}, func() float64 { return float64(proofs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_websockets_pending", Help: "WebSocket connections waiting for their first (auth) message.",
		}, func() float64 { return float64(pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_revocation_entries", Help: "Entries in the in-memory revocation list.",
		}, func() float64 { return float64(svc.Revocations().Len()) }))
	return m
}

func (m *metrics) observe(r *http.Request, status int, d time.Duration) {
	route := r.Pattern // the mux pattern, never the raw path: bounded label values
	if route == "" || route == "/" {
		route = "other"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}
