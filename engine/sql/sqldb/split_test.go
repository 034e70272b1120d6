package sqldb

import (
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/duckdb/duckdb-go/v2/mapping"

	"github.com/ppml/ppml/engine/sql/sqlspec"
)

func TestSplit(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" ;; -- nothing\n/* at all */ ;", nil},
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"SELECT ';' AS s; SELECT 'it''s;'", []string{"SELECT ';' AS s", "SELECT 'it''s;'"}},
		{`SELECT 1 AS "a;""b"; SELECT 2`, []string{`SELECT 1 AS "a;""b"`, "SELECT 2"}},
		{"SELECT E'\\';' ; SELECT 2", []string{"SELECT E'\\';'", "SELECT 2"}},
		{"SELECT 'a\\'; SELECT 2", []string{"SELECT 'a\\'", "SELECT 2"}},
		{"SELECT $$;$$; SELECT $t$ $$ ; $t$", []string{"SELECT $$;$$", "SELECT $t$ $$ ; $t$"}},
		{"SELECT 1 -- ; comment\n; SELECT 2", []string{"SELECT 1 -- ; comment", "SELECT 2"}},
		{"SELECT /* ; /* nested ; */ ; */ 1; SELECT 2", []string{"SELECT /* ; /* nested ; */ ; */ 1", "SELECT 2"}},
		{"SELECT a$b$c FROM t; SELECT 2", []string{"SELECT a$b$c FROM t", "SELECT 2"}},
		{"SELECT 1 -- trailing", []string{"SELECT 1 -- trailing"}},
	}
	for _, c := range cases {
		got, err := sqlspec.Split(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("sqlspec.Split(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if err == nil {
			checkAgainstDuckDB(t, c.in)
		}
	}
	for _, bad := range []string{"SELECT 'x", `SELECT "x`, "SELECT /* x", "SELECT $a$ x", "SELECT E'\\'", "SELECT 1\x00"} {
		if _, err := sqlspec.Split(bad); err == nil {
			t.Errorf("sqlspec.Split(%q) succeeded", bad)
		}
	}
	if _, err := sqlspec.Split(strings.Repeat("x", sqlspec.MaxScriptSize+1)); err == nil {
		t.Error("oversized script accepted")
	}
}

var parser struct {
	once sync.Once
	db   mapping.Database
	conn mapping.Connection
	mu   sync.Mutex
}

// duckdbCount is DuckDB's own statement count for s, and whether DuckDB
// parsed it at all.
func duckdbCount(t testing.TB, s string) (int, bool) {
	parser.once.Do(func() {
		var cfg mapping.Config
		mapping.CreateConfig(&cfg)
		mapping.SetConfig(cfg, "enable_external_access", "false")
		mapping.SetConfig(cfg, "temp_directory", "")
		var msg string
		if mapping.OpenExt("", &parser.db, cfg, &msg) == mapping.StateError {
			t.Fatalf("open parser database: %s", msg)
		}
		mapping.DestroyConfig(&cfg)
		if mapping.Connect(parser.db, &parser.conn) == mapping.StateError {
			t.Fatal("connect parser database")
		}
	})
	parser.mu.Lock()
	defer parser.mu.Unlock()
	var st mapping.ExtractedStatements
	n := mapping.ExtractStatements(parser.conn, s, &st)
	ok := n > 0 || mapping.ExtractStatementsError(st) == ""
	mapping.DestroyExtracted(&st)
	return int(n), ok
}

// checkAgainstDuckDB: whenever DuckDB's parser accepts a script, Split cuts
// it into as many pieces as DuckDB finds statements, each one statement.
func checkAgainstDuckDB(t testing.TB, s string) {
	if strings.IndexByte(s, 0) >= 0 {
		// DuckDB's C API would see the text cut at the NUL: Split refuses.
		if _, err := sqlspec.Split(s); err == nil {
			t.Fatalf("Split accepted %q with a NUL byte", s)
		}
		return
	}
	n, ok := duckdbCount(t, s)
	if !ok {
		return
	}
	pieces, err := sqlspec.Split(s)
	if err != nil {
		t.Fatalf("DuckDB parses %q as %d statements but Split fails: %v", s, n, err)
	}
	if len(pieces) != n {
		t.Fatalf("DuckDB parses %q as %d statements, Split gives %d: %q", s, n, len(pieces), pieces)
	}
	for _, p := range pieces {
		if m, ok := duckdbCount(t, p); !ok || m != 1 {
			t.Fatalf("piece %q of %q: DuckDB finds %d statements (parsed %v)", p, s, m, ok)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"SELECT 1; SELECT 2", "SELECT ';'", `SELECT "a;b"`, "SELECT E'\\';'", "SELECT $$;$$",
		"SELECT 1 -- x\n; SELECT 2", "/* a /* b */ ; */ SELECT 1", "SELECT a$b$ FROM t",
		"CREATE TEMP VIEW v AS SELECT 1; COPY (SELECT * FROM v) TO 'x'", "SELECT e'x'", "SELECT 1e3;",
		"SELECT 'a''b'; SELECT U&'d\\0061t\\+000061'", "PRAGMA version; SELECT $1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		checkAgainstDuckDB(t, s)
	})
}
