package kserve_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ppml/ppml/internal/usage"
	"github.com/ppml/ppml/serve/kserve"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/servetest"
)

// BenchmarkRESTInfer is the CPU of one KServe REST infer request in the handler, without
// the network and TLS: the body `ppml bench serve` sends (one row of 16 features, keys as
// Go writes a map), a 100-tree depth-6 XGBoost model, no batching. cpu-ns/op is the
// process's CPU time (all threads, the garbage collector's included) per request: steadier
// than ns/op on a busy machine.
func BenchmarkRESTInfer(b *testing.B) {
	const features = 16
	mf, x := servetest.XGBoostModel(b, features, 100, 6)
	m, err := tabular.Load(mf, tabular.Options{Name: "xgb", Version: "1", Threads: 1})
	servetest.Must(b, err)
	reg := model.NewRegistry()
	_, err = reg.Add(m, model.BatchOptions{})
	servetest.Must(b, err)
	b.Cleanup(func() { reg.Close() })
	h := (&kserve.Server{Registry: reg, Name: "ppml", Version: "bench"}).Handler()
	var bodies [][]byte
	for i := 0; i < 64; i++ {
		body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "datatype": "FP32",
			"shape": []int{1, features}, "data": x[i*features : (i+1)*features]}}})
		bodies = append(bodies, body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := usage.CPUTime()
	defer func() { b.ReportMetric(float64(usage.CPUTime()-cpu)/float64(b.N), "cpu-ns/op") }()
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest(http.MethodPost, "/v2/models/xgb/infer", bytes.NewReader(bodies[i%len(bodies)]))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
