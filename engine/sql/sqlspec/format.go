package sqlspec

import (
	"fmt"
	"strings"
)

// Format is a table or output file format; the names match the envelope's
// content types.
type Format string

const (
	CSV     Format = "csv"
	JSON    Format = "json" // newline-delimited on output; lines or an array on input
	Parquet Format = "parquet"
	// Text is plain text read as a table with one VARCHAR column, line, one
	// row per line in file order (like Spark's textFile). Input only.
	Text Format = "text"
)

// ParseFormat checks a format name (case-insensitive).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case CSV, JSON, Parquet, Text:
		return f, nil
	}
	return "", fmt.Errorf("unknown SQL data format %q (want csv, json, parquet or text)", s)
}
