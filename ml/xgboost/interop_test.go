package xgboost

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ppml/ppml/ml/dataset"
	"github.com/ppml/ppml/ml/table"
)

const python = "/usr/bin/python3"

// pythonXGBoost fails the test when Debian's python3-xgboost is missing: the Makefile installs
// it, so its absence is a broken machine, not a reason to skip.
func pythonXGBoost(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import xgboost; print(xgboost.__version__)").CombinedOutput()
	if err != nil {
		t.Fatalf("python3-xgboost not usable (make deps installs it): %v\n%s", err, out)
	}
	if v := string(bytes.TrimSpace(out)); v != "1.7.4" {
		t.Logf("python xgboost is %s (tests were written against 1.7.4)", v)
	}
}

func runPython(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(python, append([]string{filepath.Join("testdata", "interop.py")}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("interop.py %s: %v\n%s", args[0], err, out)
	}
}

func writeF32(t *testing.T, path string, v []float32) {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return v
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d predictions, want %d", what, len(got), len(want))
	}
	distinct := map[float32]bool{}
	for _, v := range want {
		distinct[v] = true
	}
	if len(distinct) < 2 {
		t.Fatalf("%s: predictions are all %v: a degenerate model proves nothing", what, want[0])
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: prediction %d is %v (%#08x), want %v (%#08x)", what, i,
				got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

type interopCase struct {
	name   string
	file   string
	label  string
	params []Param
	rounds int
	remap  func(*table.Dataset) *table.Dataset
}

var interopCases = []interopCase{
	{"regression", dataset.Boston, "medv",
		[]Param{{"objective", "reg:squarederror"}, {"max_depth", "4"}, {"eta", "0.1"}}, 50, withMissing},
	{"binary", dataset.BreastCancer, "target",
		[]Param{{"objective", "binary:logistic"}, {"max_depth", "3"}}, 30, nil},
	{"multiclass", dataset.Boston, "medv",
		[]Param{{"objective", "multi:softprob"}, {"num_class", "3"}, {"max_depth", "3"}}, 20, bostonClasses},
	{"forest", dataset.BreastCancer, "target",
		[]Param{{"objective", "binary:logistic"}, {"learning_rate", "1"}, {"num_parallel_tree", "20"},
			{"subsample", "0.8"}, {"colsample_bynode", "0.8"}, {"max_depth", "5"}}, 1, nil},
}

// withMissing blanks every 5th value of the first feature, so that interop covers missing
// values (default directions) too.
func withMissing(d *table.Dataset) *table.Dataset {
	out := *d
	x := *d.X
	x.Columns = append([][]float64{}, d.X.Columns...)
	c := append([]float64{}, x.Columns[0]...)
	for i := 0; i < len(c); i += 5 {
		c[i] = math.NaN()
	}
	x.Columns[0] = c
	out.X = &x
	return &out
}

func (c interopCase) data(t *testing.T) (train, test *table.Dataset) {
	train, test = load(t, c.file, c.label)
	if c.remap != nil {
		train, test = c.remap(train), c.remap(test)
	}
	return train, test
}

// A model trained here, saved as JSON, predicts bit-identically in Python's xgboost.
func TestInteropGoToPython(t *testing.T) {
	pythonXGBoost(t)
	dir := t.TempDir()
	var jobs [][]string
	want := map[string][]float32{}
	for _, c := range interopCases {
		trainSet, testSet := c.data(t)
		dtrain, dtest := matrix(t, trainSet), matrix(t, testSet)
		b := train(t, dtrain, Config{Params: c.params, Rounds: c.rounds, NThread: threads})
		model, err := b.SaveJSON()
		if err != nil {
			t.Fatal(err)
		}
		p := func(n string) string { return filepath.Join(dir, c.name+"-"+n) }
		if err := os.WriteFile(p("model.json"), model, 0o600); err != nil {
			t.Fatal(err)
		}
		writeF32(t, p("x.f32"), testSet.X.RowMajor32())
		jobs = append(jobs, []string{"predict", p("model.json"), p("x.f32"),
			strconv.Itoa(testSet.X.NumRows()), strconv.Itoa(len(testSet.X.Names)), p("pred.f32")})
		want[c.name] = predict(t, b, dtest).Values
	}
	runBatch(t, dir, jobs)
	for _, c := range interopCases {
		t.Run(c.name, func(t *testing.T) {
			sameBits(t, "python on a ppml model", readF32(t, filepath.Join(dir, c.name+"-pred.f32")), want[c.name])
		})
	}
}

// A model trained in Python's xgboost loads here and predicts bit-identically.
func TestInteropPythonToGo(t *testing.T) {
	pythonXGBoost(t)
	dir := t.TempDir()
	var jobs [][]string
	for _, c := range interopCases {
		trainSet, testSet := c.data(t)
		p := func(n string) string { return filepath.Join(dir, c.name+"-"+n) }
		writeF32(t, p("x.f32"), trainSet.X.RowMajor32())
		writeF32(t, p("y.f32"), f32(trainSet.Y))
		writeF32(t, p("xtest.f32"), testSet.X.RowMajor32())
		params := map[string]string{"tree_method": "hist", "seed": "0"}
		for _, kv := range c.params {
			params[kv.Name] = kv.Value
		}
		pj, _ := json.Marshal(params)
		if err := os.WriteFile(p("params.json"), pj, 0o600); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, []string{"train", p("x.f32"), p("y.f32"), strconv.Itoa(trainSet.X.NumRows()),
			strconv.Itoa(len(trainSet.X.Names)), p("params.json"), strconv.Itoa(c.rounds), p("model.json"),
			p("xtest.f32"), strconv.Itoa(testSet.X.NumRows()), p("pred.f32")})
	}
	runBatch(t, dir, jobs)
	for _, c := range interopCases {
		t.Run(c.name, func(t *testing.T) {
			trainSet, testSet := c.data(t)
			p := func(n string) string { return filepath.Join(dir, c.name+"-"+n) }
			model, err := os.ReadFile(p("model.json"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := LoadJSON(model, threads)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			dtest, err := NewDMatrix(testSet.X.RowMajor32(), testSet.X.NumRows(), len(testSet.X.Names), threads)
			if err != nil {
				t.Fatal(err)
			}
			defer dtest.Close()
			pyPred := readF32(t, p("pred.f32"))
			sameBits(t, "ppml on a python model", predict(t, b, dtest).Values, pyPred)

			// Same data, same parameters, one thread: training here gives the very same model.
			ours := train(t, matrix(t, trainSet), Config{Params: c.params, Rounds: c.rounds, NThread: threads})
			sameBits(t, "ppml-trained vs python-trained", predict(t, ours, dtest).Values, pyPred)
		})
	}
}

func runBatch(t *testing.T, dir string, jobs [][]string) {
	t.Helper()
	j, _ := json.Marshal(jobs)
	path := filepath.Join(dir, "jobs.json")
	if err := os.WriteFile(path, j, 0o600); err != nil {
		t.Fatal(err)
	}
	runPython(t, "batch", path)
}
