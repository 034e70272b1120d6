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

// MaxRecordBytes bounds a request record's Arrow stream.
const MaxRecordBytes = 32 << 20

// DecodeArrow reads a request record: an Arrow IPC stream with one RecordBatch whose columns
// are the values. Row 0 of each column is the value, except for ndarray structs, whose
// children's list values are concatenated over all rows (Cluster Serving's Python client
// writes each child in its own row).
func DecodeArrow(b []byte) (inst Instance, err error) {
	if len(b) > MaxRecordBytes {
		return nil, fmt.Errorf("record is %d bytes, more than %d", len(b), MaxRecordBytes)
	}
	// arrow-go trusts the IPC metadata it reads in places; a malformed stream must not take
	// the worker down.
	defer func() {
		if r := recover(); r == errArrowBudget {
			inst, err = nil, errArrowBudget
		} else if r != nil {
			inst, err = nil, fmt.Errorf("not an Arrow IPC stream: %v", r)
		}
	}()
	if err := checkArrowStream(b); err != nil {
		return nil, fmt.Errorf("not an Arrow IPC stream: %v", err)
	}
	mem := &arrowBudget{mem: memory.NewGoAllocator(), left: maxArrowAllocation}
	rd, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("not an Arrow IPC stream: %v", err)
	}
	defer rd.Release()
	if !rd.Next() {
		if rd.Err() != nil {
			return nil, fmt.Errorf("not an Arrow IPC stream: %v", rd.Err())
		}
		return nil, errors.New("the Arrow stream has no record batch")
	}
	rec := rd.RecordBatch()
	rec.Retain()
	defer rec.Release()
	if rd.Next() {
		return nil, errors.New("the Arrow stream has more than one record batch; a record carries one")
	}
	if rd.Err() != nil {
		return nil, fmt.Errorf("not an Arrow IPC stream: %v", rd.Err())
	}
	if rec.NumRows() < 1 {
		return nil, errors.New("the record batch has no rows")
	}
	for i, col := range rec.Columns() {
		name := rec.ColumnName(i)
		if err := array.ValidateFull(col); err != nil {
			return nil, fmt.Errorf("column %q is malformed: %v", tensor.Clip(name), err)
		}
		v, err := columnValue(name, col)
		if err != nil {
			return nil, err
		}
		inst = append(inst, v)
	}
	return inst, nil
}

func columnValue(name string, col arrow.Array) (tensor.Tensor, error) {
	if col.IsNull(0) && col.DataType().ID() != arrow.STRUCT {
		return tensor.Tensor{}, fmt.Errorf("column %q: value is null", tensor.Clip(name))
	}
	scalar := func(dt tensor.DataType) tensor.Tensor {
		return tensor.Tensor{Name: name, DataType: dt, Shape: []int64{1}}
	}
	switch c := col.(type) {
	case *array.Float32:
		t := scalar(tensor.FP32)
		t.F32 = []float32{c.Value(0)}
		return t, nil
	case *array.Float64:
		t := scalar(tensor.FP64)
		t.F64 = []float64{c.Value(0)}
		return t, nil
	case *array.Int32:
		t := scalar(tensor.Int32)
		t.Ints = []int64{int64(c.Value(0))}
		return t, nil
	case *array.Int64:
		t := scalar(tensor.Int64)
		t.Ints = []int64{c.Value(0)}
		return t, nil
	case *array.String:
		return stringValue(name, c.Value(0))
	case *array.LargeString:
		return stringValue(name, c.Value(0))
	case *array.Binary:
		return stringValue(name, string(c.Value(0)))
	case *array.Struct:
		return ndarray(name, c)
	}
	return tensor.Tensor{}, fmt.Errorf("column %q has Arrow type %s; values are float32, float64, int32, int64, strings or ndarray structs", tensor.Clip(name), col.DataType())
}

