package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.17g, want %.17g (±%g)", name, got, want, tol)
	}
}

func TestRegressionHandComputed(t *testing.T) {
	y := []float64{3, -0.5, 2, 7}
	p := []float64{2.5, 0.0, 2, 8}
	// errors 0.5, -0.5, 0, -1: squares sum 1.5, abs sum 2; ȳ = 2.875, Σ(y−ȳ)² = 29.1875.
	r, err := EvaluateRegression(y, p)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "RMSE", r.RMSE, math.Sqrt(1.5/4), 1e-15)
	near(t, "MAE", r.MAE, 0.5, 1e-15)
	near(t, "R2", r.R2, 1-1.5/29.1875, 1e-15)
	if _, err := R2([]float64{1, 1}, []float64{1, 2}); err == nil {
		t.Error("R2 of a constant label succeeded")
	}
	if _, err := RMSE([]float64{1}, []float64{1, 2}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := RMSE(nil, nil); err == nil {
		t.Error("empty input accepted")
	}
}

func TestClassificationHandComputed(t *testing.T) {
	// Scores with ties across classes. Pairs (pos, neg): positives {0.8, 0.4, 0.4}, negatives
	// {0.4, 0.1}: 0.8 beats both (2), each 0.4 ties one and beats one (1.5 + 1.5) → 5 of 6.
	y := []float64{1, 1, 1, 0, 0}
	s := []float64{0.8, 0.4, 0.4, 0.4, 0.1}
	auc, err := AUC(y, s)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "AUC", auc, 5.0/6, 1e-15)
	// All tied → 0.5.
	auc, _ = AUC([]float64{0, 1, 0, 1}, []float64{3, 3, 3, 3})
	near(t, "AUC all tied", auc, 0.5, 0)
	if _, err := AUC([]float64{1, 1}, []float64{0.1, 0.2}); err == nil {
		t.Error("AUC with one class succeeded")
	}

	c, err := EvaluateBinary(y, s)
	if err != nil {
		t.Fatal(err)
	}
	// Predicted: 1, 0, 0, 0, 0 (threshold 0.5).
	if !slices.EqualFunc(c.Confusion, [][]int{{2, 0}, {2, 1}}, slices.Equal) {
		t.Errorf("confusion %v", c.Confusion)
	}
	near(t, "accuracy", c.Accuracy, 3.0/5, 1e-15)
	ll := -(math.Log(0.8) + 2*math.Log(0.4) + math.Log(0.6) + math.Log(0.9)) / 5
	near(t, "log-loss", c.LogLoss, ll, 1e-15)

	// Clipping: a confident wrong answer costs −log(1e-15), not +Inf.
	l, _ := LogLoss([]float64{1}, []float64{0})
	near(t, "clipped log-loss", l, -math.Log(Eps), 1e-12)

	m, err := EvaluateMulticlass([]float64{0, 2, 1}, []float64{
		0.7, 0.2, 0.1,
		0.3, 0.3, 0.4,
		0.5, 0.5, 0.0, // tie: lowest index wins → predicted 0
	}, 3)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "multi accuracy", m.Accuracy, 2.0/3, 1e-15)
	near(t, "multi log-loss", m.LogLoss, -(math.Log(0.7)+math.Log(0.4)+math.Log(0.5))/3, 1e-15)
	if !slices.EqualFunc(m.Confusion, [][]int{{1, 0, 0}, {1, 0, 0}, {0, 0, 1}}, slices.Equal) {
		t.Errorf("multi confusion %v", m.Confusion)
	}
	if _, err := Confusion([]float64{0.5}, []float64{0}, 2); err == nil {
		t.Error("fractional class accepted")
	}
}

// TestAgainstNumpy compares with an independent implementation in Python/numpy: AUC there is the
// O(n²) pairwise definition, not ranks.
func TestAgainstNumpy(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("no /usr/bin/python3 (make deps installs python3-numpy)")
	}
	r := rand.New(rand.NewPCG(1, 2))
	n := 400
	y := make([]float64, n)
	score := make([]float64, n)
	reg := make([]float64, n)
	for i := range y {
		if r.Float64() < 0.4 {
			y[i] = 1
		}
		// Rounded to one decimal so many scores tie, within and across classes.
		score[i] = math.Round((0.3*y[i]+0.7*r.Float64())*10) / 10
		reg[i] = y[i]*3 + r.NormFloat64()
	}
	in, _ := json.Marshal(map[string][]float64{"y": y, "s": score, "r": reg})
	path := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(path, in, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys, numpy as np
d = json.load(open(sys.argv[1]))
y, s, r = np.array(d["y"]), np.array(d["s"]), np.array(d["r"])
pos, neg = s[y == 1], s[y == 0]
cmp = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
p = np.clip(s, 1e-15, 1 - 1e-15)
out = {
  "auc": cmp.mean(),
  "logloss": -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
  "acc": np.mean((s >= 0.5) == (y == 1)),
  "rmse": np.sqrt(np.mean((y - r) ** 2)),
  "mae": np.mean(np.abs(y - r)),
  "r2": 1 - np.sum((y - r) ** 2) / np.sum((y - y.mean()) ** 2),
}
print(json.dumps({k: float(v).hex() for k, v in out.items()}))
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, path).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var hex map[string]string
	if err := json.Unmarshal(out, &hex); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	want := map[string]float64{}
	for k, h := range hex {
		v, err := parseHexFloat(h)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		want[k] = v
	}
	c, err := EvaluateBinary(y, score)
	if err != nil {
		t.Fatal(err)
	}
	g, err := EvaluateRegression(y, reg)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "AUC", *c.AUC, want["auc"], 1e-12)
	near(t, "log-loss", c.LogLoss, want["logloss"], 1e-12)
	near(t, "accuracy", c.Accuracy, want["acc"], 1e-15)
	near(t, "RMSE", g.RMSE, want["rmse"], 1e-12)
	near(t, "MAE", g.MAE, want["mae"], 1e-12)
	near(t, "R2", g.R2, want["r2"], 1e-12)
}

// parseHexFloat reads Python's float.hex() ("0x1.8000000000000p+1"), which Go parses directly.
func parseHexFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
