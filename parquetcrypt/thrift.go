package parquetcrypt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// A minimal Thrift compact-protocol codec. It decodes any struct into a
// generic tree that keeps every field (known or not) so that footers and page
// headers can be edited (offsets, crypto fields) and re-encoded without a
// generated Parquet schema. arrow-go's generated structs live in an internal
// package, and re-encoding through them would drop fields it does not know.

// Compact protocol type ids.
const (
	tTrue   = 1
	tFalse  = 2
	tByte   = 3
	tI16    = 4
	tI32    = 5
	tI64    = 6
	tDouble = 7
	tBinary = 8
	tList   = 9
	tSet    = 10
	tMap    = 11
	tStruct = 12
)

// maxThriftDepth bounds nesting (structs, lists, sets and maps alike) so
// hostile input cannot exhaust the stack; Parquet metadata nests at most
// about 8 levels.
const maxThriftDepth = 32

var errThrift = errors.New("malformed thrift")

type tField struct {
	id  int16
	typ byte
	val any // bool, int64 (byte/i16/i32/i64), uint64 (double bits), []byte, *tlist, *tmap, *tstruct
}

type tstruct struct {
	fields []tField
}

type tlist struct {
	elem  byte // element type; booleans are stored as tTrue
	set   bool
	items []any
}

type tmap struct {
	ktyp, vtyp byte
	keys, vals []any
}

func (s *tstruct) field(id int16) *tField {
	if s == nil {
		return nil
	}
	for i := range s.fields {
		if s.fields[i].id == id {
			return &s.fields[i]
		}
	}
	return nil
}

func (s *tstruct) has(id int16) bool { return s.field(id) != nil }

func (s *tstruct) int(id int16) (int64, bool) {
	f := s.field(id)
	if f == nil {
		return 0, false
	}
	v, ok := f.val.(int64)
	return v, ok
}

func (s *tstruct) bytes(id int16) ([]byte, bool) {
	f := s.field(id)
	if f == nil || f.typ != tBinary {
		return nil, false
	}
	return f.val.([]byte), true
}

func (s *tstruct) bool(id int16) bool {
	f := s.field(id)
	if f == nil {
		return false
	}
	v, _ := f.val.(bool)
	return v
}

func (s *tstruct) strct(id int16) *tstruct {
	f := s.field(id)
	if f == nil || f.typ != tStruct {
		return nil
	}
	return f.val.(*tstruct)
}

func (s *tstruct) list(id int16) *tlist {
	f := s.field(id)
	if f == nil || f.typ != tList {
		return nil
	}
	return f.val.(*tlist)
}

// structs returns the elements of a list<struct> field, or an error when the
// field holds anything else.
func (s *tstruct) structs(id int16) ([]*tstruct, error) {
	l := s.list(id)
	if l == nil {
		return nil, nil
	}
	if l.elem != tStruct {
		return nil, fmt.Errorf("%w: field %d is not a list of structs", errThrift, id)
	}
	out := make([]*tstruct, len(l.items))
	for i, it := range l.items {
		out[i] = it.(*tstruct)
	}
	return out, nil
}

func (s *tstruct) strings(id int16) []string {
	l := s.list(id)
	if l == nil || l.elem != tBinary {
		return nil
	}
	out := make([]string, len(l.items))
	for i, it := range l.items {
		out[i] = string(it.([]byte))
	}
	return out
}

func (s *tstruct) set(id int16, typ byte, val any) {
	if f := s.field(id); f != nil {
		f.typ, f.val = typ, val
		return
	}
	s.fields = append(s.fields, tField{id: id, typ: typ, val: val})
}

func (s *tstruct) setI64(id int16, v int64) { s.set(id, tI64, v) }
func (s *tstruct) setI32(id int16, v int32) { s.set(id, tI32, int64(v)) }

func (s *tstruct) del(ids ...int16) {
	out := s.fields[:0]
	for _, f := range s.fields {
		keep := true
		for _, id := range ids {
			if f.id == id {
				keep = false
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	s.fields = out
}

// decodeStruct parses one compact-protocol struct from b and returns it with
// the number of bytes it used.
func decodeStruct(b []byte) (*tstruct, int, error) {
	d := tDecoder{b: b}
	s, err := d.readStruct(0)
	if err != nil {
		return nil, 0, err
	}
	return s, d.pos, nil
}

type tDecoder struct {
	b   []byte
	pos int
}

func (d *tDecoder) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errThrift, what, d.pos)
}

func (d *tDecoder) byte() (byte, error) {
	if d.pos >= len(d.b) {
		return 0, d.fail("unexpected end")
	}
	c := d.b[d.pos]
	d.pos++
	return c, nil
}

func (d *tDecoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		return 0, d.fail("bad varint")
	}
	d.pos += n
	return v, nil
}

func (d *tDecoder) zigzag() (int64, error) {
	u, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	return int64(u>>1) ^ -int64(u&1), nil
}

func (d *tDecoder) readStruct(depth int) (*tstruct, error) {
	if depth > maxThriftDepth {
		return nil, d.fail("nesting too deep")
	}
	s := &tstruct{}
	var last int16
	for {
		h, err := d.byte()
		if err != nil {
			return nil, err
		}
		if h == 0 {
			return s, nil
		}
		typ := h & 0x0f
		id := last + int16(h>>4)
		if h>>4 == 0 {
			v, err := d.zigzag()
			if err != nil {
				return nil, err
			}
			if v < -32768 || v > 32767 {
				return nil, d.fail("field id out of range")
			}
			id = int16(v)
		}
		last = id
		var val any
		switch typ {
		case tTrue:
			val = true
		case tFalse:
			val = false
		default:
			val, err = d.readValue(typ, depth)
			if err != nil {
				return nil, err
			}
		}
		s.fields = append(s.fields, tField{id: id, typ: typ, val: val})
	}
}

