package clusterserving

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ppml/ppml/serve/tensor"
)

// The client side of the format, for Go clients and load generators: EncodeNdarray writes a
// request as BigDL's Python client does, DecodeResult reads a result.

var ndarrayType = arrow.StructOf(
	arrow.Field{Name: "indiceData", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	arrow.Field{Name: "indiceShape", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	arrow.Field{Name: "data", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
	arrow.Field{Name: "shape", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
)

// EncodeNdarray writes a request record holding one dense float32 ndarray named name, laid
// out as BigDL's Python client lays it out: a struct column of four rows, row i setting only
// field i (indiceData and indiceShape empty).
func EncodeNdarray(name string, data []float32, shape []int32) ([]byte, error) {
	mem := memory.NewGoAllocator()
	sb := array.NewStructBuilder(mem, ndarrayType)
	defer sb.Release()
	for row := range 4 {
		sb.Append(true)
		for f := range 4 {
			lb := sb.FieldBuilder(f).(*array.ListBuilder)
			if f != row {
				lb.AppendNull()
				continue
			}
			lb.Append(true)
			switch f {
			case 2:
				lb.ValueBuilder().(*array.Float32Builder).AppendValues(data, nil)
			case 3:
				lb.ValueBuilder().(*array.Int32Builder).AppendValues(shape, nil)
			}
		}
	}
	col := sb.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: name, Type: ndarrayType, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 4)
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeResult reads a result stream: one FP32 tensor per record batch (data and the non-null
// shape entries).
func DecodeResult(b []byte) (out []tensor.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("not an Arrow IPC stream: %v", r)
		}
	}()
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not an Arrow IPC stream: %v", err)
	}
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		if rec.NumCols() != 2 {
			return nil, errors.New("a result batch has the columns data and shape")
		}
		d, ok1 := rec.Column(0).(*array.Float32)
		s, ok2 := rec.Column(1).(*array.Int32)
		if !ok1 || !ok2 {
			return nil, errors.New("a result batch has float32 data and int32 shape")
		}
		t := tensor.Tensor{DataType: tensor.FP32, Shape: []int64{}}
		for i := range d.Len() {
			if d.IsValid(i) {
				t.F32 = append(t.F32, d.Value(i))
			}
			if s.IsValid(i) {
				t.Shape = append(t.Shape, int64(s.Value(i)))
			}
		}
		out = append(out, t)
	}
	return out, rd.Err()
}
