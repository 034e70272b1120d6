package table

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Selection chooses columns by name. Empty Features means every column but the label. An empty
// Label reads features only (prediction input).
type Selection struct {
	Features []string
	Label    string
}

// ReadCSV reads a CSV file with a header row. Only the selected columns are parsed, so other
// columns (identifiers, free text) may hold anything. Feature cells must be numbers; an empty
// cell or "NaN" is missing. Label cells must be numbers and present. Errors name the column and
// the 1-based data row (the header is not counted).
func ReadCSV(r io.Reader, sel Selection) (*Dataset, error) {
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
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // spreadsheet byte-order mark
	}
	index := map[string]int{}
	for j, h := range header {
		if _, dup := index[h]; dup {
			return nil, fmt.Errorf("csv header: column %q appears twice", h)
		}
		index[h] = j
	}
	labelIdx := -1
	if sel.Label != "" {
		i, ok := index[sel.Label]
		if !ok {
			return nil, fmt.Errorf("csv: label column %q is not in the header (columns: %s)", sel.Label, strings.Join(header, ", "))
		}
		labelIdx = i
	}
	features := sel.Features
	if len(features) == 0 {
		for _, h := range header {
			if h != sel.Label {
				features = append(features, h)
			}
		}
	}
	if len(features) == 0 {
		return nil, errors.New("csv: no feature columns")
	}
	featIdx := make([]int, len(features))
	var missing []string
	seen := map[string]bool{}
	for k, f := range features {
		if f == sel.Label {
			return nil, fmt.Errorf("csv: column %q is both a feature and the label", f)
		}
		if seen[f] {
			return nil, fmt.Errorf("csv: feature %q is selected twice", f)
		}
		seen[f] = true
		i, ok := index[f]
		if !ok {
			missing = append(missing, f)
		}
		featIdx[k] = i
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("csv: feature column(s) %s not in the header (columns: %s)", quoteAll(missing), strings.Join(header, ", "))
	}

	cols := make([][]float64, len(features))
	var y []float64
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("csv row %d: %w", row, err)
		}
		for k, j := range featIdx {
			v, err := parseCell(rec[j])
			if err != nil {
				return nil, fmt.Errorf("csv: column %q, row %d: %w", features[k], row, err)
			}
			cols[k] = append(cols[k], v)
		}
		if labelIdx >= 0 {
			v, err := parseCell(rec[labelIdx])
			if err == nil && math.IsNaN(v) {
				err = errors.New("label is missing")
			}
			if err != nil {
				return nil, fmt.Errorf("csv: label column %q, row %d: %w", sel.Label, row, err)
			}
			y = append(y, v)
		}
	}
	if len(cols[0]) == 0 {
		return nil, errors.New("csv: no data rows after the header")
	}
	t, err := New(slices.Clone(features), cols)
	if err != nil {
		return nil, err
	}
	return &Dataset{X: t, Label: sel.Label, Y: y}, nil
}

// parseCell reads one numeric cell. Values themselves never go into the error: a cell of a
// protected table is plaintext that must not reach logs.
func parseCell(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "nan") {
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, errors.New("number out of float64 range")
		}
		return 0, errors.New("not a number (non-numeric features need an encoding first)")
	}
	if math.IsInf(v, 0) {
		return 0, errors.New("infinite value")
	}
	return v, nil
}