func (d *tDecoder) readValue(typ byte, depth int) (any, error) {
	// Lists, sets and maps nest like structs: a footer of nested one-element
	// lists (one byte each) would otherwise recurse once per byte, and a
	// 20 MB one overflowed the stack (a fatal error, not a panic).
	if (typ == tList || typ == tSet || typ == tMap) && depth >= maxThriftDepth {
		return nil, d.fail("nesting too deep")
	}
	switch typ {
	case tTrue, tFalse: // inside containers: one byte
		c, err := d.byte()
		if err != nil {
			return nil, err
		}
		return c == 1, nil
	case tByte:
		c, err := d.byte()
		return int64(int8(c)), err
	case tI16, tI32, tI64:
		return d.zigzag()
	case tDouble:
		if len(d.b)-d.pos < 8 {
			return nil, d.fail("short double")
		}
		v := binary.LittleEndian.Uint64(d.b[d.pos:])
		d.pos += 8
		return v, nil
	case tBinary:
		n, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d.b)-d.pos) {
			return nil, d.fail("binary longer than input")
		}
		v := d.b[d.pos : d.pos+int(n) : d.pos+int(n)]
		d.pos += int(n)
		return v, nil
	case tList, tSet:
		h, err := d.byte()
		if err != nil {
			return nil, err
		}
		n := uint64(h >> 4)
		if n == 15 {
			if n, err = d.uvarint(); err != nil {
				return nil, err
			}
		}
		// Every element takes at least one byte.
		if n > uint64(len(d.b)-d.pos) {
			return nil, d.fail("list longer than input")
		}
		l := &tlist{elem: h & 0x0f, set: typ == tSet, items: make([]any, 0, n)}
		if l.elem == tFalse {
			l.elem = tTrue
		}
		for i := uint64(0); i < n; i++ {
			v, err := d.readValue(l.elem, depth+1)
			if err != nil {
				return nil, err
			}
			l.items = append(l.items, v)
		}
		return l, nil
	case tMap:
		n, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		m := &tmap{}
		if n == 0 {
			return m, nil
		}
		if n > uint64(len(d.b)-d.pos) {
			return nil, d.fail("map longer than input")
		}
		kv, err := d.byte()
		if err != nil {
			return nil, err
		}
		m.ktyp, m.vtyp = kv>>4, kv&0x0f
		for i := uint64(0); i < n; i++ {
			k, err := d.readValue(m.ktyp, depth+1)
			if err != nil {
				return nil, err
			}
			v, err := d.readValue(m.vtyp, depth+1)
			if err != nil {
				return nil, err
			}
			m.keys, m.vals = append(m.keys, k), append(m.vals, v)
		}
		return m, nil
	case tStruct:
		return d.readStruct(depth + 1)
	default:
		return nil, d.fail(fmt.Sprintf("unknown type %d", typ))
	}
}

// encode appends the compact encoding of s to b. Fields are written in id
// order, as the generated code of every Parquet implementation does.
func (s *tstruct) encode(b []byte) []byte {
	fields := append([]tField(nil), s.fields...)
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].id < fields[j].id })
	var last int16
	for _, f := range fields {
		typ := f.typ
		if typ == tTrue || typ == tFalse {
			typ = tFalse
			if f.val.(bool) {
				typ = tTrue
			}
		}
		if delta := int(f.id) - int(last); delta > 0 && delta <= 15 {
			b = append(b, byte(delta<<4)|typ)
		} else {
			b = append(b, typ)
			b = binary.AppendUvarint(b, zz(int64(f.id)))
		}
		last = f.id
		if typ != tTrue && typ != tFalse {
			b = encodeValue(b, f.typ, f.val)
		}
	}
	return append(b, 0)
}

func zz(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func encodeValue(b []byte, typ byte, v any) []byte {
	switch typ {
	case tTrue, tFalse:
		if v.(bool) {
			return append(b, 1)
		}
		return append(b, 2)
	case tByte:
		return append(b, byte(v.(int64)))
	case tI16, tI32, tI64:
		return binary.AppendUvarint(b, zz(v.(int64)))
	case tDouble:
		return binary.LittleEndian.AppendUint64(b, v.(uint64))
	case tBinary:
		bs := v.([]byte)
		b = binary.AppendUvarint(b, uint64(len(bs)))
		return append(b, bs...)
	case tList, tSet:
		l := v.(*tlist)
		elem := l.elem // booleans are named 1 in list headers, as Apache Thrift writes them
		if n := len(l.items); n < 15 {
			b = append(b, byte(n<<4)|elem)
		} else {
			b = append(b, 0xf0|elem)
			b = binary.AppendUvarint(b, uint64(n))
		}
		for _, it := range l.items {
			b = encodeValue(b, l.elem, it)
		}
		return b
	case tMap:
		m := v.(*tmap)
		b = binary.AppendUvarint(b, uint64(len(m.keys)))
		if len(m.keys) == 0 {
			return b
		}
		b = append(b, m.ktyp<<4|m.vtyp)
		for i := range m.keys {
			b = encodeValue(b, m.ktyp, m.keys[i])
			b = encodeValue(b, m.vtyp, m.vals[i])
		}
		return b
	case tStruct:
		return v.(*tstruct).encode(b)
	}
	panic(fmt.Sprintf("parquetcrypt: encode unknown thrift type %d", typ)) // unreachable: types come from the decoder
}
