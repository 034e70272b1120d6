package dlengine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/ppml/ppml/engine/dl/dlspec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/ml/dataset"
)

// python checks once that Debian's python3 imports torch (seconds on a loaded machine) and
// returns its path.
func python(t *testing.T) string {
	t.Helper()
	if err := pythonTorch(); err != nil {
		t.Fatalf("python3-torch is required (make deps installs it): %v", err)
	}
	return "/usr/bin/python3"
}

var pythonTorch = sync.OnceValue(func() error { return exec.Command("/usr/bin/python3", "-c", "import torch").Run() })

// params parses a parameters section as a manifest would (dlspec), with the given inputs and
// outputs, so that the engine gets what the launcher gives it.
func params(t *testing.T, body string, inputs, outputs []string) *dlspec.Params {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("version: 1\nname: t\nengine: dl\ninputs:\n")
	dir := t.TempDir()
	for _, in := range inputs {
		p := filepath.Join(dir, in)
		os.WriteFile(p, nil, 0o600)
		b.WriteString("  " + in + ": " + strconv.Quote(p) + "\n")
	}
	b.WriteString("outputs:\n")
	for _, o := range outputs {
		b.WriteString("  " + o + ": {path: " + strconv.Quote(filepath.Join(dir, "out-"+o)) + ", key: " + strconv.Quote("file:"+filepath.Join(dir, "k")) + "}\n")
	}
	b.WriteString("parameters:\n" + body)
	m, err := job.Parse(b.Bytes(), dir, job.NewSpecSet(dlspec.Spec))
	if err != nil {
		t.Fatal(err)
	}
	return m.Parameters.(*dlspec.Params)
}

// runMem runs the engine on in-memory inputs and returns the outputs.
func runMem(t *testing.T, p *dlspec.Params, in map[string][]byte, outs ...string) (map[string][]byte, *Result, error) {
	t.Helper()
	inputs := map[string]Input{}
	for n, b := range in {
		i := Input{ReaderAt: bytes.NewReader(b), Size: int64(len(b))}
		if n == dlspec.InputTrain || n == dlspec.InputData {
			i.Format = CSV
		}
		inputs[n] = i
	}
	bufs := map[string]*bytes.Buffer{}
	outputs := map[string]Output{}
	for _, o := range outs {
		bufs[o] = &bytes.Buffer{}
		outputs[o] = Output{W: bufs[o]}
	}
	res, err := Run(context.Background(), Config{Threads: 1, Memory: 1 << 30}, p, inputs, outputs)
	got := map[string][]byte{}
	for n, b := range bufs {
		got[n] = b.Bytes()
	}
	return got, res, err
}

func probsOf(t *testing.T, predictions []byte) []float32 {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(predictions)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []float32
	for _, r := range rows[1:] {
		for _, v := range r[2:] {
			f, err := strconv.ParseFloat(v, 32)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, float32(f))
		}
	}
	return out
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v
}

func within(t *testing.T, what string, a, b []float32, tol float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d values vs %d", what, len(a), len(b))
	}
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > tol {
			t.Fatalf("%s: value %d differs by %g (%v vs %v)", what, i, d, a[i], b[i])
		}
	}
}

