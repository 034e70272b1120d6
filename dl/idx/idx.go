// Package idx reads IDX files, the format MNIST and Fashion-MNIST are distributed in: a
// four-byte magic (two zero bytes, the element type, the number of dimensions), the dimensions
// as big-endian uint32, then the elements in row-major order.
//
// Only unsigned-byte elements (type 0x08, what the MNIST family uses) are read. Open checks the
// header against the file's size exactly — truncated files and trailing bytes are errors — and
// then reads items on demand from an io.ReaderAt, so a training loop streams batches from the
// in-memory input instead of decoding it whole. Gunzip inflates a gzip-compressed IDX file (as
// the datasets are published) with the same checks, reading no more than the header announces.
package idx

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Element type codes of the IDX format.
const (
	TypeUint8   = 0x08
	TypeInt8    = 0x09
	TypeInt16   = 0x0B
	TypeInt32   = 0x0C
	TypeFloat32 = 0x0D
	TypeFloat64 = 0x0E
)

var typeNames = map[byte]string{TypeUint8: "unsigned byte", TypeInt8: "signed byte", TypeInt16: "int16",
	TypeInt32: "int32", TypeFloat32: "float32", TypeFloat64: "float64"}

// Bounds on the header: dimensions, bytes per item, bytes of data.
const (
	MaxDims = 8
	maxItem = 1 << 26 // 64 MiB: an image of 8,192 × 8,192
	maxData = 1 << 40
)

// Array is an IDX file of unsigned bytes. Dims[0] is the number of items; an item is the
// product of the other dimensions, in bytes.
type Array struct {
	Dims []int
	r    io.ReaderAt
	off  int64
	item int
}

// header reads and checks the magic and dimensions; it returns the dims and the data size.
func header(b []byte) (dims []int, hdr int, data int64, err error) {
	if len(b) < 4 {
		return nil, 0, 0, fmt.Errorf("not an IDX file: %d bytes is shorter than the 4-byte magic", len(b))
	}
	if b[0] != 0 || b[1] != 0 {
		if b[0] == 0x1f && b[1] == 0x8b {
			return nil, 0, 0, errors.New("gzip-compressed IDX file: inflate it first (Gunzip)")
		}
		return nil, 0, 0, fmt.Errorf("not an IDX file: magic %02x %02x %02x %02x does not start with two zero bytes", b[0], b[1], b[2], b[3])
	}
	name, known := typeNames[b[2]]
	if !known {
		return nil, 0, 0, fmt.Errorf("not an IDX file: unknown element type 0x%02x", b[2])
	}
	if b[2] != TypeUint8 {
		return nil, 0, 0, fmt.Errorf("IDX element type 0x%02x (%s) is not supported: ppml reads IDX files of unsigned bytes, as the MNIST family is distributed", b[2], name)
	}
	nd := int(b[3])
	if nd < 1 || nd > MaxDims {
		return nil, 0, 0, fmt.Errorf("IDX file with %d dimensions (want 1 to %d)", nd, MaxDims)
	}
	hdr = 4 + 4*nd
	if len(b) < hdr {
		return nil, 0, 0, fmt.Errorf("IDX file truncated in its header (%d dimensions need %d bytes, it has %d)", nd, hdr, len(b))
	}
	// An item (the product of the dimensions after the first) and the whole data are bounded
	// separately, so that a file of zero items cannot announce items of absurd size.
	item := int64(1)
	for i := range nd {
		d := int64(binary.BigEndian.Uint32(b[4+4*i:]))
		dims = append(dims, int(d))
		if i == 0 {
			continue
		}
		if d == 0 {
			return nil, 0, 0, fmt.Errorf("IDX dimension %d is 0", i)
		}
		if item > maxItem/d {
			return nil, 0, 0, fmt.Errorf("IDX items of %s bytes are too large", shape(dims[1:]))
		}
		item *= d
	}
	if int64(dims[0]) > maxData/item {
		return nil, 0, 0, fmt.Errorf("IDX dimensions %s are too large", shape(dims))
	}
	return dims, hdr, int64(dims[0]) * item, nil
}

