package tpchparquet

import (
	"context"
	"io"
	"testing"

	"github.com/ppml/ppml/tpch/dbgen"
)

// BenchmarkWriteLineitem generates orders and lineitem at SF 0.1 and writes them
// as Parquet to io.Discard, with all cores.
func BenchmarkWriteLineitem(b *testing.B) {
	g, err := dbgen.New(0.1)
	if err != nil {
		b.Fatal(err)
	}
	for _, codec := range []string{"snappy", "lz4raw", "zstd", "none"} {
		b.Run(codec, func(b *testing.B) {
			var rows, size int64
			for i := 0; i < b.N; i++ {
				var cw countWriter
				n, err := Write(context.Background(), g, map[dbgen.Table]io.Writer{dbgen.Orders: io.Discard, dbgen.Lineitem: &cw}, Options{Compression: codec})
				if err != nil {
					b.Fatal(err)
				}
				rows += n[dbgen.Lineitem]
				size = int64(cw)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "lineitem_rows/s")
			b.ReportMetric(float64(size)/1e6, "lineitem_MB")
		})
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
