package kserve

import (
	"strconv"

	"github.com/ppml/ppml/serve/tensor"
)

// decodeInferFast decodes the common shape of an infer request without reflection: an
// object of "id", "inputs", "outputs" and "parameters" (each at most once, spelled exactly
// so), inputs of "name", "shape", "datatype", "parameters" and "data" in any order, data a
// (nested) array that tensor.DecodeJSONArray takes, or binary data named by
// binary_data_size; strings without escapes or non-ASCII bytes; parameter values that are
// true, false, numbers or such strings. ok is false for anything else, and for any request
// the general decoder would refuse: it then decides, so both accept exactly the same
// requests with the same result.
func decodeInferFast(jsonPart, binary []byte) (c *inferCall, ok bool) {
	d := fastDecoder{b: jsonPart}
	c = &inferCall{}
	type span struct{ start, end int }
	var seen [4]bool // id, inputs, outputs, parameters
	once := func(k int) bool {
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	if !d.eat('{') {
		return nil, false
	}
	for {
		key, ok := d.str()
		if !ok || !d.eat(':') {
			return nil, false
		}
		switch string(key) {
		case "id":
			v, ok := d.str()
			if !ok || !once(0) {
				return nil, false
			}
			c.id = string(v)
		case "inputs":
			if !once(1) || !d.inputs(c, binary) {
				return nil, false
			}
		case "outputs":
			if !once(2) || !d.outputs(c) {
				return nil, false
			}
		case "parameters":
			v, ok := d.params("binary_data_output")
			if !ok || !once(3) {
				return nil, false
			}
			c.binaryAll = string(v) == "true"
		default:
			return nil, false
		}
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			break
		}
		return nil, false
	}
	if d.skipSpace(); d.i != len(d.b) || len(c.inputs) == 0 || len(c.binaryLeft) > 0 {
		return nil, false
	}
	c.binaryLeft = nil
	return c, true
}

// inputs reads the inputs array, decoding each input's data.
func (d *fastDecoder) inputs(c *inferCall, binary []byte) bool {
	if !d.eat('[') {
		return false
	}
	c.binaryLeft = binary
	if d.eat(']') {
		return true
	}
	for {
		t, ok := d.input(c)
		if !ok {
			return false
		}
		c.inputs = append(c.inputs, t)
		if d.eat(',') {
			continue
		}
		return d.eat(']')
	}
}

// input reads one input object.
func (d *fastDecoder) input(c *inferCall) (tensor.Tensor, bool) {
	var (
		name, datatype, size []byte
		shape                []int64
		data                 [2]int // its span in d.b
		seen                 [5]bool
	)
	once := func(k int) bool {
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	if !d.eat('{') {
		return tensor.Tensor{}, false
	}
	for {
		key, ok := d.str()
		if !ok || !d.eat(':') {
			return tensor.Tensor{}, false
		}
		switch string(key) {
		case "name":
			name, ok = d.str()
			ok = ok && once(0)
		case "shape":
			shape, ok = d.shape()
			ok = ok && once(1)
		case "datatype":
			datatype, ok = d.str()
			ok = ok && once(2)
		case "parameters":
			size, ok = d.params("binary_data_size")
			ok = ok && once(3)
		case "data":
			data[0], data[1], ok = d.skipArray()
			ok = ok && once(4)
		default:
			ok = false
		}
		if !ok {
			return tensor.Tensor{}, false
		}
		if d.eat(',') {
			continue
		}
		if !d.eat('}') {
			return tensor.Tensor{}, false
		}
		break
	}
	dt, err := tensor.ParseDataType(string(datatype))
	if err != nil || shape == nil {
		return tensor.Tensor{}, false
	}
	if size != nil {
		// The general decoder reads the size as a float64 and wants a whole number that fits.
		n, err := strconv.ParseFloat(string(size), 64)
		if err != nil || n < 0 || n != float64(int64(n)) || n > float64(len(c.binaryLeft)) || seen[4] {
			return tensor.Tensor{}, false
		}
		t, err := tensor.DecodeRaw(string(name), dt, shape, c.binaryLeft[:int(n)])
		c.binaryLeft = c.binaryLeft[int(n):]
		c.aliasesBody = c.aliasesBody || dt == tensor.Bytes
		return t, err == nil
	}
	if !seen[4] {
		return tensor.Tensor{}, false
	}
	return tensor.DecodeJSONArray(string(name), dt, shape, d.b[data[0]:data[1]])
}

// outputs reads the requested outputs: objects of "name" and "parameters".
func (d *fastDecoder) outputs(c *inferCall) bool {
	if !d.eat('[') {
		return false
	}
	if d.eat(']') {
		return true
	}
	for {
		if !d.eat('{') {
			return false
		}
		var name, bin []byte
		var seen [2]bool
		for {
			key, ok := d.str()
			if !ok || !d.eat(':') {
				return false
			}
			switch string(key) {
			case "name":
				name, ok = d.str()
				ok = ok && !seen[0]
				seen[0] = true
			case "parameters":
				bin, ok = d.params("binary_data")
				ok = ok && !seen[1]
				seen[1] = true
			default:
				ok = false
			}
			if !ok {
				return false
			}
			if d.eat(',') {
				continue
			}
			if !d.eat('}') {
				return false
			}
			break
		}
		b := int8(-1)
		switch string(bin) {
		case "true":
			b = 1
		case "false":
			b = 0
		}
		c.outputs = append(c.outputs, string(name))
		c.outBinary = append(c.outBinary, b)
		if d.eat(',') {
			continue
		}
		return d.eat(']')
	}
}

// fastDecoder reads the JSON grammar decodeInferFast takes.
type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) skipSpace() {
	for d.i < len(d.b) && (d.b[d.i] == ' ' || d.b[d.i] == '\t' || d.b[d.i] == '\n' || d.b[d.i] == '\r') {
		d.i++
	}
}

