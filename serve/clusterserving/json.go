package clusterserving

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ppml/ppml/serve/tensor"
)

// MaxInstances bounds the instances of one JSON request.
const MaxInstances = 4096

// DecodeInstances reads Cluster Serving's JSON request, {"instances": [{name: value, ...},
// ...]}, keeping each instance's values in the order written. A value is a number, a
// (nested, rectangular) list of numbers or of strings, a string (split at "|", or a base64
// image), {"b64": image}, or a sparse tensor {"shape": [...], "data": [...], "indices":
// [[coordinates], ...]}. Errors name values and positions, never the data.
func DecodeInstances(body []byte) ([]Instance, error) {
	var req struct {
		Instances []json.RawMessage `json:"instances"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("not a JSON request object {\"instances\": [...]}: %v", scrub(err))
	}
	if dec.More() {
		return nil, errors.New("data after the JSON request object")
	}
	if len(req.Instances) == 0 {
		return nil, errors.New(`the request has no "instances"`)
	}
	if len(req.Instances) > MaxInstances {
		return nil, fmt.Errorf("the request has %d instances, more than %d", len(req.Instances), MaxInstances)
	}
	out := make([]Instance, len(req.Instances))
	for i, raw := range req.Instances {
		inst, err := decodeInstance(raw)
		if err != nil {
			return nil, fmt.Errorf("instance %d: %w", i, err)
		}
		out[i] = inst
	}
	return out, nil
}

// scrub keeps JSON syntax errors from quoting the request.
func scrub(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s where %s was expected", te.Value, te.Type)
	}
	return errors.New("invalid JSON")
}

func decodeInstance(raw json.RawMessage) (Instance, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errors.New("an instance is a JSON object of named values")
	}
	var inst Instance
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, scrub(err)
		}
		name := k.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("value %q: %v", tensor.Clip(name), scrub(err))
		}
		for _, t := range inst {
			if t.Name == name {
				return nil, fmt.Errorf("value %q appears twice", tensor.Clip(name))
			}
		}
		t, err := jsonValue(name, v)
		if err != nil {
			return nil, err
		}
		inst = append(inst, t)
	}
	return inst, nil
}

func jsonValue(name string, v json.RawMessage) (tensor.Tensor, error) {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return tensor.Tensor{}, fmt.Errorf("value %q is empty", tensor.Clip(name))
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return tensor.Tensor{}, fmt.Errorf("value %q: %v", tensor.Clip(name), scrub(err))
		}
		return stringValue(name, s)
	case v[0] == '{':
		return objectValue(name, v)
	case v[0] == '[':
		return listValue(name, v)
	}
	var x float64
	if err := json.Unmarshal(v, &x); err != nil {
		return tensor.Tensor{}, fmt.Errorf("value %q is not a number, list, string or object", tensor.Clip(name))
	}
	return tensor.Tensor{Name: name, DataType: tensor.FP64, Shape: []int64{1}, F64: []float64{x}}, nil
}

func objectValue(name string, v json.RawMessage) (tensor.Tensor, error) {
	var o struct {
		B64     *string   `json:"b64"`
		Shape   []int64   `json:"shape"`
		Data    []float32 `json:"data"`
		Indices [][]int64 `json:"indices"`
	}
	if err := json.Unmarshal(v, &o); err != nil {
		return tensor.Tensor{}, fmt.Errorf("value %q: %v", tensor.Clip(name), scrub(err))
	}
	if o.B64 != nil {
		img, err := base64.StdEncoding.DecodeString(*o.B64)
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("value %q: b64 is not base64", tensor.Clip(name))
		}
		return tensor.Tensor{Name: name, DataType: tensor.Bytes, Shape: []int64{1}, Bytes: [][]byte{img}}, nil
	}
	if o.Shape == nil || o.Indices == nil {
		return tensor.Tensor{}, fmt.Errorf("value %q: an object value is {\"b64\": image} or a sparse tensor {\"shape\", \"data\", \"indices\"}", tensor.Clip(name))
	}
	rank, nnz := len(o.Shape), len(o.Indices)
	// Every index is checked before rank×nnz coordinates are allocated: a long shape and a
	// long list of empty indices would otherwise ask for their product.
	for k, c := range o.Indices {
		if len(c) != rank {
			return tensor.Tensor{}, fmt.Errorf("sparse tensor %q: index %d has %d coordinates for a rank-%d shape", tensor.Clip(name), k, len(c), rank)
		}
	}
	idx := make([]int64, rank*nnz)
	for k, c := range o.Indices {
		for d, x := range c {
			idx[d*nnz+k] = x
		}
	}
	return densify(name, o.Shape, o.Data, idx, rank, nnz)
}

// listValue reads a nested list of numbers (FP64) or strings (BYTES); it must be
// rectangular.
func listValue(name string, v json.RawMessage) (tensor.Tensor, error) {
	var tree any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return tensor.Tensor{}, fmt.Errorf("value %q: %v", tensor.Clip(name), scrub(err))
	}
	var shape []int64
	for n := tree; ; {
		l, ok := n.([]any)
		if !ok {
			break
		}
		shape = append(shape, int64(len(l)))
		if len(l) == 0 || len(shape) > 32 {
			break
		}
		n = l[0]
	}
	t := tensor.Tensor{Name: name, Shape: shape}
	var walk func(n any, depth int) error
	walk = func(n any, depth int) error {
		if depth < len(shape) {
			l, ok := n.([]any)
			if !ok || int64(len(l)) != shape[depth] {
				return fmt.Errorf("value %q is not a rectangular list of shape %v", tensor.Clip(name), shape)
			}
			for _, c := range l {
				if err := walk(c, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		switch x := n.(type) {
		case json.Number:
			f, err := x.Float64()
			if err != nil || t.DataType == tensor.Bytes {
				return fmt.Errorf("value %q mixes numbers and strings or holds a number out of range", tensor.Clip(name))
			}
			t.DataType = tensor.FP64
			t.F64 = append(t.F64, f)
		case string:
			if t.DataType == tensor.FP64 {
				return fmt.Errorf("value %q mixes numbers and strings", tensor.Clip(name))
			}
			t.DataType = tensor.Bytes
			t.Bytes = append(t.Bytes, []byte(x))
		default:
			return fmt.Errorf("value %q holds something other than numbers or strings", tensor.Clip(name))
		}
		return nil
	}
	if err := walk(tree, 0); err != nil {
		return tensor.Tensor{}, err
	}
	if t.DataType == "" {
		return tensor.Tensor{}, fmt.Errorf("value %q is an empty list", tensor.Clip(name))
	}
	return t, nil
}
