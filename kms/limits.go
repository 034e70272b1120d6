package kms

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limiter is a token bucket per key: an API token id (every
// authenticated route), or a source address (the unauthenticated routes,
// and requests whose token is refused).
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time
	mu    sync.Mutex
	m     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, m: map[string]*bucket{}}
}

func (l *limiter) allow(id string) bool { return l.take(id, true) }

// blocked reports whether id's bucket is empty, without taking from it.
func (l *limiter) blocked(id string) bool { return !l.take(id, false) }

func (l *limiter) take(id string, consume bool) bool {
	if l.rate < 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[id]
	if b == nil {
		if len(l.m) > 1<<16 {
			clear(l.m)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[id] = b
	}
	// A clock stepping back must not drain the bucket.
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.burst, b.tokens+el.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	if consume {
		b.tokens--
	}
	return true
}

type metrics struct {
	reg         *prometheus.Registry
	releases    *prometheus.CounterVec
	denials     *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	authFailed  prometheus.Counter
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_kms_releases_total", Help: "Data keys released to attested TEEs, by platform.",
		}, []string{"platform"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_kms_denials_total", Help: "Refused key release attempts, by the rule or check that refused.",
		}, []string{"rule"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_kms_refusals_total", Help: "Requests refused before any key was looked at (no valid nonce or evidence, another tenant's key name), by rule; summed into one audit entry per token and interval.",
		}, []string{"rule"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_kms_rate_limited_total", Help: "Requests refused by a rate limit, by what was limited: token or address.",
		}, []string{"by"}),
		authFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ppml_kms_auth_failures_total", Help: "Requests whose API token was missing, unknown, revoked or of the wrong role.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_kms_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ppml_kms_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.releases, m.denials, m.refusals, m.rateLimited, m.authFailed, m.requests, m.latency,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Released implements core.Observer.
func (m *metrics) Released(platform string, keys int) {
	m.releases.WithLabelValues(platform).Add(float64(keys))
}

// Denied implements core.Observer.
func (m *metrics) Denied(rule string) { m.denials.WithLabelValues(rule).Inc() }

// Refused implements core.Observer.
func (m *metrics) Refused(rule string) { m.refusals.WithLabelValues(rule).Inc() }