// eat consumes c after white space, if it is there.
func (d *fastDecoder) eat(c byte) bool {
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes and returns its contents.
func (d *fastDecoder) str() ([]byte, bool) {
	if !d.eat('"') {
		return nil, false
	}
	for j := d.i; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[d.i:j]
			d.i = j + 1
			return s, true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// shape reads an array of integers (non-nil, empty for []).
func (d *fastDecoder) shape() ([]int64, bool) {
	if !d.eat('[') {
		return nil, false
	}
	shape := make([]int64, 0, 4)
	if d.eat(']') {
		return shape, true
	}
	for {
		d.skipSpace()
		j := d.i
		if j < len(d.b) && d.b[j] == '-' {
			j++
		}
		if j == len(d.b) || d.b[j] < '0' || d.b[j] > '9' || (d.b[j] == '0' && j+1 < len(d.b) && d.b[j+1] >= '0' && d.b[j+1] <= '9') {
			return nil, false
		}
		for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
			j++
		}
		v, err := strconv.ParseInt(string(d.b[d.i:j]), 10, 64)
		if err != nil {
			return nil, false
		}
		d.i = j
		shape = append(shape, v)
		if d.eat(',') {
			continue
		}
		return shape, d.eat(']')
	}
}

// params reads a parameters object whose values are true, false, numbers (in float64's
// range) or strings, and
// returns the literal of the value of key (nil when absent). Keys must be distinct: a
// repeated key's last value wins in the general decoder.
func (d *fastDecoder) params(key string) (value []byte, ok bool) {
	if !d.eat('{') {
		return nil, false
	}
	if d.eat('}') {
		return nil, true
	}
	var keys [8][]byte
	for n := 0; ; n++ {
		k, ok := d.str()
		if !ok || n == len(keys) || !d.eat(':') {
			return nil, false
		}
		for _, prev := range keys[:n] {
			if string(prev) == string(k) {
				return nil, false
			}
		}
		keys[n] = k
		d.skipSpace()
		start := d.i
		switch {
		case d.i < len(d.b) && d.b[d.i] == '"':
			_, ok = d.str()
		case d.lit("true"), d.lit("false"):
		default:
			// encoding/json refuses a number out of float64's range even where it is not used.
			j := tensor.JSONNumberEnd(d.b, d.i)
			if _, err := strconv.ParseFloat(string(d.b[d.i:j]), 64); j == d.i || err != nil {
				return nil, false
			}
			d.i = j
		}
		if !ok {
			return nil, false
		}
		if string(k) == key {
			value = d.b[start:d.i]
		}
		if d.eat(',') {
			continue
		}
		return value, d.eat('}')
	}
}

// lit consumes the literal s if it is next.
func (d *fastDecoder) lit(s string) bool {
	if len(d.b)-d.i >= len(s) && string(d.b[d.i:d.i+len(s)]) == s {
		d.i += len(s)
		return true
	}
	return false
}

// skipArray passes over an array and returns its span: brackets matched, strings without
// escapes, no objects (tensor.DecodeJSONArray checks the rest).
func (d *fastDecoder) skipArray() (start, end int, ok bool) {
	d.skipSpace()
	if d.i == len(d.b) || d.b[d.i] != '[' {
		return 0, 0, false
	}
	depth := 0
	for j := d.i; j < len(d.b); j++ {
		switch d.b[j] {
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				start, d.i = d.i, j+1
				return start, d.i, true
			}
		case '"':
			k := j + 1
			for k < len(d.b) && d.b[k] != '"' {
				if d.b[k] == '\\' {
					return 0, 0, false
				}
				k++
			}
			j = k
		case '{', '}':
			return 0, 0, false
		}
	}
	return 0, 0, false
}
