package linear

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ppml/ppml/ml/dataset"
	"github.com/ppml/ppml/ml/metrics"
	"github.com/ppml/ppml/ml/split"
	"github.com/ppml/ppml/ml/table"
)

func load(t *testing.T, file, label string) (train, test *table.Dataset) {
	t.Helper()
	f, err := os.Open(dataset.Require(t, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := table.ReadCSV(f, table.Selection{Label: label})
	if err != nil {
		t.Fatal(err)
	}
	tr, te, err := split.TrainTest(d.X.NumRows(), 0.2, 42)
	if err != nil {
		t.Fatal(err)
	}
	return d.Split(tr), d.Split(te)
}

// numpyFit runs an independent fit in Python/numpy on the training data and returns
// [intercept, coefficients...]: least squares via numpy.linalg.lstsq, or logistic regression by
// Newton's method on the same objective (standardized features, penalty λ/2·‖w‖²).
func numpyFit(t *testing.T, d *table.Dataset, kind string, l2 float64) []float64 {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("no /usr/bin/python3 (make deps installs python3-numpy)")
	}
	in, _ := json.Marshal(map[string]any{"x": d.X.Columns, "y": d.Y})
	path := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(path, in, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys, numpy as np
d = json.load(open(sys.argv[1])); kind = sys.argv[2]; l2 = float(sys.argv[3])
X = np.array(d["x"]).T; y = np.array(d["y"]); n, p = X.shape
if kind == "ols":
    A = np.hstack([np.ones((n, 1)), X])
    beta = np.linalg.lstsq(A, y, rcond=None)[0]
else:
    mu = X.mean(0); sd = X.std(0); sd[sd == 0] = 1
    Z = np.hstack([np.ones((n, 1)), (X - mu) / sd])
    w = np.zeros(p + 1); pen = np.full(p + 1, l2); pen[0] = 0
    for _ in range(100):
        q = 1 / (1 + np.exp(-(Z @ w)))
        g = Z.T @ (q - y) + pen * w
        H = Z.T @ (Z * (q * (1 - q))[:, None]) + np.diag(pen)
        w = w - np.linalg.solve(H, g)
    coef = w[1:] / sd
    beta = np.concatenate([[w[0] - coef @ mu], coef])
print(json.dumps([float(v).hex() for v in beta]))
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, path, kind, strconv.FormatFloat(l2, 'g', -1, 64)).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var hex []string
	if err := json.Unmarshal(out, &hex); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	beta := make([]float64, len(hex))
	for i, h := range hex {
		if beta[i], err = strconv.ParseFloat(h, 64); err != nil {
			t.Fatal(err)
		}
	}
	return beta
}

func closeTo(t *testing.T, what string, m *Model, beta []float64, rel float64) {
	t.Helper()
	got := append([]float64{m.Intercept}, m.Coefficients...)
	for i := range got {
		if math.Abs(got[i]-beta[i]) > rel*math.Max(1, math.Abs(beta[i])) {
			t.Errorf("%s: parameter %d is %.12g, numpy gives %.12g", what, i, got[i], beta[i])
		}
	}
}

// Boston housing by least squares. Published test RMSEs for OLS on this data are 4.5–5.5
// depending on the split, against about 9 for predicting the mean; bound: RMSE ≤ 6, R² ≥ 0.6.
func TestLinearRegressionBoston(t *testing.T) {
	trainSet, testSet := load(t, dataset.Boston, "medv")
	m, err := FitLinear(trainSet)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "least squares", m, numpyFit(t, trainSet, "ols", 0), 1e-8)
	p, err := m.Predict(testSet.X)
	if err != nil {
		t.Fatal(err)
	}
	r, err := metrics.EvaluateRegression(testSet.Y, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Boston OLS test set: RMSE %.3f MAE %.3f R² %.3f", r.RMSE, r.MAE, r.R2)
	if r.RMSE > 6 || r.R2 < 0.6 {
		t.Fatalf("RMSE %.3f (want ≤ 6), R² %.3f (want ≥ 0.6)", r.RMSE, r.R2)
	}
	// Model round trip keeps predictions exactly (Go writes float64 in shortest round-trip form).
	m.Metrics = map[string]float64{"rmse": r.RMSE, "mae": r.MAE, "r2": r.R2}
	m.TrainingJobDigest = "sha256:" + strings.Repeat("ab", 32)
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := m2.Predict(testSet.X)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if p[i] != p2[i] {
			t.Fatalf("row %d: %v before encoding, %v after", i, p[i], p2[i])
		}
	}
}

// Breast cancer by L2 logistic regression: published accuracies are 95–98%; bound: accuracy
// ≥ 0.94, AUC ≥ 0.98.
func TestLogisticRegressionBreastCancer(t *testing.T) {
	trainSet, testSet := load(t, dataset.BreastCancer, "target")
	m, err := FitLogistic(trainSet, LogisticOptions{L2: 1})
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "logistic", m, numpyFit(t, trainSet, "logistic", 1), 1e-5)
	p, err := m.Predict(testSet.X)
	if err != nil {
		t.Fatal(err)
	}
	c, err := metrics.EvaluateBinary(testSet.Y, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("breast cancer logistic test set: accuracy %.3f AUC %.4f log-loss %.3f confusion %v", c.Accuracy, *c.AUC, c.LogLoss, c.Confusion)
	if c.Accuracy < 0.94 || *c.AUC < 0.98 {
		t.Fatalf("accuracy %.3f (want ≥ 0.94), AUC %.4f (want ≥ 0.98)", c.Accuracy, *c.AUC)
	}
}

