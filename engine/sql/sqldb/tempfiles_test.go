package sqldb

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listTree returns every path under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// duckdbTempEntries lists what in dir looks like a DuckDB temp file or
// directory; the shared /tmp has other tenants, so only these are compared.
func duckdbTempEntries(dir string) map[string]bool {
	ents, _ := os.ReadDir(dir)
	out := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".tmp") || strings.Contains(n, "duckdb") {
			out[n] = true
		}
	}
	return out
}

// TestNoTempFiles runs queries that would spill to disk under DuckDB's
// defaults and checks that they fail cleanly and leave nothing in TMPDIR,
// the working directory (DuckDB's default temp_directory is ./.tmp) or the
// system temp directory.
func TestNoTempFiles(t *testing.T) {
	ctx := context.Background()
	work, tmp := t.TempDir(), t.TempDir()
	t.Chdir(work)
	t.Setenv("TMPDIR", tmp)
	sysBefore := duckdbTempEntries("/tmp")

	e := openEngine(t, Config{MemoryLimit: 48 << 20, Threads: 2})
	spill := []string{
		"SELECT i, md5(i::VARCHAR) AS h FROM range(5000000) t(i) ORDER BY h",
		"SELECT count(*) AS n FROM (SELECT i, md5(i::VARCHAR) h FROM range(3000000) t(i)) a JOIN (SELECT i, md5(i::VARCHAR) h FROM range(3000000) t(i)) b USING (h)",
		"SELECT h, count(*) AS n FROM (SELECT md5(i::VARCHAR) h FROM range(5000000) t(i)) GROUP BY h",
	}
	for _, q := range spill {
		var out bytes.Buffer
		err := e.Write(ctx, q, Parquet, &out)
		var me *MemoryError
		if !errors.As(err, &me) {
			t.Errorf("%s: error %v, want the memory-limit error", q, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d bytes of output after failing", q, out.Len())
		}
	}
	for _, dir := range []string{work, tmp} {
		if left := listTree(t, dir); len(left) != 0 {
			t.Errorf("files left in %s: %v", dir, left)
		}
	}
	for n := range duckdbTempEntries("/tmp") {
		if !sysBefore[n] {
			t.Errorf("new DuckDB temp entry /tmp/%s", n)
		}
	}
	if setting, _ := e.Setting(ctx, "temp_directory"); setting != "" {
		t.Errorf("temp_directory = %q", setting)
	}
}
