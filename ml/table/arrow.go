package table

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// FromArrow converts an Arrow table (for instance what a SQL step or a Parquet reader produced)
// into a Dataset with the same column selection rules as ReadCSV. Integer, floating-point and
// boolean columns are accepted; a null feature value is missing (NaN), as is a floating-point
// NaN; a null label is an error; other column types are an error naming the column.
func FromArrow(tbl arrow.Table, sel Selection) (*Dataset, error) {
	schema := tbl.Schema()
	names := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		names[i] = f.Name
	}
	index := map[string]int{}
	for j, n := range names {
		if _, dup := index[n]; dup {
			return nil, fmt.Errorf("arrow: column %q appears twice", n)
		}
		index[n] = j
	}
	labelIdx := -1
	if sel.Label != "" {
		i, ok := index[sel.Label]
		if !ok {
			return nil, fmt.Errorf("arrow: label column %q is not in the table (columns: %s)", sel.Label, strings.Join(names, ", "))
		}
		labelIdx = i
	}
	features := sel.Features
	if len(features) == 0 {
		for _, n := range names {
			if n != sel.Label {
				features = append(features, n)
			}
		}
	}
	if len(features) == 0 {
		return nil, errors.New("arrow: no feature columns")
	}
	var missing []string
	for _, f := range features {
		if f == sel.Label {
			return nil, fmt.Errorf("arrow: column %q is both a feature and the label", f)
		}
		if _, ok := index[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("arrow: feature column(s) %s not in the table (columns: %s)", quoteAll(missing), strings.Join(names, ", "))
	}
	if tbl.NumRows() == 0 {
		return nil, errors.New("arrow: table has no rows")
	}
	cols := make([][]float64, len(features))
	for k, f := range features {
		c, err := arrowColumn(tbl.Column(index[f]), f, false)
		if err != nil {
			return nil, err
		}
		cols[k] = c
	}
	var y []float64
	if labelIdx >= 0 {
		var err error
		if y, err = arrowColumn(tbl.Column(labelIdx), sel.Label, true); err != nil {
			return nil, err
		}
	}
	t, err := New(slices.Clone(features), cols)
	if err != nil {
		return nil, err
	}
	return &Dataset{X: t, Label: sel.Label, Y: y}, nil
}

func arrowColumn(col *arrow.Column, name string, label bool) ([]float64, error) {
	what := "column"
	if label {
		what = "label column"
	}
	out := make([]float64, 0, col.Len())
	for _, chunk := range col.Data().Chunks() {
		base := len(out)
		for i := 0; i < chunk.Len(); i++ {
			if chunk.IsNull(i) {
				if label {
					return nil, fmt.Errorf("arrow: label column %q, row %d: label is missing", name, base+i+1)
				}
				out = append(out, math.NaN())
				continue
			}
			var v float64
			switch a := chunk.(type) {
			case *array.Float64:
				v = a.Value(i)
			case *array.Float32:
				v = float64(a.Value(i))
			case *array.Int64:
				v = float64(a.Value(i))
			case *array.Int32:
				v = float64(a.Value(i))
			case *array.Int16:
				v = float64(a.Value(i))
			case *array.Int8:
				v = float64(a.Value(i))
			case *array.Uint64:
				v = float64(a.Value(i))
			case *array.Uint32:
				v = float64(a.Value(i))
			case *array.Uint16:
				v = float64(a.Value(i))
			case *array.Uint8:
				v = float64(a.Value(i))
			case *array.Boolean:
				if a.Value(i) {
					v = 1
				}
			default:
				return nil, fmt.Errorf("arrow: %s %q has type %s; non-numeric features need an encoding first", what, name, chunk.DataType())
			}
			if math.IsInf(v, 0) {
				return nil, fmt.Errorf("arrow: %s %q, row %d: infinite value", what, name, base+i+1)
			}
			if label && math.IsNaN(v) {
				return nil, fmt.Errorf("arrow: label column %q, row %d: label is missing", name, base+i+1)
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// ReadParquet reads a plaintext Parquet file (already in memory, or any ReaderAt+Seeker) into a
// Dataset. Encrypted Parquet is decrypted by the protected-data layer, which hands over Arrow
// tables for FromArrow.
func ReadParquet(r parquet.ReaderAtSeeker, sel Selection) (d *Dataset, err error) {
	// The Parquet decoder is third-party code fed untrusted bytes; a panic in it must become an
	// error for this input, not a crash of the job.
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, errors.New("parquet: malformed file (the decoder failed on it)")
		}
	}()
	tbl, err := pqarrow.ReadTable(context.Background(), r, nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	defer tbl.Release()
	return FromArrow(tbl, sel)
}
