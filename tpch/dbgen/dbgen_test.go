package dbgen

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"sync"
	"testing"
)

func TestNextRandKnownValues(t *testing.T) {
	// The minimal-standard generator from seed 1: 16807^k mod 2^31-1
	// (Park & Miller, CACM 31(10), 1988; x_10000 = 1043618065 is their check value).
	x := int64(1)
	want := []int64{16807, 282475249, 1622650073, 984943658, 1144108930, 470211272, 101027544, 1457850878}
	for i, w := range want {
		x = NextRand(x)
		if x != w {
			t.Fatalf("x_%d = %d, want %d", i+1, x, w)
		}
	}
	if got := NthElement(10000, 1); got != 1043618065 {
		t.Fatalf("x_10000 = %d, want 1043618065", got)
	}
	// NthElement agrees with stepping, for short (table) and long jumps.
	for _, n := range []int64{0, 1, 7, 92, 127, 128, 1000, 123457} {
		x := int64(933588178)
		for i := int64(0); i < n; i++ {
			x = NextRand(x)
		}
		if got := NthElement(n, 933588178); got != x {
			t.Errorf("NthElement(%d) = %d, stepping gives %d", n, got, x)
		}
	}
}

func TestUnifInt(t *testing.T) {
	s := stream{value: 1}
	// First draws of P_MFG_SD (seed 1): part 1 is made by Manufacturer#1.
	if v := s.unifInt(1, 5); v != 1 {
		t.Fatalf("first manufacturer = %d", v)
	}
	if s.usage != 1 || s.value != 16807 {
		t.Fatalf("stream after one draw: %+v", s)
	}
	for i := 0; i < 100000; i++ {
		if v := s.unifInt(-99999, 999999); v < -99999 || v > 999999 {
			t.Fatalf("draw %d out of range: %d", i, v)
		}
		if v := s.unifInt(0, maxLong); v < 0 || v > maxLong {
			t.Fatalf("alphanumeric draw %d out of range: %d", i, v)
		}
	}
}

func TestRowCounts(t *testing.T) {
	cases := []struct {
		sf   float64
		want map[Table]int64
	}{
		{0.01, map[Table]int64{Region: 5, Nation: 25, Supplier: 100, Customer: 1500, Part: 2000, PartSupp: 8000, Orders: 15000, Lineitem: 60175}},
		{0.1, map[Table]int64{Region: 5, Nation: 25, Supplier: 1000, Customer: 15000, Part: 20000, PartSupp: 80000, Orders: 150000, Lineitem: 600572}},
		{1, map[Table]int64{Region: 5, Nation: 25, Supplier: 10000, Customer: 150000, Part: 200000, PartSupp: 800000, Orders: 1500000, Lineitem: 6001215}},
		{10, map[Table]int64{Region: 5, Nation: 25, Supplier: 100000, Customer: 1500000, Part: 2000000, PartSupp: 8000000, Orders: 15000000, Lineitem: 59986052}},
	}
	for _, c := range cases {
		g, err := New(c.sf)
		if err != nil {
			t.Fatal(err)
		}
		for tb, want := range c.want {
			if got := g.RowCount(tb); got != want {
				t.Errorf("SF %g %s: %d rows, want %d", c.sf, tb, got, want)
			}
		}
	}
}

func TestNewRejectsBadScale(t *testing.T) {
	for _, sf := range []float64{0, -1, 30000, 1e9} {
		if _, err := New(sf); err == nil {
			t.Errorf("New(%g) succeeded", sf)
		}
	}
}

func rowString(b *Batch, i int) string {
	parts := make([]string, len(b.Cols))
	for c := range b.Cols {
		parts[c] = fmt.Sprint(b.Value(i, c))
	}
	return strings.Join(parts, "|")
}

