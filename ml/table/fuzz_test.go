package table

import (
	"bytes"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("a,b,y\n1,2,3\n,NaN,4\n"), "y")
	f.Add([]byte("\ufeffx,y\n\"1\",2\n"), "y")
	f.Add([]byte("a,b\n1\n"), "b")
	f.Add([]byte("a;b\n1;2\n"), "")
	f.Fuzz(func(t *testing.T, in []byte, label string) {
		d, err := ReadCSV(bytes.NewReader(in), Selection{Label: label})
		if err != nil {
			return
		}
		n := d.X.NumRows()
		if n == 0 || (label != "" && len(d.Y) != n) {
			t.Fatalf("%d rows, %d labels", n, len(d.Y))
		}
		for j, c := range d.X.Columns {
			if len(c) != n {
				t.Fatalf("column %d has %d rows, want %d", j, len(c), n)
			}
			for _, v := range c {
				if math.IsInf(v, 0) {
					t.Fatal("infinite value accepted")
				}
			}
		}
		for _, v := range d.Y {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatal("missing or infinite label accepted")
			}
		}
	})
}

func FuzzReadParquet(f *testing.F) {
	tbl := arrowTable(&testing.T{})
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 1024, nil, pqarrow.DefaultWriterProps()); err != nil {
		f.Fatal(err)
	}
	tbl.Release()
	f.Add(buf.Bytes())
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := ReadParquet(bytes.NewReader(in), Selection{Features: []string{"f", "i"}, Label: "y"})
		if err != nil {
			return
		}
		if d.X.NumRows() != len(d.Y) {
			t.Fatalf("%d rows, %d labels", d.X.NumRows(), len(d.Y))
		}
	})
}
