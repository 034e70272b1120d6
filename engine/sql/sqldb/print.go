package sqldb

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Result is a query result held in memory for printing.
type Result struct {
	Columns []string
	Types   []string // DuckDB type names
	Rows    [][]any  // Go values as the DuckDB driver returns them; nil is NULL
	// Truncated is set when the query returned more rows than were kept.
	Truncated bool
}

func readResult(rows *sql.Rows, maxRows int) (*Result, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: cols, Types: make([]string, len(cts))}
	for i, ct := range cts {
		res.Types[i] = ct.DatabaseTypeName()
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) == maxRows {
			res.Truncated = true
			break
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, vals)
	}
	return res, rows.Err()
}

// FormatValue renders one value as DuckDB's CLI would, near enough: NULL for nil.
func FormatValue(v any, typ string) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return x
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return fmt.Sprintf("\\x%x", x)
	case bool:
		return strconv.FormatBool(x)
	case float32:
		return formatFloat(float64(x), 32)
	case float64:
		return formatFloat(x, 64)
	case time.Time:
		switch {
		case typ == "DATE":
			return x.Format("2006-01-02")
		case strings.HasPrefix(typ, "TIME") && !strings.HasPrefix(typ, "TIMESTAMP"):
			return x.Format("15:04:05.999999")
		case strings.Contains(typ, "TZ") || strings.Contains(typ, "TIME ZONE"):
			return x.Format("2006-01-02 15:04:05.999999-07")
		default:
			return x.Format("2006-01-02 15:04:05.999999")
		}
	case duckdb.Decimal:
		return x.String()
	case *big.Int:
		return x.String()
	case duckdb.UUID:
		return x.String()
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = FormatValue(e, "")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e15) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	s := strconv.FormatFloat(f, 'f', -1, bits)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// maxCellWidth keeps one long value from pushing a table off the screen.
const maxCellWidth = 40

// PrintTable writes res as an aligned grid with a header rule, like the
// DuckDB command line's box output in ASCII.
func PrintTable(w io.Writer, res *Result) error {
	cells := make([][]string, len(res.Rows))
	width := make([]int, len(res.Columns))
	numeric := make([]bool, len(res.Columns))
	for i, c := range res.Columns {
		width[i] = max(runeWidth(c), runeWidth(res.Types[i]))
		numeric[i] = isNumericType(res.Types[i])
	}
	for r, row := range res.Rows {
		cells[r] = make([]string, len(row))
		for i, v := range row {
			s := cellText(FormatValue(v, res.Types[i]))
			cells[r][i] = s
			width[i] = max(width[i], runeWidth(s))
		}
	}
	var b strings.Builder
	rule := func() {
		b.WriteByte('+')
		for _, wd := range width {
			b.WriteString(strings.Repeat("-", wd+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	line := func(vals []string, right []bool) {
		b.WriteByte('|')
		for i, s := range vals {
			pad := strings.Repeat(" ", width[i]-runeWidth(s))
			b.WriteByte(' ')
			if right != nil && right[i] {
				b.WriteString(pad + s)
			} else {
				b.WriteString(s + pad)
			}
			b.WriteString(" |")
		}
		b.WriteByte('\n')
	}
	rule()
	line(res.Columns, nil)
	line(lowerAll(res.Types), nil)
	rule()
	for _, row := range cells {
		line(row, numeric)
	}
	rule()
	n := fmt.Sprintf("%d rows", len(res.Rows))
	if len(res.Rows) == 1 {
		n = "1 row"
	}
	if res.Truncated {
		n += " shown (more not printed)"
	}
	b.WriteString(n + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func cellText(s string) string {
	s = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
	if utf8.RuneCountInString(s) > maxCellWidth {
		r := []rune(s)
		s = string(r[:maxCellWidth-1]) + "…"
	}
	return s
}

func runeWidth(s string) int { return utf8.RuneCountInString(s) }

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

func isNumericType(t string) bool {
	switch {
	case strings.HasPrefix(t, "DECIMAL"):
		return true
	}
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE":
		return true
	}
	return false
}

// PrintCSV writes res as CSV with a header; NULL is an empty field.
func PrintCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(res.Columns); err != nil {
		return err
	}
	rec := make([]string, len(res.Columns))
	for _, row := range res.Rows {
		for i, v := range row {
			if v == nil {
				rec[i] = ""
			} else {
				rec[i] = FormatValue(v, res.Types[i])
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// PrintJSON writes res as JSON lines, one object per row with the columns
// in order, matching the engine's JSON output files.
func PrintJSON(w io.Writer, res *Result) error {
	var b strings.Builder
	for _, row := range res.Rows {
		b.WriteByte('{')
		for i, v := range row {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(res.Columns[i])
			b.Write(k)
			b.WriteByte(':')
			b.WriteString(jsonValue(v, res.Types[i]))
		}
		b.WriteString("}\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func jsonValue(v any, typ string) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool, int8, int16, int32, int64, int, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	case float32, float64:
		f := fmt.Sprint(x)
		if strings.ContainsAny(f, "IN") { // Inf, NaN have no JSON number
			return strconv.Quote(FormatValue(x, typ))
		}
		return FormatValue(x, typ)
	case *big.Int:
		return x.String()
	case duckdb.Decimal:
		return x.String()
	}
	b, err := json.Marshal(FormatValue(v, typ))
	if err != nil {
		return "null"
	}
	return string(b)
}