// rowsOf returns the rows of tb in driver range r as '|'-joined strings.
func rowsOf(t *testing.T, g *Generator, tb Table, r Range) []string {
	t.Helper()
	var out []string
	err := g.Scan(context.Background(), []Table{tb}, r, 1000, func(b *Batch) error {
		for i := 0; i < b.Len; i++ {
			out = append(out, rowString(b, i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFirstAndLastRows pins rows of DuckDB's dbgen. The key, number, date and
// category columns of the first rows at SF 1 are those of TPC's dbgen too; the
// addresses and comments are DuckDB's (its text pool is 10 MiB and its random
// characters use a 2^31 range, see rng.go and textpool.go). Customer 679 at SF
// 0.01 appears in full in DuckDB's published Q10 answer.
func TestFirstAndLastRows(t *testing.T) {
	g1, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	first := map[Table]string{
		Region:   "0|AFRICA|ar packages. regular excuses among the ironic requests cajole fluffily blithely final requests. furiously express p",
		Nation:   "0|ALGERIA|0|furiously regular requests. platelets affix furious",
		Supplier: "1|Supplier#000000001|sdrGnXCDRcfriBvY0KL,ipCanOTyK t NN1|17|27-918-335-1736|5755.94| instructions. slyly unusual",
		Customer: "1|Customer#000000001|j5JsirBM9PsCy0O1m|15|25-989-741-2988|711.56|BUILDING|y final requests wake slyly quickly special accounts. blithely",
		Part:     "1|goldenrod lavender spring chocolate lace|Manufacturer#1|Brand#13|PROMO BURNISHED COPPER|7|JUMBO PKG|901.00|ironic pinto be",
		PartSupp: "1|2|3325|771.64|blithely regular theodolites sleep slyly across the sometimes bold dependencies. even accounts among the slyly final sauternes cajole quickly about the doggedly even platelets. carefully final",
		Orders:   "1|36901|O|173665.47|1996-01-02|5-LOW|Clerk#000000951|0|ly express platelets. deposits acc",
		Lineitem: "1|155190|7706|1|17.00|21168.23|0.04|0.02|N|O|1996-03-13|1996-02-12|1996-03-22|DELIVER IN PERSON|TRUCK|to beans x-ray carefull",
	}
	for tb, want := range first {
		got := rowsOf(t, g1, tb, Range{0, 1})
		if len(got) == 0 || got[0] != want {
			t.Errorf("SF 1 first %s row:\n got %q\nwant %q", tb, got, want)
		}
	}
	// Last rows: the sparse order key of order 1,500,000 is 6,000,000; the last
	// nation is UNITED STATES in AMERICA; the last part is 200000.
	last := func(tb Table) string {
		rows := rowsOf(t, g1, tb, Range{g1.DriverRows(tb) - 1, 1})
		return rows[len(rows)-1]
	}
	for tb, prefix := range map[Table]string{
		Nation: "24|UNITED STATES|1|", Region: "4|MIDDLE EAST|", Supplier: "10000|Supplier#000010000|",
		Customer: "150000|Customer#000150000|", Part: "200000|", PartSupp: "200000|", Orders: "6000000|", Lineitem: "6000000|",
	} {
		if got := last(tb); !strings.HasPrefix(got, prefix) {
			t.Errorf("SF 1 last %s row %q, want prefix %q", tb, got, prefix)
		}
	}

	g001, err := New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	got := rowsOf(t, g001, Customer, Range{678, 1})[0]
	want := "679|Customer#000000679|jhLZlG1fRiSE0 wDLOCguVB96dH6a5|10|20-146-696-9508|1394.44|"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "|oys. furiously silent pinto beans") {
		t.Errorf("SF 0.01 customer 679 = %q", got)
	}
}

// digest hashes every value of every row of the given tables generated over
// the ranges, in range order.
func digest(t *testing.T, g *Generator, tables []Table, ranges []Range, parallel bool) map[Table][]byte {
	t.Helper()
	type part map[Table][]*Batch
	parts := make([]part, len(ranges))
	var wg sync.WaitGroup
	errs := make([]error, len(ranges))
	for i, r := range ranges {
		run := func() {
			defer wg.Done()
			p := part{}
			errs[i] = g.Scan(context.Background(), tables, r, 777, func(b *Batch) error {
				p[b.Table] = append(p[b.Table], b)
				return nil
			})
			parts[i] = p
		}
		wg.Add(1)
		if parallel {
			go run()
		} else {
			run()
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	out := map[Table][]byte{}
	for _, tb := range tables {
		var h hash.Hash = sha256.New()
		var n int64
		for _, p := range parts {
			for _, b := range p[tb] {
				for i := 0; i < b.Len; i++ {
					for _, c := range b.Cols {
						if c.Strs != nil {
							binary.Write(h, binary.LittleEndian, int64(len(c.Strs[i])))
							h.Write([]byte(c.Strs[i]))
						} else {
							binary.Write(h, binary.LittleEndian, c.Ints[i])
						}
					}
					n++
				}
			}
		}
		if n != g.RowCount(tb) {
			t.Errorf("%s: %d rows, want %d", tb, n, g.RowCount(tb))
		}
		out[tb] = h.Sum(nil)
	}
	return out
}

func TestParallelChunksMatchOnePass(t *testing.T) {
	g, err := New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	for _, group := range [][]Table{{Region}, {Nation}, {Supplier}, {Customer}, {Part, PartSupp}, {Orders, Lineitem}} {
		d := group[0]
		one := digest(t, g, group, []Range{{0, g.DriverRows(d)}}, false)
		two := digest(t, g, group, g.Split(d, 2), true)
		odd := digest(t, g, group, g.Split(d, 7), true)
		for _, tb := range group {
			if string(one[tb]) != string(two[tb]) || string(one[tb]) != string(odd[tb]) {
				t.Errorf("%s: chunked generation differs from one pass", tb)
			}
		}
	}
	// Generating a child table alone gives the same rows as with its driver.
	alone := digest(t, g, []Table{Lineitem}, g.Split(Orders, 3), true)
	both := digest(t, g, []Table{Orders, Lineitem}, []Range{{0, g.DriverRows(Orders)}}, false)
	if string(alone[Lineitem]) != string(both[Lineitem]) {
		t.Error("lineitem generated alone differs from lineitem generated with orders")
	}
}

func TestScanRejectsBadRequests(t *testing.T) {
	g, err := New(0.01)
	if err != nil {
		t.Fatal(err)
	}
	noop := func(*Batch) error { return nil }
	ctx := context.Background()
	for name, run := range map[string]func() error{
		"no tables":     func() error { return g.Scan(ctx, nil, Range{0, 1}, 1, noop) },
		"mixed drivers": func() error { return g.Scan(ctx, []Table{Orders, Part}, Range{0, 1}, 1, noop) },
		"past the end":  func() error { return g.Scan(ctx, []Table{Region}, Range{3, 3}, 1, noop) },
		"negative":      func() error { return g.Scan(ctx, []Table{Region}, Range{-1, 1}, 1, noop) },
		"bad table":     func() error { return g.Scan(ctx, []Table{Table(42)}, Range{0, 1}, 1, noop) },
	} {
		if err := run(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Scan(cctx, []Table{Orders}, Range{0, 100}, 10, noop); err == nil {
		t.Error("canceled scan succeeded")
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[int64]string{0: "0.00", 5: "0.05", -5: "-0.05", 90100: "901.00", -99999: "-999.99", 123456789: "1234567.89"} {
		if got := FormatDecimal(v); got != want {
			t.Errorf("FormatDecimal(%d) = %s, want %s", v, got, want)
		}
	}
	for d, want := range map[int64]string{0: "1970-01-01", 8035: "1992-01-01", 10365: "1998-05-19", -1: "1969-12-31", 11016: "2000-02-29"} {
		if got := FormatDate(d); got != want {
			t.Errorf("FormatDate(%d) = %s, want %s", d, got, want)
		}
	}
	if currentDateRaw != startDate+1263 { // 1995-06-17
		t.Errorf("current date raw = %d", currentDateRaw)
	}
	for _, n := range []string{"lineitem", "LineItem", "partsupp"} {
		if _, err := ParseTable(n); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseTable("lineitems"); err == nil {
		t.Error("ParseTable accepted a bad name")
	}
}

// TestTPCVariant pins rows of the TPC variant: the first rows at SF 1 are those
// of TPC dbgen 2.x's .tbl files, and customer 1,237,537 at SF 10 is the first
// row of the SF 10 Q10 answer of later DuckDB versions, which switched to TPC's
// text pool and address characters.
func TestTPCVariant(t *testing.T) {
	g, err := NewVariant(1, TPC)
	if err != nil {
		t.Fatal(err)
	}
	if g.Variant() != TPC || g.Variant().String() != "tpc" {
		t.Fatalf("variant %v", g.Variant())
	}
	first := map[Table]string{
		Region:   "0|AFRICA|lar deposits. blithely final packages cajole. regular waters are final requests. regular accounts are according to ",
		Nation:   "0|ALGERIA|0| haggle. carefully final deposits detect slyly agai",
		Supplier: "1|Supplier#000000001| N kD4on9OM Ipw3,gf0JBoQDd7tgrzrddZ|17|27-918-335-1736|5755.94|each slyly above the careful",
		Customer: "1|Customer#000000001|IVhzIApeRb ot,c,E|15|25-989-741-2988|711.56|BUILDING|to the even, regular platelets. regular, ironic epitaphs nag e",
		Part:     "1|goldenrod lavender spring chocolate lace|Manufacturer#1|Brand#13|PROMO BURNISHED COPPER|7|JUMBO PKG|901.00|ly. slyly ironi",
		Orders:   "1|36901|O|173665.47|1996-01-02|5-LOW|Clerk#000000951|0|nstructions sleep furiously among ",
		Lineitem: "1|155190|7706|1|17.00|21168.23|0.04|0.02|N|O|1996-03-13|1996-02-12|1996-03-22|DELIVER IN PERSON|TRUCK|egular courts above the",
	}
	for tb, want := range first {
		got := rowsOf(t, g, tb, Range{0, 1})
		if len(got) == 0 || got[0] != want {
			t.Errorf("TPC SF 1 first %s row:\n got %q\nwant %q", tb, got, want)
		}
	}
	g10, err := NewVariant(10, TPC)
	if err != nil {
		t.Fatal(err)
	}
	got := rowsOf(t, g10, Customer, Range{1237536, 1})[0]
	want := "1237537|Customer#001237537|FNG6WgB1mopyyY,ajQTU qUPW5o|22|32-367-120-4327|7840.17|"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "|nag carefully about the regular packages. carefully reg") {
		t.Errorf("TPC SF 10 customer 1237537 = %q", got)
	}
	if _, err := ParseVariant("tpc"); err != nil {
		t.Error(err)
	}
	if _, err := ParseVariant("oracle"); err == nil {
		t.Error("ParseVariant accepted a bad name")
	}
	if _, err := NewVariant(1, Variant(7)); err == nil {
		t.Error("NewVariant accepted a bad variant")
	}
}
