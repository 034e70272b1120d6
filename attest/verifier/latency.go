package verifier

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ppml/ppml/attest"
)

// Latency summarises verification times.
type Latency struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Samples verifies ev n times with v (after one untimed warm-up that fills
// the verifier's caches) and returns each duration. Every run must succeed:
// timing a failing verification would measure the wrong thing.
func Samples(ctx context.Context, v attest.Verifier, ev *attest.Evidence, opts attest.VerifyOptions, n int) ([]time.Duration, error) {
	if _, err := v.Verify(ctx, ev, opts); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		_, err := v.Verify(ctx, ev, opts)
		d := time.Since(start)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Summarise computes percentiles (nearest rank) of the samples.
func Summarise(s []time.Duration) Latency {
	if len(s) == 0 {
		return Latency{}
	}
	s = slices.Clone(s)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Latency{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}
