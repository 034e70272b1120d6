package stream

import (
	"fmt"
	"testing"
)

// TestPreAggCompactAndRemove checks that compacting the key table keeps
// every open window's keys and accumulators (in their order) and forgets
// the others, and that removing keys keeps the index consistent.
func TestPreAggCompactAndRemove(t *testing.T) {
	aggs := []Agg{{Name: "n", Op: Count}}
	p := newPreAgg(3)
	w1, w2 := Window{0, 10}, Window{10, 20}
	add := func(w Window, k string, n int) {
		id := p.id([]byte(k))
		wa := p.window(w)
		a := wa.get(id)
		if a == nil {
			a = wa.put(id, len(p.keys), makeAcc(aggs))
		}
		for range n {
			a.add(aggs, []Value{{}})
		}
	}
	for i := range 10000 {
		add(w1, fmt.Sprint("old", i), 1)
	}
	for i := range 100 {
		add(w2, fmt.Sprint("new", i), i+1)
	}
	live := len(p.wins[w1].ids) + len(p.wins[w2].ids)
	delete(p.wins, w1)
	p.flushed(live, 10000) // 10,100 keys, 10,100 live before the flush: kept
	if len(p.keys) != 10100 {
		t.Fatalf("compacted too early: %d keys", len(p.keys))
	}
	for i := range 100 {
		add(w2, fmt.Sprint("more", i), 1)
	}
	p.flushed(200, 0) // 10,200 keys, 200 live: compacted
	if len(p.keys) != 200 || len(p.ids) != 200 {
		t.Fatalf("after compaction: %d keys, %d ids; want 200", len(p.keys), len(p.ids))
	}
	wa := p.wins[w2]
	for i, id := range wa.ids {
		want := fmt.Sprint("new", i)
		n := int64(i + 1)
		if i >= 100 {
			want, n = fmt.Sprint("more", i-100), 1
		}
		if p.keys[id] != want || wa.accs[i].n != n || wa.get(id) != &wa.accs[i] {
			t.Fatalf("key %d: %q n=%d, want %q n=%d", i, p.keys[id], wa.accs[i].n, want, n)
		}
	}
	var removed []int32
	for i := 0; i < 200; i += 2 {
		removed = append(removed, wa.ids[0])
		wa.remove(wa.ids[0])
	}
	for _, id := range removed {
		if wa.get(id) != nil {
			t.Fatalf("removed key %q still found", p.keys[id])
		}
	}
	if len(wa.ids) != 100 {
		t.Fatalf("%d keys left, want 100", len(wa.ids))
	}
	for i, id := range wa.ids {
		if wa.get(id) != &wa.accs[i] {
			t.Fatalf("index of key %q broken after removals", p.keys[id])
		}
	}
}
