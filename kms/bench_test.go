package kms_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/kms"
	"github.com/ppml/ppml/kms/api"
	"github.com/ppml/ppml/kms/client"
)

// BenchmarkRelease measures whole releases (challenge, simulated evidence,
// verification, policy, audit append, HPKE) over HTTPS on 127.0.0.1, run
// in parallel. It reports releases/s and p50/p99 latency.
func BenchmarkRelease(b *testing.B) {
	simDir, simPub, _ := simSetup(b)
	// A small "executable" keeps the simulator from hashing the whole test
	// binary for every piece of evidence.
	exe := filepath.Join(b.TempDir(), "job-binary")
	os.WriteFile(exe, []byte("simulated job binary"), 0o644)
	measure, _ := sim.Measure(exe)
	e := startServer(b, b.TempDir(), kms.Config{SimKeys: []ed25519.PublicKey{simPub}, RateLimit: -1})
	ctx := context.Background()
	alice, _ := e.party("alice", api.RoleOwner)
	runner, _ := e.party("runner", api.RoleRunner)
	if _, err := alice.CreateKey(ctx, "alice/k"); err != nil {
		b.Fatal(err)
	}
	if _, err := alice.SetPolicy(ctx, "alice/k", simPolicy(measure, "")); err != nil {
		b.Fatal(err)
	}
	d, err := alice.GenerateDataKey(ctx, "alice/k", []byte("aad"))
	if err != nil {
		b.Fatal(err)
	}
	items := []api.ReleaseKeyItem{{Ref: "alice/k", Wrapped: d.Wrapped, AAD: []byte("aad")}}
	att := &sim.Attester{Dir: simDir, Executable: exe}
	digest := [32]byte(jobDigest(b, manifest))
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			r, err := runner.Release(ctx, att, manifest, digest, items, 0)
			if err != nil {
				b.Error(err)
				return
			}
			r.Zero()
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	el := time.Since(start)
	b.StopTimer()
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(len(lat))/el.Seconds(), "releases/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	_ = client.DefaultPort
}
