package tpch

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
)

// Answer is an expected result in DuckDB's answer-file format: '|'-separated,
// a header line of column names, one line per row, NULL as an empty field, text
// verbatim, LF line endings and a final newline.
type Answer struct {
	Columns []string
	Rows    [][]string
}

// maxAnswerBytes bounds what ParseAnswer reads; the largest published answer
// (SF 100 Q16) is a few MB.
const maxAnswerBytes = 64 << 20

// ParseAnswer reads an answer file.
func ParseAnswer(r io.Reader) (*Answer, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(data) > maxAnswerBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", maxAnswerBytes)
	}
	text := string(data)
	if text == "" {
		return nil, errors.New("answer is empty: want at least a header line")
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("answer does not end with a newline")
	}
	if strings.ContainsRune(text, '\r') {
		return nil, errors.New("answer contains a CR: want LF line endings")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	a := &Answer{Columns: strings.Split(lines[0], "|")}
	for _, c := range a.Columns {
		if c == "" {
			return nil, errors.New("answer header has an empty column name")
		}
	}
	for i, l := range lines[1:] {
		f := strings.Split(l, "|")
		if len(f) != len(a.Columns) {
			return nil, fmt.Errorf("answer line %d has %d fields, header has %d", i+2, len(f), len(a.Columns))
		}
		a.Rows = append(a.Rows, f)
	}
	return a, nil
}

// ReadAnswerFile parses the answer file at path.
func ReadAnswerFile(path string) (*Answer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open answer: %w", err)
	}
	defer f.Close()
	a, err := ParseAnswer(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Cell is one value of a query result: Null, or Text in the answer files'
// notation, with Kind saying how it compares.
type Cell struct {
	Null bool
	Text string
}

// Kind is how a result column compares with an answer.
type Kind int

const (
	KindText   Kind = iota // exact string match
	KindExact              // exact numeric value (integers and DECIMAL): 380456 equals 380456.00
	KindApprox             // floating point: relative tolerance
)

// Result is a query result collected from database/sql.
type Result struct {
	Columns []string
	Types   []string // driver type names (DatabaseTypeName)
	Kinds   []Kind
	Rows    [][]Cell
}

// Collect reads all rows of rows (and closes it).
func Collect(rows *sql.Rows) (*Result, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("result columns: %w", err)
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("result column types: %w", err)
	}
	res := &Result{Columns: cols, Types: make([]string, len(cols)), Kinds: make([]Kind, len(cols))}
	for i, ct := range cts {
		res.Types[i] = strings.ToUpper(ct.DatabaseTypeName())
		res.Kinds[i] = kindOf(res.Types[i])
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("scan result row %d: %w", len(res.Rows)+1, err)
		}
		row := make([]Cell, len(cols))
		for i, v := range vals {
			row[i] = cellOf(v)
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	return res, nil
}

func kindOf(typ string) Kind {
	switch {
	case typ == "DOUBLE" || typ == "FLOAT" || typ == "REAL" || typ == "FLOAT8" || typ == "FLOAT4":
		return KindApprox
	case strings.HasPrefix(typ, "DECIMAL") || strings.HasPrefix(typ, "NUMERIC") ||
		strings.HasSuffix(typ, "INT") || strings.HasPrefix(typ, "INT") || typ == "HUGEINT" || typ == "UHUGEINT":
		return KindExact
	}
	return KindText
}

func cellOf(v any) Cell {
	switch x := v.(type) {
	case nil:
		return Cell{Null: true}
	case string:
		return Cell{Text: x}
	case []byte:
		return Cell{Text: string(x)}
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return Cell{Text: x.Format("2006-01-02")}
		}
		return Cell{Text: x.Format("2006-01-02 15:04:05.999999")}
	case float64:
		return Cell{Text: strconv.FormatFloat(x, 'g', -1, 64)}
	case float32:
		return Cell{Text: strconv.FormatFloat(float64(x), 'g', -1, 32)}
	case bool:
		return Cell{Text: strconv.FormatBool(x)}
	case fmt.Stringer: // *big.Int, driver decimal types, ...
		return Cell{Text: x.String()}
	}
	return Cell{Text: fmt.Sprint(v)}
}

// CompareOptions tune Compare.
type CompareOptions struct {
	// RelTol is the relative tolerance for floating-point columns; default 1e-9
	// (averages are summed in a different order when plans run in parallel).
	RelTol float64
}

// Compare checks got against want: the same column count, the same number of
// rows in the same order, and every value equal (NULL only as an empty field,
// text exactly, integers and decimals as exact numbers, floating point within
// RelTol). The error lists the first differences.
func Compare(want *Answer, got *Result, o CompareOptions) error {
	if o.RelTol <= 0 {
		o.RelTol = 1e-9
	}
	if len(want.Columns) != len(got.Columns) {
		return fmt.Errorf("result has %d columns %v, answer has %d %v", len(got.Columns), got.Columns, len(want.Columns), want.Columns)
	}
	if len(want.Rows) != len(got.Rows) {
		return fmt.Errorf("result has %d rows, answer has %d", len(got.Rows), len(want.Rows))
	}
	var diffs []string
	for r := range want.Rows {
		for c := range want.Columns {
			if !cellMatches(want.Rows[r][c], got.Rows[r][c], got.Kinds[c], o.RelTol) {
				g := got.Rows[r][c].Text
				if got.Rows[r][c].Null {
					g = "NULL"
				}
				diffs = append(diffs, fmt.Sprintf("row %d column %s: got %q, want %q", r+1, want.Columns[c], g, want.Rows[r][c]))
				if len(diffs) == 5 {
					return fmt.Errorf("result differs from answer: %s, ...", strings.Join(diffs, "; "))
				}
			}
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("result differs from answer: %s", strings.Join(diffs, "; "))
	}
	return nil
}

func cellMatches(want string, got Cell, k Kind, relTol float64) bool {
	if got.Null {
		return want == ""
	}
	if want == got.Text {
		return true
	}
	switch k {
	case KindExact:
		w, ok1 := new(big.Rat).SetString(want)
		g, ok2 := new(big.Rat).SetString(got.Text)
		return ok1 && ok2 && w.Cmp(g) == 0
	case KindApprox:
		w, err1 := strconv.ParseFloat(want, 64)
		g, err2 := strconv.ParseFloat(got.Text, 64)
		if err1 != nil || err2 != nil || math.IsNaN(w) || math.IsNaN(g) {
			return false
		}
		diff := math.Abs(w - g)
		return diff <= relTol*math.Max(math.Abs(w), math.Abs(g)) || diff < 1e-12
	}
	return false
}
