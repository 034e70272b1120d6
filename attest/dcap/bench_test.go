package dcap

import (
	"slices"
	"testing"
	"time"
)

// benchmarkVerify measures verification of one quote with its collateral
// parsed and the verifier's caches warm, the steady state of a key service.
// It reports p50 and p99 latencies besides the mean.
func benchmarkVerify(b *testing.B, id string) {
	var tc testCase
	for _, c := range loadVectors(b) {
		if c.ID == id {
			tc = c
		}
	}
	v := tc.verifier(b)
	if _, err := tc.verify(b, v, tc.at); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := tc.verify(b, v, tc.at); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkVerifySGX(b *testing.B)   { benchmarkVerify(b, "phala-sgx-v3") }
func BenchmarkVerifyTDX(b *testing.B)   { benchmarkVerify(b, "phala-tdx-v4") }
func BenchmarkVerifyTDXv5(b *testing.B) { benchmarkVerify(b, "gotdx-v5-sample") }
