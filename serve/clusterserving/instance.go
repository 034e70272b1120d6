// Package clusterserving speaks BigDL 2.x Cluster Serving's data formats: a request record's
// Arrow IPC stream (one RecordBatch, one column per input: ndarrays as the struct
// {indiceData, indiceShape, data, shape}, strings, base64 images), the JSON instances its
// HTTP frontend takes, and the Arrow result stream ({data: float32, shape: int32} per output
// tensor). Packages queue and frontend below it carry these over Redis and HTTP.
//
// A decoded request is an Instance: named values in the order the client wrote them.
// ToInputs maps an instance onto a model's inputs.
package clusterserving

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

// Instance is one request: its values by name, in order. Numeric values are FP32, FP64,
// INT32 or INT64 tensors; strings are BYTES tensors (a string with "|" is split into
// elements, as Cluster Serving does; any other string is a base64 image and holds the
// decoded bytes).
type Instance []tensor.Tensor

// MaxDenseElements bounds the dense size of a sparse tensor a client sends.
const MaxDenseElements = 1 << 24

// stringValue turns a Cluster Serving string value into a BYTES tensor.
func stringValue(name, s string) (tensor.Tensor, error) {
	if strings.Contains(s, "|") {
		parts := strings.Split(s, "|")
		t := tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: []int64{int64(len(parts))}}
		for _, p := range parts {
			t.Bytes = append(t.Bytes, []byte(p))
		}
		return t, nil
	}
	img, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("value %q is a string without \"|\", so an image, but not base64: %v", tensor.Clip(name), err)
	}
	return tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: []int64{1}, Bytes: [][]byte{img}}, nil
}

// densify builds a dense FP32 tensor from a sparse one: indices holds rank rows of nnz
// zero-based coordinates (row d: the coordinates along dimension d).
func densify(name string, shape []int64, values []float32, indices []int64, rank, nnz int) (tensor.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil || n > MaxDenseElements {
		return tensor.Tensor{}, fmt.Errorf("sparse tensor %q: shape %v is too large or invalid", tensor.Clip(name), shape)
	}
	if rank != len(shape) || nnz != len(values) || len(indices) != rank*nnz {
		return tensor.Tensor{}, fmt.Errorf("sparse tensor %q: %d indices as %d×%d for %d values of a rank-%d shape", tensor.Clip(name), len(indices), rank, nnz, len(values), len(shape))
	}
	t := tensor.Tensor{Name: name, DataType: tensor.FP32, Shape: shape, F32: make([]float32, n)}
	for k := range nnz {
		off := 0
		for d := range rank {
			i := indices[d*nnz+k]
			if i < 0 || i >= shape[d] {
				return tensor.Tensor{}, fmt.Errorf("sparse tensor %q: value %d has index %d outside dimension %d of size %d", tensor.Clip(name), k, i, d, shape[d])
			}
			off = off*int(shape[d]) + int(i)
		}
		t.F32[off] = values[k]
	}
	return t, nil
}

// Batched reports how an instance became model rows: true when the client sent a matrix of
// rows (results keep the batch dimension), false for a single row (results drop it, as
// Cluster Serving returns one record's slice of the batch).
type Batched bool

// ToInputs maps an instance onto a model's inputs.
//
// A tabular model (one input of shape [-1, features], with feature names) takes either one
// numeric value of features elements (shape [features], one row, or [rows, features]), or
// one numeric scalar per feature, named by the features. Any other model takes one value per
// input, by name, each the input's shape without its batch dimension (one row) or with it.
func ToInputs(md *model.Metadata, inst Instance) ([]tensor.Tensor, Batched, error) {
	if len(inst) == 0 {
		return nil, false, errors.New("the record has no values")
	}
	if len(md.Inputs) == 1 && len(md.Features) > 0 && len(md.Inputs[0].Shape) == 2 {
		return tabularInputs(md, inst)
	}
	out := make([]tensor.Tensor, len(md.Inputs))
	batched := Batched(false)
	for i, spec := range md.Inputs {
		j := slices.IndexFunc(inst, func(t tensor.Tensor) bool { return t.Name == spec.Name })
		if j < 0 {
			return nil, false, fmt.Errorf("the record has no value %q (model %q takes %s)", spec.Name, md.Name, inputNames(md))
		}
		t, err := convert(inst[j], spec.DataType)
		if err != nil {
			return nil, false, err
		}
		switch {
		case md.Batchable && model.ShapeFits(spec.Shape[1:], t.Shape):
			t.Shape = append([]int64{1}, t.Shape...)
		case model.ShapeFits(spec.Shape, t.Shape):
			batched = true
		default:
			return nil, false, fmt.Errorf("value %q: shape %v, model %q takes %v", spec.Name, t.Shape, md.Name, spec.Shape)
		}
		out[i] = t
	}
	if len(inst) > len(md.Inputs) {
		for _, t := range inst {
			if !slices.ContainsFunc(md.Inputs, func(s model.TensorSpec) bool { return s.Name == t.Name }) {
				return nil, false, fmt.Errorf("the record has a value %q, model %q takes %s", tensor.Clip(t.Name), md.Name, inputNames(md))
			}
		}
	}
	return out, batched, nil
}

