package ptfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// The pickle subset PyTorch writes for state dicts (torch.save) and for the module data of
// TorchScript archives (torch.jit.save): protocol 2 to 4 opcodes for containers, numbers and
// strings, memo and persistent ids; and a handful of globals. Nothing is ever called: a global
// resolves to one of the kinds below, and REDUCE/NEWOBJ/BUILD only build values of those kinds.

// globalKind is what an allowed global stands for.
type globalKind int

const (
	gOrderedDict  globalKind = iota + 1 // collections.OrderedDict()
	gRebuildV2                          // torch._utils._rebuild_tensor_v2
	gRebuildParam                       // torch._utils._rebuild_parameter
	gStorage                            // torch.FloatStorage and friends
	gBuildList                          // torch.jit._pickle.build_intlist and friends
	gRestoreTag                         // torch.jit._pickle.restore_type_tag
	gClass                              // a TorchScript class: __torch__.*
)

type global struct {
	kind globalKind
	name string // module.name as written
}

// storage dtypes by PyTorch storage class, with their element size.
var storageTypes = map[string]DType{
	"FloatStorage": Float32, "DoubleStorage": Float64, "HalfStorage": Float16, "BFloat16Storage": BFloat16,
	"LongStorage": Int64, "IntStorage": Int32, "ShortStorage": Int16, "CharStorage": Int8,
	"ByteStorage": Uint8, "BoolStorage": Bool,
}

func resolveGlobal(module, name string) (*global, error) {
	full := module + "." + name
	g := &global{name: full}
	switch {
	case module == "collections" && name == "OrderedDict":
		g.kind = gOrderedDict
	case module == "torch._utils" && name == "_rebuild_tensor_v2":
		g.kind = gRebuildV2
	case module == "torch._utils" && name == "_rebuild_parameter":
		g.kind = gRebuildParam
	case module == "torch" && storageTypes[name] != 0:
		g.kind = gStorage
	case module == "torch.jit._pickle" && strings.HasPrefix(name, "build_") && strings.HasSuffix(name, "list"):
		g.kind = gBuildList
	case module == "torch.jit._pickle" && name == "restore_type_tag":
		g.kind = gRestoreTag
	case module == "__torch__" || strings.HasPrefix(module, "__torch__."):
		g.kind = gClass
	default:
		return nil, fmt.Errorf("global %s is not allowed (a state dict or TorchScript module holds only tensors, containers and numbers)", clip(full))
	}
	return g, nil
}

// Values the machine builds.
type (
	mark  struct{}
	tuple []any
	list  struct{ items []any }
	dict  struct {
		keys []any
		vals map[any]any
	}
	object struct {
		class string
		state any
	}
	storageRef struct {
		dtype DType
		key   string
		numel int64
	}
	tensorRef struct {
		storage *storageRef
		offset  int64
		size    []int64
		stride  []int64
	}
)

func newDict() *dict { return &dict{vals: map[any]any{}} }

func (d *dict) set(k, v any) error {
	switch k.(type) {
	case string, int64, bool, nil:
	default:
		return fmt.Errorf("dictionary key of type %s", kindOf(k))
	}
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
	return nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case tuple:
		return "tuple"
	case *list:
		return "list"
	case *dict:
		return "dict"
	case *object:
		return "object"
	case *global:
		return "global"
	case *storageRef:
		return "storage"
	case *tensorRef:
		return "tensor"
	case mark:
		return "mark"
	}
	return "value"
}

// Limits on what one pickle may build.
const (
	maxStack = 1 << 20
	maxMemo  = 1 << 20
	maxDims  = 8
)

type machine struct {
	data  []byte
	pos   int
	stack []any
	memo  map[int64]any
}

func (m *machine) errorf(op byte, format string, a ...any) error {
	return fmt.Errorf("pickle offset %d, opcode 0x%02x: %s", m.pos, op, fmt.Sprintf(format, a...))
}

