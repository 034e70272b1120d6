package mlengine

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ppml/ppml/ml/dataset"
)

// Each bad input fails with a message naming what is wrong, and no output gets a byte.
func TestBadInput(t *testing.T) {
	boston := datasetInput(t, dataset.Boston)
	_, out := mustRun(t, &Spec{Task: Train, Algorithm: XGBoost, Objective: Regression, Label: "medv", Rounds: 5, TestFraction: 0.2},
		map[string]Input{InputTrain: boston}, OutputModel)
	model := bytesInput(out[OutputModel], "")
	xgbTrain := func(label string, params ...[2]string) *Spec {
		s := &Spec{Task: Train, Algorithm: XGBoost, Objective: Regression, Label: label, Rounds: 3, TestFraction: 0.2}
		for _, p := range params {
			s.Params = append(s.Params, xgbParam(p[0], p[1]))
		}
		return s
	}
	csvIn := func(s string) Input { return bytesInput([]byte(s), CSV) }
	cases := []struct {
		name   string
		spec   *Spec
		inputs map[string]Input
		outs   []string
		want   []string
	}{
		{"unknown xgboost parameter", xgbTrain("medv", [2]string{"max_dept", "3"}), map[string]Input{InputTrain: boston},
			[]string{OutputModel, OutputReport}, []string{`"max_dept"`, "not used"}},
		{"bad xgboost parameter value", xgbTrain("medv", [2]string{"max_depth", "deep"}), map[string]Input{InputTrain: boston},
			[]string{OutputModel}, []string{"max_depth"}},
		{"unknown linear parameter", &Spec{Task: Train, Algorithm: LinearRegression, Objective: Regression, Label: "medv", Params: []xgbParamT{xgbParam("l2", "1")}},
			map[string]Input{InputTrain: boston}, []string{OutputModel}, []string{"linear_regression takes no parameters", `"l2"`}},
		{"missing label column", xgbTrain("price"), map[string]Input{InputTrain: boston},
			[]string{OutputModel}, []string{`label column "price" is not in the header`}},
		{"non-numeric feature", xgbTrain("y"), map[string]Input{InputTrain: csvIn("a,b,y\n1,2,3\n1,red,4\n2,3,5\n4,5,6\n")},
			[]string{OutputModel}, []string{`column "b", row 2`, "non-numeric features need an encoding"}},
		{"missing label value", xgbTrain("y"), map[string]Input{InputTrain: csvIn("a,y\n1,3\n2,\n3,5\n4,6\n")},
			[]string{OutputModel}, []string{`label column "y", row 2`, "missing"}},
		{"NaN feature in linear regression", &Spec{Task: Train, Algorithm: LinearRegression, Objective: Regression, Label: "y", TestFraction: 0},
			map[string]Input{InputTrain: csvIn("a,b,y\n1,2,3\n2,NaN,4\n3,1,5\n4,5,6\n5,5,9\n")}, []string{OutputModel}, []string{`"b"`, "row 2"}},
		{"binary labels not 0/1", &Spec{Task: Train, Algorithm: XGBoost, Objective: Binary, Label: "y", Rounds: 2},
			map[string]Input{InputTrain: csvIn("a,y\n1,0\n2,1\n3,2\n")}, []string{OutputModel}, []string{`label column "y", row 3`, "0 or 1"}},
		{"model file that is not a model", &Spec{Task: Predict}, map[string]Input{InputModel: csvIn("crim,zn\n1,2\n"), InputData: boston},
			[]string{OutputPredictions}, []string{"not a model"}},
		{"JSON that is not a model", &Spec{Task: Predict}, map[string]Input{InputModel: csvIn(`{"weights": [1, 2]}`), InputData: boston},
			[]string{OutputPredictions}, []string{"not a model"}},
		{"table missing features", &Spec{Task: Predict}, map[string]Input{InputModel: model, InputData: csvIn("crim,zn,indus\n1,2,3\n")},
			[]string{OutputPredictions}, []string{"does not fit the model", `"chas"`, `"lstat"`}},
		{"evaluate without label column", &Spec{Task: Evaluate}, map[string]Input{InputModel: model, InputData: csvIn(strings.Replace(headerOf(t, dataset.Boston), ",medv", "", 1) + "\n")},
			[]string{OutputReport}, []string{`label column "medv"`}},
		{"query without SQL engine", &Spec{Task: Train, Algorithm: LinearRegression, Objective: Regression, Label: "medv", Query: "SELECT * FROM train"},
			map[string]Input{InputTrain: boston}, []string{OutputModel}, []string{"no SQL engine"}},
		{"unknown output", &Spec{Task: Predict}, map[string]Input{InputModel: model, InputData: boston},
			[]string{OutputPredictions, "extra"}, []string{`unknown output(s) "extra"`}},
		{"missing model input", &Spec{Task: Predict}, map[string]Input{InputData: boston},
			[]string{OutputPredictions}, []string{`missing input "model"`}},
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
	in := bytesInput([]byte(b.String()), CSV)
	_, out := mustRun(t, &Spec{Task: Train, Algorithm: XGBoost, Objective: Regression, Label: "y", Rounds: 20, TestFraction: 0.25}, map[string]Input{InputTrain: in}, OutputModel)
	res, pout := mustRun(t, &Spec{Task: Predict}, map[string]Input{InputModel: bytesInput(out[OutputModel], ""), InputData: bytesInput([]byte("a,b\nNaN,\n3,1\n"), CSV)}, OutputPredictions)
	if res.Rows != 2 || !strings.HasPrefix(string(pout[OutputPredictions]), "a,b,prediction\nNaN,,") {
		t.Fatalf("predictions:\n%s", pout[OutputPredictions])
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
