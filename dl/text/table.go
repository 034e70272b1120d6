package text

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Table is a text column and, when read with a label column, integer labels.
type Table struct {
	Texts  []string
	Labels []int64 // nil without a label column
}

// MaxLabel bounds class indices.
const MaxLabel = 10000

func parseLabel(s, col string, row int) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v < 0 || v >= MaxLabel {
		return 0, fmt.Errorf("label column %q, row %d: want a class index 0, 1, … below %d", col, row, MaxLabel)
	}
	return v, nil
}

// ReadCSV reads a CSV file with a header row; textCol and labelCol ("" for none) are chosen by
// name. Errors name the column and the 1-based data row, never a cell's content.
func ReadCSV(r io.Reader, textCol, labelCol string) (*Table, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("csv: empty input, want a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	header = slices.Clone(header)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	col := func(name string) (int, error) {
		i := slices.Index(header, name)
		if i < 0 {
			return 0, fmt.Errorf("csv: column %q is not in the header (columns: %s)", name, strings.Join(header, ", "))
		}
		if slices.Index(header[i+1:], name) >= 0 {
			return 0, fmt.Errorf("csv header: column %q appears twice", name)
		}
		return i, nil
	}
	ti, err := col(textCol)
	if err != nil {
		return nil, err
	}
	li := -1
	if labelCol != "" {
		if li, err = col(labelCol); err != nil {
			return nil, err
		}
	}
	t := &Table{}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
		t.Texts = append(t.Texts, strings.Clone(rec[ti]))
		if li >= 0 {
			v, err := parseLabel(rec[li], labelCol, row)
			if err != nil {
				return nil, err
			}
			t.Labels = append(t.Labels, v)
		}
	}
	if len(t.Texts) == 0 {
		return nil, errors.New("csv: no data rows")
	}
	return t, nil
}

// ReadParquet reads a Parquet file whose text column is a string column and whose label
// column holds integers.
func ReadParquet(r parquet.ReaderAtSeeker, textCol, labelCol string) (t *Table, err error) {
	// Third-party decoder on untrusted bytes: a panic becomes an error for this input.
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, errors.New("parquet: malformed file (the decoder failed on it)")
		}
	}()
	tbl, err := pqarrow.ReadTable(context.Background(), r, nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	defer tbl.Release()
	col := func(name string) (*arrow.Column, error) {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			var names []string
			for _, f := range tbl.Schema().Fields() {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("parquet: column %q is not in the table once (columns: %s)", name, strings.Join(names, ", "))
		}
		return tbl.Column(idx[0]), nil
	}
	tc, err := col(textCol)
	if err != nil {
		return nil, err
	}
	out := &Table{}
	for _, ch := range tc.Data().Chunks() {
		switch a := ch.(type) {
		case *array.String:
			for i := range a.Len() {
				if a.IsNull(i) {
					return nil, fmt.Errorf("parquet: text column %q, row %d: null", textCol, len(out.Texts)+1)
				}
				out.Texts = append(out.Texts, strings.Clone(a.Value(i)))
			}
		case *array.LargeString:
			for i := range a.Len() {
				if a.IsNull(i) {
					return nil, fmt.Errorf("parquet: text column %q, row %d: null", textCol, len(out.Texts)+1)
				}
				out.Texts = append(out.Texts, strings.Clone(a.Value(i)))
			}
		default:
			return nil, fmt.Errorf("parquet: text column %q is %s, want a string column", textCol, ch.DataType())
		}
	}
	if labelCol != "" {
		lc, err := col(labelCol)
		if err != nil {
			return nil, err
		}
		for _, ch := range lc.Data().Chunks() {
			for i := range ch.Len() {
				row := len(out.Labels) + 1
				if ch.IsNull(i) {
					return nil, fmt.Errorf("parquet: label column %q, row %d: label is missing", labelCol, row)
				}
				var v int64
				switch a := ch.(type) {
				case *array.Int64:
					v = a.Value(i)
				case *array.Int32:
					v = int64(a.Value(i))
				case *array.Int16:
					v = int64(a.Value(i))
				case *array.Int8:
					v = int64(a.Value(i))
				case *array.Uint8:
					v = int64(a.Value(i))
				default:
					return nil, fmt.Errorf("parquet: label column %q is %s, want integers", labelCol, ch.DataType())
				}
				if v < 0 || v >= MaxLabel {
					return nil, fmt.Errorf("parquet: label column %q, row %d: want a class index 0, 1, … below %d", labelCol, row, MaxLabel)
				}
				out.Labels = append(out.Labels, v)
			}
		}
	}
	if len(out.Texts) == 0 {
		return nil, errors.New("parquet: no rows")
	}
	return out, nil
}
