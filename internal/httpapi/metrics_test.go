package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatehouse-auth/gatehouse/internal/metricstest"
)

// scrape reads the exposition at url into "name{k=v,...}" -> value, labels
// sorted, so tests compare series without depending on output order.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range metricstest.Scrape(t, url) {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(labels)
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
			default:
				out[key] = m.Untyped.GetValue()
			}
		}
	}
	return out
}

// delta is what each series gained between two scrapes.
func delta(before, after map[string]float64, key string) float64 { return after[key] - before[key] }

// Every metric the README lists moves when its event happens, and only
// then: the outcomes of logins and refreshes, revocations by reason,
// limiters, CSRF refusals, step-up challenges, sockets and long-polls.
func TestMetricsCountWhatHappens(t *testing.T) {
	s := newServer(t, options{})
	m := s.URL + "/metrics"
	before := scrape(t, m)
	for _, name := range []string{"gatehouse_logins_total{outcome=success}", "gatehouse_refreshes_total{outcome=reused}",
		"gatehouse_sessions_revoked_total{reason=logout}", "gatehouse_rate_limited_total{limiter=account_ip}",
		"gatehouse_csrf_refusals_total", "gatehouse_step_up_challenges_total", "gatehouse_websockets_open",
		"gatehouse_feed_long_polls", "gatehouse_password_hash_queue", "gatehouse_revocation_sync_age_seconds",
		"gatehouse_db_connections{pool=writer,state=idle}", "gatehouse_db_connections_max{pool=reader}"} {
		if _, ok := before[name]; !ok {
			t.Errorf("%s is not exposed before its first event", name)
		}
	}

	s.register(t, "ann")
	ann := s.login(t, "ann")
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "wrong-password"}, nil)
	first := s.refresh(t, ann.refresh)
	s.refresh(t, ann.refresh) // inside the grace window
	s.clock.Advance(time.Minute)
	s.refresh(t, ann.refresh) // reuse: revokes the session
	s.refresh(t, "garbage")
	other := s.login(t, "ann")
	s.do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": other.refresh}, nil)
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "ann", "password": "pw-ann-long"},
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	for range 5 {
		s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "bob", "password": "wrong-password"}, nil)
	}
	s.do(t, "POST", "/v1/auth/login", map[string]string{"username": "bob", "password": "wrong-password"}, nil)
	if first.status != 200 {
		t.Fatalf("refresh: %d", first.status)
	}

	after := scrape(t, m)
	for key, want := range map[string]float64{
		"gatehouse_logins_total{outcome=success}":                       2,
		"gatehouse_logins_total{outcome=invalid_credentials}":           6,
		"gatehouse_logins_total{outcome=rate_limited}":                  1,
		"gatehouse_refreshes_total{outcome=rotated}":                    1,
		"gatehouse_refreshes_total{outcome=grace}":                      1,
		"gatehouse_refreshes_total{outcome=reused}":                     1,
		"gatehouse_refreshes_total{outcome=invalid}":                    1,
		"gatehouse_sessions_revoked_total{reason=refresh_token_reused}": 1,
		"gatehouse_sessions_revoked_total{reason=logout}":               1,
		"gatehouse_rate_limited_total{limiter=account_ip}":              1,
		"gatehouse_csrf_refusals_total":                                 1,
	} {
		if got := delta(before, after, key); got != want {
			t.Errorf("%s grew by %v, want %v", key, got, want)
		}
	}

	// Step-up: an old session asking to log out everywhere.
	root := s.admin(t)
	s.clock.Advance(11 * time.Minute)
	r := s.refresh(t, root.refresh)
	access := r.body["access_token"].(string)
	s.do(t, "POST", "/v1/admin/revoke-all", nil, bearer(access))
	// Gauges: an open socket and a waiting long-poll.
	c, _, err := s.dial(t, "/v1/ws", bearerHeader(access))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(websocket.StatusNormalClosure, "")
	poll := make(chan struct{})
	go func() {
		defer close(poll)
		req, _ := http.NewRequest("GET", s.URL+"/v1/revocations?since=999999&wait=2s", nil)
		req.Header.Set("Authorization", "Bearer "+resourceKey)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	var live map[string]float64
	for {
		live = scrape(t, m)
		if live["gatehouse_websockets_open"] == 1 && live["gatehouse_feed_long_polls"] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if delta(after, live, "gatehouse_step_up_challenges_total") != 1 {
		t.Errorf("step-up challenges grew by %v, want 1", delta(after, live, "gatehouse_step_up_challenges_total"))
	}
	if live["gatehouse_websockets_open"] != 1 || live["gatehouse_feed_long_polls"] != 1 {
		t.Errorf("open sockets %v, long-polls %v; want 1 and 1", live["gatehouse_websockets_open"], live["gatehouse_feed_long_polls"])
	}
	<-poll
	c.Close(websocket.StatusNormalClosure, "")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if live = scrape(t, m); live["gatehouse_websockets_open"] == 0 && live["gatehouse_feed_long_polls"] == 0 {
			break
		}
	}
	if live["gatehouse_websockets_open"] != 0 || live["gatehouse_feed_long_polls"] != 0 {
		t.Errorf("after close: open sockets %v, long-polls %v", live["gatehouse_websockets_open"], live["gatehouse_feed_long_polls"])
	}
}

// With the metrics on their own listener, the public one does not serve
// them.
func TestMetricsElsewhere(t *testing.T) {
	s := newServer(t, options{metricsElsewhere: true})
	if r := s.do(t, "GET", "/metrics", nil, nil); r.status != 404 {
		t.Fatalf("public /metrics: %d", r.status)
	}
}