func TestFitErrors(t *testing.T) {
	ds := func(cols [][]float64, y []float64) *table.Dataset {
		names := []string{"a", "b", "c"}[:len(cols)]
		x, err := table.New(names, cols)
		if err != nil {
			t.Fatal(err)
		}
		return &table.Dataset{X: x, Label: "y", Y: y}
	}
	nan := math.NaN()
	cases := []struct {
		name string
		fit  func() error
		want string
	}{
		{"missing value", func() error {
			_, err := FitLinear(ds([][]float64{{1, 2, nan, 4, 5}}, []float64{1, 2, 3, 4, 5}))
			return err
		}, `column "a", row 3: missing value`},
		{"collinear", func() error {
			_, err := FitLinear(ds([][]float64{{1, 2, 3, 4, 5}, {2, 4, 6, 8, 10}}, []float64{1, 3, 2, 5, 4}))
			return err
		}, `feature "b" is constant or a linear combination`},
		{"constant", func() error {
			_, err := FitLinear(ds([][]float64{{1, 2, 3, 4, 5}, {7, 7, 7, 7, 7}}, []float64{1, 3, 2, 5, 4}))
			return err
		}, `feature "b"`},
		{"too few rows", func() error {
			_, err := FitLinear(ds([][]float64{{1, 2}, {3, 5}}, []float64{1, 2}))
			return err
		}, "need more rows"},
		{"non-binary label", func() error {
			_, err := FitLogistic(ds([][]float64{{1, 2, 3}}, []float64{0, 1, 2}), LogisticOptions{})
			return err
		}, `row 3: logistic regression needs labels 0 or 1`},
		{"one class", func() error {
			_, err := FitLogistic(ds([][]float64{{1, 2, 3}}, []float64{1, 1, 1}), LogisticOptions{})
			return err
		}, "only one class"},
		{"no label", func() error {
			_, err := FitLinear(&table.Dataset{X: ds([][]float64{{1}}, nil).X})
			return err
		}, "no label column"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fit(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestPredictErrors(t *testing.T) {
	m := &Model{Format: Format, Version: Version, Kind: LinearRegression, Features: []string{"a", "b"}, Label: "y", Coefficients: []float64{1, 2}}
	x, _ := table.New([]string{"a", "c"}, [][]float64{{1}, {2}})
	if _, err := m.Predict(x); err == nil || !strings.Contains(err.Error(), `missing feature column(s) "b"`) {
		t.Fatalf("missing feature: %v", err)
	}
	x, _ = table.New([]string{"b", "a", "extra"}, [][]float64{{2, math.NaN()}, {1, 1}, {9, 9}})
	if _, err := m.Predict(x); err == nil || !strings.Contains(err.Error(), `column "b", row 2`) {
		t.Fatalf("missing value: %v", err)
	}
	x, _ = table.New([]string{"b", "a"}, [][]float64{{2}, {1}}) // columns in another order
	p, err := m.Predict(x)
	if err != nil || p[0] != 5 {
		t.Fatalf("prediction %v, %v; want 1·1 + 2·2 = 5", p, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := `{"format":"ppml-linear-model","version":1,"kind":"logistic_regression","features":["a","b"],"label":"y","coefficients":[1,2],"intercept":0.5,"params":{"l2":1}}`
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatalf("good model: %v", err)
	}
	cases := map[string]string{
		`{"format":"other"}`: `format is "other"`,
		strings.Replace(good, `"version":1`, `"version":2`, 1):     "version 2 is not supported",
		strings.Replace(good, `"logistic_regression"`, `"svm"`, 1): `kind "svm"`,
		strings.Replace(good, `[1,2]`, `[1]`, 1):                   "1 coefficients for 2 features",
		strings.Replace(good, `["a","b"]`, `["a","a"]`, 1):         `feature "a" appears twice`,
		strings.Replace(good, `"label":"y"`, `"label":"a"`, 1):     `label "a" is also a feature`,
		strings.Replace(good, `"l2":1`, `"alpha":1`, 1):            `parameter "alpha"`,
		strings.Replace(good, `"intercept"`, `"bias"`, 1):          `unknown field "bias"`,
		good + `{}`: "trailing data",
		strings.Replace(good, `"intercept":0.5`, `"intercept":"x"`, 1):                  "not a valid model document",
		strings.Replace(good, `"params"`, `"training_job_digest":"md5:00","params"`, 1): "training_job_digest",
		strings.Replace(good, `"coefficients":[1,2]`, `"coefficients":[1,1e999]`, 1):    "not a valid model document",
		"": "not a valid model document",
	}
	for in, want := range cases {
		if _, err := Decode([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%.60s…): %v, want %q", in, err, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"format":"ppml-linear-model","version":1,"kind":"linear_regression","features":["a"],"label":"y","coefficients":[1],"intercept":0}`))
	f.Add([]byte(`{"format":"ppml-linear-model","version":1,"kind":"logistic_regression","features":["a","b"],"label":"y","coefficients":[1,2],"intercept":0.5,"params":{"l2":1},"metrics":{"auc":0.9},"training_job_digest":"sha256:` + strings.Repeat("0", 64) + `"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode, decode to the same thing, and predict without panicking.
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded model does not encode: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded model does not decode: %v", err)
		}
		cols := make([][]float64, len(m.Features))
		for j := range cols {
			cols[j] = []float64{1, -2}
		}
		x, err := table.New(m.Features, cols)
		if err != nil {
			t.Fatal(err)
		}
		p1, err1 := m.Predict(x)
		p2, err2 := m2.Predict(x)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("predict differs after re-encoding: %v / %v", err1, err2)
		}
		for i := range p1 {
			if p1[i] != p2[i] && !(math.IsNaN(p1[i]) && math.IsNaN(p2[i])) {
				t.Fatalf("prediction %d: %v vs %v after re-encoding", i, p1[i], p2[i])
			}
		}
	})
}
