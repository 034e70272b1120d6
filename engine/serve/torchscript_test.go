//go:build !ppml_no_dl

package serve_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ppml/ppml/dl/idx"
	"github.com/ppml/ppml/dl/modelfile"
	"github.com/ppml/ppml/dl/ptfile"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	_ "github.com/ppml/ppml/engine/dl" // the training job
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/dataset"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/kserve/inferencepb"
	"github.com/ppml/ppml/serve/servetest"
)

// fashionIDX returns the first n items of a Fashion-MNIST IDX file, uncompressed.
func fashionIDX(t *testing.T, name string, n int) []byte {
	f, err := os.Open(dataset.Require(t, name))
	servetest.Must(t, err)
	defer f.Close()
	raw, err := idx.Gunzip(f, 64<<20)
	servetest.Must(t, err)
	a, err := idx.Open(bytes.NewReader(raw), int64(len(raw)))
	servetest.Must(t, err)
	out := []byte{0, 0, idx.TypeUint8, byte(len(a.Dims))}
	out = binary.BigEndian.AppendUint32(out, uint32(n))
	for _, d := range a.Dims[1:] {
		out = binary.BigEndian.AppendUint32(out, uint32(d))
	}
	item := make([]byte, a.ItemSize())
	for i := range n {
		servetest.Must(t, a.Read(i, item))
		out = append(out, item...)
	}
	return out
}

