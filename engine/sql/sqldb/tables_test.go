package sqldb

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ppml/ppml/envelope"
)

func TestMultiFileInput(t *testing.T) {
	a := memInput(t, "sales-2024.csv", []byte("id,amount\n1,10\n2,20\n"))
	b := memInput(t, "sales-2025.csv", []byte("id,amount\n3,2.5\n"))
	e := openEngine(t, Config{Inputs: []Input{{Name: "sales", Format: CSV, Files: []File{a, b}}}})
	// The second file's DOUBLE widens the first's BIGINT.
	if got := writeString(t, e, "SELECT count(*) AS n, sum(amount) AS total FROM sales", CSV); got != "n,total\n3,32.5\n" {
		t.Errorf("got %q", got)
	}
}

func TestSchemaMismatchNamesFiles(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		format Format
		a, b   []byte
		want   []string
	}{
		{CSV, []byte("id,amount\n1,10\n"), []byte("id,amount,note\n2,20,x\n"),
			[]string{"input sales: schema mismatch: file b.csv has columns (id, amount, note) but file a.csv has (id, amount)"}},
		{JSON, []byte(`{"id":1,"amount":10}` + "\n"), []byte(`{"id":2,"total":10}` + "\n"),
			[]string{"file b.csv has columns (id, total) but file a.csv has (id, amount)"}},
	}
	for _, c := range cases {
		in := Input{Name: "sales", Format: c.format, Files: []File{memInput(t, "a.csv", c.a), memInput(t, "b.csv", c.b)}}
		_, err := Open(ctx, Config{MemoryLimit: 256 << 20, Inputs: []Input{in}})
		if err == nil {
			t.Errorf("%s: mismatched files accepted", c.format)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.format, err, w)
			}
		}
	}

	// Parquet files must agree on types as well as names.
	pa, pb := parquetBytes(t, "SELECT 1::INTEGER AS id, 'x' AS name"), parquetBytes(t, "SELECT 1::BIGINT AS id, 'x' AS name")
	in := Input{Name: "p", Format: Parquet, Files: []File{memInput(t, "part-0.parquet", pa), memInput(t, "part-1.parquet", pb)}}
	_, err := Open(ctx, Config{MemoryLimit: 256 << 20, Inputs: []Input{in}})
	if err == nil || !strings.Contains(err.Error(), "file part-1.parquet has columns (id BIGINT, name VARCHAR) but file part-0.parquet has (id INTEGER, name VARCHAR)") {
		t.Errorf("parquet mismatch: %v", err)
	}
}

func parquetBytes(t *testing.T, query string) []byte {
	t.Helper()
	e := openEngine(t, Config{})
	return []byte(writeString(t, e, query, Parquet))
}

func TestInputChecks(t *testing.T) {
	ctx := context.Background()
	f := memInput(t, "x.csv", []byte("a\n1\n"))
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{MemoryLimit: 0}, "memory limit must be positive"},
		{Config{MemoryLimit: 1 << 28, Inputs: []Input{{Name: "1x", Format: CSV, Files: []File{f}}}}, "not a valid table name"},
		{Config{MemoryLimit: 1 << 28, Inputs: []Input{{Name: "x; DROP", Format: CSV, Files: []File{f}}}}, "not a valid table name"},
		{Config{MemoryLimit: 1 << 28, Inputs: []Input{{Name: "a", Format: CSV, Files: []File{f}}, {Name: "A", Format: CSV, Files: []File{f}}}}, "both named"},
		{Config{MemoryLimit: 1 << 28, Inputs: []Input{{Name: "a", Format: "xml", Files: []File{f}}}}, `unknown SQL data format "xml"`},
		{Config{MemoryLimit: 1 << 28, Inputs: []Input{{Name: "a", Format: CSV}}}, "has no files"},
		{Config{MemoryLimit: 1 << 28, Inputs: []Input{{Name: "a", Format: Parquet, Files: []File{f}}}}, "input a (x.csv)"},
	}
	for _, c := range bad {
		_, err := Open(ctx, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg.Inputs, err, c.want)
		}
	}
}

func TestOutputFormats(t *testing.T) {
	e := openEngine(t, Config{Inputs: []Input{{Name: "people", Format: JSON, Files: []File{memInput(t, "people.json", people)}}}})
	if got := writeString(t, e, "SELECT name, age FROM people", JSON); got != "{\"name\":\"Michael\",\"age\":null}\n{\"name\":\"Andy\",\"age\":30}\n{\"name\":\"Justin\",\"age\":19}\n" {
		t.Errorf("json = %q", got)
	}
	// A Parquet output reads back as the same rows.
	pq := []byte(writeString(t, e, "SELECT name, age FROM people", Parquet))
	e2 := openEngine(t, Config{Inputs: []Input{{Name: "back", Format: Parquet, Files: []File{memInput(t, "out.parquet", pq)}}}})
	if got := writeString(t, e2, "SELECT * FROM back", CSV); got != "name,age\nMichael,\nAndy,30\nJustin,19\n" {
		t.Errorf("parquet round trip = %q", got)
	}
	if got := writeString(t, e, `SELECT 'a,"b"' AS s, NULL AS n, 'x' || chr(10) || 'y' AS nl`, CSV); got != "s,n,nl\n\"a,\"\"b\"\"\",,\"x\ny\"\n" {
		t.Errorf("csv quoting = %q", got)
	}
	var sink strings.Builder
	if err := e.Write(context.Background(), "SELECT 1", Text, &sink); err == nil {
		t.Error("text output accepted")
	}
}

func TestMaterializedInput(t *testing.T) {
	in := Input{Name: "people", Format: JSON, Files: []File{memInput(t, "people.json", people)}, Materialize: true}
	e := openEngine(t, Config{Inputs: []Input{in}})
	if got := writeString(t, e, "SELECT table_type FROM information_schema.tables WHERE table_name = 'people'", CSV); got != "table_type\nBASE TABLE\n" {
		t.Errorf("table type %q", got)
	}
	if got := writeString(t, e, "SELECT name FROM people WHERE age BETWEEN 13 AND 19", CSV); got != "name\nJustin\n" {
		t.Errorf("got %q", got)
	}
	// A materialized copy larger than the memory limit fails at Open with
	// the memory-limit error.
	big := memInput(t, "big.csv", []byte(strings.Repeat("0123456789abcdef0123456789abcdef,1\n", 1<<20)))
	_, err := Open(context.Background(), Config{MemoryLimit: 16 << 20, Inputs: []Input{{Name: "big", Format: CSV, Files: []File{big}, Materialize: true}}})
	var me *MemoryError
	if !errors.As(err, &me) {
		t.Errorf("oversized table: %v", err)
	}
}

func TestFormatForContentType(t *testing.T) {
	for ct, want := range map[envelope.ContentType]Format{envelope.TypeCSV: CSV, envelope.TypeJSON: JSON, envelope.TypeParquet: Parquet, envelope.TypeBytes: Text} {
		if got, err := FormatForContentType(ct); err != nil || got != want {
			t.Errorf("%s: %q, %v", ct, got, err)
		}
	}
	if _, err := FormatForContentType(envelope.TypeModel); err == nil {
		t.Error("model content type accepted")
	}
}
