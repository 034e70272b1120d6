package stream

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeShuffle decodes arbitrary shuffle bodies. They arrive sealed
// under the state key, so only this engine writes them; the decoder still
// never panics and bounds every length.
func FuzzDecodeShuffle(f *testing.F) {
	aggs := []Agg{{Name: "n", Op: Count}, {Name: "s", Op: Sum, Field: "v"}, {Name: "d", Op: DistinctCount, Field: "v"}}
	a := newAcc(aggs)
	a.add(aggs, []Value{{}, Num(2.5), Str("x")})
	m := shuffleMsg{from: 1, wm: 99, partials: []windowPartial{{w: Window{0, 60000}, keys: []keyAcc{{"\x01\x01k", *a}}}},
		lateRows: []lateRow{{time: 5, key: "\x01\x01k", vals: []Value{{}, Num(1), Str("y")}}}}
	f.Add(m.encode(aggs))
	f.Add((&shuffleMsg{from: 0, idle: true}).encode(aggs))
	first := m.encode(aggs)
	f.Fuzz(func(t *testing.T, b []byte) {
		// A window task decodes every record into one message: after a
		// message that had keys, b must decode into it as into a new one.
		var reused shuffleMsg
		if err := decodeShuffleInto(&reused, first, aggs); err != nil {
			t.Fatal(err)
		}
		rerr := decodeShuffleInto(&reused, b, aggs)
		m, err := decodeShuffle(b, aggs)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("a new message: %v; a reused one: %v", err, rerr)
		}
		if err != nil {
			return
		}
		for _, p := range m.partials {
			for _, k := range p.keys {
				k.acc.result(aggs, 1)
			}
		}
		if !bytes.Equal(m.encode(aggs), reused.encode(aggs)) {
			t.Fatal("decoded into a reused message, the record re-encodes differently than decoded into a new one")
		}
	})
}

// FuzzDecodeEvents decodes arbitrary record bodies as JSON lines and as
// CSV rows, the formats producers write: a body decodes whole or is
// refused with a reason naming its line (it is then dead-lettered), never a
// panic, and an accepted event has the fields the plan reads.
func FuzzDecodeEvents(f *testing.F) {
	compile := func(src Source, t EventTime) *Plan {
		p := NewPipeline("fuzz")
		in := WithEventTime(p.Read(src), t)
		w := WindowInto(KeyBy(in, "k"), TumblingWindows(time.Minute), 0)
		Write(GroupByKey(w, Agg{Name: "n", Op: Count}, Agg{Name: "s", Op: Sum, Field: "v"}), Sink{Stream: "out"})
		pl, err := p.Compile()
		if err != nil {
			f.Fatal(err)
		}
		return pl
	}
	plans := []*Plan{
		compile(Source{Stream: "s", Partitions: 1, Format: FormatJSON}, EventTime{Field: "t", Unit: RFC3339}),
		compile(Source{Stream: "s", Partitions: 1, Format: FormatJSON}, EventTime{Field: "t", Unit: UnixMillis}),
		compile(Source{Stream: "s", Partitions: 1, Format: FormatCSV, Columns: []string{"t", "k", "v"}}, EventTime{Field: "t", Unit: UnixSeconds}),
	}
	f.Add([]byte(`{"t":"2024-01-02T03:04:05Z","k":"a","v":1.5}` + "\n" + `{"t":"2024-01-02T03:04:06.5+02:00","k":{"x":1},"v":null}` + "\n"))
	f.Add([]byte(`{"t":1700000000000,"k":"a","v":-2e308}`))
	f.Add([]byte("1700000000,a,3\n1700000001,\"b,c\",4.25\n"))
	f.Add([]byte("{\"t\":1,\"k\":\"a\",\"v\":\"x\"}\n{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, pl := range plans {
			n := 0
			err := pl.dec.decode(b, 42, func(r *Row) { n++ })
			if err != nil && n != 0 {
				t.Fatalf("%s: %d events emitted from a refused body", pl.Source.Format, n)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("%s: reason does not name the line: %v", pl.Source.Format, err)
			}
		}
	})
}

// FuzzFusedCount counts the words of arbitrary text (a record's line, as
// producers write it) on the fused count path and with the tokenizer's
// rows: the counts by key must agree, also when a line is counted again
// (the table then finds every word, on countShort's path where it can)
// and when the text is counted as a whole record body (countText), whose
// events must be the lines the text decoder cuts.
func FuzzFusedCount(f *testing.F) {
	p := NewPipeline("fuzz")
	words := Tokenize(p.Read(Source{Stream: "s", Partitions: 1, Format: FormatText}), "line", "word")
	Write(GroupByKey(WindowInto(KeyBy(words, "word"), TumblingWindows(time.Minute), 0), Agg{Name: "n", Op: Count}), Sink{Stream: "out"})
	pl, err := p.Compile()
	if err != nil || !pl.fusedCount {
		f.Fatalf("plan: %v; fused %v", err, pl.fusedCount)
	}
	f.Add([]byte("The cat's 42 CATS, abcdefghIJK abcdefghijk\xff\x07x\x10y Zz"))
	f.Add([]byte("aaaaaaaaa aaaaaaaaaa AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &sourceTask{pl: pl, agg: newPreAgg(1), emitted: math.MinInt64}
		s.agg.fused = true
		row := Row{Time: 5, Vals: []Value{Str(string(b))}}
		want := map[string]int64{}
		tokenizeFn(0)(&row, func(r *Row) { want[string(pl.appendKey(nil, r))] += 3 })
		s.countWords(&row)
		s.countWords(&row)
		s.countText(b, 5)
		var lines int64
		if err := pl.dec.decode(b, 5, func(*Row) { lines++ }); err != nil {
			t.Fatal(err)
		}
		if s.stats.Events != lines {
			t.Fatalf("countText: %d events, the decoder cuts %d lines", s.stats.Events, lines)
		}
		got := map[string]int64{}
		for _, wa := range s.agg.wins {
			for i, id := range wa.ids {
				got[s.agg.keys[id]] += wa.accs[i].n
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d keys, want %d", len(got), len(want))
		}
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("key %q: %d, want %d", k, got[k], n)
			}
		}
	})
}