// ndarray reads the struct {indiceData, indiceShape, data, shape}.
func ndarray(name string, s *array.Struct) (tensor.Tensor, error) {
	st := s.DataType().(*arrow.StructType)
	child := func(field string) (arrow.Array, bool) {
		i, ok := st.FieldIdx(field)
		if !ok {
			return nil, false
		}
		return s.Field(i), true
	}
	dataCol, ok := child("data")
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("column %q: ndarray struct has no data field", tensor.Clip(name))
	}
	shapeCol, ok := child("shape")
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("column %q: ndarray struct has no shape field", tensor.Clip(name))
	}
	shape, err := intValues(name, "shape", shapeCol)
	if err != nil {
		return tensor.Tensor{}, err
	}
	var indices, indiceShape []int64
	if c, ok := child("indiceData"); ok {
		if indices, err = intValues(name, "indiceData", c); err != nil {
			return tensor.Tensor{}, err
		}
	}
	if c, ok := child("indiceShape"); ok {
		if indiceShape, err = intValues(name, "indiceShape", c); err != nil {
			return tensor.Tensor{}, err
		}
	}
	vals, err := listValues(name, "data", dataCol)
	if err != nil {
		return tensor.Tensor{}, err
	}
	t := tensor.Tensor{Name: name, Shape: shape}
	switch v := vals.(type) {
	case *array.Float32:
		t.DataType, t.F32 = tensor.FP32, v.Float32Values()
	case *array.Float64:
		t.DataType, t.F64 = tensor.FP64, v.Float64Values()
	case *array.Int32:
		t.DataType = tensor.Int32
		for _, x := range v.Int32Values() {
			t.Ints = append(t.Ints, int64(x))
		}
	case *array.Int64:
		t.DataType, t.Ints = tensor.Int64, v.Int64Values()
	case *array.String:
		t.DataType = tensor.Bytes
		for i := range v.Len() {
			t.Bytes = append(t.Bytes, []byte(v.Value(i)))
		}
	default:
		return tensor.Tensor{}, fmt.Errorf("column %q: ndarray data holds %s; float32, float64, int32, int64 or strings", tensor.Clip(name), vals.DataType())
	}
	if vals.NullN() > 0 {
		return tensor.Tensor{}, fmt.Errorf("column %q: ndarray data has nulls", tensor.Clip(name))
	}
	if len(indiceShape) > 0 {
		if len(indiceShape) != 2 || t.DataType == tensor.Bytes {
			return tensor.Tensor{}, fmt.Errorf("column %q: sparse ndarray needs a 2-dimensional indiceShape and numeric data", tensor.Clip(name))
		}
		f32, err := convert(t, tensor.FP32)
		if err != nil {
			return tensor.Tensor{}, err
		}
		return densify(name, shape, f32.F32, indices, int(indiceShape[0]), int(indiceShape[1]))
	}
	if err := t.Validate(); err != nil {
		return tensor.Tensor{}, fmt.Errorf("column %q: %v", tensor.Clip(name), err)
	}
	return t, nil
}

// listValues concatenates the values of a list column's non-null rows.
func listValues(name, field string, col arrow.Array) (arrow.Array, error) {
	l, ok := col.(*array.List)
	if !ok {
		return nil, fmt.Errorf("column %q: ndarray field %s is %s, not a list", tensor.Clip(name), field, col.DataType())
	}
	var parts []arrow.Array
	for i := range l.Len() {
		if l.IsNull(i) {
			continue
		}
		a, b := l.ValueOffsets(i)
		if a < b {
			parts = append(parts, array.NewSlice(l.ListValues(), a, b))
		}
	}
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	if len(parts) == 0 {
		return array.MakeArrayOfNull(memory.DefaultAllocator, l.DataType().(*arrow.ListType).Elem(), 0), nil
	}
	return array.Concatenate(parts, memory.DefaultAllocator)
}

func intValues(name, field string, col arrow.Array) ([]int64, error) {
	vals, err := listValues(name, field, col)
	if err != nil {
		return nil, err
	}
	defer vals.Release()
	if vals.NullN() > 0 {
		return nil, fmt.Errorf("column %q: ndarray %s has nulls", tensor.Clip(name), field)
	}
	var out []int64
	switch v := vals.(type) {
	case *array.Int32:
		for _, x := range v.Int32Values() {
			out = append(out, int64(x))
		}
	case *array.Int64:
		out = v.Int64Values()
	case *array.Float32: // the Python client writes sparse indices as float32
		for _, x := range v.Float32Values() {
			if x != float32(int64(x)) {
				return nil, fmt.Errorf("column %q: ndarray %s holds %v, not an integer", tensor.Clip(name), field, x)
			}
			out = append(out, int64(x))
		}
	default:
		return nil, fmt.Errorf("column %q: ndarray %s holds %s, not integers", tensor.Clip(name), field, vals.DataType())
	}
	return out, nil
}

var resultSchema = arrow.NewSchema([]arrow.Field{
	{Name: "data", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "shape", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
}, nil)

// EncodeResult writes a record's result: an Arrow IPC stream with one RecordBatch per output
// tensor, columns data (float32 elements) and shape (int32 dimensions), the shorter column
// padded with nulls, as Cluster Serving's clients read it. Unless batched, the tensors lose
// their batch dimension (a record of one row gets its row's result).
func EncodeResult(outputs []tensor.Tensor, batched Batched) ([]byte, error) {
	var buf bytes.Buffer
	mem := memory.NewGoAllocator()
	w := ipc.NewWriter(&buf, ipc.WithSchema(resultSchema), ipc.WithAllocator(mem))
	for _, o := range outputs {
		shape := o.Shape
		if !batched && len(shape) > 0 && shape[0] == 1 {
			shape = shape[1:]
		}
		data := make([]float32, o.Len())
		for i := range data {
			v, err := o.Float64(i)
			if err != nil {
				return nil, fmt.Errorf("output %q: %v", o.Name, err)
			}
			data[i] = float32(v)
		}
		rows := max(len(data), len(shape))
		db := array.NewFloat32Builder(mem)
		sb := array.NewInt32Builder(mem)
		for i := range rows {
			if i < len(data) {
				db.Append(data[i])
			} else {
				db.AppendNull()
			}
			if i < len(shape) {
				sb.Append(int32(shape[i]))
			} else {
				sb.AppendNull()
			}
		}
		d, s := db.NewArray(), sb.NewArray()
		rec := array.NewRecordBatch(resultSchema, []arrow.Array{d, s}, int64(rows))
		err := w.Write(rec)
		rec.Release()
		d.Release()
		s.Release()
		db.Release()
		sb.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
