package clusterserving

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ppml/ppml/serve/model"
	"github.com/ppml/ppml/serve/tensor"
)

// pythonNdarray writes a request the way BigDL's Python client lays out an ndarray: a struct
// column of four rows, each row setting one of indiceData, indiceShape, data, shape.
func pythonNdarray(t testing.TB, name string, data []float32, shape []int32, opts ...ipc.Option) []byte {
	mem := memory.NewGoAllocator()
	fields := []arrow.Field{
		{Name: "indiceData", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "indiceShape", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "data", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
		{Name: "shape", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	}
	st := arrow.StructOf(fields...)
	sb := array.NewStructBuilder(mem, st)
	defer sb.Release()
	for row := range 4 {
		sb.Append(true)
		for f := range 4 {
			lb := sb.FieldBuilder(f).(*array.ListBuilder)
			switch {
			case f == row && f == 2:
				lb.Append(true)
				lb.ValueBuilder().(*array.Float32Builder).AppendValues(data, nil)
			case f == row && f == 3:
				lb.Append(true)
				lb.ValueBuilder().(*array.Int32Builder).AppendValues(shape, nil)
			case f == row:
				lb.Append(true) // empty indices
			default:
				lb.AppendNull()
			}
		}
	}
	col := sb.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: st, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 4)
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func tabularMeta() *model.Metadata {
	return &model.Metadata{Name: "m", Inputs: []model.TensorSpec{{Name: "input", DataType: tensor.FP32, Shape: []int64{-1, 3}}},
		Features: []string{"a", "b", "c"}, Batchable: true}
}

func TestDecodePythonNdarray(t *testing.T) {
	inst, err := DecodeArrow(pythonNdarray(t, "t", []float32{1, 2, 3}, []int32{3}))
	if err != nil {
		t.Fatal(err)
	}
	if len(inst) != 1 || inst[0].Name != "t" || inst[0].DataType != tensor.FP32 || len(inst[0].F32) != 3 || inst[0].Shape[0] != 3 {
		t.Fatalf("decoded %+v", inst)
	}
	in, batched, err := ToInputs(tabularMeta(), inst)
	if err != nil || batched || in[0].Shape[0] != 1 || in[0].Shape[1] != 3 {
		t.Fatalf("inputs %+v batched %v err %v", in, batched, err)
	}
	// A matrix of rows keeps its batch dimension.
	inst, err = DecodeArrow(pythonNdarray(t, "t", []float32{1, 2, 3, 4, 5, 6}, []int32{2, 3}))
	if err != nil {
		t.Fatal(err)
	}
	if in, batched, err = ToInputs(tabularMeta(), inst); err != nil || !batched || in[0].Shape[0] != 2 {
		t.Fatalf("matrix: %+v %v %v", in, batched, err)
	}
	if _, _, err := ToInputs(tabularMeta(), Instance{{Name: "t", DataType: tensor.FP32, Shape: []int64{4}, F32: make([]float32, 4)}}); err == nil || !strings.Contains(err.Error(), "takes 3 features per row") {
		t.Errorf("wrong width: %v", err)
	}
}

func TestResultRoundTrip(t *testing.T) {
	out := []tensor.Tensor{{Name: "probability", DataType: tensor.FP32, Shape: []int64{1, 3}, F32: []float32{.1, .2, .7}},
		{Name: "prediction", DataType: tensor.Int64, Shape: []int64{1}, Ints: []int64{2}}}
	b, err := EncodeResult(out, false)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var got []string
	for rd.Next() {
		rec := rd.RecordBatch()
		got = append(got, rec.Column(0).String()+" "+rec.Column(1).String())
	}
	// One batch per output; the batch dimension of a single-row record is dropped; the
	// shorter column is padded with nulls (as BigDL's Python client expects).
	if strings.Join(got, "|") != "[0.1 0.2 0.7] [3 (null) (null)]|[2] [(null)]" {
		t.Errorf("result batches %q", got)
	}
}

func TestDecodeInstances(t *testing.T) {
	insts, err := DecodeInstances([]byte(`{"instances":[{"c":3,"a":1,"b":2},{"t":[[1,2,3],[4,5,6]]},{"s":{"shape":[2,3],"data":[7],"indices":[[1,2]]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := ToInputs(tabularMeta(), insts[0])
	if err != nil || fmt.Sprint(in[0].F32) != "[1 2 3]" {
		t.Fatalf("by feature name: %v %v", in, err)
	}
	if insts[1][0].DataType != tensor.FP64 || len(insts[1][0].F64) != 6 || insts[1][0].Shape[0] != 2 {
		t.Errorf("nested list: %+v", insts[1][0])
	}
	if s := insts[2][0]; s.F32[5] != 7 || s.F32[0] != 0 {
		t.Errorf("sparse: %+v", s)
	}
	for _, bad := range []string{`{}`, `{"instances":[]}`, `{"instances":[{"t":[[1,2],[3]]}]}`, `{"instances":[{"t":[1,"x"]}]}`, `{"instances":[{"t":true}]}`, `{"instances":[{"s":{"shape":[2],"data":[1],"indices":[[5]]}}]}`, `{"instances":[{"a":1,"a":2}]}`} {
		if _, err := DecodeInstances([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func FuzzDecodeArrow(f *testing.F) {
	f.Add(pythonNdarray(f, "t", []float32{1, 2, 3}, []int32{3}))
	b, _ := EncodeResult([]tensor.Tensor{{Name: "x", DataType: tensor.FP32, Shape: []int64{2}, F32: []float32{1, 2}}}, true)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		inst, err := DecodeArrow(b)
		if err == nil {
			ToInputs(tabularMeta(), inst)
		}
	})
}

func FuzzDecodeInstances(f *testing.F) {
	f.Add([]byte(`{"instances":[{"c":3,"a":1,"b":2},{"t":[[1,2,3],[4,5,6]]},{"s":{"shape":[2,3],"data":[7],"indices":[[1,2]]}},{"i":{"b64":"AAE="}},{"x":"a|b"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		insts, err := DecodeInstances(b)
		if err == nil {
			for _, in := range insts {
				ToInputs(tabularMeta(), in)
			}
		}
	})
}

// TestDecodeArrowDeclaredSizes: streams whose schema announces millions of fields in a few
// hundred bytes of metadata are refused before arrow-go reads them. FuzzDecodeArrow found
// both; arrow-go sized a slice of fields by the count (1342177280 × 88 bytes: the 110 GiB
// allocations the kernel refused to clusterserving.test processes).
func TestDecodeArrowDeclaredSizes(t *testing.T) {
	for file, want := range map[string]string{
		"262e5e30060c5cef": "declares 67108864 entries",
		"a5adeaa6adbde5cc": "declares 1342177280 entries",
	} {
		in := fuzzInput(t, "testdata/fuzz/FuzzDecodeArrow/"+file)
		var err error
		if alloc := allocated(func() { _, err = DecodeArrow(in) }); alloc > 1<<20 {
			t.Errorf("%s: %d bytes allocated", file, alloc)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want the declared field count refused", file, err)
		}
	}
}

// TestDecodeArrowCompressed: a compressed stream decodes; one whose buffer declares a huge
// length once decompressed (arrow-go allocates that length before decompressing) is refused
// without the allocation.
func TestDecodeArrowCompressed(t *testing.T) {
	data := make([]float32, 1000)
	b := pythonNdarray(t, "t", data, []int32{1000}, ipc.WithZstd())
	inst, err := DecodeArrow(b)
	if err != nil || len(inst) != 1 || len(inst[0].F32) != 1000 {
		t.Fatalf("compressed stream: %+v, %v", inst, err)
	}
	// The data buffer's prefix: its 4000 bytes once decompressed.
	prefix := []byte{0xa0, 0x0f, 0, 0, 0, 0, 0, 0}
	if bytes.Count(b, prefix) != 1 {
		t.Fatalf("the stream holds the 4000-byte prefix %d times", bytes.Count(b, prefix))
	}
	for _, n := range []uint64{100 << 30, 1 << 62, 1<<64 - 2} {
		bad := bytes.Clone(b)
		i := bytes.Index(bad, prefix)
		binary.LittleEndian.PutUint64(bad[i:], n)
		var err error
		if alloc := allocated(func() { _, err = DecodeArrow(bad) }); alloc > 1<<20 {
			t.Errorf("declared %d bytes: %d bytes allocated", n, alloc)
		}
		if err == nil || !strings.Contains(err.Error(), "once decompressed") {
			t.Errorf("declared %d bytes: %v", n, err)
		}
	}
}

// TestArrowBudget: the allocator arrow-go reads with refuses to hand out more than its
// budget, and DecodeArrow turns the refusal into its error.
func TestArrowBudget(t *testing.T) {
	a := &arrowBudget{mem: memory.NewGoAllocator(), left: 100}
	b := a.Allocate(60)
	b = a.Reallocate(90, b)
	a.Free(b)
	a.Allocate(100)
	defer func() {
		if r := recover(); r != errArrowBudget {
			t.Errorf("over budget: %v", r)
		}
	}()
	a.Allocate(1)
}

// TestSparseJSONBounds: a sparse tensor's coordinates are allocated only once every index
// has the shape's rank, so a long shape and many empty indices cannot ask for their product.
func TestSparseJSONBounds(t *testing.T) {
	n := 20000
	body := []byte(`{"instances":[{"s":{"shape":[` + strings.Repeat("0,", n) + `0],"data":[],"indices":[` + strings.Repeat("[],", n) + `[]]}}]}`)
	var err error
	if alloc := allocated(func() { _, err = DecodeInstances(body) }); alloc > 64<<20 {
		t.Errorf("%d bytes allocated for a %d-byte request", alloc, len(body))
	}
	if err == nil || !strings.Contains(err.Error(), "has 0 coordinates for a rank-20001 shape") {
		t.Errorf("got %v", err)
	}
}

func fuzzInput(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 2)
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[1]), "[]byte("), ")")
	in, err := strconv.Unquote(s)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(in)
}

// allocated is the heap memory f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}
