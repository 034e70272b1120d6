// Package tabular serves ppml's tabular models — XGBoost (gradient-boosted trees and random
// forests) and linear and logistic regression, as the ml engine writes them
// (docs/formats/ml-model.md) — through the serving model interface.
//
// A model takes one input, "input", of shape [-1, features] (FP32 for XGBoost, FP64 for
// linear models, which compute in float64), NaN marking a missing value where XGBoost allows
// one. Its outputs are, by objective:
//
//	regression   "prediction"   [-1]     the predicted value
//	binary       "probability"  [-1]     the probability of class 1
//	             "prediction"   [-1]     INT64, 1 when the probability is at least 0.5
//	multiclass   "probability"  [-1, k]  the class probabilities
//	             "prediction"   [-1]     INT64, the most probable class
package tabular

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/ppml/ppml/engine/ml/mlspec"
	"github.com/ppml/ppml/ml/linear"
	"github.com/ppml/ppml/ml/modelfile"
	"github.com/ppml/ppml/ml/table"
	"github.com/ppml/ppml/ml/xgboost"
	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

func init() {
	model.RegisterBackend(model.Backend{
		Name: "tabular",
		// Every file that is not a zip archive: DecodeModel's errors then say what a tabular
		// model file is.
		Detect: func(b []byte) bool { return !bytes.HasPrefix(b, []byte("PK\x03\x04")) },
		Load: func(b []byte, opt model.LoadOptions) (model.Model, error) {
			m, err := Load(b, Options{Name: opt.Name, Version: opt.Version, Threads: opt.Threads})
			if err != nil {
				return nil, err
			}
			return m, nil
		},
	})
}

// InputName is the name of a tabular model's only input.
const InputName = "input"

// Options name the served model and size its worker pool.
type Options struct {
	Name, Version string
	// Threads is the number of predictions that run at once (XGBoost boosters loaded, each
	// single-threaded). ≤ 0: GOMAXPROCS.
	Threads int
	// LibXGBoost serves an XGBoost model with libxgboost even when the Go evaluator could
	// take it: the baseline benchmarks measure the evaluator against.
	LibXGBoost bool
}

// Model is a loaded tabular model.
type Model struct {
	meta    model.Metadata
	wrapper *modelfile.Model
	// XGBoost models predict with eval (Go, bit-identical to libxgboost, checked at load);
	// a model eval cannot take is served by libxgboost, one booster per concurrent
	// prediction from pool, and evalErr says why.
	eval    *xgboost.Evaluator
	evalErr error
	pool    chan *xgboost.Booster
	lin     *linear.Model
}

