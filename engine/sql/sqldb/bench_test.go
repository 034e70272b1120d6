package sqldb

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// benchParquet is ~100 MB of Parquet (4M rows of an id, a hex digest, a
// double and a category), made once per test binary.
var benchParquet = sync.OnceValues(func() ([]byte, error) {
	e, err := Open(context.Background(), Config{MemoryLimit: 2 << 30, Threads: 2})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	var b bytes.Buffer
	err = e.Write(context.Background(), `SELECT i AS id, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS digest, random() AS v, i % 97 AS category
		FROM range(4000000) t(i)`, Parquet, &b)
	return b.Bytes(), err
})

const benchQuery = "SELECT category, count(*) AS n, sum(v) AS s, max(digest) AS d FROM t WHERE v > 0.25 GROUP BY category ORDER BY category"

func benchRun(b *testing.B, in File, table bool) {
	ctx := context.Background()
	e := openEngine(b, Config{MemoryLimit: 2 << 30, Threads: 2, Inputs: []Input{{Name: "t", Format: Parquet, Files: []File{in}, Materialize: table}}})
	b.ResetTimer()
	for range b.N {
		if _, err := e.Query(ctx, benchQuery, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func benchInputs(b *testing.B) (mem, file File) {
	data, err := benchParquet()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	path := filepath.Join(b.TempDir(), "bench.parquet")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return memInput(b, "bench.parquet", data), File{Path: path, Name: "bench.parquet"}
}

// BenchmarkParquetSource: the same query over a Parquet view read from a
// memfd and from a regular file (page cache warm in both cases).
func BenchmarkParquetSource(b *testing.B) {
	b.Run("memfd", func(b *testing.B) { mem, _ := benchInputs(b); benchRun(b, mem, false) })
	b.Run("file", func(b *testing.B) { _, file := benchInputs(b); benchRun(b, file, false) })
}

// BenchmarkTableVsView: an input as a VIEW (re-read from the memfd by every
// query) against a TABLE copied into DuckDB's memory once.
func BenchmarkTableVsView(b *testing.B) {
	b.Run("view", func(b *testing.B) { mem, _ := benchInputs(b); benchRun(b, mem, false) })
	b.Run("table", func(b *testing.B) { mem, _ := benchInputs(b); benchRun(b, mem, true) })
}

// BenchmarkTableLoad is the one-off cost a TABLE pays before its first query.
func BenchmarkTableLoad(b *testing.B) {
	mem, _ := benchInputs(b)
	ctx := context.Background()
	e := openEngine(b, Config{MemoryLimit: 2 << 30, Threads: 2, Inputs: []Input{{Name: "src", Format: Parquet, Files: []File{mem}}}})
	// The same copy Materialize makes at Open.
	b.ResetTimer()
	for range b.N {
		if err := e.Exec(ctx, "CREATE OR REPLACE TEMP TABLE t AS SELECT * FROM src"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutput: writing a 1M-row result with DuckDB's writers through a
// memfd, against only scanning the same rows into Go values (the floor any
// Go-side encoder, e.g. arrow-go's Parquet writer, would start from).
func BenchmarkOutput(b *testing.B) {
	const q = "SELECT i AS id, md5(i::VARCHAR) AS digest, i / 7 AS ratio FROM range(1000000) t(i)"
	ctx := context.Background()
	for _, f := range []Format{CSV, JSON, Parquet} {
		b.Run(string(f), func(b *testing.B) {
			e := openEngine(b, Config{MemoryLimit: 1 << 30, Threads: 2})
			for range b.N {
				var n countWriter
				if err := e.Write(ctx, q, f, &n); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(n))
			}
		})
	}
	b.Run("scan-rows", func(b *testing.B) {
		e := openEngine(b, Config{MemoryLimit: 1 << 30, Threads: 2})
		for range b.N {
			if _, err := e.Query(ctx, q, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
