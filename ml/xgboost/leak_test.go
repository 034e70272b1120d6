package xgboost

import (
	"bufio"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// rssKiB reads VmRSS from /proc/self/status.
func rssKiB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// cycle trains, predicts, saves and loads once, closing everything (or, with leakToGC, leaving
// the handles to the cleanups). Each cycle allocates a few MB inside XGBoost, so a leak of any
// handle or buffer grows RSS by about that much per cycle.
func cycle(t *testing.T, x []float32, y []float32, rows, cols int, leakToGC bool) {
	d, err := NewDMatrix(x, rows, cols, threads)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetLabels(y); err != nil {
		t.Fatal(err)
	}
	b, err := Train(d, Config{Params: []Param{{"max_depth", "4"}}, Rounds: 5, NThread: threads})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Predict(d); err != nil {
		t.Fatal(err)
	}
	model, err := b.SaveJSON()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := LoadJSON(model, threads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Predict(d); err != nil {
		t.Fatal(err)
	}
	if !leakToGC {
		b2.Close()
		b.Close()
		d.Close()
	}
}

// TestNoLeak runs train/predict/save/load cycles and checks that RSS stops growing. XGBoost
// stores a 2000×20 DMatrix as CSR entries of 8 bytes (320 KB) plus its histogram index, and a
// booster holds a prediction cache and histogram buffers besides its trees, so leaking a matrix
// or a booster in each of 80 cycles adds far more than the bound (checked by hand by skipping
// Close and its cleanup over 120 cycles: +60 MB leaking the matrix, +90 MB leaking a booster,
// so about 40 and 60 MB over 80); the bound of
// 16 MB leaves room for allocator noise and Go's heap (observed growth without a leak: 3–4 MB).
func TestNoLeak(t *testing.T) {
	const rows, cols = 2000, 20
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, rows*cols)
	y := make([]float32, rows)
	for i := range x {
		x[i] = float32(r.IntN(64)) / 64 // few distinct values keep XGBoost's sketch cheap
	}
	for i := range y {
		y[i] = x[i*cols] + 2*x[i*cols+1] + 0.1*r.Float32()
	}
	for _, mode := range []struct {
		name     string
		leakToGC bool
	}{{"Close", false}, {"cleanup", true}} {
		t.Run(mode.name, func(t *testing.T) {
			measure := func() int {
				runtime.GC()
				runtime.GC() // second cycle runs the cleanups queued by the first
				return rssKiB(t)
			}
			for i := 0; i < 10; i++ { // warm up allocator arenas and OpenMP
				cycle(t, x, y, rows, cols, mode.leakToGC)
			}
			before := measure()
			const n = 80
			for i := 0; i < n; i++ {
				cycle(t, x, y, rows, cols, mode.leakToGC)
				if i%10 == 9 {
					runtime.GC()
				}
			}
			after := measure()
			t.Logf("RSS %d KiB → %d KiB after %d cycles (%+d KiB)", before, after, n, after-before)
			if after-before > 16*1024 {
				t.Fatalf("RSS grew by %d KiB over %d cycles: something leaks", after-before, n)
			}
		})
	}
}
