package table

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func arrowTable(t *testing.T) arrow.Table {
	t.Helper()
	mem := memory.DefaultAllocator
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "i", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "y", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.Float64Builder).AppendValues([]float64{1.5, 0, math.NaN()}, []bool{true, false, true})
	b.Field(1).(*array.Int32Builder).AppendValues([]int32{7, 8, 9}, nil)
	b.Field(2).(*array.StringBuilder).AppendValues([]string{"a", "b", "c"}, nil)
	b.Field(3).(*array.Float32Builder).AppendValues([]float32{1, 0, 1}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

func TestFromArrowAndParquet(t *testing.T) {
	tbl := arrowTable(t)
	defer tbl.Release()
	check := func(d *Dataset, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := d.X.Column("f")
		i, _ := d.X.Column("i")
		if f[0] != 1.5 || !math.IsNaN(f[1]) || !math.IsNaN(f[2]) || i[2] != 9 || d.Y[0] != 1 || d.Y[1] != 0 {
			t.Fatalf("f %v i %v y %v", f, i, d.Y)
		}
	}
	sel := Selection{Features: []string{"f", "i"}, Label: "y"}
	check(FromArrow(tbl, sel))

	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 1024, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	check(ReadParquet(bytes.NewReader(buf.Bytes()), sel))

	if _, err := FromArrow(tbl, Selection{Label: "y"}); err == nil || !strings.Contains(err.Error(), `column "s" has type utf8`) {
		t.Fatalf("string feature: %v", err)
	}
	if _, err := FromArrow(tbl, Selection{Features: []string{"f"}, Label: "nope"}); err == nil || !strings.Contains(err.Error(), `label column "nope"`) {
		t.Fatalf("missing label: %v", err)
	}
	if _, err := FromArrow(tbl, Selection{Features: []string{"i"}, Label: "f"}); err == nil || !strings.Contains(err.Error(), `label column "f", row 2: label is missing`) {
		t.Fatalf("null label: %v", err)
	}
	if _, err := ReadParquet(bytes.NewReader([]byte("not parquet")), sel); err == nil || !strings.Contains(err.Error(), "parquet") {
		t.Fatalf("garbage parquet: %v", err)
	}
}
