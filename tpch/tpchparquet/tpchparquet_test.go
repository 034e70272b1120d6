package tpchparquet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ppml/ppml/tpch/dbgen"
)

func TestWriteDirSubsetAndReadBack(t *testing.T) {
	g, err := dbgen.New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var progressCalls int
	o := DirOptions{Options: Options{ChunkRows: 300, RowGroupRows: 1000, Progress: func(dbgen.Table, int64) { progressCalls++ }}}
	files, err := WriteDir(context.Background(), g, dir, []dbgen.Table{dbgen.Lineitem, dbgen.Nation}, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Table != dbgen.Nation || files[1].Table != dbgen.Lineitem {
		t.Fatalf("files: %+v", files)
	}
	if progressCalls == 0 {
		t.Error("no progress reported")
	}
	for _, f := range files {
		data, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != f.Bytes {
			t.Errorf("%s: %d bytes on disk, reported %d", f.Name, len(data), f.Bytes)
		}
		rdr, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if rdr.NumRows() != g.RowCount(f.Table) {
			t.Errorf("%s: %d rows, want %d", f.Name, rdr.NumRows(), g.RowCount(f.Table))
		}
		if f.Table == dbgen.Lineitem && rdr.NumRowGroups() != int((g.RowCount(f.Table)+999)/1000) {
			t.Errorf("lineitem: %d row groups", rdr.NumRowGroups())
		}
		fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := fr.Schema()
		if err != nil {
			t.Fatal(err)
		}
		want := ArrowSchema(f.Table)
		for i, fl := range sc.Fields() {
			w := want.Field(i)
			if fl.Name != w.Name || !arrow.TypeEqual(fl.Type, w.Type) || fl.Nullable {
				t.Errorf("%s field %d: %v, want %v", f.Name, i, fl, w)
			}
		}
		rdr.Close()
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2", len(entries))
	}
	// Existing files are kept unless Overwrite.
	if _, err := WriteDir(context.Background(), g, dir, []dbgen.Table{dbgen.Nation}, DirOptions{}); err == nil {
		t.Error("existing file replaced without Overwrite")
	}
	if _, err := WriteDir(context.Background(), g, dir, []dbgen.Table{dbgen.Nation}, DirOptions{Overwrite: true}); err != nil {
		t.Error(err)
	}
}

type memSink struct {
	bytes.Buffer
	committed, aborted bool
}

func (m *memSink) Commit() error { m.committed = true; return nil }
func (m *memSink) Abort() error {
	if !m.committed {
		m.aborted = true
	}
	return nil
}

func TestCompressionOptions(t *testing.T) {
	g, err := dbgen.New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{}
	for _, c := range []string{"", "snappy", "zstd", "lz4raw", "none"} {
		var buf bytes.Buffer
		if _, err := Write(context.Background(), g, map[dbgen.Table]io.Writer{dbgen.Customer: &buf}, Options{Compression: c}); err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		rdr, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(0)
		if err != nil {
			t.Fatal(err)
		}
		if got := cc.Compression().String(); c != "" && c != "none" && !strings.EqualFold(strings.ReplaceAll(got, "_", ""), c) {
			t.Errorf("%q: column chunk compressed with %s", c, got)
		}
		rdr.Close()
		sizes[c] = buf.Len()
	}
	if sizes["none"] <= sizes["snappy"] || sizes[""] != sizes["snappy"] {
		t.Errorf("sizes %v", sizes)
	}
	if _, err := Write(context.Background(), g, map[dbgen.Table]io.Writer{dbgen.Customer: io.Discard}, Options{Compression: "lzma"}); err == nil {
		t.Error("unknown compression accepted")
	}
}

func TestWriteDirAbortsOnError(t *testing.T) {
	g, err := dbgen.New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	sinks := map[string]*memSink{}
	ctx, cancel := context.WithCancel(context.Background())
	o := DirOptions{
		Options: Options{ChunkRows: 100, Progress: func(t dbgen.Table, rows int64) {
			if t == dbgen.Orders {
				cancel()
			}
		}},
		Create: func(path string, _ bool) (Sink, error) {
			s := &memSink{}
			sinks[filepath.Base(path)] = s
			return s, nil
		},
	}
	_, err = WriteDir(ctx, g, "/nonexistent", []dbgen.Table{dbgen.Region, dbgen.Orders, dbgen.Lineitem}, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if s := sinks["region.parquet"]; s == nil || !s.committed {
		t.Error("region not committed")
	}
	for _, n := range []string{"orders.parquet", "lineitem.parquet"} {
		if s := sinks[n]; s == nil || s.committed || !s.aborted {
			t.Errorf("%s not aborted: %+v", n, s)
		}
	}
}