// TestServeDLModel trains a LeNet-5 with the dl engine (encrypted inputs, encrypted model, as
// ppml run does), serves the encrypted model with the serve engine (its entry says backend:
// torchscript, as a job for ppml-run-dl does), and checks that KServe
// REST and gRPC answer what libtorch computes directly from the same file; bad datatypes and
// shapes are refused in each protocol's form and the server keeps serving.
func TestServeDLModel(t *testing.T) {
	dir := t.TempDir()
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	servetest.Must(t, err)
	const n = 256
	images := fashionIDX(t, dataset.FashionTrainImages, n)
	envelopetest.Encrypt(t, filepath.Join(dir, "images.ppml"), k.LocalKey, images, envelope.TypeBytes)
	envelopetest.Encrypt(t, filepath.Join(dir, "labels.ppml"), k.LocalKey, fashionIDX(t, dataset.FashionTrainLabels, n), envelope.TypeBytes)
	keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	servetest.Must(t, err)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		servetest.Must(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	tm, err := launcher.Load(write("train.yaml", `version: 1
name: lenet-train
engine: dl
inputs: {images: images.ppml, labels: labels.ppml}
outputs:
  model: {path: lenet.pt.ppml, key: file:owner.key}
parameters: {task: train, model: lenet5, optimizer: adam, learning_rate: 0.003, epochs: 1, batch_size: 64, seed: 5}
`))
	servetest.Must(t, err)
	if _, err := launcher.Run(context.Background(), launcher.Config{Manifest: tm, Keys: keys, Log: io.Discard}); err != nil {
		t.Fatal(err)
	}

	// What libtorch computes from the decrypted file, directly: the reference.
	plain := envelopetest.Decrypt(t, filepath.Join(dir, "lenet.pt.ppml"), k.LocalKey)
	mf, err := modelfile.DecodeModel(plain, "")
	servetest.Must(t, err)
	ref, err := train.NewModel(mf.Meta.Architecture, mf.Tensors, 1)
	servetest.Must(t, err)
	defer ref.Close()
	const rows = 3
	x := make([]float32, rows*28*28)
	for i := range x {
		x[i] = float32(images[16+i]) / 255
	}
	lp := make([]float32, rows*10)
	servetest.Must(t, ref.Forward(lp, rows, 10, torch.Input{F32: x, Shape: []int64{rows, 1, 28, 28}}))
	wantProb := make([]float32, len(lp))
	wantClass := make([]int64, rows)
	for i, v := range lp {
		wantProb[i] = float32(math.Exp(float64(v)))
		if v > lp[i/10*10+int(wantClass[i/10])] {
			wantClass[i/10] = int64(i % 10)
		}
	}

	httpAddr := "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	grpcAddr := "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	j := &job{dir: dir, grpc: grpcAddr, http: httpAddr}
	j.manifest = write("serve.yaml", fmt.Sprintf(`version: 1
name: lenet-serve
engine: serve
inputs: {lenet: lenet.pt.ppml}
parameters:
  models: [{name: lenet, input: lenet, max_batch: 8, backend: torchscript}]
  listen: {http: "%s", grpc: "%s"}
  hosts: [127.0.0.1]
resources: {threads: 2}
`, httpAddr, grpcAddr))
	j.simulateTEE(t)
	log := &syncBuffer{}
	cancel, done, _ := j.start(t, launcher.Config{Attester: j.att, Log: log, Grace: 10 * time.Second})
	var peer atomic.Pointer[attestedtls.Peer]
	hc, gconn, err := j.clientTLS(&peer)
	servetest.Must(t, err)
	defer gconn.Close()
	base := "https://" + httpAddr
	waitReady(t, hc, base, done, log, 30*time.Second)

	post := func(body string) (int, string) {
		resp, err := hc.Post(base+"/v2/models/lenet/infer", "application/json", strings.NewReader(body))
		servetest.Must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	data, _ := json.Marshal(x)
	good := `{"inputs":[{"name":"input","datatype":"FP32","shape":[3,1,28,28],"data":` + string(data) + `}]}`
	checkREST := func() {
		t.Helper()
		code, body := post(good)
		var kr struct {
			Outputs []struct {
				Name  string
				Shape []int64
				Data  json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(body), &kr); code != 200 || err != nil || len(kr.Outputs) != 2 {
			t.Fatalf("KServe REST: %d %.300s", code, body)
		}
		var prob []float32
		var class []int64
		servetest.Must(t, json.Unmarshal(kr.Outputs[0].Data, &prob))
		servetest.Must(t, json.Unmarshal(kr.Outputs[1].Data, &class))
		if kr.Outputs[0].Name != "probability" || fmt.Sprint(kr.Outputs[0].Shape) != "[3 10]" || fmt.Sprint(prob) != fmt.Sprint(wantProb) || fmt.Sprint(class) != fmt.Sprint(wantClass) {
			t.Fatalf("KServe REST: %v %v %v, libtorch directly: %v %v", kr.Outputs[0].Shape, prob, class, wantProb, wantClass)
		}
	}
	checkREST()

	resp, err := hc.Get(base + "/v2/models/lenet")
	servetest.Must(t, err)
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(md), `"platform":"pytorch_libtorch"`) || !strings.Contains(string(md), `"shape":[-1,1,28,28]`) {
		t.Errorf("model metadata: %s", md)
	}

	gc := inferencepb.NewGRPCInferenceServiceClient(gconn)
	infer := func(dt string, shape []int64, v []float32) (*inferencepb.ModelInferResponse, error) {
		return gc.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "lenet",
			Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: dt, Shape: shape,
				Contents: &inferencepb.InferTensorContents{Fp32Contents: v}}}})
	}
	gr, err := infer("FP32", []int64{rows, 1, 28, 28}, x)
	servetest.Must(t, err)
	if len(gr.Outputs) != 2 || fmt.Sprint(gr.Outputs[0].Contents.Fp32Contents) != fmt.Sprint(wantProb) || fmt.Sprint(gr.Outputs[1].Contents.Int64Contents) != fmt.Sprint(wantClass) {
		t.Fatalf("gRPC: %v, libtorch directly: %v %v", gr.Outputs, wantProb, wantClass)
	}

	// Bad requests: the protocol's error, naming what is wrong; the server keeps serving.
	for body, want := range map[string]string{
		`{"inputs":[{"name":"input","datatype":"FP64","shape":[1,1,28,28],"data":[` + strings.Repeat("0,", 783) + `0]}]}`: "datatype FP64",
		`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,28,28],"data":[` + strings.Repeat("0,", 783) + `0]}]}`:   "shape [1 28 28]",
		`{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[` + strings.Repeat("0,", 783) + `0]}]}`: `no input \"image\"`,
		`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,1,28,28],"data":[1,2,3]}]}`:                              "",
	} {
		code, got := post(body)
		if code != 400 || !strings.Contains(got, `"error"`) || !strings.Contains(got, want) {
			t.Errorf("bad request (%.60s…): %d %s, want 400 naming %q", body, code, got, want)
		}
	}
	if _, err := infer("FP32", []int64{1, 1, 28, 27}, make([]float32, 28*27)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "[-1 1 28 28]") {
		t.Errorf("gRPC, a 28 × 27 image: %v", err)
	}
	if _, err := infer("FP32", []int64{1, 1, 28, 28}, []float32{float32(math.NaN())}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("gRPC, too few values: %v", err)
	}
	nan := make([]float32, 28*28)
	nan[5] = float32(math.Inf(1))
	if _, err := infer("FP32", []int64{1, 1, 28, 28}, nan); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not a finite number") {
		t.Errorf("gRPC, an infinite pixel: %v", err)
	}
	checkREST()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopping the job: %v\n%s", err, log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the job did not drain\n%s", log)
	}
	if !strings.Contains(log.String(), "pytorch_libtorch") {
		t.Errorf("log:\n%s", log)
	}
}

