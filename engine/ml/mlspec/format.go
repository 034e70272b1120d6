package mlspec

import (
	"fmt"
	"mime"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Format is a table's file format.
type Format string

const (
	CSV     Format = "csv"
	Parquet Format = "parquet"
)

// ParseFormat reads csv or parquet (also the media types text/csv and
// application/vnd.apache.parquet).
func ParseFormat(s string) (Format, error) {
	t := s
	if mt, _, err := mime.ParseMediaType(s); err == nil {
		t = mt // text/csv; charset=utf-8
	}
	switch strings.ToLower(t) {
	case "csv", "text/csv":
		return CSV, nil
	case "parquet", "application/vnd.apache.parquet", "application/x-parquet":
		return Parquet, nil
	}
	return "", fmt.Errorf("table format %q: want csv or parquet", s)
}

// FormatOf guesses a table's format from its file name.
func FormatOf(path string) (Format, bool) {
	name := strings.ToLower(strings.TrimSuffix(filepath.Base(path), ".ppml"))
	switch {
	case strings.HasSuffix(name, ".csv"):
		return CSV, true
	case strings.HasSuffix(name, ".parquet"), strings.HasSuffix(name, ".pq"):
		return Parquet, true
	}
	return "", false
}

// CheckNameSet checks the names of a job's inputs or outputs (what says which) against
// those the task requires and allows.
func CheckNameSet[V any](m map[string]V, required, allowed []string, what string) error {
	for _, r := range required {
		if _, ok := m[r]; !ok {
			return fmt.Errorf("ml job: missing %s %q (a %s job has %ss %s)", what, r, what, what, strings.Join(allowed, ", "))
		}
	}
	var extra []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			extra = append(extra, strconv.Quote(k))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		return fmt.Errorf("ml job: unknown %s(s) %s (allowed: %s)", what, strings.Join(extra, ", "), strings.Join(allowed, ", "))
	}
	return nil
}
