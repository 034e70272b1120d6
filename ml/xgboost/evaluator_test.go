package xgboost

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ppml/ppml/ml/dataset"
	"github.com/ppml/ppml/ml/synth"
	"github.com/ppml/ppml/ml/table"
)

// evaluatorCases cover every objective the package loads, the examples' models (examples/ml,
// examples/serve), a random forest, missing values in training (learned default ways) and
// base scores other than the default.
var evaluatorCases = []interopCase{
	{"examples/serve and boston-xgboost-regressor", dataset.Boston, "medv",
		[]Param{{"objective", "reg:squarederror"}, {"max_depth", "6"}, {"eta", "0.3"}}, 100, nil},
	{"breast-cancer-xgboost-classifier", dataset.BreastCancer, "target",
		[]Param{{"objective", "binary:logistic"}, {"max_depth", "4"}, {"eta", "0.3"}}, 100, nil},
	{"breast-cancer-random-forest", dataset.BreastCancer, "target",
		[]Param{{"objective", "binary:logistic"}, {"learning_rate", "1"}, {"num_parallel_tree", "100"},
			{"subsample", "0.8"}, {"colsample_bynode", "0.8"}, {"max_depth", "6"}}, 1, nil},
	{"regression with missing values and base_score 22.5", dataset.Boston, "medv",
		[]Param{{"objective", "reg:squarederror"}, {"max_depth", "4"}, {"base_score", "22.5"}}, 50, withMissing},
	{"binary with base_score 0.3", dataset.BreastCancer, "target",
		[]Param{{"objective", "binary:logistic"}, {"max_depth", "3"}, {"base_score", "0.3"}}, 30, nil},
	{"binary:logitraw", dataset.BreastCancer, "target",
		[]Param{{"objective", "binary:logitraw"}, {"max_depth", "3"}}, 30, nil},
	{"reg:logistic", dataset.Boston, "medv",
		[]Param{{"objective", "reg:logistic"}, {"max_depth", "3"}, {"base_score", "0.45"}}, 30, bostonFraction},
	{"reg:absoluteerror", dataset.Boston, "medv",
		[]Param{{"objective", "reg:absoluteerror"}, {"max_depth", "3"}}, 30, withMissing},
	{"multi:softprob", dataset.Boston, "medv",
		[]Param{{"objective", "multi:softprob"}, {"num_class", "3"}, {"max_depth", "3"}, {"base_score", "0.2"}}, 20,
		func(d *table.Dataset) *table.Dataset { return withMissing(bostonClasses(d)) }},
	{"multi:softmax", dataset.Boston, "medv",
		[]Param{{"objective", "multi:softmax"}, {"num_class", "3"}, {"max_depth", "3"}}, 20, bostonClasses},
}

// bostonFraction scales the Boston price to [0, 1] for reg:logistic.
func bostonFraction(d *table.Dataset) *table.Dataset {
	out := *d
	out.Y = make([]float64, len(d.Y))
	for i, v := range d.Y {
		out.Y[i] = v / 50
	}
	return &out
}

