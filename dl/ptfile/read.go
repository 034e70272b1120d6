// Package ptfile reads and writes PyTorch's zip archives without running anything in them:
// TorchScript modules (torch.jit.save) and state dicts (torch.save(model.state_dict())).
//
// Read takes untrusted bytes and returns only data: the named tensors (dotted names as in a
// state dict, "conv1.weight"), the archive's extra files (extra/…, where ppml keeps its model
// metadata) and the kind of archive. The pickle inside is interpreted by a small machine that
// knows PyTorch's containers, numbers, strings and tensor records and an allow-list of globals;
// any other global, opcode or shape is an error, and nothing is ever called or imported. A
// TorchScript archive's code (code/…) is never read: ppml runs its own definition of the
// architecture the model declares (see docs/dl.md, "Model files from elsewhere").
//
// WriteStateDict writes a state dict that torch.load reads.
package ptfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"sort"
	"strings"
)

// DType is a tensor element type.
type DType int

const (
	Float32 DType = iota + 1
	Float64
	Float16
	BFloat16
	Int64
	Int32
	Int16
	Int8
	Uint8
	Bool
)

var dtypeNames = map[DType]string{Float32: "float32", Float64: "float64", Float16: "float16", BFloat16: "bfloat16",
	Int64: "int64", Int32: "int32", Int16: "int16", Int8: "int8", Uint8: "uint8", Bool: "bool"}

func (d DType) String() string { return dtypeNames[d] }

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Float64, Int64:
		return 8
	case Float32, Int32:
		return 4
	case Float16, BFloat16, Int16:
		return 2
	}
	return 1
}

// Kind is the kind of archive.
type Kind string

const (
	TorchScript Kind = "torchscript" // torch.jit.save: data.pkl holds a module object, code/ its source
	StateDict   Kind = "state_dict"  // torch.save: data.pkl holds a dict of tensors
)

// Tensor is a tensor read from a file: its shape and float32 values in row-major order.
// Tensors of other types are listed with Data nil (see DType).
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []float32
}

// File is what Read takes from an archive.
type File struct {
	Kind    Kind
	Class   string    // TorchScript: the module's class (e.g. "__torch__.LeNet5")
	Tensors []*Tensor // in the order the archive lists them
	Extra   map[string][]byte
}

// Tensor returns the tensor with the given name, or nil.
func (f *File) Tensor(name string) *Tensor {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Limits bound what Read accepts.
type Limits struct {
	// MaxBytes bounds the sum of the uncompressed records read (pickles, tensors, extra files).
	MaxBytes int64
}

// DefaultLimits: 1 GiB of records.
var DefaultLimits = Limits{MaxBytes: 1 << 30}

const (
	maxEntries = 100000
	maxPickle  = 64 << 20
	maxExtra   = 64 << 20
	maxTensors = 100000
	maxDepth   = 64
)

// ErrNotArchive is returned for bytes that are not a zip archive at all.
var ErrNotArchive = errors.New("not a PyTorch file: PyTorch saves models and state dicts as zip archives (torch.jit.save, torch.save)")

type reader struct {
	files  map[string]*zip.File
	prefix string
	budget int64
}

func (r *reader) record(name string, limit int64) ([]byte, error) {
	f, ok := r.files[r.prefix+name]
	if !ok {
		return nil, fmt.Errorf("record %s is missing", name)
	}
	n := f.UncompressedSize64
	if n > uint64(limit) || int64(n) > r.budget {
		return nil, fmt.Errorf("record %s: %d bytes is more than allowed", name, n)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(n)+1))
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	if uint64(len(b)) != n {
		return nil, fmt.Errorf("record %s: %d bytes where the archive says %d", name, len(b), n)
	}
	r.budget -= int64(n)
	return b, nil
}

