// Package metrics evaluates regression and classification predictions.
//
// Definitions (n rows, y true values, p predictions):
//
//	RMSE      sqrt(Σ(y−p)²/n)
//	MAE       Σ|y−p|/n
//	R²        1 − Σ(y−p)²/Σ(y−ȳ)²            (undefined, an error, when y is constant)
//	accuracy  share of rows whose predicted class equals the true class
//	AUC       area under the ROC curve = P(score of a random positive > score of a random
//	          negative) + ½·P(equal); computed from average ranks, so ties count one half
//	log-loss  −Σ log(p of the true class)/n, with p clipped to [1e-15, 1−1e-15]
//	confusion counts[true][predicted]
package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Eps is the log-loss clipping bound (as scikit-learn's default).
const Eps = 1e-15

func check(y, p []float64) error {
	if len(y) == 0 {
		return errors.New("metrics: no rows")
	}
	if len(y) != len(p) {
		return fmt.Errorf("metrics: %d labels for %d predictions", len(y), len(p))
	}
	for i := range y {
		if math.IsNaN(y[i]) || math.IsNaN(p[i]) {
			return fmt.Errorf("metrics: row %d: label or prediction is NaN", i+1)
		}
	}
	return nil
}

// RMSE is the root mean squared error.
func RMSE(y, p []float64) (float64, error) {
	if err := check(y, p); err != nil {
		return 0, err
	}
	var s float64
	for i := range y {
		d := y[i] - p[i]
		s += d * d
	}
	return math.Sqrt(s / float64(len(y))), nil
}

// MAE is the mean absolute error.
func MAE(y, p []float64) (float64, error) {
	if err := check(y, p); err != nil {
		return 0, err
	}
	var s float64
	for i := range y {
		s += math.Abs(y[i] - p[i])
	}
	return s / float64(len(y)), nil
}

// R2 is the coefficient of determination.
func R2(y, p []float64) (float64, error) {
	if err := check(y, p); err != nil {
		return 0, err
	}
	var mean float64
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	var res, tot float64
	for i := range y {
		res += (y[i] - p[i]) * (y[i] - p[i])
		tot += (y[i] - mean) * (y[i] - mean)
	}
	if tot == 0 {
		return 0, errors.New("metrics: R² is undefined for a constant label")
	}
	return 1 - res/tot, nil
}

// classOf checks that a label is a class index 0..k-1.
func classOf(v float64, k, row int) (int, error) {
	c := int(v)
	if float64(c) != v || c < 0 || c >= k {
		return 0, fmt.Errorf("metrics: row %d: label %v is not a class in 0..%d", row, v, k-1)
	}
	return c, nil
}

// Accuracy is the share of rows with pred equal to y (both class indices).
func Accuracy(y, pred []float64) (float64, error) {
	if err := check(y, pred); err != nil {
		return 0, err
	}
	var ok int
	for i := range y {
		if y[i] == pred[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(y)), nil
}

// AUC is the ROC AUC of scores for binary labels 0/1.
func AUC(y, score []float64) (float64, error) {
	if err := check(y, score); err != nil {
		return 0, err
	}
	idx := make([]int, len(y))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] < score[idx[b]] })
	// Mann–Whitney U: sum of the positives' ranks, tied scores sharing their average rank.
	var rankSum float64
	var pos, neg int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			j++
		}
		avg := float64(i+1+j) / 2 // ranks i+1 … j
		for _, r := range idx[i:j] {
			c, err := classOf(y[r], 2, r+1)
			if err != nil {
				return 0, err
			}
			if c == 1 {
				rankSum += avg
				pos++
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0, errors.New("metrics: AUC needs both classes among the labels")
	}
	fp := float64(pos)
	return (rankSum - fp*(fp+1)/2) / (fp * float64(neg)), nil
}

// LogLoss is the binary log-loss of probabilities p of class 1.
func LogLoss(y, p []float64) (float64, error) {
	if err := check(y, p); err != nil {
		return 0, err
	}
	var s float64
	for i := range y {
		c, err := classOf(y[i], 2, i+1)
		if err != nil {
			return 0, err
		}
		q := clip(p[i])
		if c == 1 {
			s -= math.Log(q)
		} else {
			s -= math.Log(1 - q)
		}
	}
	return s / float64(len(y)), nil
}

