package xgboost

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ppml/ppml/ml/synth"
)

// The benchmark: hist, 100 rounds, depth 6, one thread, 1,000,000 × 20 synthetic rows.
const (
	benchRows, benchCols    = 1_000_000, 20
	benchRounds, benchDepth = 100, 6
)

func benchConfig() Config {
	return Config{
		Params:  []Param{{"objective", "reg:squarederror"}, {"max_depth", strconv.Itoa(benchDepth)}},
		Rounds:  benchRounds,
		NThread: 1,
	}
}

// BenchmarkTrainHist1M times training alone (the DMatrix is built outside the timer).
// Run: go test -run '^$' -bench TrainHist1M -benchtime 1x ./ml/xgboost
func BenchmarkTrainHist1M(b *testing.B) {
	x, y := synth.Regression(benchRows, benchCols, 1)
	d, err := NewDMatrix(x, benchRows, benchCols, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		bst, err := Train(d, benchConfig())
		if err != nil {
			b.Fatal(err)
		}
		bst.Close()
	}
}

// BenchmarkTrainVsPython trains on the same table here and in Debian's python3-xgboost
// (bench/ml/xgboost-train-bench.py, plaintext) and reports both training times and their ratio.
// Run: go test -run '^$' -bench TrainVsPython -benchtime 1x -timeout 30m ./ml/xgboost
func BenchmarkTrainVsPython(b *testing.B) {
	x, y := synth.Regression(benchRows, benchCols, 1)
	dir := b.TempDir()
	xp, yp := filepath.Join(dir, "x.f32"), filepath.Join(dir, "y.f32")
	if err := os.WriteFile(xp, f32bytes(x), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(yp, f32bytes(y), 0o600); err != nil {
		b.Fatal(err)
	}
	d, err := NewDMatrix(x, benchRows, benchCols, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.SetLabels(y); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c0 := cpuSeconds(b)
		t0 := time.Now()
		bst, err := Train(d, benchConfig())
		goSec := time.Since(t0).Seconds()
		goCPU := cpuSeconds(b) - c0
		if err != nil {
			b.Fatal(err)
		}
		bst.Close()
		out, err := exec.Command(python, filepath.Join("..", "..", "bench", "ml", "xgboost-train-bench.py"), xp, yp,
			strconv.Itoa(benchRows), strconv.Itoa(benchCols), strconv.Itoa(benchRounds), strconv.Itoa(benchDepth)).Output()
		if err != nil {
			b.Fatalf("xgboost-train-bench.py: %v", err)
		}
		var py struct {
			TrainSeconds float64 `json:"train_seconds"`
			TrainCPU     float64 `json:"train_cpu_seconds"`
		}
		if err := json.Unmarshal(out, &py); err != nil {
			b.Fatalf("xgboost-train-bench.py output %q: %v", out, err)
		}
		b.ReportMetric(goSec, "ppml-train-s")
		b.ReportMetric(py.TrainSeconds, "python-train-s")
		b.ReportMetric(goSec/py.TrainSeconds, "ratio")
		b.ReportMetric(goCPU, "ppml-cpu-s")
		b.ReportMetric(py.TrainCPU, "python-cpu-s")
		b.ReportMetric(goCPU/py.TrainCPU, "cpu-ratio")
	}
}

// f32bytes is the little-endian encoding of v (the machine's order on amd64 and arm64).
func f32bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, f := range v {
		u := math.Float32bits(f)
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return out
}

// cpuSeconds is the process's user+system CPU time (training runs with one XGBoost thread, so
// this is the training work plus a little Go runtime).
func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
