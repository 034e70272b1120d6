package main

// The Go side of python/tests/test_serving.py: Cluster Serving's Arrow records and results
// (package clusterserving, on arrow-go), general Arrow IPC streams (arrow-go's writer and
// reader) and ppml serving records (package record).

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ppml/ppml/serve/clusterserving"
	"github.com/ppml/ppml/serve/record"
	"github.com/ppml/ppml/serve/tensor"
)

type jsonTensor struct {
	Name     string  `json:"name"`
	DataType string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
	Data     []any   `json:"data"`
}

func toJSON(t tensor.Tensor) jsonTensor {
	j := jsonTensor{Name: t.Name, DataType: string(t.DataType), Shape: t.Shape, Data: []any{}}
	switch {
	case t.F32 != nil:
		for _, v := range t.F32 {
			j.Data = append(j.Data, float64(v)) // exact, not float32's shortest decimal
		}
	case t.F64 != nil:
		for _, v := range t.F64 {
			j.Data = append(j.Data, v)
		}
	case t.Ints != nil:
		for _, v := range t.Ints {
			j.Data = append(j.Data, v)
		}
	case t.Bytes != nil:
		for _, v := range t.Bytes {
			j.Data = append(j.Data, string(v))
		}
	}
	return j
}

func emit(v any) {
	b, err := json.Marshal(v)
	check(err)
	fmt.Println(string(b))
}

// arrow-decode-request FILE: clusterserving.DecodeArrow, one JSON tensor per line, or
// {"error": ...}.
func arrowDecodeRequest(args []string) {
	b, err := os.ReadFile(args[0])
	check(err)
	inst, err := clusterserving.DecodeArrow(b)
	if err != nil {
		emit(map[string]string{"error": err.Error()})
		return
	}
	for _, t := range inst {
		emit(toJSON(t))
	}
}

// arrow-encode-ndarray NAME SHAPE DATA OUT: clusterserving.EncodeNdarray (BigDL's layout);
// SHAPE and DATA are comma-separated.
func arrowEncodeNdarray(args []string) {
	var shape []int32
	for _, s := range strings.Split(args[1], ",") {
		v, err := strconv.ParseInt(s, 10, 32)
		check(err)
		shape = append(shape, int32(v))
	}
	var data []float32
	for _, s := range strings.Split(args[2], ",") {
		v, err := strconv.ParseFloat(s, 32)
		check(err)
		data = append(data, float32(v))
	}
	b, err := clusterserving.EncodeNdarray(args[0], data, shape)
	check(err)
	check(os.WriteFile(args[3], b, 0o644))
}

// arrow-encode-result JSON OUT BATCHED: clusterserving.EncodeResult of FP32 tensors given as
// [{"name", "shape", "data"}].
func arrowEncodeResult(args []string) {
	var in []struct {
		Name  string    `json:"name"`
		Shape []int64   `json:"shape"`
		Data  []float32 `json:"data"`
	}
	check(json.Unmarshal([]byte(args[0]), &in))
	var ts []tensor.Tensor
	for _, t := range in {
		ts = append(ts, tensor.Tensor{Name: t.Name, DataType: tensor.FP32, Shape: t.Shape, F32: t.Data})
	}
	b, err := clusterserving.EncodeResult(ts, clusterserving.Batched(args[2] == "true"))
	check(err)
	check(os.WriteFile(args[1], b, 0o644))
}

// arrow-decode-result FILE: clusterserving.DecodeResult, one JSON tensor per line.
func arrowDecodeResult(args []string) {
	b, err := os.ReadFile(args[0])
	check(err)
	out, err := clusterserving.DecodeResult(b)
	if err != nil {
		emit(map[string]string{"error": err.Error()})
		return
	}
	for _, t := range out {
		emit(toJSON(t))
	}
}

// typesSchema is the schema of the general round trip: every type the Python module writes.
var typesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	{Name: "ll", Type: arrow.LargeListOf(arrow.PrimitiveTypes.Float64), Nullable: true},
	{Name: "st", Type: arrow.StructOf(
		arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "b", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true}), Nullable: true},
}, nil)

// arrow-write-types BATCHES OUT: BATCHES is a JSON file holding a list of batches, each a
// list of row objects in arrow-go's JSON form; writes them as one IPC stream of typesSchema.
func arrowWriteTypes(args []string) {
	text, err := os.ReadFile(args[0])
	check(err)
	var batches []json.RawMessage
	check(json.Unmarshal(text, &batches))
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(typesSchema))
	for _, rows := range batches {
		rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, typesSchema, bytes.NewReader(rows))
		check(err)
		check(w.Write(rec))
		rec.Release()
	}
	check(w.Close())
	check(os.WriteFile(args[1], buf.Bytes(), 0o644))
}

// arrow-read FILE: arrow-go reads the stream and validates every column; prints the schema
// ({"schema": ...}) then each batch's rows ({"rows": [...]}), or {"error": ...}.
func arrowRead(args []string) {
	b, err := os.ReadFile(args[0])
	check(err)
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		emit(map[string]string{"error": err.Error()})
		return
	}
	defer rd.Release()
	emit(map[string]string{"schema": rd.Schema().String()})
	for rd.Next() {
		rec := rd.RecordBatch()
		for i, c := range rec.Columns() {
			if err := array.ValidateFull(c); err != nil {
				emit(map[string]string{"error": fmt.Sprintf("column %d: %v", i, err)})
				return
			}
		}
		var rows bytes.Buffer
		check(array.RecordToJSON(rec, &rows))
		var out []json.RawMessage
		for _, line := range bytes.Split(bytes.TrimSpace(rows.Bytes()), []byte("\n")) {
			if len(line) > 0 {
				out = append(out, json.RawMessage(line))
			}
		}
		emit(map[string]any{"rows": out})
	}
	if rd.Err() != nil {
		emit(map[string]string{"error": rd.Err().Error()})
	}
}

func recordKind(s string) record.Kind {
	if s == "request" {
		return record.Request
	}
	return record.Result
}

// record-seal KEYHEX KIND STREAM URI IN OUT
func recordSeal(args []string) {
	secret, err := hex.DecodeString(args[0])
	check(err)
	k, err := record.NewKey(secret)
	check(err)
	pt, err := os.ReadFile(args[4])
	check(err)
	rec, err := record.Seal(k, recordKind(args[1]), args[2], args[3], pt)
	check(err)
	check(os.WriteFile(args[5], rec, 0o644))
	emit(map[string]string{"key_id": k.ID()})
}

// record-open KEYHEX KIND STREAM URI IN OUT: {"ok": true} or {"error": ..., "class": ...}.
func recordOpen(args []string) {
	secret, err := hex.DecodeString(args[0])
	check(err)
	k, err := record.NewKey(secret)
	check(err)
	rec, err := os.ReadFile(args[4])
	check(err)
	pt, err := record.Open(record.Keyring{k}, recordKind(args[1]), args[2], args[3], rec)
	if err != nil {
		class := "other"
		switch {
		case errors.Is(err, record.ErrNotRecord):
			class = "not_record"
		case errors.Is(err, record.ErrUnknownKey):
			class = "unknown_key"
		case errors.Is(err, record.ErrOpen):
			class = "open"
		case strings.Contains(err.Error(), "was expected"):
			class = "kind"
		}
		emit(map[string]string{"error": err.Error(), "class": class})
		return
	}
	check(os.WriteFile(args[5], pt, 0o644))
	emit(map[string]bool{"ok": true})
}
