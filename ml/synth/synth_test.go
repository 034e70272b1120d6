package synth

import (
	"math"
	"testing"
)

func TestRegressionDeterministicAndInRange(t *testing.T) {
	x1, y1 := Regression(1000, 20, 7)
	x2, y2 := Regression(1000, 20, 7)
	x3, _ := Regression(1000, 20, 8)
	same := func(a, b []float32) bool {
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				return false
			}
		}
		return len(a) == len(b)
	}
	if !same(x1, x2) || !same(y1, y2) {
		t.Fatal("same seed, different data")
	}
	if same(x1, x3) {
		t.Fatal("different seeds, same data")
	}
	var mean float64
	for _, v := range x1 {
		if v < 0 || v >= 1 {
			t.Fatalf("feature %v outside [0, 1)", v)
		}
		mean += float64(v)
	}
	mean /= float64(len(x1))
	if math.Abs(mean-0.5) > 0.01 {
		t.Fatalf("feature mean %v, want about 0.5", mean)
	}
	// Label: mean of Σ (j+1)/20·0.5 = 5.25, + 4·0.25 + 2·0.5 + E[sin(6U)] ≈ 0.16 → about 7.4.
	var ym float64
	for _, v := range y1 {
		ym += float64(v)
	}
	ym /= float64(len(y1))
	if math.Abs(ym-7.4) > 0.2 {
		t.Fatalf("label mean %v, want about 7.4", ym)
	}
}
