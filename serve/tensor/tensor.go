// Package tensor holds the typed tensors the serving protocols exchange: the
// Open Inference Protocol's datatypes (BOOL, INT8–INT64, UINT8–UINT64, FP16,
// FP32, FP64, BYTES), shapes with checked element counts, and the row
// slicing and concatenation dynamic batching needs. The wire forms live
// beside it: raw little-endian bytes (raw.go) and JSON (json.go).
package tensor

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// DataType is a tensor element type, spelled as the Open Inference Protocol spells it.
type DataType string

const (
	Bool   DataType = "BOOL"
	Uint8  DataType = "UINT8"
	Uint16 DataType = "UINT16"
	Uint32 DataType = "UINT32"
	Uint64 DataType = "UINT64"
	Int8   DataType = "INT8"
	Int16  DataType = "INT16"
	Int32  DataType = "INT32"
	Int64  DataType = "INT64"
	FP16   DataType = "FP16"
	FP32   DataType = "FP32"
	FP64   DataType = "FP64"
	Bytes  DataType = "BYTES"
)

var sizes = map[DataType]int{
	Bool: 1, Uint8: 1, Uint16: 2, Uint32: 4, Uint64: 8, Int8: 1, Int16: 2, Int32: 4, Int64: 8,
	FP16: 2, FP32: 4, FP64: 8, Bytes: 0,
}

// ParseDataType checks a datatype name as a client wrote it.
func ParseDataType(s string) (DataType, error) {
	d := DataType(s)
	if _, ok := sizes[d]; !ok {
		return "", fmt.Errorf("datatype %q is not one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES", clip(s))
	}
	return d, nil
}

// Size is the size of one element in raw form; 0 for BYTES, whose elements vary.
func (d DataType) Size() int { return sizes[d] }

func (d DataType) isInt() bool  { return d == Int8 || d == Int16 || d == Int32 || d == Int64 }
func (d DataType) isUint() bool { return d == Uint8 || d == Uint16 || d == Uint32 || d == Uint64 }

// intRange is the range of values an integer datatype holds.
func (d DataType) intRange() (lo int64, hi uint64) {
	switch d {
	case Int8:
		return math.MinInt8, math.MaxInt8
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Int64:
		return math.MinInt64, math.MaxInt64
	case Uint8:
		return 0, math.MaxUint8
	case Uint16:
		return 0, math.MaxUint16
	case Uint32:
		return 0, math.MaxUint32
	}
	return 0, math.MaxUint64
}

// MaxElements bounds the elements of any one tensor (a request's byte limit bounds it first
// in practice; this keeps shape arithmetic far from overflow).
const MaxElements = 1 << 31

// Tensor is a named, typed, shaped tensor. Exactly one element slice is used, by datatype:
// Bools for BOOL; Ints for INT8–INT64; Uints for UINT8–UINT64; F32 for FP16 and FP32 (FP16
// values are held widened); F64 for FP64; Bytes for BYTES. Elements are in row-major order.
type Tensor struct {
	Name     string
	DataType DataType
	Shape    []int64

	Bools []bool
	Ints  []int64
	Uints []uint64
	F32   []float32
	F64   []float64
	Bytes [][]byte
}

// NumElements is the element count a shape holds. Every dimension must be ≥ 0 and the
// product at most MaxElements.
func NumElements(shape []int64) (int, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, i)
		}
		if d > MaxElements {
			return 0, fmt.Errorf("shape %v: more than %d elements", shape, MaxElements)
		}
		n *= d
		if n > MaxElements {
			return 0, fmt.Errorf("shape %v: more than %d elements", shape, MaxElements)
		}
	}
	return int(n), nil
}

// Len is the number of elements held.
func (t *Tensor) Len() int {
	switch {
	case t.DataType == Bool:
		return len(t.Bools)
	case t.DataType.isInt():
		return len(t.Ints)
	case t.DataType.isUint():
		return len(t.Uints)
	case t.DataType == FP16 || t.DataType == FP32:
		return len(t.F32)
	case t.DataType == FP64:
		return len(t.F64)
	}
	return len(t.Bytes)
}

