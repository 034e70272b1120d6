package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/metrics"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/server"
	"github.com/ppml/ppml/serve/servetest"
	"github.com/ppml/ppml/serve/tensor"
)

// slowModel answers after delay, or when its context ends.
type slowModel struct {
	delay   time.Duration
	started chan struct{}
}

func (m *slowModel) Metadata() model.Metadata {
	return model.Metadata{Name: "slow", Version: "1", Platform: "test",
		Inputs:  []model.TensorSpec{{Name: "x", DataType: tensor.FP32, Shape: []int64{-1}}},
		Outputs: []model.TensorSpec{{Name: "y", DataType: tensor.FP32, Shape: []int64{-1}}}}
}

func (m *slowModel) Predict(ctx context.Context, in []tensor.Tensor) ([]tensor.Tensor, error) {
	select {
	case m.started <- struct{}{}:
	default:
	}
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []tensor.Tensor{{Name: "y", DataType: tensor.FP32, Shape: in[0].Shape, F32: in[0].F32}}, nil
}

func (m *slowModel) Close() error { return nil }

type fixture struct {
	srv  *server.Server
	http *http.Client
	grpc inferencepb.GRPCInferenceServiceClient
	slow *slowModel
	tls  *tls.Config
}

func start(t *testing.T, limits server.Limits, delay time.Duration) *fixture {
	mf, _ := servetest.XGBoostModel(t, 4, 5, 3)
	promReg := prometheus.NewRegistry()
	mets := metrics.New(promReg)
	reg := model.NewRegistry()
	m, err := tabular.Load(mf, tabular.Options{Name: "xgb", Version: "1", Threads: 1})
	servetest.Must(t, err)
	_, err = reg.Add(m, model.BatchOptions{MaxBatch: 16, Observe: mets.BatchObserver("xgb")})
	servetest.Must(t, err)
	slow := &slowModel{delay: delay, started: make(chan struct{}, 1)}
	_, err = reg.Add(slow, model.BatchOptions{})
	servetest.Must(t, err)
	t.Cleanup(func() { reg.Close() })
	stls, ctls := servetest.TLS(t)
	srv, err := server.Start(server.Config{Registry: reg, TLS: stls, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		PredictModel: "xgb", Name: "ppml", Version: "test", Limits: limits,
		Metrics: mets, Gatherer: promReg, Log: t.Logf})
	servetest.Must(t, err)
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	servetest.Must(t, err)
	t.Cleanup(func() { conn.Close() })
	return &fixture{srv: srv, slow: slow, tls: ctls,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: ctls.Clone(), ForceAttemptHTTP2: true}},
		grpc: inferencepb.NewGRPCInferenceServiceClient(conn)}
}

func (f *fixture) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := f.http.Post("https://"+f.srv.HTTPAddr()+path, "application/json", strings.NewReader(body))
	servetest.Must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := f.http.Get("https://" + f.srv.HTTPAddr() + path)
	servetest.Must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const xgbInfer = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[0.1,0.2,0.3,0.4]}]}`

// TestRoutesAndMetrics: every protocol on the one HTTPS listener, gRPC on its own, and the
// requests counted on /metrics.
func TestRoutesAndMetrics(t *testing.T) {
	f := start(t, server.Limits{}, 0)
	if code, body := f.post(t, "/v2/models/xgb/infer", xgbInfer); code != 200 || !strings.Contains(body, `"prediction"`) {
		t.Fatalf("KServe REST: %d %s", code, body)
	}
	if code, body := f.post(t, "/predict", `{"instances":[{"input":[0.1,0.2,0.3,0.4]}]}`); code != 200 || !strings.Contains(body, `"predictions"`) {
		t.Fatalf("/predict: %d %s", code, body)
	}
	if code, body := f.get(t, "/v2/health/ready"); code != 200 || !strings.Contains(body, "true") {
		t.Fatalf("ready: %d %s", code, body)
	}
	_, err := f.grpc.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "xgb",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 4},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{.1, .2, .3, .4}}}}})
	servetest.Must(t, err)
	_, body := f.get(t, "/metrics")
	for _, want := range []string{
		`ppml_serve_requests_total{model="xgb",outcome="ok",protocol="kserve_rest"} 1`,
		`ppml_serve_requests_total{model="xgb",outcome="ok",protocol="kserve_grpc"} 1`,
		`ppml_serve_request_duration_seconds_count{protocol="kserve_rest"} 1`,
		`ppml_serve_batch_rows_count`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// TLS 1.2 is refused.
	c12 := f.tls.Clone()
	c12.MinVersion, c12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := tls.Dial("tcp", f.srv.HTTPAddr(), c12); err == nil {
		t.Error("a TLS 1.2 handshake succeeded")
	}
}

// TestTimeouts: an inference that outlasts the request timeout is answered in each
// protocol's form (504 with {"error"}, DEADLINE_EXCEEDED); a client that sends half its
// headers is disconnected after the header timeout; the server keeps serving.
func TestTimeouts(t *testing.T) {
	f := start(t, server.Limits{RequestTimeout: 200 * time.Millisecond, ReadHeaderTimeout: 300 * time.Millisecond}, time.Hour)
	code, body := f.post(t, "/v2/models/slow/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`)
	var e struct{ Error string }
	if code != http.StatusGatewayTimeout || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
		t.Fatalf("slow REST inference: %d %s", code, body)
	}
	_, err := f.grpc.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "slow",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{1}}}}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow gRPC inference: %v", err)
	}

	h1 := f.tls.Clone()
	h1.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", f.srv.HTTPAddr(), h1)
	servetest.Must(t, err)
	defer c.Close()
	io.WriteString(c, "POST /v2/models/xgb/infer HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	n, err := c.Read(make([]byte, 1))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("a client that never finished its headers: read %d bytes, %v after %s", n, err, time.Since(start))
	}
	if code, _ := f.post(t, "/v2/models/xgb/infer", xgbInfer); code != 200 {
		t.Fatalf("after the slow client: %d", code)
	}
}

// TestDrain: Shutdown lets an admitted inference finish and answers, refuses new ones as
// unavailable, turns readiness false and closes the listeners.
func TestDrain(t *testing.T) {
	f := start(t, server.Limits{}, 500*time.Millisecond)
	var wg sync.WaitGroup
	var code int
	var body string
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, body = f.post(t, "/v2/models/slow/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[7]}]}`)
	}()
	<-f.slow.started
	done := make(chan error, 1)
	go func() { done <- f.srv.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	wg.Wait()
	if code != 200 || !strings.Contains(body, "[7]") {
		t.Fatalf("in-flight inference during drain: %d %s", code, body)
	}
	servetest.Must(t, <-done)
	if _, err := f.http.Post("https://"+f.srv.HTTPAddr()+"/v2/models/xgb/infer", "application/json", bytes.NewReader([]byte(xgbInfer))); err == nil {
		t.Fatal("the listener still answers after Shutdown")
	}
}