// Read reads an archive from untrusted bytes.
func Read(b []byte, lim Limits) (*File, error) {
	if lim.MaxBytes <= 0 {
		lim = DefaultLimits
	}
	if !bytes.HasPrefix(b, []byte("PK\x03\x04")) {
		return nil, ErrNotArchive
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("not a PyTorch file: %w", err)
	}
	if len(zr.File) > maxEntries {
		return nil, fmt.Errorf("PyTorch file: %d records is too many", len(zr.File))
	}
	r := &reader{files: map[string]*zip.File{}, budget: lim.MaxBytes}
	for _, f := range zr.File {
		if _, dup := r.files[f.Name]; dup {
			return nil, fmt.Errorf("PyTorch file: record %s appears twice", clip(f.Name))
		}
		r.files[f.Name] = f
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") == 1 {
			if r.prefix != "" {
				return nil, errors.New("PyTorch file: more than one data.pkl")
			}
			r.prefix = path.Dir(f.Name) + "/"
		}
	}
	if r.prefix == "" {
		return nil, errors.New("not a PyTorch file: no <name>/data.pkl record (a zip archive, but not one torch.save or torch.jit.save wrote)")
	}
	if _, ok := r.files[r.prefix+"byteorder"]; ok {
		bo, err := r.record("byteorder", 16)
		if err != nil {
			return nil, fmt.Errorf("PyTorch file: %w", err)
		}
		if string(bo) != "little" {
			return nil, fmt.Errorf("PyTorch file: byte order %q (ppml reads little-endian files)", clip(string(bo)))
		}
	}
	out := &File{Kind: StateDict, Extra: map[string][]byte{}}
	if _, ok := r.files[r.prefix+"constants.pkl"]; ok {
		out.Kind = TorchScript
	}
	var extras []string
	for name := range r.files {
		if rest, ok := strings.CutPrefix(name, r.prefix+"extra/"); ok && rest != "" && !strings.Contains(rest, "/") {
			extras = append(extras, rest)
		}
	}
	sort.Strings(extras)
	for _, e := range extras {
		data, err := r.record("extra/"+e, maxExtra)
		if err != nil {
			return nil, fmt.Errorf("PyTorch file: %w", err)
		}
		out.Extra[e] = data
	}
	pkl, err := r.record("data.pkl", maxPickle)
	if err != nil {
		return nil, fmt.Errorf("PyTorch file: %w", err)
	}
	root, err := unpickle(pkl)
	if err != nil {
		return nil, fmt.Errorf("PyTorch file: data.pkl: %w", err)
	}
	var named []namedRef
	switch out.Kind {
	case TorchScript:
		o, ok := root.(*object)
		if !ok {
			return nil, fmt.Errorf("PyTorch file: a TorchScript archive whose data.pkl holds a %s, not a module", kindOf(root))
		}
		out.Class = o.class
		if err := collectModule(o, "", 0, map[*object]bool{}, &named); err != nil {
			return nil, fmt.Errorf("PyTorch file: %w", err)
		}
	default:
		d, ok := root.(*dict)
		if !ok {
			return nil, fmt.Errorf("PyTorch file: data.pkl holds a %s, not a state dict (save model.state_dict(), not the model)", kindOf(root))
		}
		for _, k := range d.keys {
			name, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("PyTorch file: state dict key of type %s", kindOf(k))
			}
			t, ok := d.vals[k].(*tensorRef)
			if !ok {
				return nil, fmt.Errorf("PyTorch file: state dict entry %s is a %s, not a tensor", clip(name), kindOf(d.vals[k]))
			}
			named = append(named, namedRef{name, t})
		}
	}
	if len(named) > maxTensors {
		return nil, fmt.Errorf("PyTorch file: %d tensors is too many", len(named))
	}
	storages := map[string][]byte{}
	for _, n := range named {
		t, err := r.tensor(n, storages)
		if err != nil {
			return nil, fmt.Errorf("PyTorch file: tensor %s: %w", clip(n.name), err)
		}
		out.Tensors = append(out.Tensors, t)
	}
	return out, nil
}

type namedRef struct {
	name string
	ref  *tensorRef
}

var errCycle = errors.New("module refers to itself")

