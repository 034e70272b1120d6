package sqldb

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var people = []byte(`{"name":"Michael"}
{"name":"Andy", "age":30}
{"name":"Justin", "age":19}
`)

func TestLockdown(t *testing.T) {
	ctx := context.Background()
	secret := filepath.Join(t.TempDir(), "secret.csv")
	if err := os.WriteFile(secret, []byte("a\n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := memInput(t, "people.json", people)
	outDir := t.TempDir()
	e := openEngine(t, Config{Inputs: []Input{{Name: "people", Format: JSON, Files: []File{in}}}, MemoryLimit: 128 << 20, Threads: 2})

	// The input is readable, by its table and by its path.
	if got := writeString(t, e, "SELECT count(*) AS n FROM people", CSV); got != "n\n3\n" {
		t.Fatalf("count = %q", got)
	}
	if got := writeString(t, e, "SELECT count(*) AS n FROM read_json('"+in.Path+"')", CSV); got != "n\n3\n" {
		t.Fatalf("count by path = %q", got)
	}
	denied := []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SELECT * FROM read_csv('" + secret + "')",
		"SELECT * FROM read_text('/proc/self/environ')",
		"SELECT * FROM read_text('" + in.Path + "/../0')",
		"SELECT * FROM glob('/*')",
		"COPY (SELECT 1) TO '" + filepath.Join(outDir, "out.csv") + "'",
		"COPY people TO '" + filepath.Join(outDir, "out.parquet") + "' (FORMAT parquet)",
		"ATTACH '" + filepath.Join(t.TempDir(), "x.db") + "'",
		"INSTALL httpfs",
		"LOAD httpfs",
		"SET memory_limit = '10GB'",
		"RESET memory_limit",
		"SET enable_external_access = true",
		"SET allowed_paths = ['/etc/passwd']",
		"SET temp_directory = '/tmp'",
		"SET lock_configuration = false",
		"SET autoload_known_extensions = true",
		"SET threads = 64",
	}
	for _, s := range denied {
		if err := e.Exec(ctx, s); err == nil {
			t.Errorf("%s: succeeded, want refusal", s)
		} else if !strings.Contains(err.Error(), "Permission Error") && !strings.Contains(err.Error(), "configuration has been locked") && !strings.Contains(err.Error(), "disabled") {
			t.Errorf("%s: unexpected error %v", s, err)
		}
	}
	if ents, err := os.ReadDir(outDir); err != nil || len(ents) != 0 {
		t.Errorf("refused COPY left %v (%v) in %s", ents, err, outDir)
	}
	want := map[string]string{
		"temp_directory":               "",
		"enable_external_access":       "false",
		"lock_configuration":           "true",
		"autoload_known_extensions":    "false",
		"autoinstall_known_extensions": "false",
		"threads":                      "2",
		"memory_limit":                 "128.0 MiB",
	}
	for k, v := range want {
		got, err := e.Setting(ctx, k)
		if err != nil || got != v {
			t.Errorf("setting %s = %q, %v; want %q", k, got, err, v)
		}
	}
	// Built-in readers and writers the engine relies on are statically
	// linked, so they work with auto-loading off.
	if got := writeString(t, e, `SELECT json_extract('{"a": 7}', '$.a') AS a`, CSV); got != "a\n7\n" {
		t.Errorf("json_extract = %q", got)
	}
	if got := writeString(t, e, "SELECT name FROM people WHERE age > 21", Parquet); !strings.HasPrefix(got, "PAR1") {
		t.Errorf("parquet output starts %q", got[:min(4, len(got))])
	}
}

func TestErrorsPassThrough(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, Config{Inputs: []Input{{Name: "people", Format: JSON, Files: []File{memInput(t, "people.json", people)}}}})
	cases := []struct{ sql, want string }{
		{"SELEC name FROM people", `Parser Error: syntax error at or near "SELEC"`},
		{"SELECT nme FROM people", `Binder Error: Referenced column "nme" not found in FROM clause!`},
		{"SELECT * FROM nosuch", `Catalog Error: Table with name nosuch does not exist!`},
		{"SELECT 'unterminated", "unterminated string literal"},
		{"CREATE TEMP TABLE t AS SELECT 1 AS a; SELECT b FROM t", `Referenced column "b" not found`},
		{"CREATE TEMP TABLE t2 AS SELECT 1 AS a; CREATE TEMP TABLE t3 AS SELECT 2 AS b", "the last statement must return rows"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		err := e.Write(ctx, c.sql, CSV, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.sql, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: wrote %d bytes despite the error", c.sql, out.Len())
		}
	}
}

func TestOutOfMemory(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t, Config{MemoryLimit: 32 << 20, Threads: 1})
	var out bytes.Buffer
	// A sort of 20M rows needs far more than 32 MiB and may not spill.
	err := e.Write(ctx, "SELECT i, md5(i::VARCHAR) AS h FROM range(20000000) t(i) ORDER BY h", CSV, &out)
	var me *MemoryError
	if !errors.As(err, &me) {
		t.Fatalf("error = %v, want MemoryError", err)
	}
	if want := "query exceeded the job's memory limit of 32 MiB"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes despite running out of memory", out.Len())
	}
	// The engine remains usable.
	if got := writeString(t, e, "SELECT 42 AS x", CSV); got != "x\n42\n" {
		t.Errorf("after OOM: %q", got)
	}
}

// A last statement that closes the COPY's parenthesis itself is refused
// before anything runs.
func TestOutputRedirectRefused(t *testing.T) {
	e := openEngine(t, Config{OutputSlots: 2})
	other := e.slots[1].Path()
	for _, q := range []string{
		"SELECT 1 AS a) TO '" + other + "' (FORMAT csv, USE_TMP_FILE false) --",
		"SELECT 1 AS a) TO '" + other + "' (FORMAT csv, USE_TMP_FILE false); COPY (SELECT 2",
	} {
		var out bytes.Buffer
		if err := e.Write(context.Background(), q, CSV, &out); err == nil {
			t.Errorf("%q accepted", q)
		}
		if n, _ := e.slots[1].Size(); n != 0 {
			t.Errorf("%q wrote %d bytes to another output", q, n)
		}
	}
}