func shape(dims []int) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = fmt.Sprint(d)
	}
	return strings.Join(s, " × ")
}

// Open reads the header of an IDX file of size bytes and checks that the file holds exactly the
// elements it announces.
func Open(r io.ReaderAt, size int64) (*Array, error) {
	head := make([]byte, min(size, 4+4*MaxDims))
	if _, err := r.ReadAt(head, 0); err != nil && !(errors.Is(err, io.EOF) && int64(len(head)) == size) {
		return nil, fmt.Errorf("read IDX header: %w", err)
	}
	dims, hdr, data, err := header(head)
	if err != nil {
		return nil, err
	}
	switch have := size - int64(hdr); {
	case have < data:
		return nil, fmt.Errorf("IDX file truncated: its header announces %s = %d bytes of data, the file holds %d", shape(dims), data, have)
	case have > data:
		return nil, fmt.Errorf("IDX file has %d bytes after the %s elements its header announces", have-data, shape(dims))
	}
	item := 1
	for _, d := range dims[1:] {
		item *= d
	}
	return &Array{Dims: dims, r: r, off: int64(hdr), item: item}, nil
}

// Items is the number of items (the first dimension).
func (a *Array) Items() int { return a.Dims[0] }

// ItemSize is the number of bytes of one item.
func (a *Array) ItemSize() int { return a.item }

// Read copies item i into dst, which must hold ItemSize bytes.
func (a *Array) Read(i int, dst []byte) error {
	if i < 0 || i >= a.Dims[0] || len(dst) != a.item {
		return fmt.Errorf("idx: item %d of %d into %d bytes", i, a.Dims[0], len(dst))
	}
	_, err := a.r.ReadAt(dst, a.off+int64(i)*int64(a.item))
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // Open checked the size: the file shrank
	}
	return err
}

// Gunzip inflates one gzip-compressed IDX file, reading its header first and then exactly the
// data it announces; more than maxBytes of output, a short stream or anything after the data
// is an error.
func Gunzip(r io.Reader, maxBytes int64) ([]byte, error) {
	zr, err := gzip.NewReader(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	defer zr.Close()
	zr.Multistream(false)
	head := make([]byte, 4)
	if _, err := io.ReadFull(zr, head); err != nil {
		return nil, fmt.Errorf("gzip-compressed IDX file: %w", unexpected(err))
	}
	if head[0] != 0 || head[1] != 0 || head[3] < 1 || head[3] > MaxDims {
		_, _, _, err := header(head)
		if err == nil {
			err = errors.New("not an IDX file")
		}
		return nil, fmt.Errorf("gzip-compressed %w", err)
	}
	full := make([]byte, 4+4*int(head[3]))
	copy(full, head)
	if _, err := io.ReadFull(zr, full[4:]); err != nil {
		return nil, fmt.Errorf("gzip-compressed IDX header: %w", unexpected(err))
	}
	dims, _, data, err := header(full)
	if err != nil {
		return nil, err
	}
	total := int64(len(full)) + data
	if total > maxBytes {
		return nil, fmt.Errorf("gzip-compressed IDX file announces %s = %d bytes, more than the %d allowed", shape(dims), total, maxBytes)
	}
	out := make([]byte, total)
	copy(out, full)
	if n, err := io.ReadFull(zr, out[len(full):]); err != nil {
		return nil, fmt.Errorf("gzip-compressed IDX file truncated: its header announces %s = %d bytes of data, the stream holds %d", shape(dims), data, n)
	}
	var one [1]byte
	switch n, err := zr.Read(one[:]); {
	case n > 0:
		return nil, fmt.Errorf("gzip-compressed IDX file has bytes after the %s elements its header announces", shape(dims))
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("gzip: %w", err) // a bad checksum or a cut stream
	}
	return out, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// IsGzip reports whether b starts like a gzip stream.
func IsGzip(b []byte) bool { return bytes.HasPrefix(b, []byte{0x1f, 0x8b}) }