// ppml → PyTorch, through the engine: the model output of a train job loads with
// torch.jit.load, its state dict with load_state_dict into examples/dl/ppml_models.py's
// LeNet5, and both give the engine's predictions to 1e-5.
func TestTrainedModelInPyTorch(t *testing.T) {
	py := python(t)
	trImg := fashionSubset(t, dataset.FashionTrainImages, 0, 400)
	trLab := fashionSubset(t, dataset.FashionTrainLabels, 0, 400)
	teImg := fashionSubset(t, dataset.FashionTestImages, 0, 200)
	p := params(t, "  task: train\n  model: lenet5\n  epochs: 1\n  batch_size: 32\n  seed: 5\n",
		[]string{"images", "labels"}, []string{"model", "state_dict"})
	out, _, err := runMem(t, p, map[string][]byte{"images": trImg, "labels": trLab}, "model", "state_dict")
	if err != nil {
		t.Fatal(err)
	}
	pp := params(t, "  task: predict\n", []string{"model", "images"}, []string{"predictions"})
	pred, _, err := runMem(t, pp, map[string][]byte{"model": out["model"], "images": teImg}, "predictions")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"model.pt": out["model"], "state.pt": out["state_dict"], "test.gz": teImg} {
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	cmd := exec.Command(py, "testdata/interop.py", "load", filepath.Join(dir, "model.pt"), filepath.Join(dir, "state.pt"),
		filepath.Join(dir, "test.gz"), filepath.Join(dir, "probs"))
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var r struct {
		MaxDiff float64 `json:"max_diff"`
		PPML    Meta    `json:"ppml"`
	}
	if err := json.Unmarshal(got, &r); err != nil {
		t.Fatal(err)
	}
	if r.MaxDiff > 1e-5 || r.PPML.Format != MetaFormat || r.PPML.Training.TrainRows != 400 {
		t.Fatalf("python: state dict vs TorchScript differ by %g; metadata %+v", r.MaxDiff, r.PPML)
	}
	within(t, "torch.jit.load vs the engine's predictions", readF32(t, filepath.Join(dir, "probs")), probsOf(t, pred["predictions"]), 1e-5)
}

// PyTorch → ppml: a LeNet5 trained in python3-torch and saved with torch.jit.save, without
// ppml metadata, is evaluated by the engine (declared model: lenet5) with PyTorch's own
// predictions to 1e-5.
func TestPyTorchModelEvaluated(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	files := map[string][]byte{
		"train.gz":  fashionSubset(t, dataset.FashionTrainImages, 0, 500),
		"labels.gz": fashionSubset(t, dataset.FashionTrainLabels, 0, 500),
		"test.gz":   fashionSubset(t, dataset.FashionTestImages, 0, 300),
		"tlab.gz":   fashionSubset(t, dataset.FashionTestLabels, 0, 300),
	}
	for n, b := range files {
		os.WriteFile(filepath.Join(dir, n), b, 0o600)
	}
	model := filepath.Join(dir, "py.pt")
	if b, err := exec.Command(py, "testdata/interop.py", "train", filepath.Join(dir, "train.gz"), filepath.Join(dir, "labels.gz"),
		filepath.Join(dir, "test.gz"), model, filepath.Join(dir, "probs")).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, b)
	}
	mb, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	// Without a declaration the engine cannot know what the file is.
	pe := params(t, "  task: evaluate\n", []string{"model", "images", "labels"}, []string{"report", "predictions"})
	if _, _, err := runMem(t, pe, map[string][]byte{"model": mb, "images": files["test.gz"], "labels": files["tlab.gz"]}, "report"); err == nil {
		t.Fatal("a file without ppml metadata evaluated without a declared model")
	}
	pe = params(t, "  task: evaluate\n  model: lenet5\n", []string{"model", "images", "labels"}, []string{"report", "predictions"})
	out, res, err := runMem(t, pe, map[string][]byte{"model": mb, "images": files["test.gz"], "labels": files["tlab.gz"]}, "report", "predictions")
	if err != nil {
		t.Fatal(err)
	}
	want := readF32(t, filepath.Join(dir, "probs"))
	within(t, "engine vs python3-torch", probsOf(t, out["predictions"]), want, 1e-5)
	// And the accuracy is PyTorch's.
	labels := gunzip(t, files["tlab.gz"])[8:]
	right := 0
	for i := range 300 {
		best := 0
		for c := 1; c < 10; c++ {
			if want[i*10+c] > want[i*10+best] {
				best = c
			}
		}
		if best == int(labels[i]) {
			right++
		}
	}
	if acc := res.Report.Metrics.Classification.Accuracy; acc != float64(right)/300 {
		t.Fatalf("engine accuracy %v, PyTorch's %v", acc, float64(right)/300)
	}
}
