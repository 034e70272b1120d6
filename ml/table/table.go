// Package table holds the numeric tables the ML engine trains and predicts on, and reads them
// from CSV with features and label chosen by column name.
//
// Missing values: an empty cell or "NaN" (any case) is missing and stored as NaN. XGBoost
// treats NaN as missing (each split learns a default direction); the linear models call
// CheckComplete and refuse tables with missing values, naming the first one.
package table

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Table is a column-major numeric table: Columns[j][i] is row i of column Names[j].
type Table struct {
	Names   []string
	Columns [][]float64
}

// New checks that the columns are named uniquely and have equal length.
func New(names []string, columns [][]float64) (*Table, error) {
	if len(names) != len(columns) {
		return nil, fmt.Errorf("table: %d names for %d columns", len(names), len(columns))
	}
	seen := map[string]bool{}
	for j, n := range names {
		if n == "" {
			return nil, fmt.Errorf("table: column %d has an empty name", j+1)
		}
		if seen[n] {
			return nil, fmt.Errorf("table: column %q appears twice", n)
		}
		seen[n] = true
		if len(columns[j]) != len(columns[0]) {
			return nil, fmt.Errorf("table: column %q has %d rows, column %q has %d", n, len(columns[j]), names[0], len(columns[0]))
		}
	}
	return &Table{Names: names, Columns: columns}, nil
}

// NumRows is the number of rows (0 for a table without columns).
func (t *Table) NumRows() int {
	if len(t.Columns) == 0 {
		return 0
	}
	return len(t.Columns[0])
}

// Column returns the named column.
func (t *Table) Column(name string) ([]float64, error) {
	j := slices.Index(t.Names, name)
	if j < 0 {
		return nil, fmt.Errorf("table: no column %q (columns: %s)", name, strings.Join(t.Names, ", "))
	}
	return t.Columns[j], nil
}

// Select returns a table of the named columns in the given order (sharing their storage).
// A model applied to a table uses this with its feature names, so a missing feature is reported
// by name.
func (t *Table) Select(names ...string) (*Table, error) {
	out := &Table{}
	var missing []string
	for _, n := range names {
		j := slices.Index(t.Names, n)
		if j < 0 {
			missing = append(missing, n)
			continue
		}
		out.Names = append(out.Names, n)
		out.Columns = append(out.Columns, t.Columns[j])
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("table: missing feature column(s) %s (table has: %s)", quoteAll(missing), strings.Join(t.Names, ", "))
	}
	return New(out.Names, out.Columns)
}

// Rows returns a table of the given rows, in that order (copied).
func (t *Table) Rows(idx []int) *Table {
	out := &Table{Names: t.Names, Columns: make([][]float64, len(t.Columns))}
	for j, c := range t.Columns {
		col := make([]float64, len(idx))
		for k, i := range idx {
			col[k] = c[i]
		}
		out.Columns[j] = col
	}
	return out
}

// RowMajor32 returns the table as a dense row-major float32 matrix, NaN for missing, as
// XGBoost takes it.
func (t *Table) RowMajor32() []float32 {
	n, m := t.NumRows(), len(t.Columns)
	out := make([]float32, n*m)
	for j, c := range t.Columns {
		for i, v := range c {
			out[i*m+j] = float32(v)
		}
	}
	return out
}

// CheckComplete fails on the first missing value, naming its column and (1-based) row.
func (t *Table) CheckComplete() error {
	for i := 0; i < t.NumRows(); i++ {
		for j, c := range t.Columns {
			if math.IsNaN(c[i]) {
				return fmt.Errorf("table: column %q, row %d: missing value (this model does not accept missing values)", t.Names[j], i+1)
			}
		}
	}
	return nil
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// Dataset is a feature table with its label column.
type Dataset struct {
	X     *Table
	Label string
	Y     []float64 // nil when the input has no label column
}

// Split returns the rows idx of the dataset (features and label).
func (d *Dataset) Split(idx []int) *Dataset {
	out := &Dataset{X: d.X.Rows(idx), Label: d.Label}
	if d.Y != nil {
		out.Y = make([]float64, len(idx))
		for k, i := range idx {
			out.Y[k] = d.Y[i]
		}
	}
	return out
}

// Concat is the rows of parts in order: a table split into files (each with its own header)
// read back as one. Every part must have the same columns and label.
func Concat(parts []*Dataset) (*Dataset, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("table: nothing to concatenate")
	}
	first := parts[0]
	cols := make([][]float64, len(first.X.Names))
	var y []float64
	for k, p := range parts {
		if !slices.Equal(p.X.Names, first.X.Names) || p.Label != first.Label || (p.Y == nil) != (first.Y == nil) {
			return nil, fmt.Errorf("table: part %d has columns %s (label %q), part 1 has %s (label %q)",
				k+1, quoteAll(p.X.Names), p.Label, quoteAll(first.X.Names), first.Label)
		}
		for j := range cols {
			cols[j] = append(cols[j], p.X.Columns[j]...)
		}
		y = append(y, p.Y...)
	}
	t, err := New(slices.Clone(first.X.Names), cols)
	if err != nil {
		return nil, err
	}
	return &Dataset{X: t, Label: first.Label, Y: y}, nil
}