func (m *machine) read(n int) ([]byte, error) {
	if n < 0 || n > len(m.data)-m.pos {
		return nil, errors.New("truncated")
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

func (m *machine) readLine() (string, error) {
	for i := m.pos; i < len(m.data); i++ {
		if m.data[i] == '\n' {
			s := string(m.data[m.pos:i])
			m.pos = i + 1
			return s, nil
		}
	}
	return "", errors.New("truncated line")
}

func (m *machine) push(v any) error {
	if len(m.stack) >= maxStack {
		return errors.New("stack too deep")
	}
	m.stack = append(m.stack, v)
	return nil
}

func (m *machine) pop() (any, error) {
	if len(m.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	if _, ok := v.(mark); ok {
		return nil, errors.New("unexpected mark")
	}
	return v, nil
}

// popMark pops everything above the topmost mark, and the mark.
func (m *machine) popMark() ([]any, error) {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if _, ok := m.stack[i].(mark); ok {
			items := append([]any(nil), m.stack[i+1:]...)
			m.stack = m.stack[:i]
			return items, nil
		}
	}
	return nil, errors.New("no mark")
}

func (m *machine) top() (any, error) {
	if len(m.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

func (m *machine) memoPut(k int64) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	if _, ok := m.memo[k]; !ok && len(m.memo) >= maxMemo {
		return errors.New("memo too large")
	}
	m.memo[k] = v
	return nil
}

func (m *machine) str(n int) (string, error) {
	b, err := m.read(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("string is not UTF-8")
	}
	return string(b), nil
}

// unpickle runs the machine over data and returns the value STOP leaves.
func unpickle(data []byte) (any, error) {
	m := &machine{data: data, memo: map[int64]any{}}
	for {
		if m.pos >= len(m.data) {
			return nil, errors.New("pickle: no STOP opcode")
		}
		op := m.data[m.pos]
		m.pos++
		done, v, err := m.step(op)
		if err != nil {
			return nil, m.errorf(op, "%v", err)
		}
		if done {
			return v, nil
		}
	}
}

func u32(b []byte) int { return int(binary.LittleEndian.Uint32(b)) }

func (m *machine) step(op byte) (bool, any, error) {
	switch op {
	case 0x80: // PROTO
		b, err := m.read(1)
		if err != nil {
			return false, nil, err
		}
		if b[0] < 2 || b[0] > 5 {
			return false, nil, fmt.Errorf("pickle protocol %d (want 2 to 5)", b[0])
		}
	case 0x95: // FRAME: a length hint only
		if _, err := m.read(8); err != nil {
			return false, nil, err
		}
	case '.': // STOP
		v, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		if len(m.stack) != 0 {
			return false, nil, fmt.Errorf("%d values left on the stack", len(m.stack))
		}
		return true, v, nil
	case '(': // MARK
		return false, nil, m.push(mark{})
	case '0': // POP
		_, err := m.pop()
		return false, nil, err
	case '1': // POP_MARK
		_, err := m.popMark()
		return false, nil, err
	case '2': // DUP
		v, err := m.top()
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(v)
	case 'N':
		return false, nil, m.push(nil)
	case 0x88:
		return false, nil, m.push(true)
	case 0x89:
		return false, nil, m.push(false)
	case 'J': // BININT
		b, err := m.read(4)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case 'K': // BININT1
		b, err := m.read(1)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(int64(b[0]))
	case 'M': // BININT2
		b, err := m.read(2)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(int64(binary.LittleEndian.Uint16(b)))
	case 0x8a: // LONG1: little-endian two's complement
		b, err := m.read(1)
		if err != nil {
			return false, nil, err
		}
		n := int(b[0])
		if n > 8 {
			return false, nil, fmt.Errorf("integer of %d bytes", n)
		}
		v, err := m.read(n)
		if err != nil {
			return false, nil, err
		}
		var x int64
		for i := n - 1; i >= 0; i-- {
			x = x<<8 | int64(v[i])
		}
		if n > 0 && n < 8 && v[n-1]&0x80 != 0 {
			x -= int64(1) << (8 * n)
		}
		return false, nil, m.push(x)
	case 'G': // BINFLOAT, big-endian
		b, err := m.read(8)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		var n int
		switch op {
		case 'X':
			b, err := m.read(4)
			if err != nil {
				return false, nil, err
			}
			n = u32(b)
		case 0x8c:
			b, err := m.read(1)
			if err != nil {
				return false, nil, err
			}
			n = int(b[0])
		default:
			b, err := m.read(8)
			if err != nil {
				return false, nil, err
			}
			l := binary.LittleEndian.Uint64(b)
			if l > uint64(len(m.data)) {
				return false, nil, errors.New("truncated")
			}
			n = int(l)
		}
		s, err := m.str(n)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(s)
	case 'B', 'C': // BINBYTES, SHORT_BINBYTES
		var n int
		if op == 'B' {
			b, err := m.read(4)
			if err != nil {
				return false, nil, err
			}
			n = u32(b)
		} else {
			b, err := m.read(1)
			if err != nil {
				return false, nil, err
			}
			n = int(b[0])
		}
		b, err := m.read(n)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(append([]byte(nil), b...))
	case ')': // EMPTY_TUPLE
		return false, nil, m.push(tuple{})
	case 0x85, 0x86, 0x87: // TUPLE1..3
		n := int(op - 0x84)
		if len(m.stack) < n {
			return false, nil, errors.New("stack underflow")
		}
		t := make(tuple, n)
		for i := n - 1; i >= 0; i-- {
			v, err := m.pop()
			if err != nil {
				return false, nil, err
			}
			t[i] = v
		}
		return false, nil, m.push(t)
	case 't': // TUPLE
		items, err := m.popMark()
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(tuple(items))
	case ']': // EMPTY_LIST
		return false, nil, m.push(&list{})
	case 'l': // LIST
		items, err := m.popMark()
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(&list{items: items})
	case 'a': // APPEND
		v, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		t, err := m.top()
		if err != nil {
			return false, nil, err
		}
		l, ok := t.(*list)
		if !ok {
			return false, nil, fmt.Errorf("APPEND to %s", kindOf(t))
		}
		l.items = append(l.items, v)
	case 'e': // APPENDS
		items, err := m.popMark()
		if err != nil {
			return false, nil, err
		}
		t, err := m.top()
		if err != nil {
			return false, nil, err
		}
		l, ok := t.(*list)
		if !ok {
			return false, nil, fmt.Errorf("APPENDS to %s", kindOf(t))
		}
		l.items = append(l.items, items...)
	case '}': // EMPTY_DICT
		return false, nil, m.push(newDict())
	case 'd': // DICT
		items, err := m.popMark()
		if err != nil {
			return false, nil, err
		}
		d := newDict()
		if err := setItems(d, items); err != nil {
			return false, nil, err
		}
		return false, nil, m.push(d)
	case 's': // SETITEM
		v, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		k, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		t, err := m.top()
		if err != nil {
			return false, nil, err
		}
		d, ok := t.(*dict)
		if !ok {
			return false, nil, fmt.Errorf("SETITEM on %s", kindOf(t))
		}
		return false, nil, d.set(k, v)
	case 'u': // SETITEMS
		items, err := m.popMark()
		if err != nil {
			return false, nil, err
		}
		t, err := m.top()
		if err != nil {
			return false, nil, err
		}
		d, ok := t.(*dict)
		if !ok {
			return false, nil, fmt.Errorf("SETITEMS on %s", kindOf(t))
		}
		return false, nil, setItems(d, items)
	case 'q', 'r', 0x94: // BINPUT, LONG_BINPUT, MEMOIZE
		var k int64
		switch op {
		case 'q':
			b, err := m.read(1)
			if err != nil {
				return false, nil, err
			}
			k = int64(b[0])
		case 'r':
			b, err := m.read(4)
			if err != nil {
				return false, nil, err
			}
			k = int64(binary.LittleEndian.Uint32(b))
		default:
			k = int64(len(m.memo))
		}
		return false, nil, m.memoPut(k)
	case 'h', 'j': // BINGET, LONG_BINGET
		var k int64
		if op == 'h' {
			b, err := m.read(1)
			if err != nil {
				return false, nil, err
			}
			k = int64(b[0])
		} else {
			b, err := m.read(4)
			if err != nil {
				return false, nil, err
			}
			k = int64(binary.LittleEndian.Uint32(b))
		}
		v, ok := m.memo[k]
		if !ok {
			return false, nil, fmt.Errorf("memo key %d is not set", k)
		}
		return false, nil, m.push(v)
	case 'c': // GLOBAL module\nname\n
		mod, err := m.readLine()
		if err != nil {
			return false, nil, err
		}
		name, err := m.readLine()
		if err != nil {
			return false, nil, err
		}
		g, err := resolveGlobal(mod, name)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(g)
	case 0x93: // STACK_GLOBAL
		n, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		mod, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := n.(string)
		if !ok1 || !ok2 {
			return false, nil, errors.New("STACK_GLOBAL of non-strings")
		}
		g, err := resolveGlobal(ms, ns)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(g)
	case 'Q': // BINPERSID
		pid, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		s, err := persistentStorage(pid)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(s)
	case 'R': // REDUCE
		args, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		f, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		g, ok := f.(*global)
		a, ok2 := args.(tuple)
		if !ok || !ok2 {
			return false, nil, fmt.Errorf("REDUCE of %s with %s", kindOf(f), kindOf(args))
		}
		v, err := reduce(g, a)
		if err != nil {
			return false, nil, err
		}
		return false, nil, m.push(v)
	case 0x81: // NEWOBJ
		args, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		c, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		g, ok := c.(*global)
		if a, ok2 := args.(tuple); !ok || !ok2 || g.kind != gClass || len(a) != 0 {
			return false, nil, fmt.Errorf("NEWOBJ of %s", kindOf(c))
		}
		return false, nil, m.push(&object{class: g.name})
	case 'b': // BUILD
		st, err := m.pop()
		if err != nil {
			return false, nil, err
		}
		t, err := m.top()
		if err != nil {
			return false, nil, err
		}
		switch o := t.(type) {
		case *object:
			if o.state != nil {
				return false, nil, errors.New("object built twice")
			}
			o.state = st
		case *dict:
			// An OrderedDict's instance attributes (a state dict's _metadata): not needed.
		default:
			return false, nil, fmt.Errorf("BUILD on %s", kindOf(t))
		}
	default:
		return false, nil, errors.New("opcode not allowed in a PyTorch file")
	}
	return false, nil, nil
}

func setItems(d *dict, items []any) error {
	if len(items)%2 != 0 {
		return errors.New("odd number of dictionary items")
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// persistentStorage reads a persistent id: ('storage', storage class, key, location, numel).
func persistentStorage(pid any) (*storageRef, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) != 5 {
		return nil, fmt.Errorf("persistent id is a %s, not a storage tuple", kindOf(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		return nil, errors.New("persistent id is not a storage")
	}
	g, ok := t[1].(*global)
	if !ok || g.kind != gStorage {
		return nil, errors.New("storage of an unknown type")
	}
	key, ok := t[2].(string)
	if !ok || key == "" || len(key) > 64 || strings.ContainsAny(key, "/\\") || key == "." || key == ".." {
		return nil, errors.New("storage key is not a record name")
	}
	if loc, _ := t[3].(string); loc != "cpu" && !strings.HasPrefix(loc, "cuda") {
		return nil, fmt.Errorf("storage location %q", clip(loc))
	}
	n, ok := t[4].(int64)
	if !ok || n < 0 {
		return nil, errors.New("storage size is not a count")
	}
	return &storageRef{dtype: storageTypes[strings.TrimPrefix(g.name, "torch.")], key: key, numel: n}, nil
}

func ints(v any, what string) ([]int64, error) {
	t, ok := v.(tuple)
	if !ok {
		return nil, fmt.Errorf("tensor %s is a %s, not a tuple", what, kindOf(v))
	}
	if len(t) > maxDims {
		return nil, fmt.Errorf("tensor has %d dimensions, at most %d", len(t), maxDims)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("tensor %s holds %s", what, kindOf(x))
		}
		out[i] = n
	}
	return out, nil
}

func reduce(g *global, a tuple) (any, error) {
	switch g.kind {
	case gOrderedDict:
		if len(a) != 0 {
			return nil, errors.New("OrderedDict with arguments")
		}
		return newDict(), nil
	case gRebuildV2:
		// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
		if len(a) < 6 || len(a) > 7 {
			return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments", len(a))
		}
		s, ok := a[0].(*storageRef)
		if !ok {
			return nil, errors.New("_rebuild_tensor_v2 of a non-storage")
		}
		off, ok := a[1].(int64)
		if !ok || off < 0 {
			return nil, errors.New("tensor storage offset is not a count")
		}
		size, err := ints(a[2], "size")
		if err != nil {
			return nil, err
		}
		stride, err := ints(a[3], "stride")
		if err != nil {
			return nil, err
		}
		if len(size) != len(stride) {
			return nil, errors.New("tensor size and stride differ in length")
		}
		return &tensorRef{storage: s, offset: off, size: size, stride: stride}, nil
	case gRebuildParam:
		// (data, requires_grad, backward_hooks)
		if len(a) != 3 {
			return nil, errors.New("_rebuild_parameter with the wrong arguments")
		}
		t, ok := a[0].(*tensorRef)
		if !ok {
			return nil, errors.New("_rebuild_parameter of a non-tensor")
		}
		return t, nil
	case gBuildList:
		if len(a) != 1 {
			return nil, fmt.Errorf("%s with %d arguments", g.name, len(a))
		}
		if _, ok := a[0].(*list); !ok {
			return nil, fmt.Errorf("%s of a %s", g.name, kindOf(a[0]))
		}
		return a[0], nil
	case gRestoreTag:
		if len(a) != 2 {
			return nil, errors.New("restore_type_tag with the wrong arguments")
		}
		return a[0], nil
	}
	return nil, fmt.Errorf("%s cannot be called", clip(g.name))
}

func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
