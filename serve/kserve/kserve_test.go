package kserve_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/serve/kserve"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/model/tabular"
	"github.com/ppml/ppml/serve/servetest"
)

const features = 6

type fixture struct {
	url    string
	http   *http.Client
	grpc   inferencepb.GRPCInferenceServiceClient
	x      []float32 // rows of features
	want   []float32 // XGBoost's own predictions for x
	reg    *model.Registry
	server *kserve.Server
}

func setup(t *testing.T) *fixture {
	t.Helper()
	mf, x := servetest.XGBoostModel(t, features, 20, 4)
	x = x[:64*features]
	b, err := xgboost.LoadJSON(mf, 1)
	servetest.Must(t, err)
	d, err := xgboost.NewDMatrix(x, 64, features, 1)
	servetest.Must(t, err)
	p, err := b.Predict(d)
	servetest.Must(t, err)
	d.Close()
	b.Close()

	reg := model.NewRegistry()
	for _, v := range []string{"1", "2"} {
		m, err := tabular.Load(mf, tabular.Options{Name: "xgb", Version: v, Threads: 2})
		servetest.Must(t, err)
		_, err = reg.Add(m, model.BatchOptions{MaxBatch: 32, Workers: 2})
		servetest.Must(t, err)
	}
	t.Cleanup(func() { reg.Close() })
	s := &kserve.Server{Registry: reg, Name: "ppml", Version: "test", MaxRequestBytes: 1 << 20}
	stls, ctls := servetest.TLS(t)

	hs := httptest.NewUnstartedServer(s.Handler())
	hs.TLS = stls
	hs.StartTLS()
	t.Cleanup(hs.Close)

	gs := grpc.NewServer(append(s.ServerOptions(), grpc.Creds(credentials.NewTLS(stls)))...)
	inferencepb.RegisterGRPCInferenceServiceServer(gs, s.GRPC())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	servetest.Must(t, err)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ctls)))
	servetest.Must(t, err)
	t.Cleanup(func() { conn.Close() })

	return &fixture{url: hs.URL, http: &http.Client{Transport: &http.Transport{TLSClientConfig: ctls}},
		grpc: inferencepb.NewGRPCInferenceServiceClient(conn), x: x, want: p.Values, reg: reg, server: s}
}

