// Package model is the serving side's model registry: models by name and version, their
// tensor metadata, request checking against that metadata, and dynamic batching. The
// protocols (KServe v2 REST and gRPC, Cluster Serving's queue and HTTP frontend) all call
// Entry.Infer; backends (package serve/model/tabular for ppml's XGBoost and linear models)
// implement Model.
package model

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ppml/ppml/serve/tensor"
)

// TensorSpec describes one input or output: its name, datatype and shape, where -1 marks a
// dimension of any size.
type TensorSpec struct {
	Name     string          `json:"name"`
	DataType tensor.DataType `json:"datatype"`
	Shape    []int64         `json:"shape"`
}

// Metadata describes a loaded model.
type Metadata struct {
	Name     string
	Version  string
	Platform string
	Inputs   []TensorSpec
	Outputs  []TensorSpec
	// Features names the columns of a tabular model's input, in order (Cluster Serving
	// records may send one column per feature).
	Features []string
	// Batchable says the first dimension of every input and output is the batch: requests
	// may be joined along it and the outputs split back.
	Batchable bool
}

// Model is a loaded model. Predict receives inputs in Metadata().Inputs order, already
// checked against the metadata, and returns outputs in Metadata().Outputs order. It must be
// safe for concurrent use.
type Model interface {
	Metadata() Metadata
	Predict(ctx context.Context, inputs []tensor.Tensor) ([]tensor.Tensor, error)
	Close() error
}

// Error kinds the protocols map to their status codes.
var (
	// ErrNotFound: no such model or version (HTTP 404, gRPC NOT_FOUND).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request does not fit the model (HTTP 400, gRPC INVALID_ARGUMENT).
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the server is draining or the model not ready (HTTP 503, gRPC UNAVAILABLE).
	ErrUnavailable = errors.New("unavailable")
)

// kindError carries an error kind with its message.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func invalid(format string, args ...any) error {
	return &kindError{ErrInvalid, fmt.Sprintf(format, args...)}
}

// NotFound is a not-found error with a message.
func NotFound(format string, args ...any) error {
	return &kindError{ErrNotFound, fmt.Sprintf(format, args...)}
}

// Unavailable is an unavailable error with a message.
func Unavailable(format string, args ...any) error {
	return &kindError{ErrUnavailable, fmt.Sprintf(format, args...)}
}

// CheckInputs matches a request's tensors to the model's inputs by name, checks datatypes and
// shapes, and returns them in metadata order. Every input is required; unknown names are an
// error.
func CheckInputs(md *Metadata, in []tensor.Tensor) ([]tensor.Tensor, error) {
	out := make([]tensor.Tensor, len(md.Inputs))
	seen := make([]bool, len(md.Inputs))
	for _, t := range in {
		i := slices.IndexFunc(md.Inputs, func(s TensorSpec) bool { return s.Name == t.Name })
		if i < 0 {
			return nil, invalid("model %q has no input %q (inputs: %s)", md.Name, tensor.Clip(t.Name), specNames(md.Inputs))
		}
		if seen[i] {
			return nil, invalid("input %q is given twice", tensor.Clip(t.Name))
		}
		seen[i] = true
		s := md.Inputs[i]
		if t.DataType != s.DataType {
			return nil, invalid("input %q: datatype %s, model %q expects %s", s.Name, t.DataType, md.Name, s.DataType)
		}
		if !ShapeFits(s.Shape, t.Shape) {
			return nil, invalid("input %q: shape %v, model %q expects %v (-1: any size)", s.Name, t.Shape, md.Name, s.Shape)
		}
		if err := t.Validate(); err != nil {
			return nil, &kindError{ErrInvalid, err.Error()}
		}
		out[i] = t
	}
	for i, ok := range seen {
		if !ok {
			return nil, invalid("input %q is missing (model %q takes %s)", md.Inputs[i].Name, md.Name, specNames(md.Inputs))
		}
	}
	if md.Batchable && len(out) > 1 {
		for _, t := range out[1:] {
			if t.Shape[0] != out[0].Shape[0] {
				return nil, invalid("inputs %q and %q have different batch sizes (%d and %d)", out[0].Name, t.Name, out[0].Shape[0], t.Shape[0])
			}
		}
	}
	return out, nil
}

// ShapeFits reports whether shape matches spec (same rank; equal where spec is not -1).
func ShapeFits(spec, shape []int64) bool {
	if len(spec) != len(shape) {
		return false
	}
	for i, d := range spec {
		if d != -1 && d != shape[i] {
			return false
		}
	}
	return true
}

func specNames(s []TensorSpec) string {
	names := ""
	for i, t := range s {
		if i > 0 {
			names += ", "
		}
		names += fmt.Sprintf("%q", t.Name)
	}
	return names
}
