package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DecodeRaw reads a tensor from its raw form: the row-major elements in little-endian byte
// order, BOOL as one byte (0 or 1), BYTES elements each prefixed by a 4-byte little-endian
// length. This is the form of gRPC's raw_input_contents and of the REST binary data
// extension.
func DecodeRaw(name string, dt DataType, shape []int64, raw []byte) (Tensor, error) {
	t := Tensor{Name: name, DataType: dt, Shape: shape}
	n, err := NumElements(shape)
	if err != nil {
		return t, fmt.Errorf("input %q: %w", clip(name), err)
	}
	if dt == Bytes {
		return t, decodeRawBytes(&t, n, raw)
	}
	size := dt.Size()
	if size == 0 {
		return t, fmt.Errorf("input %q: unknown datatype %q", clip(name), clip(string(dt)))
	}
	if len(raw) != n*size {
		return t, fmt.Errorf("input %q: shape %v of %s needs %d bytes, got %d", clip(name), shape, dt, n*size, len(raw))
	}
	t.alloc(n)
	le := binary.LittleEndian
	for i := range n {
		b := raw[i*size:]
		switch dt {
		case Bool:
			if b[0] > 1 {
				return t, fmt.Errorf("input %q: element %d is byte %d, BOOL elements are 0 or 1", clip(name), i, b[0])
			}
			t.Bools[i] = b[0] == 1
		case Int8:
			t.Ints[i] = int64(int8(b[0]))
		case Int16:
			t.Ints[i] = int64(int16(le.Uint16(b)))
		case Int32:
			t.Ints[i] = int64(int32(le.Uint32(b)))
		case Int64:
			t.Ints[i] = int64(le.Uint64(b))
		case Uint8:
			t.Uints[i] = uint64(b[0])
		case Uint16:
			t.Uints[i] = uint64(le.Uint16(b))
		case Uint32:
			t.Uints[i] = uint64(le.Uint32(b))
		case Uint64:
			t.Uints[i] = le.Uint64(b)
		case FP16:
			t.F32[i] = halfToFloat(le.Uint16(b))
		case FP32:
			t.F32[i] = math.Float32frombits(le.Uint32(b))
		case FP64:
			t.F64[i] = math.Float64frombits(le.Uint64(b))
		}
	}
	return t, nil
}

func decodeRawBytes(t *Tensor, n int, raw []byte) error {
	// Each element needs at least its 4-byte length: a short body cannot claim many elements.
	if n > len(raw)/4 {
		return fmt.Errorf("input %q: shape %v needs %d BYTES elements, the %d bytes hold at most %d", clip(t.Name), t.Shape, n, len(raw), len(raw)/4)
	}
	t.Bytes = make([][]byte, n)
	off := 0
	for i := range n {
		if len(raw)-off < 4 {
			return fmt.Errorf("input %q: BYTES element %d: data ends inside its length", clip(t.Name), i)
		}
		l := int(binary.LittleEndian.Uint32(raw[off:]))
		off += 4
		if l > len(raw)-off {
			return fmt.Errorf("input %q: BYTES element %d: length %d runs past the data", clip(t.Name), i, l)
		}
		t.Bytes[i] = raw[off : off+l : off+l]
		off += l
	}
	if off != len(raw) {
		return fmt.Errorf("input %q: %d bytes left after %d BYTES elements", clip(t.Name), len(raw)-off, n)
	}
	return nil
}

// RawSize is the length of t's raw form.
func (t *Tensor) RawSize() int {
	if t.DataType != Bytes {
		return t.Len() * t.DataType.Size()
	}
	n := 0
	for _, b := range t.Bytes {
		n += 4 + len(b)
	}
	return n
}

// AppendRaw appends t's raw form (see DecodeRaw) to dst.
func (t *Tensor) AppendRaw(dst []byte) []byte {
	le := binary.LittleEndian
	switch t.DataType {
	case Bool:
		for _, v := range t.Bools {
			if v {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
	case Int8:
		for _, v := range t.Ints {
			dst = append(dst, byte(v))
		}
	case Int16:
		for _, v := range t.Ints {
			dst = le.AppendUint16(dst, uint16(v))
		}
	case Int32:
		for _, v := range t.Ints {
			dst = le.AppendUint32(dst, uint32(v))
		}
	case Int64:
		for _, v := range t.Ints {
			dst = le.AppendUint64(dst, uint64(v))
		}
	case Uint8:
		for _, v := range t.Uints {
			dst = append(dst, byte(v))
		}
	case Uint16:
		for _, v := range t.Uints {
			dst = le.AppendUint16(dst, uint16(v))
		}
	case Uint32:
		for _, v := range t.Uints {
			dst = le.AppendUint32(dst, uint32(v))
		}
	case Uint64:
		for _, v := range t.Uints {
			dst = le.AppendUint64(dst, v)
		}
	case FP16:
		for _, v := range t.F32 {
			dst = le.AppendUint16(dst, floatToHalf(v))
		}
	case FP32:
		for _, v := range t.F32 {
			dst = le.AppendUint32(dst, math.Float32bits(v))
		}
	case FP64:
		for _, v := range t.F64 {
			dst = le.AppendUint64(dst, math.Float64bits(v))
		}
	case Bytes:
		for _, b := range t.Bytes {
			dst = le.AppendUint32(dst, uint32(len(b)))
			dst = append(dst, b...)
		}
	}
	return dst
}
