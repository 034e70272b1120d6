package mlengine

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/dataset"
)

// Each bad input fails with a message naming what is wrong, and no output gets a byte.
func TestBadInput(t *testing.T) {
	boston := datasetInput(t, dataset.Boston)
	_, out := mustRun(t, &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Regression, Label: "medv", Rounds: 5, TestFraction: 0.2},
		map[string]Input{mlspec.InputTrain: boston}, mlspec.OutputModel)
	model := bytesInput(out[mlspec.OutputModel], "")
	xgbTrain := func(label string, params ...[2]string) *mlspec.Params {
		s := &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Regression, Label: label, Rounds: 3, TestFraction: 0.2}
		for _, p := range params {
			s.Params = append(s.Params, xgbParam(p[0], p[1]))
		}
		return s
	}
	csvIn := func(s string) Input { return bytesInput([]byte(s), mlspec.CSV) }
	cases := []struct {
		name   string
		spec   *mlspec.Params
		inputs map[string]Input
		outs   []string
		want   []string
	}{
		{"unknown xgboost parameter", xgbTrain("medv", [2]string{"max_dept", "3"}), map[string]Input{mlspec.InputTrain: boston},
			[]string{mlspec.OutputModel, mlspec.OutputReport}, []string{`"max_dept"`, "not used"}},
		{"bad xgboost parameter value", xgbTrain("medv", [2]string{"max_depth", "deep"}), map[string]Input{mlspec.InputTrain: boston},
			[]string{mlspec.OutputModel}, []string{"max_depth"}},
		{"unknown linear parameter", &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.LinearRegression, Objective: mlspec.Regression, Label: "medv", Params: []mlspec.Param{xgbParam("l2", "1")}},
			map[string]Input{mlspec.InputTrain: boston}, []string{mlspec.OutputModel}, []string{"linear_regression takes no parameters", `"l2"`}},
		{"missing label column", xgbTrain("price"), map[string]Input{mlspec.InputTrain: boston},
			[]string{mlspec.OutputModel}, []string{`label column "price" is not in the header`}},
		{"non-numeric feature", xgbTrain("y"), map[string]Input{mlspec.InputTrain: csvIn("a,b,y\n1,2,3\n1,red,4\n2,3,5\n4,5,6\n")},
			[]string{mlspec.OutputModel}, []string{`column "b", row 2`, "non-numeric features need an encoding"}},
		{"missing label value", xgbTrain("y"), map[string]Input{mlspec.InputTrain: csvIn("a,y\n1,3\n2,\n3,5\n4,6\n")},
			[]string{mlspec.OutputModel}, []string{`label column "y", row 2`, "missing"}},
		{"NaN feature in linear regression", &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.LinearRegression, Objective: mlspec.Regression, Label: "y", TestFraction: 0},
			map[string]Input{mlspec.InputTrain: csvIn("a,b,y\n1,2,3\n2,NaN,4\n3,1,5\n4,5,6\n5,5,9\n")}, []string{mlspec.OutputModel}, []string{`"b"`, "row 2"}},
		{"binary labels not 0/1", &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Binary, Label: "y", Rounds: 2},
			map[string]Input{mlspec.InputTrain: csvIn("a,y\n1,0\n2,1\n3,2\n")}, []string{mlspec.OutputModel}, []string{`label column "y", row 3`, "0 or 1"}},
		{"model file that is not a model", &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: csvIn("crim,zn\n1,2\n"), mlspec.InputData: boston},
			[]string{mlspec.OutputPredictions}, []string{"not a model"}},
		{"JSON that is not a model", &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: csvIn(`{"weights": [1, 2]}`), mlspec.InputData: boston},
			[]string{mlspec.OutputPredictions}, []string{"not a model"}},
		{"table missing features", &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: model, mlspec.InputData: csvIn("crim,zn,indus\n1,2,3\n")},
			[]string{mlspec.OutputPredictions}, []string{"does not fit the model", `"chas"`, `"lstat"`}},
		{"evaluate without label column", &mlspec.Params{Task: mlspec.Evaluate}, map[string]Input{mlspec.InputModel: model, mlspec.InputData: csvIn(strings.Replace(headerOf(t, dataset.Boston), ",medv", "", 1) + "\n")},
			[]string{mlspec.OutputReport}, []string{`label column "medv"`}},
		{"query without SQL engine", &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.LinearRegression, Objective: mlspec.Regression, Label: "medv", Query: "SELECT * FROM train"},
			map[string]Input{mlspec.InputTrain: boston}, []string{mlspec.OutputModel}, []string{"no SQL engine"}},
		{"unknown output", &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: model, mlspec.InputData: boston},
			[]string{mlspec.OutputPredictions, "extra"}, []string{`unknown output(s) "extra"`}},
		{"missing model input", &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputData: boston},
			[]string{mlspec.OutputPredictions}, []string{`missing input "model"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, outs, err := run(t, c.spec, c.inputs, c.outs...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for n, b := range outs {
				if len(b) > 0 {
					t.Errorf("output %s got %d bytes", n, len(b))
				}
			}
		})
	}
}

func headerOf(t *testing.T, name string) string {
	b := datasetInput(t, name)
	raw, err := b.readAll(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := strings.Cut(string(raw), "\n")
	return strings.TrimRight(h, "\r")
}

// NaN features are missing values for XGBoost (training and prediction work and the row gets a
// prediction); the linear models refuse them (above).
func TestNaNFeaturesXGBoost(t *testing.T) {
	var b strings.Builder
	b.WriteString("a,b,y\n")
	for i := range 200 {
		if i%7 == 0 {
			b.WriteString("NaN,")
		} else {
			b.WriteString(itoa(i%13) + ",")
		}
		if i%5 == 0 {
			b.WriteString(",")
		} else {
			b.WriteString(itoa(i%3) + ",")
		}
		b.WriteString(itoa(i%13*2+i%3) + "\n")
	}
	in := bytesInput([]byte(b.String()), mlspec.CSV)
	_, out := mustRun(t, &mlspec.Params{Task: mlspec.Train, Algorithm: mlspec.XGBoost, Objective: mlspec.Regression, Label: "y", Rounds: 20, TestFraction: 0.25}, map[string]Input{mlspec.InputTrain: in}, mlspec.OutputModel)
	res, pout := mustRun(t, &mlspec.Params{Task: mlspec.Predict}, map[string]Input{mlspec.InputModel: bytesInput(out[mlspec.OutputModel], ""), mlspec.InputData: bytesInput([]byte("a,b\nNaN,\n3,1\n"), mlspec.CSV)}, mlspec.OutputPredictions)
	if res.Rows != 2 || !strings.HasPrefix(string(pout[mlspec.OutputPredictions]), "a,b,prediction\nNaN,,") {
		t.Fatalf("predictions:\n%s", pout[mlspec.OutputPredictions])
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
