// Package metrics holds the serving engine's Prometheus metrics: requests by protocol, model
// and outcome, request latency, dynamic batch sizes and the Cluster Serving queue's lag. A nil
// *Metrics records nothing, so protocol packages take one optionally.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the serving metrics, registered on one registry.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	batch    *prometheus.HistogramVec
	lag      *prometheus.GaugeVec
	pending  *prometheus.GaugeVec
	dead     *prometheus.CounterVec
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_serve_requests_total",
			Help: "Inference requests answered, by protocol (kserve_rest, kserve_grpc, cluster_http, queue), model and outcome (ok, invalid, not_found, unavailable, error).",
		}, []string{"protocol", "model", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ppml_serve_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by protocol.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"protocol"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ppml_serve_batch_rows",
			Help:    "Rows in each model call the dynamic batcher made, by model.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}, []string{"model"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ppml_serve_queue_lag",
			Help: "Entries of the Cluster Serving stream not yet delivered to the consumer group (Redis 7 lag), by stream.",
		}, []string{"stream"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ppml_serve_queue_pending",
			Help: "Entries delivered to the consumer group but not yet answered, by stream.",
		}, []string{"stream"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ppml_serve_queue_dead_letters_total",
			Help: "Queue records answered NaN and written to the dead-letter stream, by stream.",
		}, []string{"stream"}),
	}
	reg.MustRegister(m.requests, m.latency, m.batch, m.lag, m.pending, m.dead)
	return m
}

// Request records one answered request.
func (m *Metrics) Request(protocol, model, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(protocol, model, outcome).Inc()
	m.latency.WithLabelValues(protocol).Observe(d.Seconds())
}

// BatchObserver returns a function recording the batch sizes of one model (nil for nil m).
func (m *Metrics) BatchObserver(model string) func(rows int) {
	if m == nil {
		return nil
	}
	h := m.batch.WithLabelValues(model)
	return func(rows int) { h.Observe(float64(rows)) }
}

// Queue records a stream's lag and pending count.
func (m *Metrics) Queue(stream string, lag, pending int64) {
	if m == nil {
		return
	}
	if lag >= 0 {
		m.lag.WithLabelValues(stream).Set(float64(lag))
	}
	m.pending.WithLabelValues(stream).Set(float64(pending))
}

// DeadLetter counts a dead-lettered record.
func (m *Metrics) DeadLetter(stream string) {
	if m == nil {
		return
	}
	m.dead.WithLabelValues(stream).Inc()
}
