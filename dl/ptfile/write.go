package ptfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// WriteStateDict writes float32 tensors as a state dict in torch.save's zip format (what
// torch.load reads and load_state_dict takes), with the extra files under extra/ (torch.load
// ignores them). The archive's records are named <name>/…; the bytes depend only on the
// arguments, so the same tensors give the same file.
func WriteStateDict(w io.Writer, name string, tensors []Tensor, extra map[string][]byte) error {
	if name == "" || strings.ContainsAny(name, "/\\\n") {
		return fmt.Errorf("ptfile: archive name %q", name)
	}
	var p pickler
	p.op(0x80, 2) // PROTO 2
	p.global("collections", "OrderedDict")
	p.op(')', 'R', '(')
	for i, t := range tensors {
		if Numel(t.Shape) != int64(len(t.Data)) {
			return fmt.Errorf("ptfile: tensor %s: shape %v does not hold %d values", t.Name, t.Shape, len(t.Data))
		}
		p.str(t.Name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.op('(', '(')
		p.str("storage")
		p.global("torch", "FloatStorage")
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(int64(len(t.Data)))
		p.op('t', 'Q') // TUPLE, BINPERSID
		p.int(0)       // storage offset
		p.op('(')
		for _, d := range t.Shape {
			p.int(d)
		}
		p.op('t', '(')
		stride := int64(1)
		strides := make([]int64, len(t.Shape))
		for d := len(t.Shape) - 1; d >= 0; d-- {
			strides[d] = stride
			stride *= max(t.Shape[d], 1)
		}
		for _, s := range strides {
			p.int(s)
		}
		p.op('t', 0x89) // TUPLE, requires_grad False
		p.global("collections", "OrderedDict")
		p.op(')', 'R', 't', 'R') // backward hooks OrderedDict(); TUPLE; REDUCE
	}
	p.op('u', '.') // SETITEMS, STOP

	zw := zip.NewWriter(w)
	put := func(rec string, data []byte) error {
		// Stored, with sizes and CRC known up front (no data descriptor) and a zero time, as
		// PyTorch's own writer does.
		fw, err := zw.CreateRaw(&zip.FileHeader{Name: name + "/" + rec, Method: zip.Store,
			CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))})
		if err != nil {
			return err
		}
		_, err = fw.Write(data)
		return err
	}
	if err := put("data.pkl", p.buf.Bytes()); err != nil {
		return err
	}
	for i, t := range tensors {
		raw := make([]byte, 4*len(t.Data))
		for j, v := range t.Data {
			binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(v))
		}
		if err := put("data/"+strconv.Itoa(i), raw); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		if n == "" || strings.ContainsAny(n, "/\\") {
			return fmt.Errorf("ptfile: extra file name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := put("extra/"+n, extra[n]); err != nil {
			return err
		}
	}
	if err := put("version", []byte("3\n")); err != nil {
		return err
	}
	if err := put("byteorder", []byte("little")); err != nil {
		return err
	}
	return zw.Close()
}

// Numel is the number of elements of a shape (-1 if negative or overflowing).
func Numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || d > 0 && n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

type pickler struct{ buf bytes.Buffer }

func (p *pickler) op(ops ...byte) { p.buf.Write(ops) }

func (p *pickler) global(mod, name string) { fmt.Fprintf(&p.buf, "c%s\n%s\n", mod, name) }

func (p *pickler) str(s string) {
	p.buf.WriteByte('X')
	binary.Write(&p.buf, binary.LittleEndian, uint32(len(s)))
	p.buf.WriteString(s)
}

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v < 256:
		p.buf.Write([]byte{'K', byte(v)})
	case v >= 0 && v < 65536:
		p.buf.WriteByte('M')
		binary.Write(&p.buf, binary.LittleEndian, uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.buf.WriteByte('J')
		binary.Write(&p.buf, binary.LittleEndian, int32(v))
	default:
		p.buf.Write([]byte{0x8a, 8})
		binary.Write(&p.buf, binary.LittleEndian, v)
	}
}
