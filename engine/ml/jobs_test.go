package mlengine

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/dataset"
)

const examplesDir = "../../examples/ml"

// runJob runs the manifest at path as ppml-run does: loaded once, then run.
func runJob(path string, cfg launcher.Config) (*launcher.Result, error) {
	m, err := launcher.Load(path)
	if err != nil {
		return nil, err
	}
	cfg.Manifest = m
	return launcher.Run(context.Background(), cfg)
}

// Markers: a data row of each dataset, which must never be found in
// plaintext on disk after the jobs.
var markers = []string{
	"0.00632,18.00,2.310,0,0.5380,6.5750,65.20,4.0900,1,296.0,15.30,396.90,4.98,24.00",
	"17.99,10.38,122.8,1001,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871",
}

// The examples' stated results (examples/ml/README.md) and tolerances.
var trainings = []struct {
	manifest      string
	report, model string
	rmse, r2      float64
	accuracy, auc float64
}{
	{"boston-xgboost-regressor.yaml", "boston-xgboost.report.json.ppml", "boston-xgboost.model.ppml", 4.084, 0.8138, 0, 0},
	{"breast-cancer-xgboost-classifier.yaml", "breast-cancer-xgboost.report.json.ppml", "breast-cancer-xgboost.model.ppml", 0, 0, 0.9737, 0.9982},
	{"breast-cancer-random-forest.yaml", "breast-cancer-forest.report.json.ppml", "breast-cancer-forest.model.ppml", 0, 0, 0.9649, 0.9944},
	{"boston-linear-regression.yaml", "boston-linear.report.json.ppml", "boston-linear.model.ppml", 5.230, 0.6947, 0, 0},
}

