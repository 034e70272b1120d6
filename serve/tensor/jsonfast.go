package tensor

import "strconv"

// DecodeJSONArray is DecodeJSON for the common form of data, quickly: a JSON array, nested
// at most 64 deep, of numbers, true/false, or strings without escapes or non-ASCII bytes
// (BYTES). It allocates nothing but the tensor's elements. ok is false when data is in any
// other form or DecodeJSON would refuse it: DecodeJSON then decides, with its errors. When
// ok, the tensor is the one DecodeJSON returns (FuzzDecodeJSONArray checks it).
func DecodeJSONArray(name string, dt DataType, shape []int64, data []byte) (t Tensor, ok bool) {
	t = Tensor{Name: name, DataType: dt, Shape: shape}
	if _, known := sizes[dt]; !known {
		return t, false
	}
	n, err := NumElements(shape)
	if err != nil || n > maxJSONElements(dt, len(data)) {
		return t, false
	}
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return t, false
	}
	t.alloc(n)
	// States: after '[' a value or ']'; after ',' a value; after a value ',' or ']'.
	const (
		opened = iota
		comma
		value
	)
	state, depth, count := opened, 0, 0
	for {
		i = skipSpace(data, i)
		if i == len(data) {
			return t, false
		}
		c := data[i]
		switch {
		case c == ']':
			if state == comma {
				return t, false
			}
			i++
			if depth--; depth == 0 {
				if skipSpace(data, i) != len(data) || count != n {
					return t, false
				}
				return t, true
			}
			state = value
			continue
		case state == value:
			if c != ',' {
				return t, false
			}
			i++
			state = comma
			continue
		case c == '[':
			if depth++; depth > 64 {
				return t, false
			}
			i++
			state = opened
			continue
		}
		// An element.
		if count == n {
			return t, false
		}
		switch {
		case c == '"':
			if dt != Bytes {
				return t, false
			}
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if b := data[j]; b < 0x20 || b >= 0x80 || b == '\\' {
					return t, false
				}
				j++
			}
			if j == len(data) {
				return t, false
			}
			e := make([]byte, j-i-1)
			copy(e, data[i+1:j])
			t.Bytes[count] = e
			i = j + 1
		case c == 't' || c == 'f':
			v := c == 't'
			lit := "false"
			if v {
				lit = "true"
			}
			if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit || dt != Bool {
				return t, false
			}
			t.Bools[count] = v
			i += len(lit)
		default:
			j := JSONNumberEnd(data, i)
			if j == i || !t.setNumberFast(count, data[i:j]) {
				return t, false
			}
			i = j
		}
		count++
		state = value
	}
}

// setNumberFast is setNumber without errors: false where setNumber fails.
func (t *Tensor) setNumberFast(i int, lit []byte) bool {
	switch dt := t.DataType; {
	case dt == FP32:
		x, err := strconv.ParseFloat(string(lit), 32)
		t.F32[i] = float32(x)
		return err == nil
	case dt == FP64:
		x, err := strconv.ParseFloat(string(lit), 64)
		t.F64[i] = x
		return err == nil
	case dt == Bool || dt == Bytes:
		return false
	}
	return t.setNumber(i, string(lit)) == nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// JSONNumberEnd returns the end of the JSON number at b[i:], or i when there is none:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func JSONNumberEnd(b []byte, i int) int {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return i
	}
	if j < len(b) && b[j] == '.' {
		j++
		d := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == d {
			return i
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		d := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == d {
			return i
		}
	}
	return j
}