func (f *fixture) do(t *testing.T, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	servetest.Must(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.http.Do(req)
	servetest.Must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func rowsJSON(x []float32) string {
	var sb strings.Builder
	for i, v := range x {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	return sb.String()
}

func TestRESTMetadataAndHealth(t *testing.T) {
	f := setup(t)
	for _, c := range []struct{ path, want string }{
		{"/v2", `{"extensions":["binary_tensor_data"],"name":"ppml","version":"test"}`},
		{"/v2/health/live", `{"live":true}`},
		{"/v2/health/ready", `{"ready":true}`},
		{"/v2/models/xgb/ready", `{"name":"xgb","ready":true}`},
		{"/v2/models/xgb/versions/2/ready", `{"name":"xgb","ready":true}`},
		{"/v2/models/xgb", `{"name":"xgb","versions":["1","2"],"platform":"xgboost","inputs":[{"name":"input","datatype":"FP32","shape":[-1,6]}],"outputs":[{"name":"prediction","datatype":"FP32","shape":[-1]}]}`},
	} {
		code, body, _ := f.do(t, "GET", c.path, "")
		if code != 200 || body != c.want {
			t.Errorf("GET %s: %d %s, want 200 %s", c.path, code, body, c.want)
		}
	}
	f.reg.Drain()
	if code, body, _ := f.do(t, "GET", "/v2/health/ready", ""); code != 503 || body != `{"ready":false}` {
		t.Errorf("draining: ready answered %d %s", code, body)
	}
}

// TestRESTInferSpecExample sends the request shape of the specification's example (id,
// inputs with shape, datatype and flat data, requested outputs) and checks every value
// against XGBoost's own predictions.
func TestRESTInferSpecExample(t *testing.T) {
	f := setup(t)
	body := fmt.Sprintf(`{"id":"42","inputs":[{"name":"input","shape":[3,%d],"datatype":"FP32","data":[%s]}],"outputs":[{"name":"prediction"}]}`,
		features, rowsJSON(f.x[:3*features]))
	code, resp, h := f.do(t, "POST", "/v2/models/xgb/infer", body, "Content-Type", "application/json")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("infer: %d %s", code, resp)
	}
	var r struct {
		ModelName, ModelVersion, ID string `json:"-"`
		Name                        string `json:"model_name"`
		Version                     string `json:"model_version"`
		Id                          string `json:"id"`
		Outputs                     []struct {
			Name     string    `json:"name"`
			Datatype string    `json:"datatype"`
			Shape    []int64   `json:"shape"`
			Data     []float32 `json:"data"`
		} `json:"outputs"`
	}
	servetest.Must(t, json.Unmarshal([]byte(resp), &r))
	if r.Name != "xgb" || r.Version != "1" || r.Id != "42" || len(r.Outputs) != 1 || r.Outputs[0].Datatype != "FP32" || fmt.Sprint(r.Outputs[0].Shape) != "[3]" {
		t.Fatalf("response %s", resp)
	}
	for i, v := range r.Outputs[0].Data {
		if v != f.want[i] {
			t.Errorf("row %d: %v, XGBoost predicts %v", i, v, f.want[i])
		}
	}
	// Nested data is the same tensor.
	nested := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,%d],"datatype":"FP32","data":[[%s]]}]}`, features, rowsJSON(f.x[:features]))
	if code, resp, _ := f.do(t, "POST", "/v2/models/xgb/versions/2/infer", nested); code != 200 || !strings.Contains(resp, `"model_version":"2"`) {
		t.Errorf("nested data: %d %s", code, resp)
	}
}

// TestRESTBinaryData uses the binary tensor data extension the way Triton's HTTP client
// does: binary input after the JSON header, binary output requested.
func TestRESTBinaryData(t *testing.T) {
	f := setup(t)
	var raw []byte
	for _, v := range f.x[:2*features] {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	hdr := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[2,%d],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"outputs":[{"name":"prediction","parameters":{"binary_data":true}}]}`, features, len(raw))
	code, resp, h := f.do(t, "POST", "/v2/models/xgb/infer", hdr+string(raw), kserve.HeaderLength, strconv.Itoa(len(hdr)), "Content-Type", "application/octet-stream")
	if code != 200 {
		t.Fatalf("binary infer: %d %s", code, resp)
	}
	n, err := strconv.Atoi(h.Get(kserve.HeaderLength))
	servetest.Must(t, err)
	if !strings.Contains(resp[:n], `"parameters":{"binary_data_size":8}`) || len(resp) != n+8 {
		t.Fatalf("binary response: header %q, %d bytes", resp[:n], len(resp))
	}
	for i := range 2 {
		v := math.Float32frombits(binary.LittleEndian.Uint32([]byte(resp[n+4*i:])))
		if v != f.want[i] {
			t.Errorf("row %d: %v, want %v", i, v, f.want[i])
		}
	}
	// binary_data_output at the request level.
	hdr2 := strings.Replace(hdr, `"outputs":[{"name":"prediction","parameters":{"binary_data":true}}]`, `"parameters":{"binary_data_output":true}`, 1)
	if code, resp, h := f.do(t, "POST", "/v2/models/xgb/infer", hdr2+string(raw), kserve.HeaderLength, strconv.Itoa(len(hdr2))); code != 200 || h.Get(kserve.HeaderLength) == "" {
		t.Errorf("binary_data_output: %d %q", code, resp)
	}
}