// collectModule walks a TorchScript module's attributes: tensors are named by their path,
// submodules (objects) are walked, everything else (flags, numbers, lists) is skipped.
func collectModule(o *object, prefix string, depth int, seen map[*object]bool, out *[]namedRef) error {
	if depth > maxDepth {
		return errors.New("modules nested too deeply")
	}
	if seen[o] {
		return errCycle
	}
	seen[o] = true
	defer delete(seen, o)
	if o.state == nil {
		return nil
	}
	st, ok := o.state.(*dict)
	if !ok {
		return fmt.Errorf("module %s has %s state (a custom __setstate__ is not supported)", clip(o.class), kindOf(o.state))
	}
	for _, k := range st.keys {
		name, ok := k.(string)
		if !ok {
			return fmt.Errorf("module %s: attribute name of type %s", clip(o.class), kindOf(k))
		}
		switch v := st.vals[k].(type) {
		case *tensorRef:
			*out = append(*out, namedRef{prefix + name, v})
		case *object:
			if err := collectModule(v, prefix+name+".", depth+1, seen, out); err != nil {
				return err
			}
		}
		if len(*out) > maxTensors {
			return errors.New("too many tensors")
		}
	}
	return nil
}

// tensor materializes one tensor: float32 values in row-major order, read through its
// offset and strides from its storage record, every index checked against the storage.
func (r *reader) tensor(n namedRef, storages map[string][]byte) (*Tensor, error) {
	ref := n.ref
	s := ref.storage
	t := &Tensor{Name: n.name, DType: s.dtype, Shape: ref.size}
	numel := int64(1)
	for _, d := range ref.size {
		if d > 0 && numel > math.MaxInt32/d {
			return nil, fmt.Errorf("shape %v is too large", ref.size)
		}
		numel *= d
	}
	if s.dtype != Float32 {
		return t, nil // listed, not read: ppml's models hold float32 tensors only
	}
	if s.numel > r.budget/4+1 {
		return nil, fmt.Errorf("storage of %d elements is more than allowed", s.numel)
	}
	data, ok := storages[s.key]
	if !ok {
		// PyTorch stores tensor records uncompressed (so that they can be mapped); refusing
		// compressed ones bounds the tensor bytes by the file's size (no zip bombs).
		if f, ok := r.files[r.prefix+"data/"+s.key]; ok && f.Method != zip.Store {
			return nil, fmt.Errorf("storage record data/%s is compressed (PyTorch stores tensors uncompressed)", s.key)
		}
		var err error
		if data, err = r.record("data/"+s.key, r.budget); err != nil {
			return nil, err
		}
		storages[s.key] = data
	}
	if int64(len(data)) < s.numel*4 {
		return nil, fmt.Errorf("storage %s holds %d bytes, %d elements of float32 need %d", s.key, len(data), s.numel, s.numel*4)
	}
	// The furthest element any index reaches must lie inside the storage.
	last := ref.offset
	if numel > 0 {
		for i, d := range ref.size {
			if ref.stride[i] > 0 && d-1 > (math.MaxInt64-last)/ref.stride[i] {
				return nil, errors.New("strides overflow")
			}
			last += (d - 1) * ref.stride[i]
		}
		if last >= s.numel {
			return nil, fmt.Errorf("offset and strides reach element %d of a storage of %d", last, s.numel)
		}
	}
	// A tensor may repeat storage elements (zero strides, an expanded view). Model tensors do
	// not, and allowing it would let a few bytes of file announce gigabytes of tensor: a
	// tensor holds at most as many elements as its storage, and its size counts too.
	if numel > s.numel {
		return nil, fmt.Errorf("%d elements from a storage of %d (expanded views are not read)", numel, s.numel)
	}
	if numel*4 > r.budget {
		return nil, fmt.Errorf("%d elements is more than allowed", numel)
	}
	r.budget -= numel * 4
	t.Data = make([]float32, numel)
	idx := make([]int64, len(ref.size))
	for i := range numel {
		off := ref.offset
		for d := range idx {
			off += idx[d] * ref.stride[d]
		}
		t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off*4:]))
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < ref.size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return t, nil
}
