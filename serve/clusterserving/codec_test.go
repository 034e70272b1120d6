package clusterserving

import (
	"bytes"
	"fmt"
	"os"
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
func pythonNdarray(t testing.TB, name string, data []float32, shape []int32) []byte {
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
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
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

// TestDecodeArrowDeclaredSizes: a stream whose schema announces 67 million fields in 528
// bytes of metadata (FuzzDecodeArrow found it; arrow-go allocated gigabytes for it) is refused
// before arrow-go reads it.
func TestDecodeArrowDeclaredSizes(t *testing.T) {
	b, err := os.ReadFile("testdata/fuzz/FuzzDecodeArrow/262e5e30060c5cef")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 2)
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[1]), "[]byte("), ")")
	in, err := strconv.Unquote(s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecodeArrow([]byte(in))
	if err == nil || !strings.Contains(err.Error(), "declares 67108864 entries") {
		t.Fatalf("got %v, want the declared field count refused", err)
	}
}
