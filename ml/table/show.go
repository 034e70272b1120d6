package table

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ShowPredictions writes the first n rows as a features | label | prediction table in the style
// of Spark's DataFrame.show(), which the seed examples print: the feature vector in brackets,
// cells longer than 20 characters cut to 17 plus "...", right-aligned. label may be nil.
func ShowPredictions(w io.Writer, x *Table, label, pred []float64, n int) error {
	rows := min(n, x.NumRows())
	header := []string{"features", "label", "prediction"}
	if label == nil {
		header = []string{"features", "prediction"}
	}
	cells := [][]string{header}
	for i := 0; i < rows; i++ {
		feats := make([]string, len(x.Columns))
		for j, c := range x.Columns {
			feats[j] = num(c[i])
		}
		row := []string{truncate("[" + strings.Join(feats, ",") + "]")}
		if label != nil {
			row = append(row, truncate(num(label[i])))
		}
		cells = append(cells, append(row, truncate(num(pred[i]))))
	}
	width := make([]int, len(header))
	for _, r := range cells {
		for j, c := range r {
			width[j] = max(width[j], len(c))
		}
	}
	var b strings.Builder
	sep := "+"
	for _, wd := range width {
		sep += strings.Repeat("-", wd) + "+"
	}
	b.WriteString(sep + "\n")
	for k, r := range cells {
		b.WriteString("|")
		for j, c := range r {
			fmt.Fprintf(&b, "%*s|", width[j], c)
		}
		b.WriteString("\n")
		if k == 0 {
			b.WriteString(sep + "\n")
		}
	}
	b.WriteString(sep + "\n")
	if rows < x.NumRows() {
		fmt.Fprintf(&b, "only showing top %d rows\n", rows)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num prints like Spark prints doubles: shortest round-trip form, always with a decimal point.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEN") { // not NaN/Inf, no exponent, no point
		s += ".0"
	}
	return s
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:17] + "..."
	}
	return s
}
