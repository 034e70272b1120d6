package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// enc and dec are the binary encoding of snapshots and shuffle messages:
// varints, length-prefixed strings and IEEE floats. The bytes are sealed
// in records before they leave the worker, so dec guards against
// corruption of our own output, not against an adversary (who cannot
// forge a record); it still never panics and bounds every length.
type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(s []byte)   { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) f64(f float64)    { e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(f)) }
func (e *enc) byte1(c byte)     { e.b = append(e.b, c) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *enc) value(v Value) {
	e.byte1(byte(v.Kind))
	switch v.Kind {
	case String:
		e.str(v.S)
	case Number, Bool:
		e.f64(v.F)
	}
}

var errShort = errors.New("truncated")

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length whose items take at least size bytes each.
func (d *dec) count(size int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/size) {
		d.fail(fmt.Errorf("length %d exceeds the remaining %d bytes", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *dec) raw() []byte {
	n := d.count(1)
	if len(d.b) < n {
		d.fail(errShort)
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *dec) str() string { return string(d.raw()) }

// strNoCopy is str for bytes that are never modified: the string shares
// them.
func (d *dec) strNoCopy() string {
	r := d.raw()
	return unsafe.String(unsafe.SliceData(r), len(r))
}

func (d *dec) bytes() []byte { return append([]byte(nil), d.raw()...) }

func (d *dec) f64() float64 {
	if len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return f
}

func (d *dec) byte1() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) bool() bool { return d.byte1() != 0 }

func (d *dec) value() Value {
	v := Value{Kind: Kind(d.byte1())}
	switch v.Kind {
	case Null:
	case String:
		v.S = d.str()
	case Number, Bool:
		v.F = d.f64()
	default:
		d.fail(fmt.Errorf("unknown value kind %d", v.Kind))
	}
	return v
}

// valueNoCopy is value for bytes that are never modified (a string's):
// a string value shares them.
func (d *dec) valueNoCopy() Value {
	v := Value{Kind: Kind(d.byte1())}
	switch v.Kind {
	case Null:
	case String:
		r := d.raw()
		v.S = unsafe.String(unsafe.SliceData(r), len(r))
	case Number, Bool:
		v.F = d.f64()
	default:
		d.fail(fmt.Errorf("unknown value kind %d", v.Kind))
	}
	return v
}

func (d *dec) done(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the end", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("%s: %w", what, d.err)
	}
	return nil
}
