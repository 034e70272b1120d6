package sqldb

import (
	"context"
	"fmt"
	"strings"

	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/envelope"
)

// Format is a table or output file format. Its names are manifest values,
// so the type lives with the sql engine's parameters in sqlspec.
type Format = sqlspec.Format

// The formats.
const (
	CSV     = sqlspec.CSV
	JSON    = sqlspec.JSON
	Parquet = sqlspec.Parquet
	Text    = sqlspec.Text
)

// FormatForContentType is the table format for an envelope content type:
// csv, json and parquet as named, bytes as text lines.
func FormatForContentType(t envelope.ContentType) (Format, error) {
	switch t {
	case envelope.TypeCSV:
		return CSV, nil
	case envelope.TypeJSON:
		return JSON, nil
	case envelope.TypeParquet:
		return Parquet, nil
	case envelope.TypeBytes:
		return Text, nil
	}
	return "", fmt.Errorf("content type %s cannot be read as a SQL table (want csv, json, parquet or bytes)", t)
}

// Input is one table: the decrypted files of one manifest input.
type Input struct {
	Name   string // table name
	Format Format
	Files  []File // one, or the files of an input directory
	// Materialize copies the data into DuckDB's memory once (a TABLE)
	// instead of re-reading the files on every query (a VIEW). Worth it
	// when many queries scan the input; the copy counts against the
	// memory limit.
	Materialize bool
}

// File is one decrypted file.
type File struct {
	// Path is what DuckDB opens, normally a memfd's /proc/self/fd/N.
	Path string
	// Name names the file in messages (the encrypted file's name); the
	// memfd path means nothing to the user.
	Name string
}

const maxTableName = 64

func checkInputs(ins []Input) error {
	seen := map[string]bool{}
	for _, in := range ins {
		if !validTableName(in.Name) {
			return fmt.Errorf("sql engine: %q is not a valid table name (1-%d letters, digits or '_', not starting with a digit)", in.Name, maxTableName)
		}
		key := strings.ToLower(in.Name) // DuckDB identifiers are case-insensitive
		if seen[key] {
			return fmt.Errorf("sql engine: two inputs are both named %q (table names are case-insensitive)", in.Name)
		}
		seen[key] = true
		if _, err := sqlspec.ParseFormat(string(in.Format)); err != nil {
			return fmt.Errorf("sql engine: input %s: %w", in.Name, err)
		}
		if len(in.Files) == 0 {
			return fmt.Errorf("sql engine: input %s has no files", in.Name)
		}
		for _, f := range in.Files {
			if f.Path == "" {
				return fmt.Errorf("sql engine: input %s: file %q has no path", in.Name, f.Name)
			}
		}
	}
	return nil
}

func validTableName(s string) bool {
	if s == "" || len(s) > maxTableName || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// scan is the DuckDB table function call that reads paths in format f.
func scan(f Format, paths []string) string {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = quoteString(p)
	}
	arg := quoted[0]
	extra := ""
	if len(paths) > 1 {
		arg = "[" + strings.Join(quoted, ", ") + "]"
		// Column names are checked equal beforehand; union_by_name lets
		// DuckDB widen a type one file sniffed narrower than another.
		extra = ", union_by_name = true"
	}
	switch f {
	case Text:
		// One trailing newline ends the last line rather than starting an
		// empty one.
		return "(SELECT unnest(string_split(regexp_replace(content, '\\n$', ''), chr(10))) AS line FROM read_text(" + arg + "))"
	case CSV:
		return "read_csv(" + arg + extra + ")"
	case JSON:
		return "read_json(" + arg + extra + ")"
	default:
		return "read_parquet(" + arg + extra + ")"
	}
}

type column struct{ name, typ string }

func (e *Engine) describe(ctx context.Context, f Format, path string) ([]column, error) {
	rows, err := e.conn.QueryContext(ctx, "DESCRIBE SELECT * FROM "+scan(f, []string{path}))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var name, typ string
		var null, key, def, extra any
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			return nil, err
		}
		cols = append(cols, column{name, typ})
	}
	return cols, rows.Err()
}

// createTable makes the input a VIEW over its files by default: each query
// re-reads (and re-decodes) the memfd, but nothing is loaded up front and
// the data stays out of DuckDB's memory budget, which without spilling is
// the job's hard ceiling. Materialize makes a TABLE instead; see
// BenchmarkTableVsView and docs/sql.md for the trade-off.
func (e *Engine) createTable(ctx context.Context, in Input) error {
	paths := make([]string, len(in.Files))
	for i, f := range in.Files {
		paths[i] = f.Path
	}
	if len(in.Files) > 1 && in.Format != Text {
		if err := e.checkSchemas(ctx, in); err != nil {
			return err
		}
	}
	kind := "VIEW"
	if in.Materialize {
		kind = "TABLE"
	}
	stmt := "CREATE " + kind + " " + quoteIdent(in.Name) + " AS SELECT * FROM " + scan(in.Format, paths)
	if _, err := e.conn.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("input %s (%s): %w", in.Name, fileNames(in.Files), e.classify(err))
	}
	return nil
}

// checkSchemas reports files of one input whose columns differ from the
// first file's, by file name. Parquet files must agree on types too; CSV and
// JSON types are sniffed per file and may legitimately differ in width.
func (e *Engine) checkSchemas(ctx context.Context, in Input) error {
	var first []column
	for i, f := range in.Files {
		cols, err := e.describe(ctx, in.Format, f.Path)
		if err != nil {
			return fmt.Errorf("input %s: file %s: %w", in.Name, f.Name, e.classify(err))
		}
		if i == 0 {
			first = cols
			continue
		}
		if !sameSchema(first, cols, in.Format == Parquet) {
			return fmt.Errorf("input %s: schema mismatch: file %s has columns (%s) but file %s has (%s)",
				in.Name, f.Name, schemaString(cols, in.Format == Parquet), in.Files[0].Name, schemaString(first, in.Format == Parquet))
		}
	}
	return nil
}

func sameSchema(a, b []column, types bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || types && a[i].typ != b[i].typ {
			return false
		}
	}
	return true
}

func schemaString(cols []column, types bool) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.name
		if types {
			parts[i] += " " + c.typ
		}
	}
	return strings.Join(parts, ", ")
}

func fileNames(fs []File) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
