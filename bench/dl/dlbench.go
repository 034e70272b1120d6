// Package dlbench is `ppml bench dl`: LeNet-5 on Fashion-MNIST through ppml run's launcher and
// the dl engine, from the four IDX files encrypted under a fresh key, beside the same model and
// hyper-parameters in Debian's python3-torch on the plaintext files (lenet-bench.py), in one run.
// It reports the time of an epoch on each side and their ratio, the test accuracy each reaches,
// and prediction throughput (images per second).
package dlbench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ppml/ppml/dl/idx"
	"github.com/ppml/ppml/dl/torch"
	dlengine "github.com/ppml/ppml/engine/dl"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/dataset"
)

// Config sets the benchmark's size and hyper-parameters (DefaultConfig: examples/dl/lenet's).
type Config struct {
	Epochs    int
	BatchSize int
	// Images limits the training images (0: all 60,000) and TestImages the test images (0: all
	// 10,000), for quick runs.
	Images, TestImages int
	Optimizer          string // sgd or adam
	LearningRate       float64
	Momentum           float64 // sgd only
	// LRStepEpochs > 0 multiplies the learning rate by LRGamma every LRStepEpochs epochs
	// (the job's lr_step_epochs and lr_gamma; PyTorch's StepLR on the Python side).
	LRStepEpochs int
	LRGamma      float64
	Python       string // default /usr/bin/python3
	Script       string // default: the embedded lenet-bench.py
	TempDir      string // default: os.TempDir()
	// Progress, when set, receives the launcher's progress lines.
	Progress func(line string)
}

// Result holds the measurements; times are in seconds.
type Result struct {
	TorchVersion   string `json:"torch_version"`
	PythonTorch    string `json:"python_torch_version"`
	Epochs         int    `json:"epochs"`
	BatchSize      int    `json:"batch_size"`
	TrainImages    int    `json:"train_images"`
	TestImages     int    `json:"test_images"`
	EncryptedBytes int64  `json:"encrypted_bytes"`
	// The engine: its training loop per epoch (mean), and the whole train job through the
	// launcher (decrypt, inflate, train, test, save, encrypt).
	EngineEpochSeconds    float64 `json:"engine_epoch_seconds"`
	EngineEpochCPUSeconds float64 `json:"engine_epoch_cpu_seconds"`
	EngineTrainJobSeconds float64 `json:"engine_train_job_seconds"`
	EngineAccuracy        float64 `json:"engine_test_accuracy"`
	EnginePredictRate     float64 `json:"engine_predict_images_per_second"`
	EnginePredictJob      float64 `json:"engine_predict_job_seconds"` // the evaluate job, end to end
	PythonEpochSeconds    float64 `json:"python_epoch_seconds"`
	PythonEpochCPUSeconds float64 `json:"python_epoch_cpu_seconds"`
	PythonAccuracy        float64 `json:"python_test_accuracy"`
	PythonPredictRate     float64 `json:"python_predict_images_per_second"`
	// Ratio is the engine's epoch over Python's (target ≤ 1.05); CPURatio the same in CPU
	// seconds, which neighbours on a shared machine disturb less; EndToEndRatio the whole train
	// job over Python's training loops.
	Ratio         float64 `json:"ratio"`
	CPURatio      float64 `json:"cpu_ratio"`
	EndToEndRatio float64 `json:"end_to_end_ratio"`
}

// DefaultConfig is examples/dl/lenet's training: 3 epochs of batches of 128, Adam 0.003 times
// 0.3 after the second epoch, on all the images.
func DefaultConfig() Config {
	return Config{Epochs: 3, BatchSize: 128, Optimizer: "adam", LearningRate: 0.003, LRStepEpochs: 2, LRGamma: 0.3}
}

// script is the python3-torch side, embedded so that the benchmark runs outside a source tree.
//
//go:embed lenet-bench.py
var script []byte

const trainManifest = `version: 1
name: bench-dl-train
engine: dl
inputs:
  images: train-images.gz.ppml
  labels: train-labels.gz.ppml
  test_images: test-images.gz.ppml
  test_labels: test-labels.gz.ppml
outputs:
  model: {path: out/lenet5.pt.ppml, key: file:bench.key}
  report: {path: out/train.json.ppml, key: file:bench.key, content_type: application/json}
parameters:
  task: train
  model: lenet5
  optimizer: %s
  learning_rate: %s
%s  epochs: %d
  batch_size: %d
  seed: 42
resources:
  memory: 2GiB
  threads: 1
`

