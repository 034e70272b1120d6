package mlengine

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/dataset"
)

const python = "/usr/bin/python3"

// pythonBatch runs several interop.py commands in one Python process.
func pythonBatch(t *testing.T, dir string, jobs ...[]string) {
	t.Helper()
	b, _ := json.Marshal(jobs)
	p := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pythonInterop(t, "batch", p)
}

func pythonInterop(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import xgboost").CombinedOutput(); err != nil {
		t.Fatalf("python3-xgboost not usable (make deps installs it): %v\n%s", err, out)
	}
	out, err := exec.Command(python, append([]string{filepath.Join("testdata", "interop.py")}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("interop.py %v: %v\n%s", args[0], err, out)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// predictionColumn reads one column of a predictions CSV as float32 (the engine writes
// XGBoost's float32 outputs in float32's shortest form, which parses back exactly).
func predictionColumn(t *testing.T, table []byte, name string) []float32 {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(table)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	j := -1
	for k, h := range recs[0] {
		if h == name {
			j = k
		}
	}
	if j < 0 {
		t.Fatalf("no column %q in %v", name, recs[0])
	}
	var out []float32
	for _, r := range recs[1:] {
		v, err := strconv.ParseFloat(r[j], 32)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, float32(v))
	}
	return out
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d predictions, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: row %d: %v (%08x) vs %v (%08x)", what, i+1, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
	t.Logf("%s: %d predictions bit-identical", what, len(got))
}

// A model trained by the engine, unwrapped by its owner (ExportFile, as ppml ml export does),
// loads in python3-xgboost and predicts bit-identically to the engine's predict.
func TestInteropEngineToPython(t *testing.T) {
	dir := t.TempDir()
	csvPath := dataset.Require(t, dataset.BreastCancer)
	data := datasetInput(t, dataset.BreastCancer)
	type check struct {
		name string
		got  []float32
		f32  string
	}
	var checks []check
	var jobs [][]string
	for _, spec := range []*mlspec.Params{
		{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Binary, Label: "target", Rounds: 30, TestFraction: 0.2, Seed: 1,
			Params: []mlspec.Param{xgbParam("max_depth", "4")}},
		{Task: mlspec.Train, Algorithm: mlspec.RandomForest, Objective: mlspec.Binary, Label: "target", Rounds: 1, TestFraction: 0.2, Seed: 1,
			Params: []mlspec.Param{xgbParam("num_parallel_tree", "20")}},
	} {
		_, out := mustRun(t, spec, map[string]Input{mlspec.InputTrain: data}, mlspec.OutputModel)
		wrapped := filepath.Join(dir, string(spec.Algorithm)+".model")
		if err := os.WriteFile(wrapped, out[mlspec.OutputModel], 0o600); err != nil {
			t.Fatal(err)
		}
		// What ppml ml export does for the owner.
		modelPath := filepath.Join(dir, string(spec.Algorithm)+".json")
		if _, err := ExportFile(wrapped, modelPath, nil, false); err != nil {
			t.Fatal(err)
		}
		_, pout := mustRun(t, &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: bytesInput(out[mlspec.OutputModel], ""), mlspec.InputData: data}, mlspec.OutputPredictions)
		f32 := filepath.Join(dir, string(spec.Algorithm)+".f32")
		jobs = append(jobs, []string{"predict", modelPath, csvPath, f32})
		checks = append(checks, check{string(spec.Algorithm) + " engine → python", predictionColumn(t, pout[mlspec.OutputPredictions], "probability"), f32})
	}
	pythonBatch(t, dir, jobs...)
	for _, c := range checks {
		sameBits(t, c.name, c.got, readF32(t, c.f32))
	}
}

// A model trained in python3-xgboost (saved as JSON, feature names from the header) is used
// by the engine's predict and evaluate with bit-identical predictions.
func TestInteropPythonToEngine(t *testing.T) {
	dir := t.TempDir()
	csvPath := dataset.Require(t, dataset.Boston)
	params := filepath.Join(dir, "params.json")
	p, _ := json.Marshal(map[string]any{"objective": "reg:squarederror", "tree_method": "hist", "max_depth": 5, "eta": 0.2, "seed": 0})
	if err := os.WriteFile(params, p, 0o600); err != nil {
		t.Fatal(err)
	}
	modelPath, f32 := filepath.Join(dir, "py-model.json"), filepath.Join(dir, "py.f32")
	pythonBatch(t, dir, []string{"train", csvPath, "medv", params, "40", modelPath}, []string{"predict", modelPath, csvPath, f32})
	model := Input{Path: modelPath}
	data := datasetInput(t, dataset.Boston)
	_, pout := mustRun(t, &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: model, mlspec.InputData: data}, mlspec.OutputPredictions)
	sameBits(t, "python → engine", predictionColumn(t, pout[mlspec.OutputPredictions], "prediction"), readF32(t, f32))
	// A bare model records no label: evaluate needs one.
	res, _ := mustRun(t, &mlspec.Params{Task: mlspec.Evaluate, Label: "medv"}, map[string]Input{mlspec.InputModel: model, mlspec.InputData: data}, mlspec.OutputReport)
	if r := res.Report.Metrics.Regression; r == nil || r.R2 < 0.9 {
		t.Errorf("python model on its training data: %+v", r)
	}
}
