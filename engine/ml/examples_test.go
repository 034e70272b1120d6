package mlengine

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/launcher"
	"github.com/ppml/ppml/ml/dataset"
)

// loadExample parses a manifest from examples/ml with the job package, as ppml run does.
func loadExample(t *testing.T, name string) *mlspec.Params {
	t.Helper()
	m, err := job.Load(filepath.Join("..", "..", "examples", "ml", name), launcher.Specs())
	if err != nil {
		t.Fatal(err)
	}
	if m.Engine != mlspec.Name {
		t.Fatalf("%s: engine %q", name, m.Engine)
	}
	return m.Parameters.(*mlspec.Params)
}

// expected metrics of the examples, as stated in examples/ml/README.md. XGBoost with one
// thread and the linear fits are deterministic, so the tolerances only absorb a different
// XGBoost build or BLAS.
type expectation struct {
	manifest, dataset string
	rmse, r2          float64 // regression
	accuracy, auc     float64 // classification
}

var examples = []expectation{
	{manifest: "boston-xgboost-regressor.yaml", dataset: dataset.Boston, rmse: 4.08, r2: 0.814},
	{manifest: "breast-cancer-xgboost-classifier.yaml", dataset: dataset.BreastCancer, accuracy: 0.974, auc: 0.998},
	{manifest: "breast-cancer-random-forest.yaml", dataset: dataset.BreastCancer, accuracy: 0.965, auc: 0.994},
	{manifest: "boston-linear-regression.yaml", dataset: dataset.Boston, rmse: 5.23, r2: 0.695},
}

func TestExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(strings.TrimSuffix(ex.manifest, ".yaml"), func(t *testing.T) {
			spec := loadExample(t, ex.manifest)
			res, out := mustRun(t, spec, map[string]Input{mlspec.InputTrain: datasetInput(t, ex.dataset)}, mlspec.OutputModel, mlspec.OutputReport)
			var rep Report
			if err := json.Unmarshal(out[mlspec.OutputReport], &rep); err != nil {
				t.Fatal(err)
			}
			mt := rep.Metrics
			b, _ := json.Marshal(mt)
			t.Logf("metrics: %s", b)
			if r := mt.Regression; ex.rmse != 0 {
				if r == nil || math.Abs(r.RMSE-ex.rmse) > 0.05 || math.Abs(r.R2-ex.r2) > 0.005 {
					t.Errorf("regression metrics %+v, want RMSE %v ± 0.05, R² %v ± 0.005", r, ex.rmse, ex.r2)
				}
			} else {
				c := mt.Classification
				// ± one test row of 114 for accuracy.
				if c == nil || math.Abs(c.Accuracy-ex.accuracy) > 0.009 || c.AUC == nil || math.Abs(*c.AUC-ex.auc) > 0.005 {
					t.Errorf("classification metrics %s, want accuracy %v ± 0.009, AUC %v ± 0.005", b, ex.accuracy, ex.auc)
				}
			}
			if mt.TestRows+mt.TrainRows != map[string]int{dataset.Boston: 506, dataset.BreastCancer: 569}[ex.dataset] {
				t.Errorf("train %d + test %d rows", mt.TrainRows, mt.TestRows)
			}
			// The model file carries the same metrics and the job digest, and decodes.
			m, err := DecodeModel(out[mlspec.OutputModel])
			if err != nil {
				t.Fatal(err)
			}
			mb, _ := json.Marshal(m.Metrics)
			if m.TrainingJobDigest == "" || m.Label != spec.Label || !bytes.Equal(mb, b) {
				t.Errorf("model metadata: digest %q label %q metrics %s", m.TrainingJobDigest, m.Label, mb)
			}
			if ex.manifest == "boston-xgboost-regressor.yaml" {
				var show bytes.Buffer
				if err := res.Show(&show, 5); err != nil {
					t.Fatal(err)
				}
				t.Logf("\n%s", show.String())
				if !strings.Contains(show.String(), "|            features|label|        prediction|") {
					t.Errorf("show output:\n%s", show.String())
				}
			}
		})
	}
}

// TestExamplePredictEvaluate runs the Boston predict and evaluate manifests on the model the
// regressor example trains: evaluate on all 506 rows must agree with metrics recomputed from
// the predictions table, which keeps the input columns.
func TestExamplePredictEvaluate(t *testing.T) {
	data := datasetInput(t, dataset.Boston)
	_, out := mustRun(t, loadExample(t, "boston-xgboost-regressor.yaml"), map[string]Input{mlspec.InputTrain: data}, mlspec.OutputModel)
	model := bytesInput(out[mlspec.OutputModel], "")
	_, pout := mustRun(t, loadExample(t, "boston-xgboost-predict.yaml"), map[string]Input{mlspec.InputModel: model, mlspec.InputData: data}, mlspec.OutputPredictions)
	res, eout := mustRun(t, loadExample(t, "boston-xgboost-evaluate.yaml"), map[string]Input{mlspec.InputModel: model, mlspec.InputData: data}, mlspec.OutputReport)

	recs, err := csv.NewReader(bytes.NewReader(pout[mlspec.OutputPredictions])).ReadAll()
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
	rmse := math.Sqrt(se / 506)
	var rep Report
	if err := json.Unmarshal(eout[mlspec.OutputReport], &rep); err != nil {
		t.Fatal(err)
	}
	if r := rep.Metrics.Regression; r == nil || r.Rows != 506 || math.Abs(r.RMSE-rmse) > 1e-4 || rep.Task != mlspec.Evaluate {
		t.Fatalf("evaluate report %s, RMSE from predictions %v", eout[mlspec.OutputReport], rmse)
	}
	if res.Rows != 506 {
		t.Errorf("evaluated %d rows", res.Rows)
	}
}

func parse(t *testing.T, s string) float64 {
	t.Helper()
	var v float64
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}
