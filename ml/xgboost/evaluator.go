package xgboost

/*
#cgo LDFLAGS: -lm
#include <math.h>

// The objectives' output transforms, written as XGBoost 1.7 computes them
// (src/common/math.h, src/objective/regression_loss.h) and compiled by the C compiler against
// the same libm, so that a prediction is the same float32, bit for bit: Go's math package
// rounds differently from glibc's expf/logf in rare cases.

static void ppml_sigmoid(float *v, long n) {
	for (long i = 0; i < n; i++) {
		float x = -v[i];
		if (x > 88.7f) x = 88.7f; // std::min(-x, 88.7f)
		float denom = expf(x) + 1.0f + 1e-16f;
		v[i] = 1.0f / denom;
	}
}

static void ppml_softmax(float *v, long rows, long k) {
	for (long r = 0; r < rows; r++) {
		float *p = v + r * k;
		float wmax = p[0];
		for (long i = 1; i < k; i++) wmax = fmaxf(p[i], wmax);
		double wsum = 0.0f;
		for (long i = 0; i < k; i++) {
			p[i] = expf(p[i] - wmax);
			wsum += p[i];
		}
		for (long i = 0; i < k; i++) p[i] /= (float)wsum;
	}
}

static float ppml_logit(float base) { return -logf(1.0f / base - 1.0f); }
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"unsafe"
)

// Evaluator predicts with a gradient-boosted tree model in Go, giving the same float32 values,
// bit for bit, as XGBoost 1.7's CPU predictor: the base margin plus each tree's leaf, in tree
// order, accumulated in float32; a split sends a value v left when v < threshold and right
// otherwise, a missing value (NaN) its learned default way; then the objective's transform.
//
// A one-row prediction through XGBoost's C API builds a DMatrix, a prediction cache entry and
// thread-local buffers, costing tens of microseconds; walking 100 trees of depth 6 is about
// 600 comparisons. The Evaluator is immutable and safe for concurrent use.
type Evaluator struct {
	objective string
	features  int
	groups    int     // output groups: classes for multi:*, else 1
	margin    float32 // base_score as a margin (the objective's ProbToMargin)
	nodes     []evalNode
	roots     []int32 // each tree's root index in nodes
	group     []int32 // each tree's output group
}

// evalNode is one tree node. For a leaf, left is -1 and value the leaf value; for a split,
// value is the threshold, right the left child plus one (XGBoost's predictor assumes that
// layout) and dflt where a missing value goes.
type evalNode struct {
	value   float32
	feature uint32
	left    int32
	dflt    int32
}

// NewEvaluator compiles the model a booster holds. It takes the model as XGBoost saves it, so
// every threshold and leaf is the float XGBoost parsed, not a re-parse of the original text,
// and then checks itself against the booster on probe rows built from the model's own
// thresholds (each side of every split, and missing values): an error means the model must be
// served by XGBoost.
func NewEvaluator(b *Booster) (*Evaluator, error) {
	model, err := b.SaveJSON()
	if err != nil {
		return nil, err
	}
	canon, _, err := ValidateModelJSON(model)
	if err != nil {
		return nil, fmt.Errorf("xgboost evaluator: the booster's own model: %w", err)
	}
	e, err := CompileJSON(canon)
	if err != nil {
		return nil, err
	}
	if err := e.Check(b, 512); err != nil {
		return nil, err
	}
	return e, nil
}

// JSON shapes of the fields prediction needs; the document has passed ValidateModelJSON.
type evalModel struct {
	Learner struct {
		Param struct {
			BaseScore string `json:"base_score"`
			NumClass  string `json:"num_class"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		Booster struct {
			Model struct {
				Trees    []evalTree `json:"trees"`
				TreeInfo []int32    `json:"tree_info"`
			} `json:"model"`
		} `json:"gradient_booster"`
	} `json:"learner"`
}

type evalTree struct {
	Left        []int32       `json:"left_children"`
	Right       []int32       `json:"right_children"`
	Split       []uint32      `json:"split_indices"`
	Conditions  []json.Number `json:"split_conditions"`
	DefaultLeft []int32       `json:"default_left"`
}

// CompileJSON compiles a model that ValidateModelJSON accepted (its canonical output). It
// reads numbers as XGBoost's JSON reader does: a literal without a fraction or exponent is an
// integer, which XGBoost refuses where it wants a float, and so does CompileJSON.
func CompileJSON(canon []byte) (*Evaluator, error) {
	_, info, err := ValidateModelJSON(canon)
	if err != nil {
		return nil, err
	}
	var m evalModel
	if err := json.Unmarshal(canon, &m); err != nil {
		return nil, fmt.Errorf("xgboost evaluator: %w", err)
	}
	l := &m.Learner
	e := &Evaluator{objective: l.Objective.Name, features: info.NumFeature, groups: max(info.NumClass, 1)}
	base, err := strconv.ParseFloat(l.Param.BaseScore, 32)
	if err != nil || !isFloatLiteral(l.Param.BaseScore) {
		return nil, fmt.Errorf("xgboost evaluator: base_score %q is not a float literal", l.Param.BaseScore)
	}
	switch e.objective {
	case "reg:squarederror", "reg:absoluteerror", "binary:logitraw", "multi:softprob", "multi:softmax":
		e.margin = float32(base)
	case "reg:logistic", "binary:logistic":
		if !(base > 0 && base < 1) {
			return nil, fmt.Errorf("xgboost evaluator: base_score %v must be in (0, 1) for %s", base, e.objective)
		}
		e.margin = float32(C.ppml_logit(C.float(base)))
	default:
		return nil, fmt.Errorf("xgboost evaluator: objective %q is not supported", e.objective)
	}
	trees := l.Booster.Model.Trees
	if len(l.Booster.Model.TreeInfo) != len(trees) {
		return nil, fmt.Errorf("xgboost evaluator: %d trees, %d tree_info entries", len(trees), len(l.Booster.Model.TreeInfo))
	}
	for t, tr := range trees {
		n := len(tr.Left)
		if len(tr.Right) != n || len(tr.Split) != n || len(tr.Conditions) != n || len(tr.DefaultLeft) != n {
			return nil, fmt.Errorf("xgboost evaluator: tree %d: node arrays of different lengths", t)
		}
		g := l.Booster.Model.TreeInfo[t]
		if g < 0 || int(g) >= e.groups {
			return nil, fmt.Errorf("xgboost evaluator: tree %d: output group %d of %d", t, g, e.groups)
		}
		root := int32(len(e.nodes))
		e.roots = append(e.roots, root)
		e.group = append(e.group, g)
		for i := range n {
			lit := string(tr.Conditions[i])
			v, err := strconv.ParseFloat(lit, 32)
			if err != nil || !isFloatLiteral(lit) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("xgboost evaluator: tree %d node %d: split_conditions entry is not a finite float literal", t, i)
			}
			nd := evalNode{value: float32(v), left: -1}
			if l, r := tr.Left[i], tr.Right[i]; l != -1 {
				if r != l+1 || int(r) >= n {
					return nil, fmt.Errorf("xgboost evaluator: tree %d node %d: right child %d is not left child %d + 1", t, i, r, l)
				}
				if int(tr.Split[i]) >= e.features {
					return nil, fmt.Errorf("xgboost evaluator: tree %d node %d: feature %d of %d", t, i, tr.Split[i], e.features)
				}
				nd.feature = tr.Split[i]
				nd.left = root + l
				nd.dflt = root + r
				if tr.DefaultLeft[i] == 1 {
					nd.dflt = root + l
				}
			}
			e.nodes = append(e.nodes, nd)
		}
	}
	return e, nil
}

// isFloatLiteral reports whether XGBoost's JSON reader reads s as a float (not an integer).
func isFloatLiteral(s string) bool { return strings.ContainsAny(s, ".eE") }

// Features is the number of features the model reads.
func (e *Evaluator) Features() int { return e.features }

// Predict predicts for rows × Features() values in row-major order, NaN marking a missing
// value, as Booster.Predict does for a DMatrix of the same values (same errors for infinite
// values and a wrong column count, same output shape).
func (e *Evaluator) Predict(data []float32, rows, cols int) (*Prediction, error) {
	if cols != e.features {
		return nil, fmt.Errorf("xgboost: model expects %d features, the data has %d", e.features, cols)
	}
	if err := checkMatrix(data, rows, cols); err != nil {
		return nil, err
	}
	k := e.groups
	out := make([]float32, rows*k)
	for i := range out {
		out[i] = e.margin
	}
	nodes := e.nodes
	for r := range rows {
		x := data[r*cols : (r+1)*cols]
		sum := out[r*k : (r+1)*k]
		for t, root := range e.roots {
			i := root
			for {
				n := &nodes[i]
				if n.left < 0 {
					sum[e.group[t]] += n.value
					break
				}
				v := x[n.feature]
				switch {
				case v != v: // missing
					i = n.dflt
				case v < n.value:
					i = n.left
				default:
					i = n.left + 1
				}
			}
		}
	}
	p := &Prediction{Values: out, Shape: []int{rows}}
	if rows == 0 {
		return p, nil
	}
	switch e.objective {
	case "reg:logistic", "binary:logistic":
		C.ppml_sigmoid((*C.float)(unsafe.Pointer(&out[0])), C.long(len(out)))
	case "multi:softprob":
		C.ppml_softmax((*C.float)(unsafe.Pointer(&out[0])), C.long(rows), C.long(k))
		p.Shape = []int{rows, k}
	case "multi:softmax":
		// FindMaxIndex: the first class with the largest margin.
		idx := make([]float32, rows)
		for r := range rows {
			best := 0
			for c := 1; c < k; c++ {
				if out[r*k+c] > out[r*k+best] {
					best = c
				}
			}
			idx[r] = float32(best)
		}
		p.Values = idx
	}
	return p, nil
}

// checkMatrix applies NewDMatrix's checks on dense data.
func checkMatrix(data []float32, rows, cols int) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("xgboost: matrix needs at least one row and one column, got %d×%d", rows, cols)
	}
	if len(data) != rows*cols {
		return fmt.Errorf("xgboost: matrix data has %d values, want %d×%d = %d", len(data), rows, cols, rows*cols)
	}
	for i, v := range data {
		if math.IsInf(float64(v), 0) {
			return fmt.Errorf("xgboost: row %d, column %d is %v; infinite feature values are not allowed", i/cols, i%cols, v)
		}
	}
	return nil
}

// ProbeRows builds n rows that exercise the model's splits: each feature takes, at random, one
// of its thresholds, the float just below one, a missing value, or a value beyond every
// threshold, so that both sides and the default way of many splits are taken.
func (e *Evaluator) ProbeRows(n int, seed uint64) []float32 {
	thresholds := make([][]float32, e.features)
	for _, nd := range e.nodes {
		if nd.left >= 0 {
			thresholds[nd.feature] = append(thresholds[nd.feature], nd.value)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	rows := make([]float32, n*e.features)
	for i := range rows {
		th := thresholds[i%e.features]
		switch c := rng.IntN(8); {
		case c == 0:
			rows[i] = float32(math.NaN())
		case len(th) == 0 || c == 1:
			rows[i] = float32(rng.NormFloat64() * 1e3)
		case c <= 4:
			rows[i] = th[rng.IntN(len(th))]
		default:
			rows[i] = math.Nextafter32(th[rng.IntN(len(th))], float32(math.Inf(-1)))
		}
	}
	return rows
}

// ErrMismatch is Check's error when the evaluator and XGBoost disagree (a bug to report; the
// model is then served by XGBoost).
var ErrMismatch = errors.New("xgboost evaluator: prediction differs from XGBoost's")

// Check compares the evaluator with a booster of the same model on n probe rows and reports
// the first prediction that differs in any bit.
func (e *Evaluator) Check(b *Booster, n int) error {
	rows := e.ProbeRows(n, 1)
	d, err := NewDMatrix(rows, n, e.features, 1)
	if err != nil {
		return err
	}
	defer d.Close()
	want, err := b.Predict(d)
	if err != nil {
		return err
	}
	got, err := e.Predict(rows, n, e.features)
	if err != nil {
		return err
	}
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) || len(got.Values) != len(want.Values) {
		return fmt.Errorf("%w: prediction shape %v, XGBoost's %v", ErrMismatch, got.Shape, want.Shape)
	}
	for i := range got.Values {
		if math.Float32bits(got.Values[i]) != math.Float32bits(want.Values[i]) {
			return fmt.Errorf("%w: probe value %d is %v, XGBoost's %v", ErrMismatch, i, got.Values[i], want.Values[i])
		}
	}
	return nil
}
