package kms

import (
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ppml/ppml/kms/api"
)

// nonces holds outstanding challenges in memory: a restart forgets them,
// which only makes TEEs ask again. Consuming one deletes it, so each is
// usable once, whatever the outcome.
type nonces struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[string]nonceRec
}

type nonceRec struct {
	token   string // id of the API token that asked
	expires time.Time
}

// maxNonces bounds outstanding challenges (a runner asking in a loop).
const maxNonces = 1 << 16

func newNonces(ttl time.Duration, now func() time.Time) *nonces {
	return &nonces{ttl: ttl, now: now, m: map[string]nonceRec{}}
}

var errTooManyNonces = errors.New("too many outstanding challenges; retry later")

func (n *nonces) issue(tokenID string) (api.Challenge, error) {
	b := make([]byte, api.NonceSize)
	if _, err := rand.Read(b); err != nil {
		return api.Challenge{}, err
	}
	now := n.now()
	exp := now.Add(n.ttl)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) >= maxNonces {
		for k, v := range n.m {
			if !now.Before(v.expires) {
				delete(n.m, k)
			}
		}
		if len(n.m) >= maxNonces {
			return api.Challenge{}, errTooManyNonces
		}
	}
	n.m[string(b)] = nonceRec{token: tokenID, expires: exp}
	return api.Challenge{Nonce: b, Expires: exp.UTC()}, nil
}

// consume removes the nonce and says why it cannot be used, if it cannot.
func (n *nonces) consume(nonce []byte, tokenID string) error {
	n.mu.Lock()
	rec, ok := n.m[string(nonce)]
	delete(n.m, string(nonce))
	n.mu.Unlock()
	switch {
	case !ok:
		return errors.New("the nonce is unknown or was already used (challenges are single use and forgotten on restart)")
	case !n.now().Before(rec.expires):
		return errors.New("the nonce expired: ask for a new challenge and attest within its lifetime")
	case rec.token != tokenID:
		return errors.New("the nonce was issued to another API token")
	}
	return nil
}

// limiter is a token bucket per API token id.
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

func (l *limiter) allow(id string) bool {
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
	b.tokens--
	return true
}

type metrics struct {
	reg      *prometheus.Registry
	releases *prometheus.CounterVec
	denials  *prometheus.CounterVec
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_kms_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ppml_kms_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.releases, m.denials, m.requests, m.latency,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
