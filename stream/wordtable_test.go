package stream

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestWordTableTagCollision finds words longer than 16 bytes that share
// their first 16 bytes, their length and the 16 bits of hash a slot keeps,
// so that only the comparison with the key's bytes tells them apart, and
// checks that each finds its own id, also after the table grows.
func TestWordTableTagCollision(t *testing.T) {
	tags := map[[2]uint64]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		w := fmt.Sprintf("abcdefghijklmnop%06d", i)
		bw := []byte(w)
		pre := load(bw, 0, 8)
		h := hashWord(bw, 0, len(bw), pre)
		k := [2]uint64{h >> 48, uint64(h) & 255} // same tag, same first slot of a 256-slot table
		if o, ok := tags[k]; ok {
			a, b = o, w
		}
		tags[k] = w
		if i > 1e7 {
			t.Fatal("no collision found")
		}
	}
	var tab wordTable
	var keys []string
	add := func(w string) int32 {
		bw := []byte(w)
		id, h, pre, ok := tab.find(bw, 0, len(bw), keys)
		if ok {
			return id
		}
		keys = append(keys, "\x01"+w) // a key ends with its word
		tab.insert(h, pre, len(bw), int32(len(keys)-1), keys)
		return int32(len(keys) - 1)
	}
	ia, ib := add(a), add(b)
	if ia == ib {
		t.Fatalf("%q and %q share id %d", a, b, ia)
	}
	for i := 0; i < 1000; i++ { // grow the table several times
		add(fmt.Sprintf("w%d", i))
	}
	upper := []byte("ABCDEFGHIJKLMNOP" + a[16:])
	if id, _, _, ok := tab.find(upper, 0, len(upper), keys); !ok || id != ia {
		t.Errorf("%q: id %d, %v; want %d", upper, id, ok, ia)
	}
	if id, _, _, ok := tab.find([]byte(b), 0, len(b), keys); !ok || id != ib {
		t.Errorf("%q: id %d, %v; want %d", b, id, ok, ib)
	}
	if got := add(a); got != ia {
		t.Errorf("%q again: id %d, want %d", a, got, ia)
	}
}

// TestLoadFoldsAndPads checks load at the end of a slice (byte by byte)
// and inside it (one 8-byte load) against the same bytes.
func TestLoadFoldsAndPads(t *testing.T) {
	b := []byte("xxAbC'9Zq")
	for i := 0; i < len(b); i++ {
		for n := 1; n <= min(8, len(b)-i); n++ {
			var want uint64
			for k := n - 1; k >= 0; k-- {
				want = want<<8 | uint64(b[i+k]|0x20)
			}
			if got := load(b, i, n); got != want {
				t.Errorf("load(%q, %d, %d) = %#x, want %#x", b, i, n, got, want)
			}
			if got := load(b[:i+n], i, n); got != want {
				t.Errorf("load at the end (%q, %d, %d) = %#x, want %#x", b[:i+n], i, n, got, want)
			}
		}
	}
}

// TestFusedInterning follows the keys a fused source task interns in its
// word table (not in the map) through a compaction of the key table and a
// snapshot restored into a new task: every window must count each word
// under one id, and the map must hold no word the table holds.
func TestFusedInterning(t *testing.T) {
	pl := wordCountPlan(t)
	s := newSourceTask(&worker{plan: pl}, TaskID{pl.Source.Stream, 0}, 0)
	if !s.agg.fused {
		t.Fatal("the WordCount plan does not run fused")
	}
	minute := time.Minute.Milliseconds()
	line := func(words ...string) string { return strings.Join(words, " ") }
	var many []string
	for i := range 5000 {
		many = append(many, fmt.Sprintf("w%d", i))
	}
	var few []string
	for i := range 100 {
		few = append(few, fmt.Sprintf("X%d", i))
	}
	count := func(s *sourceTask, at int64, text string) {
		s.run(&Row{Time: at, Vals: []Value{Str(text)}})
	}
	counts := func(s *sourceTask, w Window) map[string]int64 {
		got := map[string]int64{}
		wa := s.agg.wins[w]
		if wa == nil {
			return got
		}
		for i, id := range wa.ids {
			k := decodeKey(s.agg.keys[id], 1)[0].S
			if _, dup := got[k]; dup {
				t.Fatalf("%q counted under two ids in window %v", k, w)
			}
			got[k] = wa.accs[i].n
		}
		return got
	}
	flush := func(s *sourceTask, w Window) { // what advance does with the key table
		live := 0
		for _, wa := range s.agg.wins {
			live += len(wa.ids)
		}
		largest := len(s.agg.wins[w].ids)
		delete(s.agg.wins, w)
		s.lastWA = nil
		s.agg.flushed(live, largest)
	}
	win := func(i int64) Window { return Window{Start: i * minute, End: (i + 1) * minute} }

	count(s, 0, line(many...))
	if got := counts(s, win(0)); len(got) != 5000 || got["w4999"] != 1 {
		t.Fatalf("window 0: %d keys", len(got))
	}
	flush(s, win(0))
	count(s, minute, line(append(few, "W0")...))
	count(s, 2*minute, "w0 x0 W0") // two more windows open, with the same keys
	count(s, 3*minute, "x0 w0")
	flush(s, win(1)) // most keys are in no window now: the key table is compacted
	if len(s.agg.keys) != 2 {
		t.Fatalf("%d keys after the compaction, want 2", len(s.agg.keys))
	}
	count(s, 2*minute, "X0")
	count(s, 3*minute, "W0")
	if got := counts(s, win(2)); len(got) != 2 || got["w0"] != 2 || got["x0"] != 2 {
		t.Fatalf("window 2 after the compaction: %v", got)
	}
	if got := counts(s, win(3)); len(got) != 2 || got["w0"] != 2 || got["x0"] != 1 {
		t.Fatalf("window 3 after the compaction: %v", got)
	}
	if len(s.agg.ids) != 0 {
		t.Fatalf("the map holds %d keys the word table holds", len(s.agg.ids))
	}

	e := &enc{}
	e.varint(s.maxTime)
	e.varint(s.wm)
	e.varint(s.emitted)
	s.agg.encode(e, pl.Aggs)
	r := newSourceTask(&worker{plan: pl}, TaskID{pl.Source.Stream, 0}, 0)
	d := &dec{b: e.b}
	r.restoreState(d)
	if err := d.done("snapshot"); err != nil {
		t.Fatal(err)
	}
	count(r, 2*minute, "W0 x0 new")
	if got := counts(r, win(2)); len(got) != 3 || got["w0"] != 3 || got["x0"] != 3 || got["new"] != 1 {
		t.Fatalf("window 2 after the restore: %v", got)
	}
	if got := counts(r, win(3)); len(got) != 2 || got["w0"] != 2 || got["x0"] != 1 {
		t.Fatalf("window 3 after the restore: %v", got)
	}
}

// TestHash16 checks that hash16, by which countShort finds a word of up to
// 16 bytes in the table, is hashWord, by which it was put there: were they
// to differ, countShort would miss every such word (and fall back to the
// slower general lookup) without a wrong count to show for it.
func TestHash16(t *testing.T) {
	w := []byte("aBcdefghijKlmno'9xyz")
	for n := 1; n <= 16; n++ {
		pre := load(w, 0, min(8, n))
		if a, b := hashWord(w, 0, n, pre), hash16(pre, pre2Of(w, 0, n), n); a != b {
			t.Errorf("%d bytes: hashWord %x, hash16 %x", n, a, b)
		}
	}
}
