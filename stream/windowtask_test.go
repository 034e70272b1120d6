package stream

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ppml/ppml/envelope"
	"github.com/ppml/ppml/stream/record"
)

// TestWindowSnapshotKeepsKeyOrder merges keys into an open window in a
// scrambled order, snapshots the window task and restores the snapshot
// into a new task: the restored window must hold its keys in the order
// they came, and both tasks must fire the very same result lines, since
// a task that repeats its work after a restart must cut the same result
// records.
func TestWindowSnapshotKeepsKeyOrder(t *testing.T) {
	pl := wordCountPlan(t)
	secret := make([]byte, envelope.LocalKeySize)
	crand.Read(secret)
	key, err := envelope.NewLocalKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{plan: pl, keys: Keys{State: key}, state: record.NewOpener(key)}
	id := TaskID{pl.ShuffleStream(), 0}
	a := newWindowTask(w, id, 4)
	win := Window{Start: 0, End: time.Minute.Milliseconds()}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []string
	for _, i := range rng.Perm(200) {
		k := string(pl.appendKey(nil, &Row{Vals: []Value{Str(""), Str(fmt.Sprintf("w%03d", i))}}))
		acc := acc{n: int64(1 + i)}
		a.merge(win, k, &acc)
		want = append(want, k)
	}
	tc, err := a.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := w.state.Open(pl.StateStream(), 4, tc.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	b := newWindowTask(w, id, 4)
	d := &dec{b: rec.Body}
	b.restore(d)
	b.restoreState(d)
	if err := d.done("snapshot"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range b.windows[win].order {
		got = append(got, o.k)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("restored keys in another order than they came")
	}
	fire := func(t *windowTask) string {
		for p := range t.up {
			t.up[p].wm = win.End
		}
		t.advance()
		return string(t.results)
	}
	ra, rb := fire(a), fire(b)
	if ra == "" || ra != rb {
		t.Fatalf("the restored task fires other results:\n%.200s\nwant\n%.200s", rb, ra)
	}
}