// The Go evaluator predicts bit-identically to libxgboost: on each model's test rows, on
// random rows (a quarter of the values missing, some far outside the training range) and on
// rows built from the model's own thresholds (both sides of each split).
func TestEvaluatorBitIdentical(t *testing.T) {
	for _, c := range evaluatorCases {
		t.Run(c.name, func(t *testing.T) {
			trainSet, testSet := c.data(t)
			b := train(t, matrix(t, trainSet), Config{Params: c.params, Rounds: c.rounds, NThread: threads})
			e, err := NewEvaluator(b)
			if err != nil {
				t.Fatal(err)
			}
			cols := len(testSet.X.Names)
			rng := rand.New(rand.NewPCG(7, 11))
			random := make([]float32, 2000*cols)
			for i := range random {
				col := testSet.X.Columns[i%cols]
				switch rng.IntN(4) {
				case 0:
					random[i] = float32(math.NaN())
				case 1:
					random[i] = float32(rng.NormFloat64() * 100)
				default:
					random[i] = float32(col[rng.IntN(len(col))])
				}
			}
			for _, set := range []struct {
				name string
				rows []float32
			}{
				{"test rows", testSet.X.RowMajor32()},
				{"random rows", random},
				{"threshold rows", e.ProbeRows(2000, 3)},
			} {
				n := len(set.rows) / cols
				want := predict(t, b, newMatrix(t, set.rows, n, cols))
				got, err := e.Predict(set.rows, n, cols)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Shape) != len(want.Shape) || got.Shape[0] != want.Shape[0] || got.Shape[len(got.Shape)-1] != want.Shape[len(want.Shape)-1] {
					t.Fatalf("%s: shape %v, XGBoost's %v", set.name, got.Shape, want.Shape)
				}
				sameBits(t, set.name, got.Values, want.Values)
			}
			// One row at a time (the serving case) gives the same values as the batch.
			rows := testSet.X.RowMajor32()
			all, _ := e.Predict(rows, len(rows)/cols, cols)
			k := len(all.Values) / (len(rows) / cols)
			for r := range 20 {
				one, err := e.Predict(rows[r*cols:(r+1)*cols], 1, cols)
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, "one row", append(one.Values, 0, 1), append(all.Values[r*k:(r+1)*k:(r+1)*k], 0, 1))
			}
		})
	}
}

// The serving benchmark's model: 100 trees of depth 6 on 16 synthetic features.
func TestEvaluatorBenchmarkModel(t *testing.T) {
	x, y := synth.Regression(3000, 16, 7)
	d := newMatrix(t, x, 3000, 16)
	if err := d.SetLabels(y); err != nil {
		t.Fatal(err)
	}
	b := train(t, d, Config{Rounds: 100, NThread: threads, Params: []Param{{"objective", "reg:squarederror"}, {"max_depth", "6"}}})
	e, err := NewEvaluator(b)
	if err != nil {
		t.Fatal(err)
	}
	probe := e.ProbeRows(3000, 5)
	want := predict(t, b, newMatrix(t, probe, 3000, 16))
	got, err := e.Predict(probe, 3000, 16)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "probe rows", got.Values, want.Values)
}

func newMatrix(t testing.TB, x []float32, rows, cols int) *DMatrix {
	t.Helper()
	d, err := NewDMatrix(x, rows, cols, threads)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Bad input gets Booster.Predict's errors.
func TestEvaluatorErrors(t *testing.T) {
	m := small(t)
	b := train(t, m, Config{Rounds: 2, NThread: threads})
	e, err := NewEvaluator(b)
	if err != nil {
		t.Fatal(err)
	}
	f := e.Features()
	if _, err := e.Predict(make([]float32, f+1), 1, f+1); err == nil || !strings.Contains(err.Error(), "model expects") {
		t.Fatalf("wrong column count: %v", err)
	}
	row := make([]float32, f)
	row[f-1] = float32(math.Inf(1))
	if _, err := e.Predict(row, 1, f); err == nil || !strings.Contains(err.Error(), "infinite") {
		t.Fatalf("infinite value: %v", err)
	}
	if _, err := e.Predict(row[:f-1], 1, f); err == nil || !strings.Contains(err.Error(), "values") {
		t.Fatalf("short data: %v", err)
	}
}

// CompileJSON refuses what XGBoost's predictor would read differently or out of bounds.
func TestCompileJSONRefuses(t *testing.T) {
	m := small(t)
	b := train(t, m, Config{Rounds: 2, NThread: threads, Params: []Param{{"max_depth", "2"}}})
	model, err := b.SaveJSON()
	if err != nil {
		t.Fatal(err)
	}
	canon, _, err := ValidateModelJSON(model)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompileJSON(canon); err != nil {
		t.Fatalf("XGBoost's own model: %v", err)
	}
	// An integer literal where XGBoost wants a float: XGBoost's loader refuses it.
	s := string(canon)
	i := strings.Index(s, `"split_conditions":[`) + len(`"split_conditions":[`)
	j := i + strings.IndexAny(s[i:], ",]")
	bad := s[:i] + "1" + s[j:]
	if _, err := CompileJSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "float literal") {
		t.Fatalf("integer threshold: %v", err)
	}
}
