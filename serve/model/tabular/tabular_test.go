package tabular

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/ppml/ppml/internal/usage"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/servetest"
	"github.com/ppml/ppml/serve/tensor"
)

func load(t testing.TB, modelJSON []byte, libxgboost bool) *Model {
	t.Helper()
	m, err := Load(modelJSON, Options{Name: "m", Version: "1", Threads: 2, LibXGBoost: libxgboost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func input(x []float32, features int) []tensor.Tensor {
	return []tensor.Tensor{{Name: InputName, DataType: tensor.FP32, Shape: []int64{int64(len(x) / features), int64(features)}, F32: x}}
}

// An XGBoost model is served by the Go evaluator, with libxgboost's predictions to the bit,
// batched or one row at a time, and its errors for bad values.
func TestXGBoostServedByGoEvaluator(t *testing.T) {
	const features = 8
	modelJSON, x := servetest.XGBoostModel(t, features, 30, 4)
	goModel, libModel := load(t, modelJSON, false), load(t, modelJSON, true)
	if goModel.Predictor() != "go" {
		t.Fatalf("predictor %q, want the Go evaluator", goModel.Predictor())
	}
	if p := libModel.Predictor(); p != "libxgboost (libxgboost requested)" {
		t.Fatalf("baseline predictor %q", p)
	}
	rows := append([]float32(nil), x[:200*features]...)
	for i := 0; i < len(rows); i += 7 {
		rows[i] = float32(math.NaN())
	}
	ctx := context.Background()
	want, err := libModel.Predict(ctx, input(rows, features))
	if err != nil {
		t.Fatal(err)
	}
	got, err := goModel.Predict(ctx, input(rows, features))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got[0].Shape) != fmt.Sprint(want[0].Shape) {
		t.Fatalf("shape %v, libxgboost %v", got[0].Shape, want[0].Shape)
	}
	distinct := map[float32]bool{}
	for i, v := range want[0].F32 {
		distinct[v] = true
		if math.Float32bits(got[0].F32[i]) != math.Float32bits(v) {
			t.Fatalf("row %d: %v, libxgboost %v", i, got[0].F32[i], v)
		}
		one, err := goModel.Predict(ctx, input(rows[i*features:(i+1)*features], features))
		if err != nil {
			t.Fatal(err)
		}
		if math.Float32bits(one[0].F32[0]) != math.Float32bits(v) {
			t.Fatalf("row %d alone: %v, libxgboost %v", i, one[0].F32[0], v)
		}
	}
	if len(distinct) < 50 {
		t.Fatalf("only %d distinct predictions: a degenerate model proves little", len(distinct))
	}
	bad := append([]float32(nil), rows[:features]...)
	bad[3] = float32(math.Inf(-1))
	for _, m := range []*Model{goModel, libModel} {
		if _, err := m.Predict(ctx, input(bad, features)); !errors.Is(err, model.ErrInvalid) {
			t.Fatalf("%s: infinite value: %v, want an invalid-request error", m.Predictor(), err)
		}
	}
}

// One-row predictions, the serving case: the Go evaluator against libxgboost.
func BenchmarkPredictOneRow(b *testing.B) {
	const features = 16
	modelJSON, x := servetest.XGBoostModel(b, features, 100, 6)
	for _, lib := range []bool{false, true} {
		m := load(b, modelJSON, lib)
		b.Run(map[bool]string{false: "go", true: "libxgboost"}[lib], func(b *testing.B) {
			ctx := context.Background()
			i := 0
			cpu := usage.CPUTime()
			for b.Loop() {
				r := i % 2000
				if _, err := m.Predict(ctx, input(x[r*features:(r+1)*features], features)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// CPU time (all threads) per prediction: wall time says little on a shared machine.
			b.ReportMetric(float64(usage.CPUTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// 64 concurrent one-row requests through the registry, with and without dynamic batching.
func BenchmarkInfer64Clients(b *testing.B) {
	const features = 16
	modelJSON, x := servetest.XGBoostModel(b, features, 100, 6)
	for _, maxBatch := range []int{1, 8, 64} {
		for _, lib := range []bool{false, true} {
			reg := model.NewRegistry()
			m, err := Load(modelJSON, Options{Name: "m", Version: "1", Threads: 2, LibXGBoost: lib})
			if err != nil {
				b.Fatal(err)
			}
			e, err := reg.Add(m, model.BatchOptions{MaxBatch: maxBatch, Workers: 2})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/max_batch=%d", map[bool]string{false: "go", true: "libxgboost"}[lib], maxBatch), func(b *testing.B) {
				b.SetParallelism(32) // × GOMAXPROCS 2: 64 goroutines
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					i := 0
					for pb.Next() {
						r := i % 2000
						if _, err := e.Infer(ctx, input(x[r*features:(r+1)*features], features)); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
			reg.Close()
		}
	}
}