// Validate checks that the datatype is known, the shape well formed and the element count
// what the shape says.
func (t *Tensor) Validate() error {
	if _, err := ParseDataType(string(t.DataType)); err != nil {
		return fmt.Errorf("tensor %q: %w", clip(t.Name), err)
	}
	n, err := NumElements(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", clip(t.Name), err)
	}
	if got := t.Len(); got != n {
		return fmt.Errorf("tensor %q: shape %v holds %d elements, the data has %d", clip(t.Name), t.Shape, n, got)
	}
	return nil
}

// make allocates the element slice for n elements.
func (t *Tensor) alloc(n int) {
	switch {
	case t.DataType == Bool:
		t.Bools = make([]bool, n)
	case t.DataType.isInt():
		t.Ints = make([]int64, n)
	case t.DataType.isUint():
		t.Uints = make([]uint64, n)
	case t.DataType == FP16 || t.DataType == FP32:
		t.F32 = make([]float32, n)
	case t.DataType == FP64:
		t.F64 = make([]float64, n)
	default:
		t.Bytes = make([][]byte, n)
	}
}

// Float64 returns element i as a float64 (BYTES has no numeric value).
func (t *Tensor) Float64(i int) (float64, error) {
	switch {
	case t.DataType == Bool:
		if t.Bools[i] {
			return 1, nil
		}
		return 0, nil
	case t.DataType.isInt():
		return float64(t.Ints[i]), nil
	case t.DataType.isUint():
		return float64(t.Uints[i]), nil
	case t.DataType == FP16 || t.DataType == FP32:
		return float64(t.F32[i]), nil
	case t.DataType == FP64:
		return t.F64[i], nil
	}
	return 0, errors.New("BYTES elements are not numbers")
}

// RowSize is the number of elements in one row (one index of the first dimension).
func (t *Tensor) RowSize() int {
	n := 1
	for _, d := range t.Shape[1:] {
		n *= int(d)
	}
	return n
}

// Rows returns rows [lo, hi) of t as a tensor sharing t's elements.
func (t *Tensor) Rows(lo, hi int) Tensor {
	r := t.RowSize()
	out := Tensor{Name: t.Name, DataType: t.DataType, Shape: append([]int64{int64(hi - lo)}, t.Shape[1:]...)}
	a, b := lo*r, hi*r
	switch {
	case t.DataType == Bool:
		out.Bools = t.Bools[a:b:b]
	case t.DataType.isInt():
		out.Ints = t.Ints[a:b:b]
	case t.DataType.isUint():
		out.Uints = t.Uints[a:b:b]
	case t.DataType == FP16 || t.DataType == FP32:
		out.F32 = t.F32[a:b:b]
	case t.DataType == FP64:
		out.F64 = t.F64[a:b:b]
	default:
		out.Bytes = t.Bytes[a:b:b]
	}
	return out
}

// Concat joins tensors of one name, datatype and row shape along the first dimension.
func Concat(ts []Tensor) (Tensor, error) {
	if len(ts) == 0 {
		return Tensor{}, errors.New("nothing to concatenate")
	}
	first := ts[0]
	rows := int64(0)
	for _, t := range ts {
		if t.DataType != first.DataType || len(t.Shape) == 0 || len(t.Shape) != len(first.Shape) {
			return Tensor{}, fmt.Errorf("tensor %q: cannot batch %s%v with %s%v", clip(first.Name), first.DataType, first.Shape, t.DataType, t.Shape)
		}
		for i := 1; i < len(t.Shape); i++ {
			if t.Shape[i] != first.Shape[i] {
				return Tensor{}, fmt.Errorf("tensor %q: cannot batch shape %v with %v", clip(first.Name), first.Shape, t.Shape)
			}
		}
		rows += t.Shape[0]
	}
	out := Tensor{Name: first.Name, DataType: first.DataType, Shape: append([]int64{rows}, first.Shape[1:]...)}
	for _, t := range ts {
		out.Bools = append(out.Bools, t.Bools...)
		out.Ints = append(out.Ints, t.Ints...)
		out.Uints = append(out.Uints, t.Uints...)
		out.F32 = append(out.F32, t.F32...)
		out.F64 = append(out.F64, t.F64...)
		out.Bytes = append(out.Bytes, t.Bytes...)
	}
	return out, nil
}

// clip keeps client-chosen strings short in errors.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// Clip is clip for the protocol packages: names a client chose, shortened for an error.
func Clip(s string) string { return clip(s) }
