//go:build !ppml_no_dl

package serve_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppml/ppml/attest/sim"
	"github.com/ppml/ppml/dl/arch"
	"github.com/ppml/ppml/dl/modelfile"
	"github.com/ppml/ppml/dl/torch"
	"github.com/ppml/ppml/dl/train"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/serve/attestedtls"
	"github.com/ppml/ppml/serve/servetest"
)

// foreignModels runs testdata/foreign.py with python3-torch: two modules saved with
// torch.jit.save and no ppml metadata, a CSV table and what PyTorch computes on them.
type foreignModels struct {
	MLPLogits   []float64 `json:"mlp_logits"`
	MLPAccuracy float64   `json:"mlp_accuracy"`
	Images      []int     `json:"images"`
	LeNetLogP   []float64 `json:"lenet_logp"`
}

func pythonForeign(t *testing.T, dir string) *foreignModels {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "testdata/foreign.py", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3-torch (make deps installs it): %v\n%s", err, stderr.String())
	}
	var f foreignModels
	servetest.Must(t, json.Unmarshal(out, &f))
	return &f
}

const irisLabels = "[setosa, versicolor, virginica]"

// TestServeForeignTorchScript: modules built and saved by plain python3-torch (an MLP trained
// on a table, returning logits; a LeNet-5 returning log-probabilities), encrypted, with no
// ppml metadata, are evaluated by a dl job and served by a serve job as the manifests declare
// them, with PyTorch's outputs to 1e-5: the evaluate job's probabilities and accuracy, and
// KServe REST's probability, prediction, label and the module's own output, the LeNet-5 from
// UINT8 pixels.
func TestServeForeignTorchScript(t *testing.T) {
	dir := t.TempDir()
	py := pythonForeign(t, dir)
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	servetest.Must(t, err)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		servetest.Must(t, err)
		return b
	}
	envelopetest.Encrypt(t, filepath.Join(dir, "mlp.pt.ppml"), k.LocalKey, read("mlp.pt"), envelope.TypeModel)
	envelopetest.Encrypt(t, filepath.Join(dir, "lenet.pt.ppml"), k.LocalKey, read("lenet.pt"), envelope.TypeModel)
	envelopetest.Encrypt(t, filepath.Join(dir, "data.csv.ppml"), k.LocalKey, read("data.csv"), envelope.TypeCSV)
	keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	servetest.Must(t, err)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		servetest.Must(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	const rows = 60
	softmax := func(z []float64, k int) []float64 {
		out := make([]float64, len(z))
		for i := 0; i < len(z); i += k {
			top := z[i]
			for _, v := range z[i : i+k] {
				top = math.Max(top, v)
			}
			var sum float64
			for _, v := range z[i : i+k] {
				sum += math.Exp(v - top)
			}
			for j, v := range z[i : i+k] {
				out[i+j] = math.Exp(v-top) / sum
			}
		}
		return out
	}
	wantProb := softmax(py.MLPLogits, 3)

	// The dl engine evaluates the MLP on the encrypted table.
	mlpDecl := `{architecture: mlp, hidden: [16], input: {shape: [4], features: [f0, f1, f2, f3]}, output: {kind: logits, labels: ` + irisLabels + `}}`
	em, err := launcher.Load(write("evaluate.yaml", `version: 1
name: foreign-evaluate
engine: dl
inputs: {model: mlp.pt.ppml, data: data.csv.ppml}
outputs:
  predictions: {path: predictions.csv.ppml, key: file:owner.key}
  report: {path: report.json.ppml, key: file:owner.key}
parameters:
  task: evaluate
  label: label
  torchscript: `+mlpDecl+`
`))
	servetest.Must(t, err)
	if _, err := launcher.Run(context.Background(), launcher.Config{Manifest: em, Keys: keys, Log: io.Discard}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(envelopetest.Decrypt(t, filepath.Join(dir, "predictions.csv.ppml"), k.LocalKey))).ReadAll()
	servetest.Must(t, err)
	if len(recs) != rows+1 || strings.Join(recs[0], ",") != "row,prediction,label,probability_0,probability_1,probability_2" {
		t.Fatalf("predictions: %d rows, header %v", len(recs), recs[0])
	}
	labels := []string{"setosa", "versicolor", "virginica"}
	for i, r := range recs[1:] {
		cl, _ := strconv.Atoi(r[1])
		if r[2] != labels[cl] {
			t.Fatalf("row %d: class %d labelled %q", i, cl, r[2])
		}
		for j := range 3 {
			v, err := strconv.ParseFloat(r[3+j], 32)
			servetest.Must(t, err)
			if d := math.Abs(v - wantProb[3*i+j]); d > 1e-5 {
				t.Fatalf("evaluate job: row %d probability %d is %v, PyTorch's %v", i, j, v, wantProb[3*i+j])
			}
		}
	}
	var report struct {
		Metrics struct{ Classification struct{ Accuracy float64 } }
	}
	servetest.Must(t, json.Unmarshal(envelopetest.Decrypt(t, filepath.Join(dir, "report.json.ppml"), k.LocalKey), &report))
	if math.Abs(report.Metrics.Classification.Accuracy-py.MLPAccuracy) > 1e-6 { // PyTorch averages in float32
		t.Fatalf("evaluate job: accuracy %v, PyTorch's %v", report.Metrics.Classification.Accuracy, py.MLPAccuracy)
	}

	// The serve job serves both, over KServe REST on loopback.
	httpAddr := "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	j := &job{dir: dir, http: httpAddr}
	j.manifest = write("serve.yaml", fmt.Sprintf(`version: 1
name: foreign-serve
engine: serve
inputs: {mlp: mlp.pt.ppml, lenet: lenet.pt.ppml}
parameters:
  models:
    - {name: iris, input: mlp, torchscript: %s}
    - name: fashion
      input: lenet
      torchscript: {architecture: lenet5, classes: 10, input: {name: pixels, datatype: UINT8, shape: [1, 28, 28]}, output: {kind: log_probabilities, name: log_probs}}
  listen: {http: "%s", grpc: "off"}
  hosts: [127.0.0.1]
resources: {threads: 1, memory: 256MiB}
`, mlpDecl, httpAddr))
	hc, base := startServing(t, j)

	post := func(model, body string) map[string]json.RawMessage {
		t.Helper()
		resp, err := hc.Post(base+"/v2/models/"+model+"/infer", "application/json", strings.NewReader(body))
		servetest.Must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var kr struct {
			Outputs []struct {
				Name string
				Data json.RawMessage
			}
		}
		if err := json.Unmarshal(b, &kr); resp.StatusCode != 200 || err != nil {
			t.Fatalf("KServe REST %s: %d %.300s", model, resp.StatusCode, b)
		}
		out := map[string]json.RawMessage{}
		for _, o := range kr.Outputs {
			out[o.Name] = o.Data
		}
		return out
	}
	var x []float64
	table := bytes.Split(bytes.TrimSpace(read("data.csv")), []byte("\n"))[1:]
	for _, line := range table {
		for _, f := range strings.Split(string(line), ",")[:4] {
			v, err := strconv.ParseFloat(f, 64)
			servetest.Must(t, err)
			x = append(x, v)
		}
	}
	xj, _ := json.Marshal(x)
	out := post("iris", fmt.Sprintf(`{"inputs":[{"name":"input","datatype":"FP32","shape":[%d,4],"data":%s}]}`, rows, xj))
	var logits, prob []float64
	var pred []int
	var lab []string
	servetest.Must(t, json.Unmarshal(out["output"], &logits))
	servetest.Must(t, json.Unmarshal(out["probability"], &prob))
	servetest.Must(t, json.Unmarshal(out["prediction"], &pred))
	servetest.Must(t, json.Unmarshal(out["label"], &lab))
	closeTo(t, "served logits", logits, py.MLPLogits)
	closeTo(t, "served probabilities", prob, wantProb)
	for i, c := range pred {
		if lab[i] != labels[c] || strconv.Itoa(c) != recs[1+i][1] {
			t.Fatalf("row %d: served class %d label %q, the evaluate job's %s", i, c, lab[i], recs[1+i][1])
		}
	}

	pj, _ := json.Marshal(py.Images)
	out = post("fashion", `{"inputs":[{"name":"pixels","datatype":"UINT8","shape":[3,1,28,28],"data":`+string(pj)+`}]}`)
	var logp []float64
	servetest.Must(t, json.Unmarshal(out["log_probs"], &logp))
	servetest.Must(t, json.Unmarshal(out["probability"], &prob))
	closeTo(t, "served LeNet-5 log-probabilities", logp, py.LeNetLogP)
	expd := make([]float64, len(py.LeNetLogP))
	for i, v := range py.LeNetLogP {
		expd[i] = math.Exp(v)
	}
	closeTo(t, "served LeNet-5 probabilities", prob, expd)

	// The metadata says what the job declared.
	resp, err := hc.Get(base + "/v2/models/fashion")
	servetest.Must(t, err)
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`"name":"pixels","datatype":"UINT8","shape":[-1,1,28,28]`, `"name":"log_probs","datatype":"FP32","shape":[-1,10]`} {
		if !strings.Contains(string(md), want) {
			t.Errorf("model metadata %s lacks %s", md, want)
		}
	}
}