// workspace is examples/ml as the README prepares it: the manifests, a
// local key, the datasets encrypted under it and an empty out directory.
type workspace struct {
	dir, tmp string
	key      *envelope.LocalKey
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	w := &workspace{dir: t.TempDir(), tmp: t.TempDir()}
	t.Setenv("TMPDIR", w.tmp)
	ents, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".yaml") {
			envelopetest.CopyFile(t, filepath.Join(examplesDir, e.Name()), filepath.Join(w.dir, e.Name()))
		}
	}
	k, err := keyfile.Generate(filepath.Join(w.dir, "owner.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	w.key = k.LocalKey
	for i, name := range []string{dataset.Boston, dataset.BreastCancer} {
		plain, err := os.ReadFile(dataset.Require(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(plain, []byte(markers[i])) {
			t.Fatalf("marker %q is not in %s", markers[i], name)
		}
		envelopetest.Encrypt(t, filepath.Join(w.dir, name+".ppml"), w.key, plain, envelope.TypeCSV)
	}
	if err := os.Mkdir(filepath.Join(w.dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *workspace) run(t *testing.T, manifest string) (*launcher.Result, error) {
	t.Helper()
	keys, err := launcher.NewLocalKeys(filepath.Join(w.dir, "owner.key"))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := runJob(filepath.Join(w.dir, manifest), launcher.Config{Keys: keys, Log: &log})
	for _, m := range markers {
		if strings.Contains(log.String(), m) || (err != nil && strings.Contains(err.Error(), m)) {
			t.Errorf("%s: data in the launcher log or error", manifest)
		}
	}
	return res, err
}

func (w *workspace) out(t *testing.T, name string) []byte {
	t.Helper()
	return envelopetest.Decrypt(t, filepath.Join(w.dir, "out", name), w.key)
}

// TestExamplesThroughLauncher runs the four trainings, then predict and
// evaluate on the regressor's model, as the README does: encrypted inputs,
// encrypted outputs, ppml run's launcher.
func TestExamplesThroughLauncher(t *testing.T) {
	w := newWorkspace(t)
	for _, ex := range trainings {
		res, err := w.run(t, ex.manifest)
		if err != nil {
			t.Fatalf("%s: %v", ex.manifest, err)
		}
		var rep Report
		if err := json.Unmarshal(w.out(t, ex.report), &rep); err != nil {
			t.Fatalf("%s: report: %v", ex.manifest, err)
		}
		mt := rep.Metrics
		b, _ := json.Marshal(mt)
		t.Logf("%s: %s", ex.manifest, b)
		if ex.rmse != 0 {
			if r := mt.Regression; r == nil || math.Abs(r.RMSE-ex.rmse) > 0.05 || math.Abs(r.R2-ex.r2) > 0.005 {
				t.Errorf("%s: metrics %s, want RMSE %v ± 0.05, R² %v ± 0.005", ex.manifest, b, ex.rmse, ex.r2)
			}
		} else if c := mt.Classification; c == nil || math.Abs(c.Accuracy-ex.accuracy) > 0.009 || c.AUC == nil || math.Abs(*c.AUC-ex.auc) > 0.005 {
			t.Errorf("%s: metrics %s, want accuracy %v ± 1 row, AUC %v ± 0.005", ex.manifest, b, ex.accuracy, ex.auc)
		}
		m, err := DecodeModel(w.out(t, ex.model))
		if err != nil {
			t.Fatalf("%s: model: %v", ex.manifest, err)
		}
		// The model names the job that made it: this run's manifest digest.
		if m.TrainingJobDigest != res.Digest || rep.TrainingJobDigest != res.Digest {
			t.Errorf("%s: model digest %q, report digest %q, job %q", ex.manifest, m.TrainingJobDigest, rep.TrainingJobDigest, res.Digest)
		}
	}

	if _, err := w.run(t, "boston-xgboost-predict.yaml"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(w.out(t, "boston-predictions.csv.ppml"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 507 || len(recs[0]) != 15 || recs[0][13] != "medv" || recs[0][14] != "prediction" {
		t.Fatalf("predictions table: %d rows, header %v", len(recs), recs[0])
	}
	var se float64
	for _, r := range recs[1:] {
		y, p := parse(t, r[13]), parse(t, r[14])
		se += (y - p) * (y - p)
	}
	if _, err := w.run(t, "boston-xgboost-evaluate.yaml"); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(w.out(t, "boston-evaluation.json.ppml"), &rep); err != nil {
		t.Fatal(err)
	}
	// Evaluate scores all 506 rows and agrees with the predictions table.
	if r := rep.Metrics.Regression; rep.Task != mlspec.Evaluate || r == nil || r.Rows != 506 || math.Abs(r.RMSE-math.Sqrt(se/506)) > 1e-4 {
		t.Errorf("evaluate report %+v, RMSE from predictions %v", rep.Metrics.Regression, math.Sqrt(se/506))
	}

	for _, d := range []string{w.dir, w.tmp} {
		for _, m := range markers {
			envelopetest.AssertNoMarker(t, d, []byte(m))
		}
	}
}

// TestQueryShapesTrainingTable trains the linear regression on a SQL
// query's result over the encrypted input, and checks it equals the same
// training on the selected columns without SQL.
func TestQueryJobShapesTrainingTable(t *testing.T) {
	w := newWorkspace(t)
	write := func(name, params string) {
		m := `version: 1
name: ` + strings.TrimSuffix(name, ".yaml") + `
engine: ml
inputs:
  houses: boston.csv.ppml
outputs:
  model: {path: out/` + name + `.model.ppml, key: file:owner.key, content_type: application/json}
parameters:
  task: train
  algorithm: linear_regression
  label: medv
  test_fraction: 0.2
  seed: 42
` + params + `resources:
  threads: 1
  memory: 256MiB
`
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("query.yaml", "  query: SELECT rm, lstat, medv FROM houses WHERE medv < 50\n")
	if _, err := w.run(t, "query.yaml"); err != nil {
		t.Fatal(err)
	}
	q, err := DecodeModel(w.out(t, "query.yaml.model.ppml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(q.Features, ",") != "rm,lstat" {
		t.Errorf("features %v, want rm, lstat", q.Features)
	}
	// Boston has 16 rows with medv = 50 (censored); the query drops them.
	if mt := q.Metrics; mt == nil || mt.TrainRows+mt.TestRows != 490 || mt.Regression == nil {
		t.Fatalf("query model metrics %+v, want 490 rows", q.Metrics)
	}
	// The same rows without SQL: a plaintext table, run through the engine.
	plain, err := os.ReadFile(dataset.Require(t, dataset.Boston))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	cw.Write([]string{"rm", "lstat", "medv"})
	for _, r := range recs[1:] {
		if parse(t, r[13]) < 50 {
			cw.Write([]string{r[5], r[12], r[13]})
		}
	}
	cw.Flush()
	var model bytes.Buffer
	spec := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.LinearRegression, Objective: mlspec.Regression,
		Label: "medv", TestFraction: 0.2, Seed: 42}
	in := Input{ReaderAt: bytes.NewReader(buf.Bytes()), Size: int64(buf.Len()), Format: mlspec.CSV}
	if _, err := Run(context.Background(), Config{}, spec, map[string]Input{mlspec.InputTrain: in},
		map[string]Output{mlspec.OutputModel: {W: &model}}); err != nil {
		t.Fatal(err)
	}
	d, err := DecodeModel(model.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	a, b := q.Metrics.Regression, d.Metrics.Regression
	if math.Abs(a.RMSE-b.RMSE) > 1e-9 || math.Abs(a.R2-b.R2) > 1e-9 {
		t.Errorf("query training RMSE %v R² %v, direct %v %v", a.RMSE, a.R2, b.RMSE, b.R2)
	}
	envelopetest.AssertNoMarker(t, w.dir, []byte(markers[0]))
	envelopetest.AssertNoMarker(t, w.tmp, []byte(markers[0]))

	// A query that fails names SQL's problem; nothing is written.
	write("badquery.yaml", "  query: SELECT rm, lstat, medv FROM no_such_table\n")
	if _, err := w.run(t, "badquery.yaml"); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("bad query: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "out", "badquery.yaml.model.ppml")); !os.IsNotExist(err) {
		t.Errorf("bad query wrote its model (%v)", err)
	}
}

// TestBadInputWritesNothing: an unknown XGBoost parameter fails the job with
// XGBoost's message, and no output is written.
func TestBadInputWritesNothing(t *testing.T) {
	w := newWorkspace(t)
	src, err := os.ReadFile(filepath.Join(w.dir, "boston-xgboost-regressor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(src, []byte("max_depth: 6"), []byte("max_dept: 6"), 1)
	if bytes.Equal(bad, src) {
		t.Fatal("the regressor manifest no longer sets max_depth")
	}
	if err := os.WriteFile(filepath.Join(w.dir, "bad.yaml"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = w.run(t, "bad.yaml")
	if err == nil || !strings.Contains(err.Error(), "max_dept") {
		t.Fatalf("unknown parameter: %v", err)
	}
	t.Logf("error: %v", err)
	ents, err := os.ReadDir(filepath.Join(w.dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("failed job left %s", e.Name())
	}
	// A table encrypted as bytes is not a table: a clear message, no output.
	plain, err := os.ReadFile(dataset.Require(t, dataset.Boston))
	if err != nil {
		t.Fatal(err)
	}
	envelopetest.Encrypt(t, filepath.Join(w.dir, "boston.csv.ppml"), w.key, plain, envelope.TypeBytes)
	if _, err := w.run(t, "boston-linear-regression.yaml"); err == nil || !strings.Contains(err.Error(), "not a table") {
		t.Errorf("bytes input: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.dir, "out")); len(ents) != 0 {
		t.Errorf("failed job left %d file(s)", len(ents))
	}
}
