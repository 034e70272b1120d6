package stream

import (
	"math"
	"strings"
	"testing"
)

// TestArenaStringsStayIntact hands out strings across several chunks and
// checks that none changes as later ones are written.
func TestArenaStringsStayIntact(t *testing.T) {
	var a strArena
	var got, want []string
	for i := range 3000 {
		s := strings.Repeat(string(rune('a'+i%26)), 1+i%40)
		if i%2 == 0 {
			got = append(got, a.clone(s))
			want = append(want, s)
		} else {
			u := strings.ToUpper(s)
			got = append(got, a.lower(u))
			want = append(want, s)
		}
	}
	if a.clone("") != "" || a.lower("") != "" {
		t.Fatal("the empty string did not stay empty")
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d is %q, want %q", i, got[i], want[i])
		}
	}
	if cap(a.b) != arenaChunk {
		t.Fatalf("the last chunk holds %d bytes, want the full %d", cap(a.b), arenaChunk)
	}
}

// TestShuffleDecodeIntoKeepsTakenAccumulators decodes two shuffle
// messages into one shuffleMsg, as a window task does, after taking the
// first message's accumulators over: decoding the second must not change
// them (it reuses the slices, not the accumulators).
func TestShuffleDecodeIntoKeepsTakenAccumulators(t *testing.T) {
	aggs := []Agg{{Name: "total", Op: Sum, Field: "x"}, {Name: "n", Op: Count}}
	w := Window{0, 60000}
	body := func(v float64) []byte {
		m := shuffleMsg{wm: math.MinInt64}
		a := makeAcc(aggs)
		a.add(aggs, []Value{Num(v), {}})
		m.partials = []windowPartial{{w: w, keys: []keyAcc{{"k", a}}}}
		return m.encode(aggs)
	}
	var m shuffleMsg
	if err := decodeShuffleInto(&m, body(1.5), aggs); err != nil {
		t.Fatal(err)
	}
	taken := m.partials[0].keys[0].acc // what merge keeps of a new key
	if err := decodeShuffleInto(&m, body(40), aggs); err != nil {
		t.Fatal(err)
	}
	if got := taken.result(aggs, 0); got != Num(1.5) {
		t.Fatalf("a taken accumulator's sum is %v after the next decode, want 1.5", got)
	}
	if got := m.partials[0].keys[0].acc.result(aggs, 0); got != Num(40) {
		t.Fatalf("the second message's sum is %v, want 40", got)
	}
}