// TestRESTErrors checks each bad request gets the protocol's error object and status, and
// that the server keeps serving.
func TestRESTErrors(t *testing.T) {
	f := setup(t)
	good := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,%d],"datatype":"FP32","data":[%s]}]}`, features, rowsJSON(f.x[:features]))
	for _, c := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "POST", "/v2/models/xgb/infer", `{"inputs":[`, 400, "not an inference request object"},
		{"wrong datatype", "POST", "/v2/models/xgb/infer", strings.Replace(good, "FP32", "FP64", 1), 400, "datatype FP64, model \"xgb\" expects FP32"},
		{"wrong shape", "POST", "/v2/models/xgb/infer", strings.Replace(good, "[1,6]", "[2,3]", 1), 400, "shape [2 3], model \"xgb\" expects [-1 6]"},
		{"count mismatch", "POST", "/v2/models/xgb/infer", strings.Replace(good, "[1,6]", "[2,6]", 1), 400, "holds 12 elements, the data has 6"},
		{"unknown datatype", "POST", "/v2/models/xgb/infer", strings.Replace(good, "FP32", "FLOAT", 1), 400, `datatype "FLOAT" is not one of`},
		{"unknown input", "POST", "/v2/models/xgb/infer", strings.Replace(good, `"input"`, `"x"`, 1), 400, `has no input "x"`},
		{"unknown output", "POST", "/v2/models/xgb/infer", strings.Replace(good, `]}]}`, `]}],"outputs":[{"name":"nope"}]}`, 1), 400, `has no output "nope"`},
		{"unknown model", "POST", "/v2/models/nope/infer", good, 404, `no model named "nope"`},
		{"unknown version", "POST", "/v2/models/xgb/versions/9/infer", good, 404, `has no version "9"`},
		{"out of FP32 range", "POST", "/v2/models/xgb/infer", strings.Replace(good, `"data":[`, `"data":[3.5e38,`, 1), 400, "is not a FP32 number"},
		{"oversized body", "POST", "/v2/models/xgb/infer", `{"inputs":[{"name":"input","shape":[1,6],"datatype":"FP32","data":[` + strings.Repeat("1,", 600000) + `1]}]}`, 400, "larger than 1048576 bytes"},
		{"huge shape", "POST", "/v2/models/xgb/infer", strings.Replace(good, "[1,6]", "[4294967296,4294967296]", 1), 400, "more than"},
		{"wrong method", "GET", "/v2/models/xgb/infer", "", 405, "use POST"},
		{"unknown path", "GET", "/v2/nothing", "", 404, "no endpoint"},
		{"bad header length", "POST", "/v2/models/xgb/infer", good, 400, "does not fit"},
	} {
		var hdr []string
		if c.name == "bad header length" {
			hdr = []string{kserve.HeaderLength, "99999"}
		}
		code, body, h := f.do(t, c.method, c.path, c.body, hdr...)
		var e struct{ Error string }
		if code != c.code || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.msg) || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want %d and an error containing %q", c.name, code, body, c.code, c.msg)
		}
	}
	if code, _, _ := f.do(t, "POST", "/v2/models/xgb/infer", good); code != 200 {
		t.Errorf("the server stopped serving after bad requests: %d", code)
	}
}

func TestGRPC(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	live, err := f.grpc.ServerLive(ctx, &inferencepb.ServerLiveRequest{})
	servetest.Must(t, err)
	ready, err := f.grpc.ServerReady(ctx, &inferencepb.ServerReadyRequest{})
	servetest.Must(t, err)
	meta, err := f.grpc.ServerMetadata(ctx, &inferencepb.ServerMetadataRequest{})
	servetest.Must(t, err)
	if !live.Live || !ready.Ready || meta.Name != "ppml" || fmt.Sprint(meta.Extensions) != "[binary_tensor_data]" {
		t.Fatalf("live %v ready %v metadata %v", live, ready, meta)
	}
	mm, err := f.grpc.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "xgb", Version: "2"})
	servetest.Must(t, err)
	if mm.Platform != "xgboost" || fmt.Sprint(mm.Versions) != "[1 2]" || mm.Inputs[0].Datatype != "FP32" || fmt.Sprint(mm.Inputs[0].Shape) != "[-1 6]" {
		t.Fatalf("model metadata %v", mm)
	}

	// Typed contents (as KServe's Python client sends) and raw contents (as Triton's does).
	typed := &inferencepb.ModelInferRequest{ModelName: "xgb", Id: "a", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
		{Name: "input", Datatype: "FP32", Shape: []int64{4, features}, Contents: &inferencepb.InferTensorContents{Fp32Contents: f.x[:4*features]}}}}
	r, err := f.grpc.ModelInfer(ctx, typed)
	servetest.Must(t, err)
	if r.Id != "a" || r.ModelVersion != "1" || len(r.RawOutputContents) != 0 || fmt.Sprint(r.Outputs[0].Contents.Fp32Contents) != fmt.Sprint(f.want[:4]) {
		t.Fatalf("typed infer: %v, want %v", r, f.want[:4])
	}
	var raw []byte
	for _, v := range f.x[:4*features] {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	rawReq := &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
		{Name: "input", Datatype: "FP32", Shape: []int64{4, features}}}, RawInputContents: [][]byte{raw}}
	r, err = f.grpc.ModelInfer(ctx, rawReq)
	servetest.Must(t, err)
	if len(r.RawOutputContents) != 1 || len(r.RawOutputContents[0]) != 16 {
		t.Fatalf("raw infer: %v", r)
	}
	for i := range 4 {
		if v := math.Float32frombits(binary.LittleEndian.Uint32(r.RawOutputContents[0][4*i:])); v != f.want[i] {
			t.Errorf("raw row %d: %v, want %v", i, v, f.want[i])
		}
	}

	for _, c := range []struct {
		name string
		req  *inferencepb.ModelInferRequest
		code codes.Code
		msg  string
	}{
		{"unknown model", &inferencepb.ModelInferRequest{ModelName: "nope", Inputs: typed.Inputs}, codes.NotFound, `no model named "nope"`},
		{"wrong datatype", &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP64", Shape: []int64{1, features}, Contents: &inferencepb.InferTensorContents{Fp64Contents: make([]float64, features)}}}}, codes.InvalidArgument, "expects FP32"},
		{"short contents", &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
			{Name: "input", Datatype: "FP32", Shape: []int64{2, features}, Contents: &inferencepb.InferTensorContents{Fp32Contents: f.x[:features]}}}}, codes.InvalidArgument, "fp32_contents has 6"},
		{"raw count", &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: rawReq.Inputs, RawInputContents: [][]byte{raw, raw}}, codes.InvalidArgument, "2 entries for 1 inputs"},
		{"raw size", &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: rawReq.Inputs, RawInputContents: [][]byte{raw[:10]}}, codes.InvalidArgument, "needs 96 bytes, got 10"},
		{"oversized", &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: rawReq.Inputs, RawInputContents: [][]byte{make([]byte, 2<<20)}}, codes.ResourceExhausted, "larger than max"},
	} {
		_, err := f.grpc.ModelInfer(ctx, c.req)
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v containing %q", c.name, err, c.code, c.msg)
		}
	}
	if _, err := f.grpc.ModelReady(ctx, &inferencepb.ModelReadyRequest{Name: "xgb", Version: "7"}); status.Code(err) != codes.NotFound {
		t.Errorf("model ready of a missing version: %v", err)
	}
}

// TestBatching sends many concurrent requests of one row each; the batcher must join some
// of them and every client must still get its own row's prediction.
func TestBatching(t *testing.T) {
	f := setup(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.grpc.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "xgb", Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{
				{Name: "input", Datatype: "FP32", Shape: []int64{1, features}, Contents: &inferencepb.InferTensorContents{Fp32Contents: f.x[i*features : (i+1)*features]}}}})
			if err != nil {
				errs <- err
				return
			}
			if got := r.Outputs[0].Contents.Fp32Contents[0]; got != f.want[i] {
				errs <- fmt.Errorf("request %d got %v, want %v", i, got, f.want[i])
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRESTBodyLimitKeepsServing(t *testing.T) {
	f := setup(t)
	big := bytes.Repeat([]byte("x"), 2<<20)
	resp, err := f.http.Post(f.url+"/v2/models/xgb/infer", "application/json", bytes.NewReader(big))
	servetest.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("2 MiB body: %d", resp.StatusCode)
	}
	if code, _, _ := f.do(t, "GET", "/v2/health/live", ""); code != 200 {
		t.Errorf("live after an oversized body: %d", code)
	}
}