// A request whose tensors do not fit in resources.memory beside the model and its committed
// forward passes is refused as unavailable before it is computed — KServe REST 503 with an
// error body, gRPC UNAVAILABLE, naming the rows and the memory — and the job keeps serving
// smaller requests, a request larger than one forward pass included. The model is a plain
// PyTorch state dict (an nn.Sequential: Flatten, Linear) declared as layers, from UINT8 pixels.
func TestServeRequestOverMemory(t *testing.T) {
	dir := t.TempDir()
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	servetest.Must(t, err)
	r := rand.New(rand.NewPCG(1, 2))
	w, b := make([]float32, 10*784), make([]float32, 10)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.05)
	}
	var sd bytes.Buffer
	servetest.Must(t, ptfile.WriteStateDict(&sd, "archive", []ptfile.Tensor{{Name: "1.weight", Shape: []int64{10, 784}, Data: w}, {Name: "1.bias", Shape: []int64{10}, Data: b}}, nil))
	envelopetest.Encrypt(t, filepath.Join(dir, "linear.pt.ppml"), k.LocalKey, sd.Bytes(), envelope.TypeModel)
	httpAddr := "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	grpcAddr := "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	j := &job{dir: dir, grpc: grpcAddr, http: httpAddr, manifest: filepath.Join(dir, "serve.yaml")}
	// 16 MiB (the least resources.memory): the model and the decrypted file (31 KiB each) and
	// a forward pass of 256 rows leave less than 16 MiB for requests; 5,000 images take
	// 19.4 MiB (a byte and a float32 per pixel, and the outputs), 2,000 images 7.8 MiB.
	servetest.Must(t, os.WriteFile(j.manifest, []byte(fmt.Sprintf(`version: 1
name: memory-serve
engine: serve
inputs: {linear: linear.pt.ppml}
parameters:
  models:
    - name: linear
      input: linear
      torchscript: {architecture: layers, input: {datatype: UINT8, shape: [1, 28, 28]}, layers: [flatten, {linear: {in: 784, out: 10}}]}
  listen: {http: "%s", grpc: "%s"}
  hosts: [127.0.0.1]
resources: {threads: 1, memory: 16MiB}
`, httpAddr, grpcAddr)), 0o600))
	j.simulateTEE(t)
	log := &syncBuffer{}
	_, done, _ := j.start(t, launcher.Config{Attester: j.att, Log: log, Grace: 10 * time.Second})
	var peer atomic.Pointer[attestedtls.Peer]
	hc, gconn, err := j.clientTLS(&peer)
	servetest.Must(t, err)
	defer gconn.Close()
	base := "https://" + httpAddr
	waitReady(t, hc, base, done, log, 60*time.Second)

	pixels := func(rows int) []uint32 {
		p := make([]uint32, rows*784)
		for i := range p {
			p[i] = uint32(r.IntN(256))
		}
		return p
	}
	rest := func(p []uint32) (int, string) {
		t.Helper()
		data, _ := json.Marshal(p)
		body := fmt.Sprintf(`{"inputs":[{"name":"input","datatype":"UINT8","shape":[%d,1,28,28],"data":%s}]}`, len(p)/784, data)
		resp, err := hc.Post(base+"/v2/models/linear/infer", "application/json", strings.NewReader(body))
		servetest.Must(t, err)
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got)
	}
	gc := inferencepb.NewGRPCInferenceServiceClient(gconn)
	grpcInfer := func(p []uint32) (*inferencepb.ModelInferResponse, error) {
		return gc.ModelInfer(context.Background(), &inferencepb.ModelInferRequest{ModelName: "linear",
			Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "UINT8", Shape: []int64{int64(len(p) / 784), 1, 28, 28},
				Contents: &inferencepb.InferTensorContents{UintContents: p}}}}, grpc.MaxCallSendMsgSize(64<<20))
	}
	served := func(rows int) {
		t.Helper()
		p := pixels(rows)
		if code, body := rest(p); code != 200 || !strings.Contains(body, `"probability"`) {
			t.Fatalf("KServe REST, %d rows: %d %.300s", rows, code, body)
		}
		if gr, err := grpcInfer(p); err != nil || len(gr.Outputs) < 2 || len(gr.Outputs[0].Contents.Fp32Contents) != rows*10 {
			t.Fatalf("gRPC, %d rows: %v", rows, err)
		}
	}
	served(3)
	served(2000) // eight forward passes of 256 rows

	big := pixels(5000)
	code, body := rest(big)
	var kerr struct{ Error string }
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &kerr) != nil ||
		!strings.Contains(kerr.Error, "a request of 5000 rows needs") || !strings.Contains(kerr.Error, "send fewer rows at once") {
		t.Fatalf("KServe REST, 5,000 rows over resources.memory: %d %.400s, want 503 with a KServe error", code, body)
	}
	t.Log(kerr.Error)
	if _, err := grpcInfer(big); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "a request of 5000 rows needs") {
		t.Fatalf("gRPC, 5,000 rows over resources.memory: %v, want UNAVAILABLE", err)
	}
	// The refused request took nothing with it.
	served(3)
	served(2000)
	if torch.MemoryLimit() == 0 {
		t.Fatal("no memory limit while serving")
	}
	select {
	case err := <-done:
		t.Fatalf("the job ended: %v\n%s", err, log)
	default:
	}
}