func closeTo(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, PyTorch %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); d > 1e-5 {
			t.Fatalf("%s: value %d is %v, PyTorch's %v", what, i, got[i], want[i])
		}
	}
}

// startServing starts j's serve job through the launcher (local keys, a simulated TEE) and
// waits until it is ready; the job is stopped at the end of the test.
func startServing(t *testing.T, j *job) (*http.Client, string) {
	t.Helper()
	j.simulateTEE(t)
	log := &syncBuffer{}
	_, done, _ := j.start(t, launcher.Config{Attester: j.att, Log: log, Grace: 10 * time.Second})
	var peer atomic.Pointer[attestedtls.Peer]
	j.grpc = "127.0.0.1:1" // unused: the gRPC listener is off
	hc, gconn, err := j.clientTLS(&peer)
	servetest.Must(t, err)
	gconn.Close()
	base := "https://" + j.http
	waitReady(t, hc, base, done, log, 60*time.Second)
	return hc, base
}

// resources.memory bounds a serve job's TorchScript models: a job whose model (four instances
// computing up to 1024 rows each) does not fit ends before it serves, with a message naming
// the limit.
func TestServeMemoryLimitThroughLauncher(t *testing.T) {
	dir := t.TempDir()
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	servetest.Must(t, err)
	c := arch.Config{Kind: arch.LeNet5, Classes: 10}
	tm, err := train.NewModel(c, c.Init(1), 1)
	servetest.Must(t, err)
	mj, err := modelfile.EncodeMeta(&modelfile.Meta{Format: modelfile.MetaFormat, Version: modelfile.MetaVersion, Architecture: c,
		Input: modelfile.InputSpec{Kind: modelfile.InputImages, Height: 28, Width: 28}})
	servetest.Must(t, err)
	file, err := tm.Save(map[string][]byte{modelfile.MetaFile: mj})
	tm.Close()
	servetest.Must(t, err)
	envelopetest.Encrypt(t, filepath.Join(dir, "lenet.pt.ppml"), k.LocalKey, file, envelope.TypeModel)
	keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	servetest.Must(t, err)
	manifest := filepath.Join(dir, "serve.yaml")
	servetest.Must(t, os.WriteFile(manifest, []byte(fmt.Sprintf(`version: 1
name: small-serve
engine: serve
inputs: {lenet: lenet.pt.ppml}
parameters:
  models: [{name: lenet, input: lenet, max_batch: 1024}]
  listen: {http: "127.0.0.1:%d", grpc: "off"}
resources: {threads: 4, memory: 16MiB}
`, servetest.FreePort(t))), 0o600))
	m, err := launcher.Load(manifest)
	servetest.Must(t, err)
	exe := filepath.Join(dir, "runtime")
	servetest.Must(t, os.WriteFile(exe, []byte("serving runtime"), 0o755))
	att := &sim.Attester{Dir: filepath.Join(dir, "sim"), Executable: exe}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = launcher.Run(ctx, launcher.Config{Manifest: m, Keys: keys, Attester: att, Log: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "model lenet version 1 (input lenet): dl model: the model needs more memory than resources.memory allows") ||
		!strings.Contains(err.Error(), "raise resources.memory, or lower resources.threads") {
		t.Fatalf("a serve job over its memory: %v", err)
	}
	if torch.MemoryLimit() != 0 {
		t.Fatalf("the limit outlived the job: %d", torch.MemoryLimit())
	}
}

// sequentialModels runs testdata/sequential.py: three modules written the ordinary PyTorch
// way (an nn.Sequential MLP, scripted; an nn.Sequential CNN with a batch norm, traced; a
// torchvision-style module with features and classifier, scripted), IDX images and labels, and
// PyTorch's outputs on them.
type sequentialModels struct {
	MLP    []float64 `json:"mlp"`
	CNN    []float64 `json:"cnn"`
	TV     []float64 `json:"tv"`
	Images []int     `json:"images"`
	Labels []int     `json:"labels"`
}

// The declarations of sequential.py's modules, as a data scientist writes them from the
// Python: the MLP as ppml's mlp, the others layer by layer (the torchvision-style module
// registers classifier before features, so its features' layers name their modules).
const (
	seqMLPDecl = `{architecture: mlp, hidden: [64], classes: 10, input: {name: pixels, datatype: UINT8, shape: [1, 28, 28]}, output: {kind: logits}}`
	seqCNNDecl = `{architecture: layers, input: {name: pixels, datatype: UINT8, shape: [1, 28, 28]}, output: {name: log_probs},
      layers: [{conv2d: {in: 1, out: 8, kernel: 3, padding: 1}}, {batch_norm: {features: 8}}, relu, {max_pool2d: {kernel: 2}},
        {conv2d: {in: 8, out: 16, kernel: 3}}, relu, {max_pool2d: {kernel: 2}}, flatten, {linear: {in: 576, out: 32}}, relu, dropout,
        {linear: {in: 32, out: 10}}, log_softmax]}`
	seqTVDecl = `{architecture: layers, input: {shape: [1, 28, 28]},
      layers: [{conv2d: {in: 1, out: 6, kernel: 5, padding: 2, module: features.0}}, relu, {max_pool2d: {kernel: 2}},
        {conv2d: {in: 6, out: 16, kernel: 5, bias: false, module: features.3}}, {batch_norm: {features: 16, eps: 0.001, module: features.4}},
        relu, {avg_pool2d: {kernel: 2}}, flatten, dropout, {linear: {in: 400, out: 120}}, relu, {linear: {in: 120, out: 10}}]}`
)

// TestServeForeignSequential: ordinary PyTorch models (nn.Sequential, a module with
// submodules, F.relu, flatten, batch norm, traced or scripted), saved by python3-torch without
// ppml metadata and encrypted, are evaluated by dl jobs and served by a serve job as the
// manifests declare them, with PyTorch's outputs to 1e-5.
func TestServeForeignSequential(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("/usr/bin/python3", "testdata/sequential.py", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pyOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3-torch (make deps installs it): %v\n%s", err, stderr.String())
	}
	var py sequentialModels
	servetest.Must(t, json.Unmarshal(pyOut, &py))
	k, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
	servetest.Must(t, err)
	for _, f := range []string{"mlp.pt", "cnn.pt", "tv.pt", "images.idx", "labels.idx"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		servetest.Must(t, err)
		typ := envelope.TypeModel
		if strings.HasSuffix(f, ".idx") {
			typ = envelope.TypeBytes
		}
		envelopetest.Encrypt(t, filepath.Join(dir, f+".ppml"), k.LocalKey, b, typ)
	}
	keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
	servetest.Must(t, err)
	n := len(py.Labels)
	probsOf := func(out []float64, kind string) []float64 {
		switch kind {
		case "logits":
			return softmax10(out)
		case "log_probabilities":
			p := make([]float64, len(out))
			for i, v := range out {
				p[i] = math.Exp(v)
			}
			return p
		}
		return out
	}
	models := []struct {
		name, decl, kind string
		want             []float64
	}{{"mlp", seqMLPDecl, "logits", py.MLP}, {"cnn", seqCNNDecl, "log_probabilities", py.CNN}, {"tv", seqTVDecl, "logits", py.TV}}

	// The dl engine evaluates each on the encrypted IDX files.
	for _, m := range models {
		manifest := filepath.Join(dir, m.name+"-evaluate.yaml")
		servetest.Must(t, os.WriteFile(manifest, []byte(`version: 1
name: `+m.name+`-evaluate
engine: dl
inputs: {model: `+m.name+`.pt.ppml, images: images.idx.ppml, labels: labels.idx.ppml}
outputs:
  predictions: {path: `+m.name+`-predictions.csv.ppml, key: file:owner.key}
parameters:
  task: evaluate
  torchscript: `+m.decl+`
`), 0o600))
		em, err := launcher.Load(manifest)
		servetest.Must(t, err)
		if _, err := launcher.Run(context.Background(), launcher.Config{Manifest: em, Keys: keys, Log: io.Discard}); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		recs, err := csv.NewReader(bytes.NewReader(envelopetest.Decrypt(t, filepath.Join(dir, m.name+"-predictions.csv.ppml"), k.LocalKey))).ReadAll()
		servetest.Must(t, err)
		if len(recs) != n+1 {
			t.Fatalf("%s: %d prediction rows for %d images", m.name, len(recs)-1, n)
		}
		var got []float64
		for _, r := range recs[1:] {
			for _, f := range r[2:] {
				v, err := strconv.ParseFloat(f, 64)
				servetest.Must(t, err)
				got = append(got, v)
			}
		}
		closeTo(t, m.name+" evaluate job's probabilities", got, probsOf(m.want, m.kind))
	}

	// The serve job serves all three over KServe REST.
	httpAddr := "127.0.0.1:" + strconv.Itoa(servetest.FreePort(t))
	j := &job{dir: dir, http: httpAddr}
	j.manifest = filepath.Join(dir, "serve.yaml")
	servetest.Must(t, os.WriteFile(j.manifest, []byte(fmt.Sprintf(`version: 1
name: sequential-serve
engine: serve
inputs: {mlp: mlp.pt.ppml, cnn: cnn.pt.ppml, tv: tv.pt.ppml}
parameters:
  models:
    - {name: mlp, input: mlp, torchscript: %s}
    - name: cnn
      input: cnn
      torchscript: %s
    - name: tv
      input: tv
      torchscript: %s
  listen: {http: "%s", grpc: "off"}
  hosts: [127.0.0.1]
resources: {threads: 1, memory: 256MiB}
`, seqMLPDecl, seqCNNDecl, seqTVDecl, httpAddr)), 0o600))
	hc, base := startServing(t, j)
	pix, _ := json.Marshal(py.Images)
	x := make([]float64, len(py.Images))
	for i, v := range py.Images {
		x[i] = float64(float32(v) / 255)
	}
	fx, _ := json.Marshal(x)
	for _, m := range models {
		body := fmt.Sprintf(`{"inputs":[{"name":"pixels","datatype":"UINT8","shape":[%d,1,28,28],"data":%s}]}`, n, pix)
		if m.name == "tv" {
			body = fmt.Sprintf(`{"inputs":[{"name":"input","datatype":"FP32","shape":[%d,1,28,28],"data":%s}]}`, n, fx)
		}
		resp, err := hc.Post(base+"/v2/models/"+m.name+"/infer", "application/json", strings.NewReader(body))
		servetest.Must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var kr struct {
			Outputs []struct {
				Name string
				Data json.RawMessage
			}
		}
		if err := json.Unmarshal(b, &kr); resp.StatusCode != 200 || err != nil {
			t.Fatalf("KServe REST %s: %d %.300s", m.name, resp.StatusCode, b)
		}
		outs := map[string][]float64{}
		for _, o := range kr.Outputs {
			var v []float64
			if json.Unmarshal(o.Data, &v) == nil {
				outs[o.Name] = v
			}
		}
		own := "output"
		if m.name == "cnn" {
			own = "log_probs"
		}
		closeTo(t, m.name+" served output", outs[own], m.want)
		closeTo(t, m.name+" served probabilities", outs["probability"], probsOf(m.want, m.kind))
	}
}

func softmax10(z []float64) []float64 {
	out := make([]float64, len(z))
	for i := 0; i < len(z); i += 10 {
		top := z[i]
		for _, v := range z[i : i+10] {
			top = math.Max(top, v)
		}
		var sum float64
		for _, v := range z[i : i+10] {
			sum += math.Exp(v - top)
		}
		for j, v := range z[i : i+10] {
			out[i+j] = math.Exp(v-top) / sum
		}
	}
	return out
}