// MultiLogLoss is the log-loss of a row-major n×k matrix of class probabilities.
func MultiLogLoss(y, probs []float64, k int) (float64, error) {
	if k < 2 || len(probs) != len(y)*k {
		return 0, fmt.Errorf("metrics: %d probabilities for %d rows × %d classes", len(probs), len(y), k)
	}
	if len(y) == 0 {
		return 0, errors.New("metrics: no rows")
	}
	var s float64
	for i := range y {
		c, err := classOf(y[i], k, i+1)
		if err != nil {
			return 0, err
		}
		q := probs[i*k+c]
		if math.IsNaN(q) {
			return 0, fmt.Errorf("metrics: row %d: probability is NaN", i+1)
		}
		s -= math.Log(clip(q))
	}
	return s / float64(len(y)), nil
}

func clip(p float64) float64 { return min(max(p, Eps), 1-Eps) }

// Confusion returns counts[true][predicted] for k classes.
func Confusion(y, pred []float64, k int) ([][]int, error) {
	if err := check(y, pred); err != nil {
		return nil, err
	}
	m := make([][]int, k)
	for i := range m {
		m[i] = make([]int, k)
	}
	for i := range y {
		a, err := classOf(y[i], k, i+1)
		if err != nil {
			return nil, err
		}
		b, err := classOf(pred[i], k, i+1)
		if err != nil {
			return nil, fmt.Errorf("prediction: %w", err)
		}
		m[a][b]++
	}
	return m, nil
}

// Regression holds the regression metrics, as written in evaluation reports.
type Regression struct {
	Rows int     `json:"rows"`
	RMSE float64 `json:"rmse"`
	MAE  float64 `json:"mae"`
	R2   float64 `json:"r2"`
}

// EvaluateRegression computes RMSE, MAE and R².
func EvaluateRegression(y, p []float64) (*Regression, error) {
	r := &Regression{Rows: len(y)}
	var err error
	if r.RMSE, err = RMSE(y, p); err != nil {
		return nil, err
	}
	if r.MAE, err = MAE(y, p); err != nil {
		return nil, err
	}
	if r.R2, err = R2(y, p); err != nil {
		return nil, err
	}
	return r, nil
}

// Classification holds the classification metrics, as written in evaluation reports.
// AUC is set for binary problems only.
type Classification struct {
	Rows      int      `json:"rows"`
	Classes   int      `json:"classes"`
	Accuracy  float64  `json:"accuracy"`
	AUC       *float64 `json:"auc,omitempty"`
	LogLoss   float64  `json:"log_loss"`
	Confusion [][]int  `json:"confusion"` // [true class][predicted class]
}

// EvaluateBinary evaluates probabilities of class 1; the predicted class is 1 when p ≥ 0.5.
func EvaluateBinary(y, p []float64) (*Classification, error) {
	pred := make([]float64, len(p))
	for i, v := range p {
		if v >= 0.5 {
			pred[i] = 1
		}
	}
	c := &Classification{Rows: len(y), Classes: 2}
	var err error
	if c.Confusion, err = Confusion(y, pred, 2); err != nil {
		return nil, err
	}
	if c.Accuracy, err = Accuracy(y, pred); err != nil {
		return nil, err
	}
	auc, err := AUC(y, p)
	if err != nil {
		return nil, err
	}
	c.AUC = &auc
	if c.LogLoss, err = LogLoss(y, p); err != nil {
		return nil, err
	}
	return c, nil
}

// EvaluateMulticlass evaluates a row-major n×k probability matrix; the predicted class is the
// most probable (the lowest index on ties).
func EvaluateMulticlass(y, probs []float64, k int) (*Classification, error) {
	if k < 2 || len(probs) != len(y)*k {
		return nil, fmt.Errorf("metrics: %d probabilities for %d rows × %d classes", len(probs), len(y), k)
	}
	pred := make([]float64, len(y))
	for i := range y {
		best := 0
		for c := 1; c < k; c++ {
			if probs[i*k+c] > probs[i*k+best] {
				best = c
			}
		}
		pred[i] = float64(best)
	}
	c := &Classification{Rows: len(y), Classes: k}
	var err error
	if c.Confusion, err = Confusion(y, pred, k); err != nil {
		return nil, err
	}
	if c.Accuracy, err = Accuracy(y, pred); err != nil {
		return nil, err
	}
	if c.LogLoss, err = MultiLogLoss(y, probs, k); err != nil {
		return nil, err
	}
	return c, nil
}
