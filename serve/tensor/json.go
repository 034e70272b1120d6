package tensor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// DecodeJSON reads a tensor's "data" member: its elements as a flat array in row-major order
// or nested arrays (flattened in order; the element count must match the shape). BOOL
// elements are true/false, integers must be integral and in the datatype's range, FP16 values
// are rounded to binary16, BYTES elements are JSON strings (their UTF-8 bytes).
func DecodeJSON(name string, dt DataType, shape []int64, data json.RawMessage) (Tensor, error) {
	t := Tensor{Name: name, DataType: dt, Shape: shape}
	n, err := NumElements(shape)
	if err != nil {
		return t, fmt.Errorf("input %q: %w", clip(name), err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return t, fmt.Errorf("input %q: no data", clip(name))
	}
	// A small body cannot claim a huge shape: the elements are allocated only when the data
	// has room for them.
	if n > maxJSONElements(dt, len(data)) {
		return t, fmt.Errorf("input %q: shape %v needs %d elements, the data holds fewer", clip(name), shape, n)
	}
	t.alloc(n)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	i, depth := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return t, fmt.Errorf("input %q: data is not valid JSON: %v", clip(name), err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '[':
				depth++
				if depth > 64 {
					return t, fmt.Errorf("input %q: data is nested more than 64 deep", clip(name))
				}
			case ']':
				depth--
			default:
				return t, fmt.Errorf("input %q: data holds an object; elements are numbers, booleans or strings", clip(name))
			}
			continue
		}
		if i >= n {
			return t, fmt.Errorf("input %q: shape %v holds %d elements, the data has more", clip(name), shape, n)
		}
		if err := t.set(i, tok); err != nil {
			return t, fmt.Errorf("input %q: element %d: %w", clip(name), i, err)
		}
		i++
	}
	if i != n {
		return t, fmt.Errorf("input %q: shape %v holds %d elements, the data has %d", clip(name), shape, n, i)
	}
	return t, nil
}

// maxJSONElements is the most elements JSON data of size bytes can hold: an array of n
// elements takes n(k+1)+1 bytes at least, k the shortest element (1 byte: a digit; 2: the
// empty string ""); a lone scalar is one element.
func maxJSONElements(dt DataType, size int) int {
	k := 1
	if dt == Bytes {
		k = 2
	}
	return max(1, (size-1)/(k+1))
}

func (t *Tensor) set(i int, tok json.Token) error {
	switch v := tok.(type) {
	case bool:
		return t.setBool(i, v)
	case string:
		if t.DataType != Bytes {
			return fmt.Errorf("a string, the datatype is %s", t.DataType)
		}
		t.Bytes[i] = []byte(v)
		return nil
	case json.Number:
		return t.setNumber(i, string(v))
	case nil:
		return errors.New("null is not an element")
	}
	return fmt.Errorf("unexpected %T", tok)
}

func (t *Tensor) setBool(i int, v bool) error {
	if t.DataType != Bool {
		return fmt.Errorf("%v is a boolean, the datatype is %s", v, t.DataType)
	}
	t.Bools[i] = v
	return nil
}

// setNumber sets element i from a JSON number literal v.
func (t *Tensor) setNumber(i int, v string) error {
	switch dt := t.DataType; {
	case dt.isInt():
		x, err := strconv.ParseInt(v, 10, 64)
		lo, hi := dt.intRange()
		if err != nil || x < lo || (x >= 0 && uint64(x) > hi) {
			return fmt.Errorf("%s is not an integer in the range of %s", clip(v), dt)
		}
		t.Ints[i] = x
	case dt.isUint():
		x, err := strconv.ParseUint(v, 10, 64)
		_, hi := dt.intRange()
		if err != nil || x > hi {
			return fmt.Errorf("%s is not an integer in the range of %s", clip(v), dt)
		}
		t.Uints[i] = x
	case dt == FP16 || dt == FP32:
		x, err := strconv.ParseFloat(v, 32)
		if err != nil {
			return fmt.Errorf("%s is not a %s number", clip(v), dt)
		}
		if dt == FP16 {
			t.F32[i] = RoundFP16(float32(x))
		} else {
			t.F32[i] = float32(x)
		}
	case dt == FP64:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%s is not a %s number", clip(v), dt)
		}
		t.F64[i] = x
	default:
		return fmt.Errorf("a number, the datatype is %s", dt)
	}
	return nil
}

// AppendJSON appends t's elements as a flat JSON array. NaN and ±Inf have no JSON form and
// are an error (the binary forms carry them). BYTES elements that are not UTF-8 are an error
// too: JSON strings cannot hold them.
func (t *Tensor) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, '[')
	for i := range t.Len() {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case t.DataType == Bool:
			dst = strconv.AppendBool(dst, t.Bools[i])
		case t.DataType.isInt():
			dst = strconv.AppendInt(dst, t.Ints[i], 10)
		case t.DataType.isUint():
			dst = strconv.AppendUint(dst, t.Uints[i], 10)
		case t.DataType == FP16 || t.DataType == FP32:
			v := t.F32[i]
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return dst, fmt.Errorf("output %q: element %d is %v, which JSON cannot carry (ask for binary data)", clip(t.Name), i, v)
			}
			dst = strconv.AppendFloat(dst, float64(v), 'g', -1, 32)
		case t.DataType == FP64:
			v := t.F64[i]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return dst, fmt.Errorf("output %q: element %d is %v, which JSON cannot carry (ask for binary data)", clip(t.Name), i, v)
			}
			dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
		default:
			if !utf8.Valid(t.Bytes[i]) {
				return dst, fmt.Errorf("output %q: element %d is not UTF-8, which a JSON string cannot carry (ask for binary data)", clip(t.Name), i)
			}
			b, _ := json.Marshal(string(t.Bytes[i]))
			dst = append(dst, b...)
		}
	}
	return append(dst, ']'), nil
}