// Load decodes a model file (a ppml model, a bare XGBoost JSON model with feature names or
// a ppml linear model) from memory and prepares it for serving.
func Load(modelFile []byte, opt Options) (*Model, error) {
	w, err := modelfile.DecodeModel(modelFile)
	if err != nil {
		return nil, err
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	m := &Model{wrapper: w}
	m.meta = model.Metadata{Name: opt.Name, Version: opt.Version, Features: w.Features, Batchable: true}
	f := int64(len(w.Features))
	out := tensor.FP32
	switch w.Algorithm {
	case mlspec.XGBoost, mlspec.RandomForest:
		m.meta.Platform = "xgboost"
		m.meta.Inputs = []model.TensorSpec{{Name: InputName, DataType: tensor.FP32, Shape: []int64{-1, f}}}
		// libxgboost loads the model first: what it refuses is refused, and the Go evaluator
		// is compiled from the model as XGBoost holds it and checked against it.
		b, err := xgboost.LoadJSON(w.Inner, 1)
		if err != nil {
			return nil, err
		}
		if opt.LibXGBoost {
			m.evalErr = errors.New("libxgboost requested")
		} else if m.eval, m.evalErr = xgboost.NewEvaluator(b); m.evalErr == nil {
			b.Close()
			break
		}
		m.pool = make(chan *xgboost.Booster, threads)
		m.pool <- b
		for range threads - 1 {
			b, err := xgboost.LoadJSON(w.Inner, 1)
			if err != nil {
				m.Close()
				return nil, err
			}
			m.pool <- b
		}
	default:
		m.meta.Platform = "ppml_linear"
		m.meta.Inputs = []model.TensorSpec{{Name: InputName, DataType: tensor.FP64, Shape: []int64{-1, f}}}
		if m.lin, err = linear.Decode(w.Inner); err != nil {
			return nil, err
		}
		out = tensor.FP64
	}
	switch w.Objective {
	case mlspec.Regression:
		m.meta.Outputs = []model.TensorSpec{{Name: "prediction", DataType: out, Shape: []int64{-1}}}
	case mlspec.Binary:
		m.meta.Outputs = []model.TensorSpec{{Name: "probability", DataType: out, Shape: []int64{-1}},
			{Name: "prediction", DataType: tensor.Int64, Shape: []int64{-1}}}
	case mlspec.Multiclass:
		m.meta.Outputs = []model.TensorSpec{{Name: "probability", DataType: out, Shape: []int64{-1, int64(w.Classes)}},
			{Name: "prediction", DataType: tensor.Int64, Shape: []int64{-1}}}
	}
	return m, nil
}

// Metadata describes the model.
func (m *Model) Metadata() model.Metadata { return m.meta }

// Predictor says what computes an XGBoost model's predictions: "go" (the Go evaluator), or
// "libxgboost" and why the evaluator could not take the model; "" for linear models.
func (m *Model) Predictor() string {
	switch {
	case m.eval != nil:
		return "go"
	case m.pool != nil:
		return "libxgboost (" + m.evalErr.Error() + ")"
	}
	return ""
}

// Wrapper is the decoded model file (algorithm, objective, features, metrics).
func (m *Model) Wrapper() *modelfile.Model { return m.wrapper }

// Close frees the boosters.
func (m *Model) Close() error {
	if m.pool == nil {
		return nil
	}
	var first error
	for range cap(m.pool) {
		select {
		case b := <-m.pool:
			if err := b.Close(); err != nil && first == nil {
				first = err
			}
		default:
		}
	}
	return first
}

// Predict runs the model on in[0], a [rows, features] tensor.
func (m *Model) Predict(ctx context.Context, in []tensor.Tensor) ([]tensor.Tensor, error) {
	x := in[0]
	rows, cols := int(x.Shape[0]), int(x.Shape[1])
	if rows == 0 {
		return m.outputs(0, nil, nil)
	}
	if m.lin != nil {
		return m.predictLinear(x, rows, cols)
	}
	if m.eval != nil {
		p, err := m.eval.Predict(x.F32, rows, cols)
		if err != nil {
			return nil, fmt.Errorf("%w: input %q: %v", model.ErrInvalid, InputName, err)
		}
		return m.outputs(rows, p.Values, nil)
	}
	var b *xgboost.Booster
	select {
	case b = <-m.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { m.pool <- b }()
	d, err := xgboost.NewDMatrix(x.F32, rows, cols, 1)
	if err != nil {
		return nil, fmt.Errorf("%w: input %q: %v", model.ErrInvalid, InputName, err)
	}
	defer d.Close()
	p, err := b.Predict(d)
	if err != nil {
		return nil, err
	}
	return m.outputs(rows, p.Values, nil)
}

func (m *Model) predictLinear(x tensor.Tensor, rows, cols int) ([]tensor.Tensor, error) {
	columns := make([][]float64, cols)
	for j := range columns {
		columns[j] = make([]float64, rows)
		for i := range rows {
			columns[j][i] = x.F64[i*cols+j]
		}
	}
	t, err := table.New(m.lin.Features, columns)
	if err != nil {
		return nil, err
	}
	v, err := m.lin.Predict(t)
	if err != nil {
		return nil, fmt.Errorf("%w: input %q: %v", model.ErrInvalid, InputName, err)
	}
	return m.outputs(rows, nil, v)
}

// outputs builds the output tensors from XGBoost's float32 values or a linear model's
// float64 values.
func (m *Model) outputs(rows int, v32 []float32, v64 []float64) ([]tensor.Tensor, error) {
	k := 1
	if m.wrapper.Objective == mlspec.Multiclass {
		k = m.wrapper.Classes
	}
	n := len(v32) + len(v64)
	if n != rows*k {
		return nil, fmt.Errorf("model returned %d values for %d rows", n, rows)
	}
	first := tensor.Tensor{Name: m.meta.Outputs[0].Name, DataType: m.meta.Outputs[0].DataType, Shape: []int64{int64(rows)}}
	if k > 1 {
		first.Shape = append(first.Shape, int64(k))
	}
	if m.lin != nil {
		first.F64 = v64
	} else {
		first.F32 = v32
	}
	if m.wrapper.Objective == mlspec.Regression {
		return []tensor.Tensor{first}, nil
	}
	val := func(i int) float64 {
		if v64 != nil {
			return v64[i]
		}
		return float64(v32[i])
	}
	labels := make([]int64, rows)
	for i := range rows {
		if k == 1 {
			if val(i) >= 0.5 {
				labels[i] = 1
			}
			continue
		}
		best := 0
		for c := 1; c < k; c++ {
			if val(i*k+c) > val(i*k+best) {
				best = c
			}
		}
		labels[i] = int64(best)
	}
	return []tensor.Tensor{first, {Name: "prediction", DataType: tensor.Int64, Shape: []int64{int64(rows)}, Ints: labels}}, nil
}