func tabularInputs(md *model.Metadata, inst Instance) ([]tensor.Tensor, Batched, error) {
	spec := md.Inputs[0]
	f := int64(len(md.Features))
	if len(inst) == 1 && !slices.Contains(md.Features, inst[0].Name) {
		t, err := convert(inst[0], spec.DataType)
		if err != nil {
			return nil, false, err
		}
		switch {
		case len(t.Shape) == 1 && t.Shape[0] == f:
			t.Shape = []int64{1, f}
			t.Name = spec.Name
			return []tensor.Tensor{t}, false, nil
		case len(t.Shape) == 2 && t.Shape[1] == f:
			t.Name = spec.Name
			return []tensor.Tensor{t}, true, nil
		}
		return nil, false, fmt.Errorf("value %q: shape %v; model %q takes %d features per row (shape [%d] or [rows, %d]) or one value per feature by name", tensor.Clip(inst[0].Name), t.Shape, md.Name, f, f, f)
	}
	row := tensor.Tensor{Name: spec.Name, DataType: spec.DataType, Shape: []int64{1, f}}
	vals := make([]float64, f)
	seen := make([]bool, f)
	for _, t := range inst {
		j := slices.Index(md.Features, t.Name)
		if j < 0 {
			return nil, false, fmt.Errorf("value %q is not a feature of model %q", tensor.Clip(t.Name), md.Name)
		}
		if t.Len() != 1 || t.DataType == tensor.Bytes {
			return nil, false, fmt.Errorf("feature %q: one number per feature, got %s%v", t.Name, t.DataType, t.Shape)
		}
		v, _ := t.Float64(0)
		vals[j], seen[j] = v, true
	}
	for j, ok := range seen {
		if !ok {
			return nil, false, fmt.Errorf("feature %q is missing (model %q takes %d features)", md.Features[j], md.Name, f)
		}
	}
	if spec.DataType == tensor.FP64 {
		row.F64 = vals
	} else {
		row.F32 = make([]float32, f)
		for j, v := range vals {
			row.F32[j] = float32(v)
		}
	}
	return []tensor.Tensor{row}, false, nil
}

func inputNames(md *model.Metadata) string {
	var s []string
	for _, in := range md.Inputs {
		s = append(s, fmt.Sprintf("%q", in.Name))
	}
	return strings.Join(s, ", ")
}

// convert turns a numeric value into the datatype a model input needs (Cluster Serving's
// clients send float32 whatever the model takes).
func convert(t tensor.Tensor, dt tensor.DataType) (tensor.Tensor, error) {
	if t.DataType == dt {
		return t, nil
	}
	if t.DataType == tensor.Bytes || dt == tensor.Bytes {
		return t, fmt.Errorf("value %q is %s, the model takes %s", tensor.Clip(t.Name), t.DataType, dt)
	}
	out := tensor.Tensor{Name: t.Name, DataType: dt, Shape: t.Shape}
	n := t.Len()
	switch dt {
	case tensor.FP32:
		out.F32 = make([]float32, n)
		for i := range n {
			v, _ := t.Float64(i)
			out.F32[i] = float32(v)
		}
	case tensor.FP64:
		out.F64 = make([]float64, n)
		for i := range n {
			out.F64[i], _ = t.Float64(i)
		}
	default:
		return t, fmt.Errorf("value %q is %s, the model takes %s", tensor.Clip(t.Name), t.DataType, dt)
	}
	return out, nil
}