const evaluateManifest = `version: 1
name: bench-dl-evaluate
engine: dl
inputs:
  model: out/lenet5.pt.ppml
  images: test-images.gz.ppml
  labels: test-labels.gz.ppml
outputs:
  report: {path: out/evaluate.json.ppml, key: file:bench.key, content_type: application/json}
parameters:
  task: evaluate
resources:
  memory: 2GiB
  threads: 1
`

// subset writes the first n items of a gzip-compressed IDX file (n ≤ 0: the whole file).
func subset(src, dst string, n int) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if n > 0 {
		raw, err := idx.Gunzip(bytes.NewReader(b), 1<<30)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		a, err := idx.Open(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		n = min(n, a.Items())
		hdr := 4 + 4*len(a.Dims)
		binary.BigEndian.PutUint32(raw[4:], uint32(n))
		b = raw[:hdr+n*a.ItemSize()]
	}
	return os.WriteFile(dst, b, 0o600)
}

// Run runs the benchmark once.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Epochs < 1 || cfg.BatchSize < 1 || !(cfg.LearningRate > 0) || cfg.Momentum < 0 || cfg.LRStepEpochs < 0 || cfg.LRStepEpochs > 0 && !(cfg.LRGamma > 0 && cfg.LRGamma <= 1) || cfg.Optimizer != "sgd" && cfg.Optimizer != "adam" {
		return nil, fmt.Errorf("bench dl: %d epochs, batch %d, optimizer %q, learning rate %v, momentum %v", cfg.Epochs, cfg.BatchSize, cfg.Optimizer, cfg.LearningRate, cfg.Momentum)
	}
	if cfg.Python == "" {
		cfg.Python = "/usr/bin/python3"
	}
	if cfg.Script != "" {
		if _, err := os.Stat(cfg.Script); err != nil {
			return nil, fmt.Errorf("bench dl: python benchmark script: %w", err)
		}
	}
	dir, err := os.MkdirTemp(cfg.TempDir, "ppml-bench-dl-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if cfg.Script == "" {
		cfg.Script = filepath.Join(dir, "lenet-bench.py")
		if err := os.WriteFile(cfg.Script, script, 0o600); err != nil {
			return nil, err
		}
	}
	plain, work := filepath.Join(dir, "plain"), filepath.Join(dir, "work")
	for _, d := range []string{plain, work, filepath.Join(work, "out")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	files := []struct{ name, ds string }{
		{"train-images.gz", dataset.FashionTrainImages}, {"train-labels.gz", dataset.FashionTrainLabels},
		{"test-images.gz", dataset.FashionTestImages}, {"test-labels.gz", dataset.FashionTestLabels},
	}
	k, err := keyfile.Generate(filepath.Join(work, "bench.key"), false)
	if err != nil {
		return nil, err
	}
	res := &Result{TorchVersion: torch.Version(), Epochs: cfg.Epochs, BatchSize: cfg.BatchSize}
	for i, f := range files {
		src, err := dataset.Path(f.ds)
		if err != nil {
			return nil, fmt.Errorf("bench dl: %w", err)
		}
		n := cfg.Images
		if i >= 2 {
			n = cfg.TestImages
		}
		p := filepath.Join(plain, f.name)
		if err := subset(src, p, n); err != nil {
			return nil, fmt.Errorf("bench dl: %w", err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		enc := filepath.Join(work, f.name+".ppml")
		w, err := envelope.CreateFile(enc, k.LocalKey, &envelope.Options{ContentType: envelope.TypeBytes}, false)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(b); err != nil {
			w.Abort()
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(enc); err == nil {
			res.EncryptedBytes += fi.Size()
		}
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	momentum := ""
	if cfg.Optimizer == "sgd" {
		momentum = "  momentum: " + f(cfg.Momentum) + "\n"
	}
	if cfg.LRStepEpochs > 0 {
		momentum += "  lr_step_epochs: " + strconv.Itoa(cfg.LRStepEpochs) + "\n  lr_gamma: " + f(cfg.LRGamma) + "\n"
	}
	if err := os.WriteFile(filepath.Join(work, "train.yaml"), fmt.Appendf(nil, trainManifest, cfg.Optimizer, f(cfg.LearningRate), momentum, cfg.Epochs, cfg.BatchSize), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(work, "evaluate.yaml"), []byte(evaluateManifest), 0o600); err != nil {
		return nil, err
	}
	keys, err := launcher.NewLocalKeys(filepath.Join(work, "bench.key"))
	if err != nil {
		return nil, err
	}
	run := func(manifest string) (float64, error) {
		t0 := time.Now()
		var log bytes.Buffer
		m, err := launcher.Load(filepath.Join(work, manifest))
		if err == nil {
			_, err = launcher.Run(ctx, launcher.Config{Manifest: m, Keys: keys, Log: &progress{&log, cfg.Progress}})
		}
		if err != nil {
			return 0, fmt.Errorf("bench dl: %s: %w", manifest, err)
		}
		return time.Since(t0).Seconds(), nil
	}
	report := func(name string) (*dlengine.Report, error) {
		ef, err := envelope.OpenFile(filepath.Join(work, "out", name), k.LocalKey)
		if err != nil {
			return nil, err
		}
		defer ef.Close()
		var r dlengine.Report
		if err := json.NewDecoder(ef).Decode(&r); err != nil {
			return nil, fmt.Errorf("bench dl: %s: %w", name, err)
		}
		return &r, nil
	}
	if res.EngineTrainJobSeconds, err = run("train.yaml"); err != nil {
		return nil, err
	}
	tr, err := report("train.json.ppml")
	if err != nil {
		return nil, err
	}
	res.TrainImages, res.TestImages = tr.Training.TrainRows, tr.Metrics.TestRows
	res.EngineEpochSeconds = tr.Timing.TrainSeconds / float64(cfg.Epochs)
	res.EngineEpochCPUSeconds = tr.Timing.TrainCPUSeconds / float64(cfg.Epochs)
	res.EngineAccuracy = tr.Metrics.Classification.Accuracy
	if res.EnginePredictJob, err = run("evaluate.yaml"); err != nil {
		return nil, err
	}
	ev, err := report("evaluate.json.ppml")
	if err != nil {
		return nil, err
	}
	res.EnginePredictRate = ev.Timing.RowsPerSecond

	p := func(name string) string { return filepath.Join(plain, name) }
	cmd := exec.CommandContext(ctx, cfg.Python, cfg.Script, p("train-images.gz"), p("train-labels.gz"), p("test-images.gz"), p("test-labels.gz"),
		strconv.Itoa(cfg.Epochs), strconv.Itoa(cfg.BatchSize), cfg.Optimizer, f(cfg.LearningRate), f(cfg.Momentum),
		strconv.Itoa(cfg.LRStepEpochs), f(cfg.LRGamma))
	cmd.Env = append(os.Environ(), "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("bench dl: python3-torch side: %w\n%s", err, stderr.String())
	}
	var py struct {
		EpochSeconds []float64 `json:"epoch_seconds"`
		EpochCPU     []float64 `json:"epoch_cpu_seconds"`
		Accuracy     float64   `json:"test_accuracy"`
		PredictRate  float64   `json:"predict_images_per_second"`
		Torch        string    `json:"torch_version"`
	}
	if err := json.Unmarshal(out, &py); err != nil || len(py.EpochSeconds) != cfg.Epochs {
		return nil, fmt.Errorf("bench dl: python3-torch side printed %q: %v", out, err)
	}
	var total, cpu float64
	for i, s := range py.EpochSeconds {
		total += s
		if i < len(py.EpochCPU) {
			cpu += py.EpochCPU[i]
		}
	}
	res.PythonTorch = py.Torch
	res.PythonEpochSeconds = total / float64(cfg.Epochs)
	res.PythonEpochCPUSeconds = cpu / float64(cfg.Epochs)
	res.PythonAccuracy, res.PythonPredictRate = py.Accuracy, py.PredictRate
	res.Ratio = res.EngineEpochSeconds / res.PythonEpochSeconds
	res.CPURatio = res.EngineEpochCPUSeconds / res.PythonEpochCPUSeconds
	res.EndToEndRatio = res.EngineTrainJobSeconds / total
	return res, nil
}

// progress passes the launcher's lines on.
type progress struct {
	buf *bytes.Buffer
	fn  func(string)
}

func (p *progress) Write(b []byte) (int, error) {
	if p.fn != nil {
		for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
			p.fn(string(line))
		}
	}
	return p.buf.Write(b)
}
