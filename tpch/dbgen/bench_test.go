package dbgen

import (
	"context"
	"testing"
)

// BenchmarkLineitem measures single-threaded generation of orders and lineitem
// at SF 0.1 and reports lineitem rows per second.
func BenchmarkLineitem(b *testing.B) {
	g, err := New(0.1)
	if err != nil {
		b.Fatal(err)
	}
	r := Range{0, g.DriverRows(Orders)}
	b.ResetTimer()
	var rows int64
	for i := 0; i < b.N; i++ {
		err := g.Scan(context.Background(), []Table{Orders, Lineitem}, r, 8192, func(bt *Batch) error {
			if bt.Table == Lineitem {
				rows += int64(bt.Len)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "lineitem_rows/s")
}

// BenchmarkAllTables generates every table at SF 0.01, single-threaded.
func BenchmarkAllTables(b *testing.B) {
	g, err := New(0.01)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range []Table{Region, Nation, Supplier, Customer, Part, Orders} {
			tables := []Table{t}
			switch t {
			case Part:
				tables = append(tables, PartSupp)
			case Orders:
				tables = append(tables, Lineitem)
			}
			if err := g.Scan(context.Background(), tables, Range{0, g.DriverRows(t)}, 8192, func(*Batch) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	}
}
