package sqlengine

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ppml/ppml/engine/sql/sqlspec"
	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/envelope/envelopetest"
	"github.com/ppml/ppml/job"
	"github.com/ppml/ppml/keyfile"
	"github.com/ppml/ppml/launcher"
)

const examplesDir = "../../examples/sql"

// sqlExamples lists each example's plaintext inputs (encrypted by the test,
// as the README does) and a string of its data that must never be found in
// plaintext on disk after the run.
var sqlExamples = []struct {
	dir    string
	inputs []string
	marker string
}{
	{"spark-basic", []string{"people.json"}, `"name":"Justin"`},
	{"wordcount", []string{"cc0-1.0.txt"}, "Statement of Purpose"},
	{"pi", nil, ""},
	{"orca-data", []string{"seattle-weather-hourly-normals.csv"}, "2010-01-01T01:00:00,1016.6"},
}

func TestExamplesThroughLauncher(t *testing.T) {
	for _, ex := range sqlExamples {
		t.Run(ex.dir, func(t *testing.T) {
			src := filepath.Join(examplesDir, ex.dir)
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			dir := filepath.Join(t.TempDir(), ex.dir)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			envelopetest.CopyFile(t, filepath.Join(src, "job.yaml"), filepath.Join(dir, "job.yaml"))
			key, err := keyfile.Generate(filepath.Join(dir, "owner.key"), false)
			if err != nil {
				t.Fatal(err)
			}
			var marker []byte
			for _, in := range ex.inputs {
				plain, err := os.ReadFile(filepath.Join(src, in))
				if err != nil {
					t.Fatal(err)
				}
				if ex.marker != "" && !bytes.Contains(plain, []byte(ex.marker)) {
					t.Fatalf("marker %q is not in %s", ex.marker, in)
				}
				marker = []byte(ex.marker)
				envelopetest.Encrypt(t, filepath.Join(dir, in+".ppml"), key.LocalKey, plain, contentTypeOf(in))
			}
			if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
				t.Fatal(err)
			}
			m, err := job.Load(filepath.Join(dir, "job.yaml"), launcher.Specs())
			if err != nil {
				t.Fatal(err)
			}
			checkQueriesMatchSQLFiles(t, m, src)
			before := listDir(t, ".")
			keys, err := launcher.NewLocalKeys(filepath.Join(dir, "owner.key"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := runJob(filepath.Join(dir, "job.yaml"), launcher.Config{Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Outputs) != len(m.Outputs) {
				t.Fatalf("wrote %v, want %d outputs", res.Outputs, len(m.Outputs))
			}
			for _, o := range m.Outputs {
				got := envelopetest.Decrypt(t, o.Path, key.LocalKey)
				want, err := os.ReadFile(filepath.Join(src, o.Name+".expected.csv"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("output %s differs from %s.expected.csv:\n%s", o.Name, o.Name, got)
				}
			}
			// DuckDB wrote no temp files, and no plaintext reached a disk.
			assertEmpty(t, tmp)
			if after := listDir(t, "."); after != before {
				t.Errorf("the run changed the working directory: %s -> %s", before, after)
			}
			if marker != nil {
				for _, d := range []string{dir, tmp} {
					envelopetest.AssertNoMarker(t, d, marker)
				}
			}
		})
	}
}

// checkQueriesMatchSQLFiles keeps job.yaml in step with the .sql files the
// engine's own tests run.
func checkQueriesMatchSQLFiles(t *testing.T, m *job.Manifest, src string) {
	t.Helper()
	p := m.Parameters.(*sqlspec.Params)
	for _, o := range p.Outputs {
		sql, err := os.ReadFile(filepath.Join(src, o.Name+".sql"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(o.Query) != strings.TrimSpace(string(sql)) {
			t.Errorf("job.yaml's query for %s differs from %s.sql", o.Name, o.Name)
		}
	}
}

func contentTypeOf(name string) envelope.ContentType {
	switch filepath.Ext(name) {
	case ".csv":
		return envelope.TypeCSV
	case ".json":
		return envelope.TypeJSON
	case ".parquet":
		return envelope.TypeParquet
	}
	return envelope.TypeBytes
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s: unexpected file %s (DuckDB must not write temp files)", dir, e.Name())
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}
