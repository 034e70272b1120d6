package mlengine

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ppml/ppml/engine/ml/mlspec"
)

// predictionColumns names and fills the columns predict appends to the input table:
// regression "prediction"; binary "probability" (of class 1) and "prediction" (0 or 1);
// multiclass "probability_0" … "probability_{k-1}" and "prediction" (the most probable class).
func predictionColumns(p *predictions) ([]string, [][]float64) {
	switch p.obj {
	case mlspec.Binary:
		return []string{"probability", "prediction"}, [][]float64{p.values, p.class()}
	case mlspec.Multiclass:
		n := len(p.values) / p.classes
		names := make([]string, 0, p.classes+1)
		cols := make([][]float64, 0, p.classes+1)
		for c := range p.classes {
			col := make([]float64, n)
			for i := range n {
				col[i] = p.values[i*p.classes+c]
			}
			names = append(names, "probability_"+strconv.Itoa(c))
			cols = append(cols, col)
		}
		return append(names, "prediction"), append(cols, p.class())
	}
	return []string{"prediction"}, [][]float64{p.values}
}

// predictionTable writes the input table with the prediction columns appended, in format f.
func predictionTable(in Input, f mlspec.Format, p *predictions) ([]byte, error) {
	names, cols := predictionColumns(p)
	ra, size, done, err := in.open()
	if err != nil {
		return nil, err
	}
	defer done()
	sr := io.NewSectionReader(ra, 0, size)
	var header []string
	var records [][]string
	var tbl arrow.Table
	switch in.Format {
	case mlspec.CSV:
		cr := csv.NewReader(sr)
		all, err := cr.ReadAll()
		if err != nil {
			return nil, fmt.Errorf("re-read input: %w", err)
		}
		if len(all) == 0 {
			return nil, errors.New("input has no header")
		}
		header, records = all[0], all[1:]
	case mlspec.Parquet:
		tbl, err = readArrow(sr)
		if err != nil {
			return nil, err
		}
		defer tbl.Release()
		for _, fl := range tbl.Schema().Fields() {
			header = append(header, fl.Name)
		}
	default:
		return nil, fmt.Errorf("table format %q: want csv or parquet", in.Format)
	}
	for _, n := range names {
		if slices.Contains(header, n) {
			return nil, fmt.Errorf("the input already has a column named %q; rename it (the prediction columns are %v)", n, names)
		}
	}
	rows := len(cols[0])
	if tbl == nil && len(records) != rows || tbl != nil && tbl.NumRows() != int64(rows) {
		return nil, fmt.Errorf("input has a different number of rows than was predicted (%d)", rows)
	}
	format := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, p.bits) }
	switch f {
	case mlspec.CSV:
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if tbl != nil {
			if records, err = arrowRecords(tbl); err != nil {
				return nil, err
			}
		}
		if err := w.Write(append(slices.Clone(header), names...)); err != nil {
			return nil, err
		}
		for i, rec := range records {
			for _, c := range cols {
				rec = append(rec, format(c[i]))
			}
			if err := w.Write(rec); err != nil {
				return nil, err
			}
		}
		w.Flush()
		return buf.Bytes(), w.Error()
	case mlspec.Parquet:
		if tbl == nil {
			return nil, errors.New("predictions as Parquet need a Parquet input (CSV columns have no types); write CSV")
		}
		return appendParquet(tbl, names, cols, p.bits)
	}
	return nil, fmt.Errorf("table format %q: want csv or parquet", f)
}

func readArrow(r parquet.ReaderAtSeeker) (tbl arrow.Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			tbl, err = nil, errors.New("parquet: malformed file (the decoder failed on it)")
		}
	}()
	tbl, err = pqarrow.ReadTable(context.Background(), r, nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return tbl, nil
}

// arrowRecords renders a table's cells as text (Parquet input, CSV output).
func arrowRecords(tbl arrow.Table) ([][]string, error) {
	n := int(tbl.NumRows())
	out := make([][]string, n)
	for i := range out {
		out[i] = make([]string, 0, tbl.NumCols()+2)
	}
	for j := 0; j < int(tbl.NumCols()); j++ {
		i := 0
		for _, ch := range tbl.Column(j).Data().Chunks() {
			for k := 0; k < ch.Len(); k++ {
				s := ""
				if !ch.IsNull(k) {
					s = ch.ValueStr(k)
				}
				out[i] = append(out[i], s)
				i++
			}
		}
	}
	return out, nil
}

func appendParquet(tbl arrow.Table, names []string, cols [][]float64, bits int) ([]byte, error) {
	fields := slices.Clone(tbl.Schema().Fields())
	chunked := make([]arrow.Column, 0, len(fields)+len(names))
	for j := 0; j < int(tbl.NumCols()); j++ {
		chunked = append(chunked, *tbl.Column(j))
	}
	var release []arrow.Array
	defer func() {
		for _, a := range release {
			a.Release()
		}
	}()
	for k, name := range names {
		var arr arrow.Array
		var typ arrow.DataType
		if bits == 32 {
			b := array.NewFloat32Builder(memory.DefaultAllocator)
			for _, v := range cols[k] {
				b.Append(float32(v))
			}
			arr, typ = b.NewArray(), arrow.PrimitiveTypes.Float32
			b.Release()
		} else {
			b := array.NewFloat64Builder(memory.DefaultAllocator)
			b.AppendValues(cols[k], nil)
			arr, typ = b.NewArray(), arrow.PrimitiveTypes.Float64
			b.Release()
		}
		release = append(release, arr)
		f := arrow.Field{Name: name, Type: typ}
		fields = append(fields, f)
		ch := arrow.NewChunked(typ, []arrow.Array{arr})
		col := arrow.NewColumn(f, ch)
		ch.Release()
		chunked = append(chunked, *col)
	}
	schema := arrow.NewSchema(fields, nil)
	out := array.NewTable(schema, chunked, tbl.NumRows())
	defer out.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(out, &buf, 64<<10, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()); err != nil {
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	return buf.Bytes(), nil
}
