package auth

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// serviceMetrics are the domain's Prometheus metrics (README "Metrics").
// Label values are fixed sets named here, never client input.
type serviceMetrics struct {
	logins      *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	revocations *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
}

// Outcomes of a login and of a refresh.
var (
	loginOutcomes   = []string{"success", "invalid_credentials", "disabled", "rate_limited", "error"}
	refreshOutcomes = []string{"rotated", "grace", "reused", "expired", "revoked", "disabled", "invalid", "error"}
	revokeReasons   = []string{ReasonLogout, ReasonReuse, ReasonUser, ReasonAdmin, ReasonDisabled, ReasonPasswordChanged,
		ReasonPasswordReset, ReasonDeleted, ReasonGlobal, ReasonSessionLimit, ReasonIPChanged}
	limiters = []string{throttle.LimitIP, throttle.LimitAccountIP, throttle.LimitAccount, limitHashQueue}
)

// limitHashQueue labels logins refused because the argon2id queue is full.
const limitHashQueue = "hash_queue"

// counterVec makes a counter with one label, every value in values present
// from the start at zero, so rate() and alerts see a series before the
// first event.
func counterVec(name, help, label string, values []string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, x := range values {
		v.WithLabelValues(x)
	}
	return v
}

func newServiceMetrics(reg prometheus.Registerer, s *Service) *serviceMetrics {
	m := &serviceMetrics{
		logins:      counterVec("gatehouse_logins_total", "Login attempts by outcome.", "outcome", loginOutcomes),
		refreshes:   counterVec("gatehouse_refreshes_total", "Refresh-token presentations by outcome.", "outcome", refreshOutcomes),
		revocations: counterVec("gatehouse_sessions_revoked_total", "Sessions revoked, by reason.", "reason", revokeReasons),
		rateLimited: counterVec("gatehouse_rate_limited_total", "Login attempts refused by a limiter, by limiter.", "limiter", limiters),
	}
	reg.MustRegister(m.logins, m.refreshes, m.revocations, m.rateLimited,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_revocation_sync_age_seconds",
			Help: "Seconds since the in-memory revocation state last caught up with the database.",
		}, func() float64 { return time.Since(time.Unix(0, s.lastSync.Load())).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_password_hashes_running", Help: "argon2id hashes running now.",
		}, func() float64 { return float64(s.limiter.Running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_password_hash_queue", Help: "Password checks waiting for an argon2id slot.",
		}, func() float64 { return float64(s.limiter.Waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_password_hash_queue_capacity", Help: "Waiting checks allowed before logins get 503.",
		}, func() float64 { return float64(s.limiter.QueueCapacity()) }),
	)
	if s.pools != nil {
		reg.MustRegister(poolCollector{s.pools})
	}
	if s.batching != nil {
		reg.MustRegister(groupCommitCollector{s.batching})
	}
	return m
}

func (m *serviceMetrics) login(err error) {
	m.logins.WithLabelValues(loginOutcome(err)).Inc()
}

func loginOutcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ErrInvalidCredentials):
		return "invalid_credentials"
	case errors.Is(err, ErrAccountDisabled):
		return "disabled"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	}
	return "error"
}

func (m *serviceMetrics) refresh(grace bool, err error) {
	m.refreshes.WithLabelValues(refreshOutcome(grace, err)).Inc()
}

func refreshOutcome(grace bool, err error) string {
	switch {
	case err == nil && grace:
		return "grace"
	case err == nil:
		return "rotated"
	case errors.Is(err, ErrRefreshTokenReused):
		return "reused"
	case errors.Is(err, ErrSessionExpired):
		return "expired"
	case errors.Is(err, ErrSessionRevoked):
		return "revoked"
	case errors.Is(err, ErrAccountDisabled):
		return "disabled"
	case errors.Is(err, ErrInvalidRefreshToken):
		return "invalid"
	}
	return "error"
}

func (m *serviceMetrics) revoked(reason string, n int) {
	if n > 0 {
		m.revocations.WithLabelValues(reason).Add(float64(n))
	}
}

// poolCollector reads the store's pools at scrape time.
type poolCollector struct{ s store.PoolStatser }

var (
	poolMaxDesc   = prometheus.NewDesc("gatehouse_db_connections_max", "Connections the pool may open.", []string{"pool"}, nil)
	poolConnsDesc = prometheus.NewDesc("gatehouse_db_connections", "Open connections by state.", []string{"pool", "state"}, nil)
	poolWaitsDesc = prometheus.NewDesc("gatehouse_db_waits_total", "Acquisitions that waited for a connection.", []string{"pool"}, nil)
	poolWaitDesc  = prometheus.NewDesc("gatehouse_db_wait_seconds_total", "Time spent waiting for a connection.", []string{"pool"}, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolMaxDesc
	ch <- poolConnsDesc
	ch <- poolWaitsDesc
	ch <- poolWaitDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.s.PoolStats() {
		ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(p.Max), p.Pool)
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(p.InUse), p.Pool, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(p.Idle), p.Pool, "idle")
		ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(p.WaitCount), p.Pool)
		ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, p.WaitDuration.Seconds(), p.Pool)
	}
}

// groupCommitCollector reads the store's rotation statements at scrape
// time: how well rotations share statements (PostgreSQL's group commit).
type groupCommitCollector struct{ s store.GroupCommitStatser }

var (
	rotationStatementsDesc = prometheus.NewDesc("gatehouse_db_rotation_statements_total",
		"Statements that rotated refresh tokens, by kind: single (one rotation) or batch (several, one commit).", []string{"kind"}, nil)
	rotationsBatchedDesc = prometheus.NewDesc("gatehouse_db_rotations_batched_total",
		"Rotations carried by batch statements.", nil, nil)
	rotationRetriesDesc = prometheus.NewDesc("gatehouse_db_rotation_batch_retries_total",
		"Batches aborted by a deadlock and run again one rotation at a time.", nil, nil)
)

func (c groupCommitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rotationStatementsDesc
	ch <- rotationsBatchedDesc
	ch <- rotationRetriesDesc
}

func (c groupCommitCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.GroupCommitStats()
	ch <- prometheus.MustNewConstMetric(rotationStatementsDesc, prometheus.CounterValue, float64(st.Single), "single")
	ch <- prometheus.MustNewConstMetric(rotationStatementsDesc, prometheus.CounterValue, float64(st.Batches), "batch")
	ch <- prometheus.MustNewConstMetric(rotationsBatchedDesc, prometheus.CounterValue, float64(st.Batched))
	ch <- prometheus.MustNewConstMetric(rotationRetriesDesc, prometheus.CounterValue, float64(st.Retried))
}
